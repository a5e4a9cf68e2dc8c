"""MediaWiki XML dumps (`kind: mediawiki`): one dump file is one unit; one page (or revision) one record.

Reads the `pages-articles` and `pages-meta-history` exports (schema 0.6 to 0.11) as a stream:
`lxml.etree.iterparse` over the decompressed bytes, with entity resolution, DTD loading and
network access off, and every revision and page element freed as soon as it is read, so memory
stays flat however large the dump. lxml detects the encoding itself from the byte-order mark or
the XML declaration (UTF-8, and the UTF-16LE-with-BOM exports some tools write), so nothing is
transcoded here.

The wiki (dbname, domain for page URLs) comes from `<siteinfo>`; an excerpt cut without it is
named by its file name when that follows Wikimedia's `<dbname>-<date>-...` pattern.

Licence: what Wikimedia's Terms of Use state for the revision's date (CC BY-SA 3.0 before the
2023 cut-over, 4.0 from it; see `CC_BY_SA_4_FROM`), or the catalog's `license:` override. A
dump from a wiki outside Wikimedia gets no licence: the dump itself states none.

What becomes what:

- a page of a wanted namespace, not a redirect, with a usable revision -> one `RawRecord` whose
  payload is the raw wikitext (`revisions: latest`, the default), or one record per revision
  (`revisions: all`, `source_record_id` = `<page_id>@<rev_id>`);
- a page of another namespace -> `skipped` / `mediawiki.namespace` (value: the namespace number).
  A decision is written for every such page rather than dropping them silently: it is one small
  row per page, and the per-partition counts then add up to the pages in the file;
- a redirect page -> `skipped` / `mediawiki.redirect` (value: the target title); a dump's
  `<redirect>` describes the page as it is now, so in `revisions: all` the whole page is skipped;
- a revision whose text was suppressed (`<text deleted="deleted"/>`) is never used: `latest` takes
  the latest revision whose text is visible, and a page with none -> `skipped` /
  `mediawiki.text_deleted`; with `revisions: all` each suppressed revision -> the same decision;
- a revision whose content model is not wikitext (Lua modules, CSS, JSON) -> `skipped` /
  `mediawiki.content_model`;
- a page missing its id, title or revision, or with an unparseable id or timestamp ->
  `quarantined` / `mediawiki.malformed_page` with the error, and reading goes on.

A file that is not XML, is truncated or is corrupt (`EOFError` / `OSError` from the decompressor,
`XMLSyntaxError` from lxml) raises `UnreadableInput` naming the file: libxml2 cannot resume after
a syntax error, and a syntax error in a generated dump means the file is damaged, not that one
page is odd. Records already yielded from such a file are discarded with its partition.

Units come from `dumps` (file URLs named in the catalog) and, with `dump_index`, from the runs a
Wikimedia dump index lists (`https://dumps.wikimedia.org/<wiki>/`: one `<date>/` folder per run,
each with a `dumpstatus.json` naming every job's status and files with their sha1). The files of
`dump_job` in each run whose job is `done` become units, so a new run becomes new partitions
through the discovery sensor. A discovered file is checked against its sha1 before it is read.
"""

from __future__ import annotations

import hashlib
import json
import logging
import re
import zlib
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Literal
from urllib.parse import quote, unquote, urljoin, urlsplit

import lxml.html
from lxml import etree
from pydantic import BaseModel, Field, field_validator, model_validator

from opencorpus_dagster.connectors.base import (
    MAX_LISTING_BYTES,
    Connector,
    ConnectorOptions,
    Unit,
    UnreadableInput,
    UpstreamUrl,
    refused_unit,
    register,
)
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.state.home import readable_key
from opencorpus_dagster.upstream.compression import open_decompressed
from opencorpus_dagster.upstream.fetch import Fetcher, FetchError
from opencorpus_dagster.upstream.limits import InputLimits, LimitExceeded, clip, limit_records, read_at_most
from opencorpus_dagster.upstream.url_policy import UrlRefused, host_of, normalise_url, require_under

log = logging.getLogger(__name__)

# Wikimedia's Terms of Use revision that moved contributed text from CC BY-SA 3.0 Unported to
# CC BY-SA 4.0 International took effect on 7 June 2023: "the Wikimedia Terms of Use have been
# updated effective June 7" (Jacob Rogers, WMF Associate General Counsel, wikimedia-l, quoted in
# The Signpost, 19 June 2023, https://en.wikipedia.org/wiki/Wikipedia:Wikipedia_Signpost/2023-06-19/News_and_notes;
# terms: https://foundation.wikimedia.org/wiki/Policy:Terms_of_Use). The edit-page and footer
# messages were switched over in the following weeks, but contributors agree to the Terms of Use,
# so the Terms' effective date is the cut-over. A revision saved on or after it is offered under
# 4.0 as a whole: its older text is BY-SA 3.0, whose ShareAlike clause allows adaptations under a
# later version. Text from before the 2009 licensing update (GFDL only) was relicensed to
# CC BY-SA 3.0 by that update, so everything before the cut-over is CC BY-SA 3.0.
CC_BY_SA_4_FROM = "2023-06-07T00:00:00Z"
CC_BY_SA_4 = "CC-BY-SA-4.0"
CC_BY_SA_3 = "CC-BY-SA-3.0"

