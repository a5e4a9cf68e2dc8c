"""What identifies one published corpus: its version, release date, creators, citation and URL.

The dataset card and the Croissant file print the same facts, made here once:

- version: `0.0.0+<12 hex digits of the sha256 over the shards' paths and sha256s>`, which
  changes exactly when a shard's bytes change (the corpus has no release number of its own;
  SemVer build metadata, as Croissant asks for `MAJOR.MINOR.PATCH`);
- release date: the UTC date of the latest decision in the lineage store (`decisions.decided_at`),
  i.e. when a record's outcome was last decided. Never the clock at write time: rewriting the
  card from the same corpus and store gives the same date, and a build that decides nothing
  new keeps it. None when the store holds no decision;
- creators: the catalog `owners:` of the sources present in the shards, in the order of the
  sorted source names (each owner once), verbatim (`team:corpus`, an e-mail address);
- base URL: where the corpus folder (`<home>/corpus`, holding `releases/`) is served, from
  `OPENCORPUS_BASE_URL`. Set, Croissant's `url` and `contentUrl`s are absolute under it (in the
  release's folder, `releases/<id>/`) and the citation carries it; unset, they stay relative to
  the release folder, where the card is.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from datetime import UTC, datetime
from urllib.parse import urljoin, urlsplit

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.upstream.url_policy import UrlRefused, normalise_url

BASE_URL_ENV = "OPENCORPUS_BASE_URL"


@dataclass(frozen=True)
class Release:
    name: str
    version: str
    date: str | None  # YYYY-MM-DD (UTC)
    creators: tuple[str, ...]
    base_url: str | None  # absolute, ends with "/"; None: files are named relative to the release folder
    folder: str = ""  # the release folder relative to the corpus folder: `releases/r000001/`

    def url_of(self, relative: str) -> str:
        """The URL of a file of the release folder: absolute under the base URL, else `relative`."""
        return urljoin(self.base_url, self.folder + relative) if self.base_url else relative

    @property
    def year(self) -> str | None:
        return self.date[:4] if self.date else None

    def bibtex(self, title: str) -> str:
        """A BibTeX `@misc` entry for this release (`title` is the dataset's descriptive title)."""
        key = re.sub(r"[^a-z0-9]+", "_", self.name.lower()).strip("_") or "corpus"
        # The name braced: BibTeX styles keep its case as written.
        fields = [("title", f"{{{_bibtex_text(self.name)}}}: {_bibtex_text(title)}")]
        if self.creators:
            # Braced: an owner is a team or an address, not a "Last, First" personal name.
            fields.append(("author", " and ".join(f"{{{_bibtex_text(c)}}}" for c in self.creators)))
        if self.year:
            fields.append(("year", self.year))
        fields.append(("version", _bibtex_text(self.version)))
        if self.date:
            fields.append(("date", self.date))
        if self.base_url:
            fields.append(("url", _bibtex_url(self.url_of("README.md"))))
        fields.append(("howpublished", "Dataset card (README.md) with Parquet shards"))
        key = f"{key}_{self.year}" if self.year else key
        key = f"{key}_{self.version.rpartition('+')[2]}"
        body = ",\n".join(f"  {name} = {{{value}}}" for name, value in fields)
        return f"@misc{{{key},\n{body}\n}}\n"


def release_of(
    manifest: dict,
    store: LineageStore,
    owners: dict[str, list[str]] | None,
    base_url: str | None,
    name: str,
    folder: str = "",
) -> Release:
    """The release facts of the corpus `manifest` describes (see the module doc).

    `owners` maps a source name to its catalog owners; `base_url` is checked by `check_base_url`
    (ValueError when it is not an absolute http(s) URL).
    """
    present = sorted(manifest["totals"]["sources"])
    creators: list[str] = []
    for source in present:
        for owner in (owners or {}).get(source, []):
            if owner not in creators:
                creators.append(owner)
    return Release(
        name=name,
        version=corpus_version(manifest),
        date=release_date(store),
        creators=tuple(creators),
        base_url=check_base_url(base_url) if base_url else None,
        folder=folder,
    )


def corpus_version(manifest: dict) -> str:
    """`0.0.0+<first 12 hex digits of the sha256 over "path:sha256" of every shard>`."""
    digest = hashlib.sha256("".join(f"{s['path']}:{s['sha256']}\n" for s in manifest["shards"]).encode())
    return f"0.0.0+{digest.hexdigest()[:12]}"


def release_date(store: LineageStore) -> str | None:
    """UTC date (YYYY-MM-DD) of the latest decision recorded in the store; None if there is none.

    `decided_at` is an ISO 8601 string with its offset (`2026-11-30T17:05:16+00:00`): compared as
    instants (epoch seconds), not as text, by one aggregate in DuckDB (the decisions table has a
    row per upstream record). A stamp DuckDB cannot read is left out.
    """
    with store.connection() as conn:
        (latest,) = conn.execute("SELECT max(epoch(TRY_CAST(decided_at AS TIMESTAMPTZ))) FROM decisions").fetchone()
    return datetime.fromtimestamp(latest, UTC).date().isoformat() if latest is not None else None


def base_url_from_environment() -> str | None:
    """`OPENCORPUS_BASE_URL`, checked (see `check_base_url`); None when unset or empty."""
    value = os.environ.get(BASE_URL_ENV, "").strip()
    if not value:
        return None
    try:
        return check_base_url(value)
    except ValueError as error:
        raise ValueError(f"{BASE_URL_ENV}: {error}") from None


def check_base_url(url: str) -> str:
    """`url` normalised (url_policy's rules: http(s), no user:password, dot segments resolved),
    without query or fragment, ending in "/" so that file names join under it.

    Raises ValueError (a `UrlRefused` for the url_policy rules) naming what is wrong.
    """
    normalised = normalise_url(url)
    parts = urlsplit(normalised)
    if parts.query or "#" in url:
        raise UrlRefused("url.malformed", url, "a base URL takes no query or fragment")
    return normalised if normalised.endswith("/") else normalised + "/"


def _bibtex_text(value: str) -> str:
    """Text for a braced BibTeX field: braces and backslashes dropped (they would unbalance the
    entry), LaTeX's special characters escaped."""
    value = re.sub(r"[{}\\]", "", " ".join(value.split()))
    return re.sub(r"([%&$#_^~])", r"\\\1", value)


def _bibtex_url(url: str) -> str:
    # biblatex reads `url` verbatim: only what would unbalance the braces goes.
    return re.sub(r"[{}\\\s]", "", url)

