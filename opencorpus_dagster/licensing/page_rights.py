"""Documents-stage step for HTML records: the page's licence signals and its publisher's opt-outs.

Runs before the licence gate and before extraction, on the raw HTML and HTTP headers the
connector kept. An opt-out removes the page even when it carries an open licence (the
publisher's reservation wins); otherwise the licence detected in the page becomes the record's
licence statement, with every signal as evidence. `robots.txt` and `/.well-known/tdmrep.json`
are fetched once per host through the mirror-aware fetcher when one is given (a mirror or an
archive that has them); a host without them reserves nothing.
"""

from __future__ import annotations

import zlib
from urllib.parse import urlsplit

from opencorpus_dagster.compression import open_decompressed
from opencorpus_dagster.fetch import Fetcher, FetchError
from opencorpus_dagster.licensing.optout import (
    RobotsPolicy,
    TdmRepPolicy,
    detect_optout,
)
from opencorpus_dagster.licensing.web import detect_page_licenses
from opencorpus_dagster.records import Document, Drop, Outcome, PayloadType
from opencorpus_dagster.url_policy import UrlRefused

# RFC 9309 section 2.5: a crawler must parse at least the first 500 KiB of a robots.txt; what
# follows may be ignored. The same bound serves tdmrep.json (a few KB in practice).
MAX_POLICY_BYTES = 500 * 1024


class PageRights:
    name = "page_rights"

    def __init__(self, fetcher: Fetcher | None = None):
        self.fetcher = fetcher
        self._robots: dict[str, RobotsPolicy | None] = {}
        self._tdmrep: dict[str, TdmRepPolicy | None] = {}

    def __call__(self, doc: Document) -> Document | Drop:
        if doc.metadata.get("payload_type") != PayloadType.HTML:
            return doc
        headers = doc.metadata.get("http_headers") or {}
        origin = _origin(doc.url)
        optout = detect_optout(
            doc.text,
            headers,
            doc.url,
            robots=self._policy(origin, "/robots.txt", RobotsPolicy.parse, self._robots),
            tdmrep=self._policy(origin, "/.well-known/tdmrep.json", TdmRepPolicy.parse, self._tdmrep),
        )
        if optout is not None:
            return Drop(Outcome.REMOVED, optout.reason, optout.signal, optout.evidence)
        if doc.license is None:
            page = detect_page_licenses(doc.text, doc.url)
            doc.license = page.license
            doc.license_evidence = page.evidence
            if page.license is None:
                doc.license_evidence = f"no licence found in the page ({page.rule})"
        return doc

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
