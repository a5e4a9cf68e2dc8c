"""The ATTRIBUTION file: who to credit for every kept record whose licence asks for it.

Format: plain text, UTF-8 (no Markdown, so titles and URLs are printed exactly as recorded,
never escaped). A header lists every licence in the corpus with its URL, its document count
and whether it requires attribution; then, grouped by source and licence, one block per record:

    Title: <title>
    URL: <url, or the upstream URI when the record has no URL>
    Attribution: <the attribution string recorded by the connector>

A licence requires attribution unless it is in the public-domain family (CC0, the Public
Domain Mark, `LicenseRef-PublicDomain`, PDDL, Unlicense: `permissiveness_rank` 0); an
`A OR B` expression needs none when one branch needs none. A record without a licence is
listed (under "(no licence recorded)"): a shard should never hold one, and if it does the
safe reading is that attribution is owed.

Only the provenance columns are read (DuckDB over the shard files, never the text), in
(source, licence, title, url, doc_id) order, and written as they stream in.
"""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path

import duckdb
from license_expression import LicenseWithExceptionSymbol

from opencorpus_dagster.licensing.policy import permissiveness_rank
from opencorpus_dagster.licensing.spdx import (
    PUBLIC_DOMAIN,
    parse_expression,
    spdx_licensing,
)
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.shards import shard_paths
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import duckdb_connect

ATTRIBUTION_FILE = "ATTRIBUTION"
NO_LICENSE = "(no licence recorded)"
_BATCH_ROWS = 10_000
_CC_LICENCE = re.compile(r"^CC-(BY(?:-NC)?(?:-ND|-SA)?)-(\d\.\d)(?:-([A-Z]{2,3}))?$", re.IGNORECASE)
# Licences whose canonical page is not at spdx.org/licenses/<id>.html (or that SPDX lacks).
_LICENCE_URLS = {
    "CC0-1.0": "https://creativecommons.org/publicdomain/zero/1.0/",
    "CC-PDM-1.0": "https://creativecommons.org/publicdomain/mark/1.0/",
    "CC-PDDC": "https://creativecommons.org/licenses/publicdomain/",
    # "No known copyright": the Public Domain Mark is the standard statement of that.
    PUBLIC_DOMAIN: "https://creativecommons.org/publicdomain/mark/1.0/",
}


def license_keys(expression: str | None) -> list[str]:
    """The licence ids of an SPDX expression, in order, without exceptions (`WITH x`).

    An expression the SPDX parser cannot read is returned whole, as one key.
    """
    if not expression:
        return []
    parsed = parse_expression(expression)
    if parsed is None:
        return [expression]
    keys: list[str] = []
    for symbol in spdx_licensing().license_symbols(parsed, unique=True, decompose=False):
        key = symbol.license_symbol.key if isinstance(symbol, LicenseWithExceptionSymbol) else symbol.key
        if key not in keys:
            keys.append(key)
    return keys


def license_url(key: str) -> str | None:
    """The page of one licence id: Creative Commons' deed for CC ids, spdx.org for the rest.

    None for a `LicenseRef-` this project does not define (it has no public page).
    """
    if key in _LICENCE_URLS:
        return _LICENCE_URLS[key]
    match = _CC_LICENCE.match(key)
    if match:
        elements, version, jurisdiction = match.groups()
        port = f"{jurisdiction.lower()}/" if jurisdiction else ""
        return f"https://creativecommons.org/licenses/{elements.lower()}/{version}/{port}"
    if key.startswith(PUBLIC_DOMAIN):
        return _LICENCE_URLS[PUBLIC_DOMAIN]
    if key.startswith(("LicenseRef-", "DocumentRef-")):
        return None
    return f"https://spdx.org/licenses/{key}.html"


def license_urls(expression: str | None) -> list[str]:
    """The pages of every licence id in an expression, in order (ids without a page left out)."""
    return [link for link in map(license_url, license_keys(expression)) if link]


def requires_attribution(expression: str | None) -> bool:
    """True unless the expression is public domain / CC0-like (see the module doc)."""
    return not expression or permissiveness_rank(expression) != 0


def shard_files(home: DataHome, release: str | None = None) -> list[str]:
    """Absolute paths of the shards `release` (default: the current release) lists, in manifest order.

    Raises FileNotFoundError when the corpus has no manifest (nothing was published yet).
    """
    if releases.read_manifest(home, release) is None:
        raise FileNotFoundError(f"{releases.pointer_path(home)}: no release; build the corpus first (opencorpus build)")
    return shard_paths(home, release)


