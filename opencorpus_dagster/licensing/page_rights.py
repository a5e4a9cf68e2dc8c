"""Documents-stage step for HTML records: the page's licence signals and its publisher's opt-outs.

Runs before the licence gate and before extraction, on the raw HTML and HTTP headers the
connector kept. An opt-out removes the page even when it carries an open licence (the
publisher's reservation wins); otherwise the licence detected in the page becomes the record's
licence statement, with every signal as evidence. `robots.txt` and `/.well-known/tdmrep.json`
are fetched once per host through the mirror-aware fetcher when one is given (a mirror or an
archive that has them); a host without them reserves nothing.

robots.txt at crawl time: when the crawl's own WARC file captured a host's `/robots.txt` (a
response record the warc connector marks `metadata["robots_txt"]`), that capture decides the
opt-out for the pages of that host in the same file: it is what the site said when the pages
were fetched, whereas the mirror's or live file says what it says today. The mirror/live file is
read only for hosts the file holds no capture of. Scope: one WARC file (one partition), because
a partition's output may depend only on its own unit; captures in other files of the same crawl
(Common Crawl keeps them in separate `robotstxt/` files) are not consulted. The raw stage has
read the whole file before the documents stage starts, so `robots_captures(raw_path)` finds a
capture wherever it sits in the file, after the pages too. Several captures of one host: the
latest one taken at or before the page, else the earliest. The evidence of a `robots-ai`
opt-out names the robots.txt used: the capture (WARC file, record id, date, HTTP status) or the
fetched URL. The capture record itself is not content: skipped, reason `warc.robots_txt`.
"""

from __future__ import annotations

import json
import zlib
from dataclasses import dataclass
from pathlib import Path
from urllib.parse import urlsplit

import pyarrow.compute as pc

from opencorpus_dagster.licensing.optout import (
    SIGNAL_ROBOTS_AI,
    OptOut,
    RobotsPolicy,
    TdmRepPolicy,
    detect_optout,
)
from opencorpus_dagster.licensing.web import detect_page_licenses
from opencorpus_dagster.records import Document, Drop, Outcome, PayloadType
from opencorpus_dagster.state.storage import parquet_file
from opencorpus_dagster.upstream.compression import open_decompressed
from opencorpus_dagster.upstream.fetch import Fetcher, FetchError
from opencorpus_dagster.upstream.url_policy import UrlRefused

# RFC 9309 section 2.5: a crawler must parse at least the first 500 KiB of a robots.txt; what
# follows may be ignored. The same bound serves tdmrep.json (a few KB in practice).
MAX_POLICY_BYTES = 500 * 1024


@dataclass(frozen=True)
class RobotsCapture:
    """A host's robots.txt as a crawl captured it (a WARC response record)."""

    origin: str
    policy: RobotsPolicy
    status: int
    date: str  # WARC-Date, ISO 8601 UTC: compares as text
    record_id: str
    warc_file: str

    def describe(self) -> str:
        return (
            f"robots.txt captured by the crawl: {self.warc_file} record {self.record_id}, "
            f"{self.date}, HTTP {self.status}"
        )


def robots_captures(raw_path: Path) -> dict[str, list[RobotsCapture]]:
    """origin -> the robots.txt captures among the raw records of one partition, oldest first.

    Reads the metadata column, and the payloads only of the marked rows (none for sources
    that are not web archives)."""
    parquet = parquet_file(raw_path)
    table = parquet.read(columns=["metadata"])
    if table.num_rows == 0:
        return {}
    marked = pc.match_substring(pc.fill_null(table["metadata"], ""), '"robots_txt"')
    rows = pc.indices_nonzero(marked)
    if len(rows) == 0:
        return {}
    found = parquet.read(columns=["metadata", "payload", "url"]).take(rows).to_pylist()
    captures: dict[str, list[RobotsCapture]] = {}
    for row in found:
        capture = json.loads(row["metadata"] or "{}").get("robots_txt")
        origin = _origin(row["url"])
        if not capture or origin is None:
            continue
        captures.setdefault(origin, []).append(
            RobotsCapture(
                origin=origin,
                policy=RobotsPolicy.parse(row["payload"] or ""),
                status=capture["status"],
                date=capture.get("warc_date") or "",
                record_id=capture["record_id"],
                warc_file=capture["warc_file"],
            )
        )
    for listed in captures.values():
        listed.sort(key=lambda c: (c.date, c.record_id))
    return captures


class PageRights:
    name = "page_rights"

    def __init__(self, fetcher: Fetcher | None = None, captures: dict[str, list[RobotsCapture]] | None = None):
        self.fetcher = fetcher
        self.captures = captures or {}
        self._robots: dict[str, RobotsPolicy | None] = {}
        self._tdmrep: dict[str, TdmRepPolicy | None] = {}

    def __call__(self, doc: Document) -> Document | Drop:
        capture = doc.metadata.get("robots_txt")
        if capture is not None:
            return Drop(
                Outcome.SKIPPED,
                "warc.robots_txt",
                str(capture.get("status")),
                f"robots.txt of {_origin(doc.url)} captured by the crawl: not content; it decides the "
                "opt-out of the pages of that host in this file",
            )
        if doc.metadata.get("payload_type") != PayloadType.HTML:
            return doc
        headers = doc.metadata.get("http_headers") or {}
        origin = _origin(doc.url)
        robots, robots_source = self._robots_for(origin, doc.metadata.get("warc_date"))
        optout = detect_optout(
            doc.text,
            headers,
            doc.url,
            robots=robots,
            tdmrep=self._policy(origin, "/.well-known/tdmrep.json", TdmRepPolicy.parse, self._tdmrep),
        )
        if optout is not None and optout.signal == SIGNAL_ROBOTS_AI:
            optout = OptOut(optout.signal, f"{optout.evidence}; {robots_source}")
        if optout is not None:
            return Drop(Outcome.REMOVED, optout.reason, optout.signal, optout.evidence)
        if doc.license is None:
            page = detect_page_licenses(doc.text, doc.url)
            doc.license = page.license
            doc.license_evidence = page.evidence
            if page.license is None:
                doc.license_evidence = f"no licence found in the page ({page.rule})"
        return doc

    def _robots_for(self, origin: str | None, page_date: str | None) -> tuple[RobotsPolicy | None, str]:
        """The robots.txt that decides for a page of `origin`, and where it came from."""
        captured = self.captures.get(origin or "")
        if captured:
            before = [c for c in captured if page_date and c.date <= page_date]
            chosen = before[-1] if before else captured[0]
            return chosen.policy, chosen.describe()
        policy = self._policy(origin, "/robots.txt", RobotsPolicy.parse, self._robots)
        return policy, f"robots.txt fetched from {origin}/robots.txt (mirror or live; the crawl holds no capture of it)"

    def _policy(self, origin: str | None, path: str, parse, cache: dict):
        if origin is None or self.fetcher is None:
            return None
        if origin not in cache:
            try:
                with open_decompressed(self.fetcher.fetch(origin + path).path) as handle:
                    cache[origin] = parse(handle.read(MAX_POLICY_BYTES))
            except (FetchError, UrlRefused):  # a page URL names its host; the policy may refuse it
                cache[origin] = None
            except (OSError, EOFError, zlib.error):  # a damaged compressed copy in a mirror: as if absent
                cache[origin] = None
        return cache[origin]


def _origin(url: str | None) -> str | None:
    if not url:
        return None
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.hostname:
        return None
    return f"{parts.scheme}://{parts.netloc}"