# Domains whose text falls under the Wikimedia Terms of Use. A dump of another MediaWiki (a
# Fandom wiki, a company wiki) states no licence, and the connector does not invent one.
_WIKIMEDIA_DOMAINS = (
    "wikipedia.org", "wiktionary.org", "wikibooks.org", "wikinews.org", "wikiquote.org",
    "wikisource.org", "wikiversity.org", "wikivoyage.org", "wikimedia.org", "wikidata.org",
    "mediawiki.org", "wikifunctions.org",
)  # fmt: skip

# Wikimedia sites serve articles under /wiki/ and scripts under /w/ ($wgArticlePath and
# $wgScriptPath); the dump's <base> names only the main page, so these are the convention.
_ARTICLE_PATH = "/wiki/"
_SCRIPT = "/w/index.php"

# Wikimedia dump files are named `<dbname>-<date>-<what>`; a dbname is `<language><project>`
# with `_` for `-` (zh_min_nanwiki -> zh-min-nan.wikipedia.org). Used only when a dump (or an
# excerpt cut from one) has no <siteinfo>.
_DBNAME = re.compile(r"([a-z][a-z_]*?)(wiki|wiktionary|wikibooks|wikinews|wikiquote|wikisource|wikiversity|wikivoyage)")
_PROJECT_DOMAINS = {
    "wiki": "wikipedia.org", "wiktionary": "wiktionary.org", "wikibooks": "wikibooks.org",
    "wikinews": "wikinews.org", "wikiquote": "wikiquote.org", "wikisource": "wikisource.org",
    "wikiversity": "wikiversity.org", "wikivoyage": "wikivoyage.org",
}  # fmt: skip
_SPECIAL_DBNAMES = {
    "commonswiki": "commons.wikimedia.org", "metawiki": "meta.wikimedia.org",
    "specieswiki": "species.wikimedia.org", "wikidatawiki": "www.wikidata.org",
    "mediawikiwiki": "www.mediawiki.org", "sourceswiki": "wikisource.org",
}  # fmt: skip

# MediaWiki's wfUrlencode() leaves these characters unescaped in page URLs.
_TITLE_SAFE = ";@$!*(),/~:"

_TIMESTAMP = re.compile(r"\d{4}-\d{2}-\d{2}T\d{2}:\d{2}:\d{2}Z")
_COMPRESSION_SUFFIXES = (".bz2", ".gz", ".xz", ".7z", ".zst")
_KEY_UNSAFE = re.compile(r"[^A-Za-z0-9._-]+")

# dumps.wikimedia.org/<wiki>/ is an nginx autoindex: `<a href="20230501/">` per run, beside
# `../` and `latest/` (a copy of the newest run under another name, not a run of its own).
_RUN_HREF = re.compile(r"(\d{8})/?")


def partition_key_for(url: str) -> str:
    """A readable partition key from a dump URL's file name, minus compression and `.xml`.

    `.../enwiki-latest-pages-articles1.xml-p000000010p000030302.bz2`
    -> `enwiki-latest-pages-articles1.xml-p000000010p000030302`.
    """
    name = unquote(urlsplit(url).path).rstrip("/").rsplit("/", 1)[-1]
    stripped = True
    while stripped:
        stripped = False
        for suffix in (*_COMPRESSION_SUFFIXES, ".xml"):
            if name.lower().endswith(suffix) and len(name) > len(suffix):
                name = name[: -len(suffix)]
                stripped = True
    key = readable_key(_KEY_UNSAFE.sub("-", name).strip("-"), "")
    if not key:
        raise ValueError(f"cannot derive a partition key from {clip(url)!r}; set partition_keys for it")
    return key