def write_attribution(home: DataHome, store: LineageStore, release: str | None = None) -> Path:
    """Write `ATTRIBUTION` (plain text) into the folder of `release` (default: the one being
    staged, else the current one) for its shards; returns its path.

    `store` is accepted for symmetry with the other publishers; every field printed comes
    from the shard rows themselves (title, url, attribution), which are what a user receives.
    Raises FileNotFoundError when there is no manifest.
    """
    del store  # the shard rows carry everything the file prints
    release = release or releases.card_release(home)
    files = shard_files(home, release)
    target = releases.release_dir(home, release) / ATTRIBUTION_FILE
    connection = duckdb_connect(*files)
    try:
        return write_text_atomically(target, _render(connection, files))
    finally:
        connection.close()


def _render(connection: duckdb.DuckDBPyConnection, files: list[str]) -> Iterator[str]:
    counts = _license_counts(connection, files)
    owed = [license for license in counts if requires_attribution(license)]
    yield "ATTRIBUTION\n===========\n\n"
    yield (
        "Format: plain text (UTF-8). Credits for every record of this corpus whose licence requires\n"
        "attribution, grouped by source, then licence; records sorted by title, URL and doc_id.\n"
        "Public-domain and CC0-like records need no attribution and are not listed.\n\n"
    )
    yield "Licences in this corpus (documents):\n"
    for license, count in counts.items():
        label = license if license is not None else NO_LICENSE
        urls = ", ".join(license_urls(license)) or "no public URL"
        needs = "attribution required" if requires_attribution(license) else "no attribution required"
        yield f"  {label}: {count} document{'' if count == 1 else 's'}; {urls}; {needs}\n"
    if not owed:
        yield "\nNo record of this corpus requires attribution.\n"
        return
    yield from _records(connection, files, owed)


def _license_counts(connection: duckdb.DuckDBPyConnection, files: list[str]) -> dict[str | None, int]:
    if not files:
        return {}
    rows = connection.execute(
        "SELECT license, count(*) FROM read_parquet(?) GROUP BY license ORDER BY license NULLS LAST", [files]
    ).fetchall()
    return {license: count for license, count in rows}


def _records(connection: duckdb.DuckDBPyConnection, files: list[str], owed: list[str | None]) -> Iterator[str]:
    licenses = [license for license in owed if license is not None]
    group_counts = dict(
        ((source, license), count)
        for source, license, count in connection.execute(
            "SELECT source, license, count(*) FROM read_parquet(?) "
            "WHERE license IN (SELECT unnest(?::VARCHAR[])) OR (? AND license IS NULL) GROUP BY ALL",
            [files, licenses, None in owed],
        ).fetchall()
    )
    reader = connection.sql(
        """
        SELECT source, license, title, url, upstream_uri, attribution
        FROM read_parquet(?)
        WHERE license IN (SELECT unnest(?::VARCHAR[])) OR (? AND license IS NULL)
        ORDER BY source, license NULLS LAST, title NULLS LAST, url NULLS LAST, doc_id
        """,
        params=[files, licenses, None in owed],
    ).to_arrow_reader(_BATCH_ROWS)
    current_source: str | None = None
    current_group: tuple | None = None
    for batch in reader:
        for source, license, title, url, upstream_uri, attribution in zip(
            *(batch.column(i).to_pylist() for i in range(batch.num_columns)), strict=True
        ):
            if source != current_source:
                heading = f"Source: {source}"
                yield f"\n\n{heading}\n{'-' * len(heading)}\n"
                current_source = source
            if (source, license) != current_group:
                current_group = (source, license)
                label = license if license is not None else NO_LICENSE
                urls = " ".join(f"<{link}>" for link in license_urls(license))
                count = group_counts[(source, license)]
                yield f"\nLicence: {label} {urls}".rstrip() + f" ({count} record{'' if count == 1 else 's'})\n"
            yield (
                f"\n  Title: {_one_line(title)}\n"
                f"  URL: {_one_line(url or upstream_uri)}\n"
                f"  Attribution: {_one_line(attribution)}\n"
            )


def _one_line(value: str | None) -> str:
    """A field on one line: a newline inside a title would otherwise fake a new field."""
    return " ".join(value.split()) if value else "(none)"