@register
class MediaWikiConnector(Connector):
    """MediaWiki XML export files, one partition per dump file."""

    kind = "mediawiki"
    content_kind = "encyclopedia"  # quality defaults (text/quality_defaults.py)
    unit_listing_options = ("dumps", "partition_keys", "dump_index", "dump_job", "since", "latest_runs", "listed_hosts")

    class Options(ConnectorOptions):
        dumps: list[UpstreamUrl] = Field(default=[], description="URLs of dump files; one file = one partition")
        dump_index: UpstreamUrl | None = Field(
            default=None, description="Wikimedia dump index (https://dumps.wikimedia.org/<wiki>/) whose runs are read"
        )
        dump_job: str = Field(
            default="articlesdump",
            description="dumpstatus.json job whose files are the units (articlesdumprecombine, metahistorybz2dump, ...)",
        )
        since: str | None = Field(default=None, pattern=r"^\d{8}$", description="YYYYMMDD: ignore older runs")
        latest_runs: int | None = Field(default=None, ge=1, description="look only at the N newest runs")
        namespaces: list[int] = Field(default=[0], description="namespace numbers to keep (0 = articles)")
        revisions: Literal["latest", "all"] = "latest"
        license: str | None = Field(default=None, description="overrides the per-revision Wikimedia licence")
        partition_keys: dict[str, str] | None = Field(default=None, description="dump URL -> partition key")
        listed_hosts: list[str] = Field(
            default=[], description="hosts a dumpstatus.json file URL may name outside the dump index's folder"
        )

        @field_validator("dump_index")
        @classmethod
        def _index_is_a_folder(cls, index: str | None) -> str | None:
            """`.../hywiki` means the folder: run dates resolve against it only with the slash."""
            return index if index is None or index.endswith("/") else index + "/"

        @model_validator(mode="after")
        def _units_have_a_source(self):
            if not self.dumps and self.dump_index is None:
                raise ValueError(
                    "name the dump files in dumps, or a Wikimedia dump index in dump_index "
                    "(like https://dumps.wikimedia.org/hywiki/), or both"
                )
            stray = sorted({"dump_job", "since", "latest_runs"} & self.model_fields_set)
            if stray and self.dump_index is None:
                raise ValueError(f"{', '.join(stray)} select runs of dump_index, which is not set")
            return self

        @model_validator(mode="after")
        def _keys_are_unique(self):
            explicit = self.partition_keys or {}
            unknown = sorted(set(explicit) - set(self.dumps))
            if unknown:
                raise ValueError(f"partition_keys names URLs that are not in dumps: {', '.join(unknown)}")
            if len(set(self.dumps)) != len(self.dumps):
                raise ValueError("dumps lists the same URL twice")
            seen: dict[str, str] = {}
            for url in self.dumps:
                key = explicit.get(url) or partition_key_for(url)
                if _KEY_UNSAFE.search(key):
                    raise ValueError(f"partition key {key!r} for {url} may only use letters, digits, '.', '_' and '-'")
                if key in seen:
                    raise ValueError(
                        f"dumps {seen[key]} and {url} both get the partition key {key!r}; "
                        "give one of them an explicit key under partition_keys"
                    )
                seen[key] = url
            return self

    options: Options

    def units(self) -> list[Unit]:
        """The files named in `dumps`, one unit each; see `discover_units` for `dump_index`."""
        explicit = self.options.partition_keys or {}
        return [Unit(key=explicit.get(url) or partition_key_for(url), urls=(url,)) for url in self.options.dumps]

    def discovers(self) -> bool:
        return self.options.dump_index is not None

    def discover_units(self, fetcher: Fetcher) -> list[Unit]:
        """The files in `dumps`, then the files of `dump_job` in each finished run of `dump_index`.

        Runs oldest first and files by name within a run, so a new run only appends units. A
        discovered unit carries the file's `sha1` and `size` from dumpstatus.json in `extra`.
        Raises what `list_dump_files` raises, and ValueError when a listed file would get the
        partition key of another file.
        """
        units = self.units()
        if self.options.dump_index is None:
            return units
        listed = list_dump_files(
            fetcher,
            self.options.dump_index,
            self.options.dump_job,
            since=self.options.since,
            latest_runs=self.options.latest_runs,
            hosts=self.options.listed_hosts,
        )
        units = _add_listed_files(units, [file for file in listed if file.refused is None])
        refused = [file.refused for file in listed if file.refused is not None]
        if refused:
            units.append(refused_unit("refused-dumpstatus", self.options.dump_index, refused))
        return units

    def read(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        for url in unit.urls:
            path = _fetch_checked(fetcher, url, unit.extra.get("sha1"), unit.extra.get("size"))
            items = read_dump(
                path,
                url,
                namespaces=frozenset(self.options.namespaces),
                revisions=self.options.revisions,
                license_override=self.options.license,
                limits=self.limits,
            )
            yield from limit_records(items, self.limits.records_per_unit, url)


# -- discovering the runs of a Wikimedia dump index --------------------------------------------


@dataclass(frozen=True)
class DumpFile:
    """One file of a finished dump job, as its run's dumpstatus.json lists it."""

    url: str
    sha1: str | None
    size: int | None
    refused: str | None = None  # why the URL policy refused the URL dumpstatus.json gave

    def unit(self) -> Unit:
        extra = {name: value for name, value in (("sha1", self.sha1), ("size", self.size)) if value is not None}
        return Unit(key=partition_key_for(self.url), urls=(self.url,), extra=extra)


class _FileStatus(BaseModel):
    url: str | None = None  # absolute path on the dump host: /hywiki/20230501/<name>
    sha1: str | None = None  # some mirrors' copies and some jobs list no checksums
    size: int | None = None


class _JobStatus(BaseModel):
    status: str  # done, in-progress, waiting, failed, skipped
    files: dict[str, _FileStatus] = {}


class _DumpStatus(BaseModel):
    jobs: dict[str, _JobStatus]


class _RunNotReady(Exception):
    """A run whose job cannot be read (yet); `level` is how loudly skipping it is logged."""

    def __init__(self, problem: str, level: int = logging.WARNING):
        super().__init__(problem)
        self.level = level


def list_dump_files(
    fetcher: Fetcher,
    index_url: str,
    job: str,
    *,
    since: str | None = None,
    latest_runs: int | None = None,
    hosts: Iterable[str] = (),
) -> list[DumpFile]:
    """The files of `job` in the finished runs a Wikimedia dump index lists, oldest run first.

    Looks at the runs dated `since` (YYYYMMDD) or later, and of those at the `latest_runs`
    newest. A run whose dumpstatus.json is missing or invalid (still being written) is skipped
    with a warning, one whose job is not done yet is skipped quietly; a later call sees them
    again. A file URL must be inside the index's folder or on one of `hosts`; one that is not
    comes back as a `DumpFile` with `refused` set. Raises `UnreadableInput(index_url, ...)` when
    the index is not an HTML page linking to runs; a failed fetch of the index raises the
    fetcher's `FetchError`.
    """
    dates = [date for date in run_dates(fetcher, index_url) if since is None or date >= since]
    if latest_runs is not None:
        dates = dates[-latest_runs:]
    return [file for date in dates for file in _finished_job_files(fetcher, index_url, date, job, frozenset(h.lower() for h in hosts))]


def run_dates(fetcher: Fetcher, index_url: str) -> list[str]:
    """The run dates (YYYYMMDD) a dump index links to, oldest first.

    The index is fetched anew every time (upstream adds runs), never taken from the cache.
    """
    fetched = fetcher.fetch(index_url, refresh=True)
    try:
        hrefs = lxml.html.fromstring(_read_listing_file(fetched.path)).xpath("//a/@href")
    except (etree.ParserError, ValueError) as error:  # LimitExceeded is a ValueError
        raise UnreadableInput(index_url, f"not an HTML index ({error}); local copy {fetched.path}") from error
    dates = sorted({match[1] for href in hrefs if (match := _RUN_HREF.fullmatch(href.strip()))})
    if not dates:
        problem = f"links to no dump run (no link like 20230501/); local copy {fetched.path}"
        raise UnreadableInput(index_url, problem)
    return dates


def _finished_job_files(fetcher: Fetcher, index_url: str, date: str, job: str, hosts: frozenset[str]) -> list[DumpFile]:
    """The files of `job` in one run, or [] (logged) while the run cannot be read.

    A dumpstatus.json that says done is used from the cache: a finished job's files do not
    change. Any other answer may be a cached copy from an earlier tick, so it is fetched anew.
    """
    status_url = urljoin(index_url, f"{date}/dumpstatus.json")
    try:
        try:
            return _job_files(fetcher.fetch(status_url).path, job, status_url, index_url, hosts)
        except _RunNotReady:
            return _job_files(fetcher.fetch(status_url, refresh=True).path, job, status_url, index_url, hosts)
    except FetchError as error:
        log.warning("dump run %s skipped: no dumpstatus.json (%s)", date, error)
    except _RunNotReady as not_ready:
        log.log(not_ready.level, "dump run %s skipped: %s: %s", date, status_url, not_ready)
    return []


def _job_files(path: Path, job: str, status_url: str, index_url: str, hosts: frozenset[str]) -> list[DumpFile]:
    """The XML files of `job` in one local dumpstatus.json, by name; raises `_RunNotReady`.

    Only `.xml` files are dump files: a job may also list others (the multistream jobs list
    their `-index.txt` offset files beside the XML).
    """
    try:
        status = _DumpStatus.model_validate(json.loads(_read_listing_file(path)))
    except ValueError as error:  # JSONDecodeError, UnicodeDecodeError, pydantic's ValidationError, LimitExceeded
        raise _RunNotReady(f"invalid dumpstatus.json ({error})") from error
    if job not in status.jobs:
        raise _RunNotReady(f"no job {job!r} in dumpstatus.json (jobs: {', '.join(sorted(status.jobs))})")
    entry = status.jobs[job]
    if entry.status != "done":
        raise _RunNotReady(f"job {job!r} is {entry.status!r}, not done", level=logging.INFO)
    return [
        _listed_file(index_url, status_url, name, listed, hosts)
        for name, listed in sorted(entry.files.items())
        if ".xml" in name
    ]


def _listed_file(index_url: str, status_url: str, name: str, listed: _FileStatus, hosts: frozenset[str]) -> DumpFile:
    """One file of a job, its URL checked by the URL policy: inside the index's folder (Wikimedia
    lists `/hywiki/20230501/<name>`), or on a host the catalog entry declares."""
    url = urljoin(index_url, listed.url) if listed.url else urljoin(status_url, quote(name))
    try:
        url = normalise_url(url)
        if host_of(url) not in hosts:
            require_under(url, index_url)
    except UrlRefused as refusal:
        return DumpFile(url, None, None, refused=str(refusal.at(f"{status_url}, file {clip(name)!r}")))
    try:
        partition_key_for(url)
    except ValueError as error:  # a name of dots and punctuation only
        return DumpFile(url, None, None, refused=f"{status_url}, file {clip(name)!r}: {error}")
    return DumpFile(url, listed.sha1, listed.size)


def _read_listing_file(path: Path) -> bytes:
    """An index page or dumpstatus.json (tens of KB upstream), refused past `MAX_LISTING_BYTES`."""
    with open(path, "rb") as handle:
        return read_at_most(handle, MAX_LISTING_BYTES, "file_bytes")


def _add_listed_files(units: list[Unit], listed: list[DumpFile]) -> list[Unit]:
    """`units` plus one unit per listed file they do not already read; a clash of keys raises."""
    urls = {url for unit in units for url in unit.urls}
    by_key = {unit.key: unit.urls[0] for unit in units}
    merged = list(units)
    for file in listed:
        if file.url in urls:
            continue
        unit = file.unit()
        if unit.key in by_key:
            raise ValueError(
                f"{file.url} (listed by dump_index) and {by_key[unit.key]} both get the partition key "
                f"{unit.key!r}; remove one from dumps or give it another key under partition_keys"
            )
        by_key[unit.key] = file.url
        merged.append(unit)
    return merged


def _fetch_checked(fetcher: Fetcher, url: str, sha1: str | None, size: int | None) -> Path:
    """The local copy of `url`, checked against the sha1 its run's dumpstatus.json lists.

    A copy that does not match is fetched once more before the partition fails: it may be a
    damaged download kept in the cache, which a re-run must not read again. Raises
    `UnreadableInput(url, ...)` when the file still does not match.
    """
    fetched = fetcher.fetch(url)
    if sha1 is None or _sha1_of(fetched.path) == sha1.lower():
        return fetched.path
    fetched = fetcher.fetch(url, refresh=True)
    actual = _sha1_of(fetched.path)
    if actual == sha1.lower():
        return fetched.path
    problem = (
        f"sha1 {actual} does not match dumpstatus.json's {sha1} ({fetched.size} bytes; dumpstatus.json "
        f"says {size if size is not None else 'no size'}): a damaged or replaced file; local copy {fetched.path}"
    )
    raise UnreadableInput(url, problem)


def _sha1_of(path: Path) -> str:
    with open(path, "rb") as handle:
        return hashlib.file_digest(handle, "sha1").hexdigest()


# -- reading one dump file -----------------------------------------------------------------------


@dataclass(frozen=True)
class _Site:
    dbname: str
    domain: str
    namespaces: dict[str, int]  # prefix name -> number, for exports older than <ns> (0.6)
    named_by_file: bool = False  # no <siteinfo>: dbname and domain come from the dump's file name

    @property
    def is_wikimedia(self) -> bool:
        return any(self.domain == d or self.domain.endswith("." + d) for d in _WIKIMEDIA_DOMAINS)


@dataclass(frozen=True)
class _Page:
    page_id: int
    title: str
    namespace: int
    redirect: str | None


@dataclass(frozen=True)
class _Revision:
    rev_id: int
    timestamp: str
    text: str | None  # None: suppressed (`deleted="deleted"`); "" when over the record limit
    contributor: str | None
    model: str | None
    oversize: LimitExceeded | None = None  # the text is larger than limits.record_bytes


class _Malformed(Exception):
    pass


def read_dump(
    path: Path,
    dump_url: str,
    *,
    namespaces: frozenset[int] = frozenset({0}),
    revisions: Literal["latest", "all"] = "latest",
    license_override: str | None = None,
    limits: InputLimits | None = None,
) -> Iterator[RawRecord | Decision]:
    """Stream the records of one local MediaWiki dump file (bz2, gzip or plain XML).

    `dump_url` is the upstream address used in `upstream_uri` and error messages. Yields a
    `RawRecord` per kept page (or revision), a `Decision` per skipped or malformed page; a
    revision whose text is over `limits.record_bytes` (UTF-8) is quarantined as
    `limits.record_bytes` (value: its size in bytes). Raises `UnreadableInput(dump_url, ...)`
    when the file is not a readable MediaWiki export or decompresses to more than
    `limits.file_bytes`.
    """
    limits = limits or InputLimits()
    reader = _DumpReader(dump_url, namespaces, revisions, license_override, limits.record_bytes)
    try:
        with open_decompressed(path, max_bytes=limits.file_bytes) as stream:
            yield from reader.read(stream)
    except LimitExceeded as error:
        problem = f"decompresses to more than limits.file_bytes={error.limit} bytes; local copy {path}"
        raise UnreadableInput(dump_url, problem) from error
    except etree.XMLSyntaxError as error:
        raise UnreadableInput(dump_url, f"not well-formed XML ({clip(error)}); local copy {path}") from error
    except EOFError as error:
        problem = f"compressed stream ends early, file truncated ({error}); local copy {path}"
        raise UnreadableInput(dump_url, problem) from error
    except (OSError, zlib.error) as error:
        raise UnreadableInput(dump_url, f"cannot read or decompress ({error}); local copy {path}") from error


class _DumpReader:
    """One pass over one dump file; `read` is a generator of records and decisions."""

    def __init__(
        self,
        dump_url: str,
        namespaces: frozenset[int],
        revisions: str,
        license_override: str | None,
        record_bytes: int = InputLimits().record_bytes,
    ):
        self.dump_url = dump_url
        self.record_bytes = record_bytes
        self.namespaces = namespaces
        self.all_revisions = revisions == "all"
        self.license_override = license_override
        self.site: _Site | None = None
        self.ns = ""  # the export schema's XML namespace, "{http://www.mediawiki.org/xml/export-0.10/}"

    def read(self, stream) -> Iterator[RawRecord | Decision]:
        events = etree.iterparse(
            stream,
            events=("start", "end"),
            resolve_entities=False,
            no_network=True,
            load_dtd=False,
            # MediaWiki caps a revision at 2 MiB by default, but old or non-Wikimedia dumps hold
            # larger texts than libxml2's default 10 MB node limit; entities stay unresolved.
            huge_tree=True,
            remove_blank_text=False,
        )
        root = None
        ordinal = 0  # position of the page in the file: names a page whose id is unusable
        page_el = None
        page: _Page | str | None = None  # _Page, or the error that makes the page malformed
        state = _PageState()
        for event, element in events:
            if root is None:
                root = element
                self._check_root(root)
                continue
            if event == "start":
                if element.getparent() is root and _local(element.tag) == "page":
                    ordinal += 1
                    page_el, page, state = element, None, _PageState()
                continue
            name = _local(element.tag)
            parent = element.getparent()
            if name == "siteinfo" and parent is root:
                self.site = self._parse_siteinfo(element)
                root.remove(element)
            elif name == "revision" and parent is page_el and page_el is not None:
                if page is None:
                    page = self._parse_page(page_el)
                if isinstance(page, _Page) and self._wanted(page):
                    yield from self._take_revision(page, element, state)
                state.revision_count += 1
                # Free the revision now: a history dump holds thousands per page.
                element.clear()
                page_el.remove(element)
            elif name == "page" and parent is root:
                if page is None:
                    page = self._parse_page(element)
                yield from self._finish_page(page, element, ordinal, state)
                element.clear()
                root.remove(element)
                page_el = None
        if root is not None and self.site is None and ordinal == 0:
            raise UnreadableInput(self.dump_url, "MediaWiki export without <siteinfo> or <page> elements")

    # -- structure -------------------------------------------------------------------------

    def _check_root(self, root) -> None:
        tag = root.tag if isinstance(root.tag, str) else ""
        if _local(tag) != "mediawiki":
            raise UnreadableInput(self.dump_url, f"not a MediaWiki export: root element is <{clip(_local(tag))}>")
        self.ns = tag[: tag.index("}") + 1] if tag.startswith("{") else ""

    def _parse_siteinfo(self, element) -> _Site:
        dbname = (element.findtext(self.ns + "dbname") or "").strip()
        base = (element.findtext(self.ns + "base") or "").strip()
        domain = urlsplit(base).hostname or ""
        if not dbname or not domain:
            raise UnreadableInput(self.dump_url, "<siteinfo> lacks <dbname> or a <base> URL")
        names: dict[str, int] = {}
        for ns_el in element.iterfind(f"{self.ns}namespaces/{self.ns}namespace"):
            try:
                names[(ns_el.text or "").strip().casefold()] = int(ns_el.get("key", ""))
            except ValueError:
                continue
        names.pop("", None)
        return _Site(dbname, domain, names)

    def _site_from_file_name(self) -> _Site:
        name = unquote(urlsplit(self.dump_url).path).rsplit("/", 1)[-1]
        dbname = name.split("-", 1)[0]
        if dbname in _SPECIAL_DBNAMES:
            return _Site(dbname, _SPECIAL_DBNAMES[dbname], {}, named_by_file=True)
        match = _DBNAME.fullmatch(dbname)
        if match is None:
            raise UnreadableInput(
                self.dump_url,
                "the dump has no <siteinfo> and its file name does not start with a Wikimedia dbname "
                "(like enwiki-...); cannot tell which wiki it is from",
            )
        language, project = match.groups()
        domain = f"{language.replace('_', '-')}.{_PROJECT_DOMAINS[project]}"
        return _Site(dbname, domain, {}, named_by_file=True)

    def _parse_page(self, element) -> _Page | str:
        """The page header (what precedes its revisions), or the reason it is malformed."""
        if self.site is None:
            self.site = self._site_from_file_name()
        title = (element.findtext(self.ns + "title") or "").strip()
        id_text = (element.findtext(self.ns + "id") or "").strip()
        if not title:
            return "page has no <title>"
        if not id_text.isdigit():
            return f"page id {clip(repr(id_text))} is not a number" if id_text else "page has no <id>"
        ns_text = element.findtext(self.ns + "ns")
        if ns_text is not None:
            try:
                namespace = int(ns_text.strip())
            except ValueError:
                return f"page namespace {clip(repr(ns_text))} is not a number"
        else:  # exports before schema 0.6 carry the namespace only as a title prefix
            prefix, colon, _ = title.partition(":")
            namespace = self.site.namespaces.get(prefix.casefold(), 0) if colon else 0
        redirect_el = element.find(self.ns + "redirect")
        redirect = None if redirect_el is None else redirect_el.get("title", "")
        return _Page(int(id_text), title, namespace, redirect)

    def _wanted(self, page: _Page) -> bool:
        return page.namespace in self.namespaces and page.redirect is None

    def _parse_revision(self, element) -> _Revision:
        id_text = (element.findtext(self.ns + "id") or "").strip()
        if not id_text.isdigit():
            raise _Malformed(f"revision id {clip(repr(id_text))} is not a number" if id_text else "revision has no <id>")
        timestamp = (element.findtext(self.ns + "timestamp") or "").strip()
        if not _TIMESTAMP.fullmatch(timestamp):
            raise _Malformed(f"revision {id_text}: timestamp {clip(repr(timestamp))} is not YYYY-MM-DDTHH:MM:SSZ")
        text_el = element.find(self.ns + "text")
        if text_el is None:
            raise _Malformed(f"revision {id_text} has no <text>")
        if text_el.get("deleted") is not None:
            text = None
        elif len(text_el):  # an unresolved entity reference (`&x;` from a DTD) is a child node: keep it literal
            text = "".join(text_el.itertext())
        else:
            text = text_el.text or ""
        oversize = None
        if text is not None and _utf8_size_over(text, self.record_bytes):
            # The text is dropped here (the element is freed by the caller): only its size is kept.
            oversize = LimitExceeded("record_bytes", self.record_bytes, _utf8_size(text))
            text = ""
        contributor = None
        contributor_el = element.find(self.ns + "contributor")
        if contributor_el is not None and contributor_el.get("deleted") is None:
            contributor = (
                contributor_el.findtext(self.ns + "username") or contributor_el.findtext(self.ns + "ip") or None
            )
        model = element.findtext(self.ns + "model")
        return _Revision(int(id_text), timestamp, text, contributor, model.strip() if model else None, oversize)

    # -- decisions -------------------------------------------------------------------------

    def _take_revision(self, page: _Page, element, state: _PageState) -> Iterator[RawRecord | Decision]:
        try:
            revision = self._parse_revision(element)
        except _Malformed as error:
            if self.all_revisions:
                record_id = f"{page.page_id}@#{state.revision_count + 1}"
                yield self._decision(record_id, f"{self.dump_url}#page={page.page_id}", Outcome.QUARANTINED,
                                     "mediawiki.malformed_page", None, str(error))  # fmt: skip
            else:
                state.error = state.error or str(error)
            return
        if not self.all_revisions:
            state.consider(revision)
            return
        record_id = f"{page.page_id}@{revision.rev_id}"
        skip = _unusable(revision)
        if revision.oversize is not None:
            yield self._oversize(page, revision, record_id)
        elif skip:
            yield self._decision(record_id, self._uri(page, revision), Outcome.SKIPPED, *skip)
        else:
            yield self._record(page, revision, record_id)

    def _finish_page(self, page: _Page | str, element, ordinal: int, state: _PageState):
        if isinstance(page, str):
            id_text = (element.findtext(self.ns + "id") or "").strip()
            record_id = id_text or f"page#{ordinal}"
            uri = f"{self.dump_url}#page={quote(id_text)}" if id_text else f"{self.dump_url}#page-ordinal={ordinal}"
            yield self._decision(record_id, uri, Outcome.QUARANTINED, "mediawiki.malformed_page", None, page)
            return
        record_id, uri = str(page.page_id), f"{self.dump_url}#page={page.page_id}"
        if page.namespace not in self.namespaces:
            yield self._decision(record_id, uri, Outcome.SKIPPED, "mediawiki.namespace", str(page.namespace))
        elif page.redirect is not None:
            yield self._decision(record_id, uri, Outcome.SKIPPED, "mediawiki.redirect", clip(page.redirect))
        elif state.revision_count == 0:
            yield self._decision(record_id, uri, Outcome.QUARANTINED, "mediawiki.malformed_page", None,
                                 f"page {page.page_id} ({clip(page.title)}) has no <revision>")  # fmt: skip
        elif self.all_revisions:
            return  # each revision already has its record or decision
        elif state.error is not None:
            # Which revision is the latest cannot be trusted when one of them is unreadable.
            yield self._decision(record_id, uri, Outcome.QUARANTINED, "mediawiki.malformed_page", None,
                                 f"page {page.page_id} ({clip(page.title)}): {state.error}")  # fmt: skip
        elif state.latest is None:
            yield self._decision(record_id, uri, Outcome.SKIPPED, "mediawiki.text_deleted", str(state.deleted),
                                 f"all {state.deleted} revisions have suppressed text")  # fmt: skip
        elif state.latest.oversize is not None:
            yield self._oversize(page, state.latest, record_id)
        elif skip := _unusable(state.latest):
            yield self._decision(record_id, self._uri(page, state.latest), Outcome.SKIPPED, *skip)
        else:
            yield self._record(page, state.latest, record_id)

    def _decision(self, record_id, uri, outcome, reason, value=None, detail=None) -> Decision:
        return Decision(record_id, uri, outcome, stage="raw", reason=reason, value=value, detail=detail)

    def _oversize(self, page: _Page, revision: _Revision, record_id: str) -> Decision:
        error = revision.oversize
        assert error is not None
        detail = f"revision {revision.rev_id} has {error.seen} bytes of text, more than limits.record_bytes={error.limit}"
        return self._decision(
            record_id, self._uri(page, revision), Outcome.QUARANTINED, "limits.record_bytes", str(error.seen), detail
        )

    def _uri(self, page: _Page, revision: _Revision) -> str:
        return f"{self.dump_url}#page={page.page_id}&revision={revision.rev_id}"

    def _record(self, page: _Page, revision: _Revision, record_id: str) -> RawRecord:
        site = self.site
        assert site is not None and revision.text is not None
        quoted = quote(page.title.replace(" ", "_"), safe=_TITLE_SAFE)
        url = f"https://{site.domain}{_ARTICLE_PATH}{quoted}"
        oldid = f"https://{site.domain}{_SCRIPT}?oldid={revision.rev_id}"
        history = f"https://{site.domain}{_SCRIPT}?title={quoted}&action=history"
        license, evidence = self._license(site, revision)
        metadata = {
            "dbname": site.dbname,
            "page_id": page.page_id,
            "revision_id": revision.rev_id,
            "timestamp": revision.timestamp,
            "namespace": page.namespace,
        }
        if revision.contributor is not None:
            metadata["contributor"] = revision.contributor
        return RawRecord(
            source_record_id=record_id,
            upstream_uri=self._uri(page, revision),
            payload=revision.text,
            payload_type=PayloadType.WIKITEXT,
            url=url,
            title=page.title,
            license=license,
            license_evidence=evidence,
            attribution=f"{page.title}, {url}, revision {revision.rev_id} ({oldid}); authors: {history}",
            metadata=metadata,
        )

    def _license(self, site: _Site, revision: _Revision) -> tuple[str | None, str]:
        if self.license_override is not None:
            return self.license_override, "catalog override"
        if not site.is_wikimedia:
            return None, f"dump {site.dbname} is from {site.domain}, not a Wikimedia wiki; the dump states no licence"
        after = revision.timestamp >= CC_BY_SA_4_FROM  # same fixed-width UTC format: text order is time order
        return (
            CC_BY_SA_4 if after else CC_BY_SA_3,
            f"Wikimedia terms of use: text contributed {'on or after' if after else 'before'} "
            f"{CC_BY_SA_4_FROM[:10]} (revision timestamp {revision.timestamp}) in dump {site.dbname}"
            + (" (wiki named by the dump's file name: it has no <siteinfo>)" if site.named_by_file else ""),
        )


class _PageState:
    """What one page's revisions left behind: the latest visible one, counts, the first error."""

    __slots__ = ("deleted", "error", "latest", "revision_count")

    def __init__(self):
        self.latest: _Revision | None = None
        self.deleted = 0
        self.revision_count = 0
        self.error: str | None = None

    def consider(self, revision: _Revision) -> None:
        if revision.text is None:
            self.deleted += 1
            return
        # Latest by timestamp, then id: history exports are usually but not always in order.
        if self.latest is None or (revision.timestamp, revision.rev_id) > (self.latest.timestamp, self.latest.rev_id):
            self.latest = revision


def _utf8_size_over(text: str, limit: int) -> bool:
    # A character is 1 to 4 bytes in UTF-8: encode (a copy) only when the length cannot decide.
    if len(text) > limit:
        return True
    return len(text) * 4 > limit and len(text.encode("utf-8")) > limit


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _unusable(revision: _Revision) -> tuple[str, str, str] | None:
    """(reason, value, detail) when a revision is not wikitext content, else None."""
    if revision.text is None:
        return "mediawiki.text_deleted", "1", f"revision {revision.rev_id} has suppressed text"
    if revision.model is not None and revision.model != "wikitext":
        detail = f"revision {revision.rev_id} is {clip(revision.model)}, not wikitext"
        return "mediawiki.content_model", clip(revision.model), detail
    return None


def _local(tag) -> str:
    if not isinstance(tag, str):  # comments and processing instructions
        return ""
    return tag.rpartition("}")[2]
