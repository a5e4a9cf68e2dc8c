"""Turn a raw payload into plain text, by payload type (plain text, wikitext, HTML).

Page metadata (title, author, date) is the costly part of HTML extraction and most pages of a
crawl are dropped by the filters that follow (language, quality), so the documents stage splits
it: `Extract` takes the main text only, and `PageMetadata`, the last step of the chain, asks for
the metadata of the pages that passed every filter. Alone (`Extract(defer_metadata=False)`)
`Extract` still does both at once.
"""

from __future__ import annotations

from opencorpus_dagster.records import Document, Drop, Outcome, PayloadType
from opencorpus_dagster.text.html import (
    ExtractionOptions,
    declared_language,
    extract_html,
    extract_main_text,
    page_metadata,
)
from opencorpus_dagster.text.wikitext import wikitext_to_text


class Extract:
    """Documents-stage step: `doc.text` holds the payload on entry and plain text on exit.

    With `defer_metadata`, an HTML page's metadata is left to a `PageMetadata` step made with
    `page_metadata_step()`; the page's HTML is held here (one document at a time, as `run_steps`
    runs the chain) until that step takes it.
    """

    name = "extract"

    def __init__(self, html_options: ExtractionOptions | None = None, defer_metadata: bool = False):
        self.html_options = html_options or ExtractionOptions()
        self.defer_metadata = defer_metadata
        self._pending: tuple[Document, str] | None = None

    def __call__(self, doc: Document) -> Document | Drop:
        self._pending = None
        payload_type = doc.metadata.pop("payload_type", PayloadType.TEXT.value)
        if payload_type == PayloadType.WIKITEXT:
            doc.text = wikitext_to_text(doc.text)
        elif payload_type == PayloadType.HTML and self.defer_metadata and doc.url is not None:
            # (Without a URL trafilatura reads the page's canonical URL from its metadata for
            # the text too, so such a page takes the path below: both at once.)
            html = doc.text
            text = extract_main_text(html, doc.url, self.html_options)
            if text is None:
                return Drop(Outcome.FILTERED, "extract.no_main_text", 0, "trafilatura found no main text")
            doc.text = text
            language = declared_language(html)
            doc.metadata["page"] = {"language": language} if language else {}
            self._pending = (doc, html)
        elif payload_type == PayloadType.HTML:
            page = extract_html(doc.text, doc.url, self.html_options)
            if page is None:
                return Drop(Outcome.FILTERED, "extract.no_main_text", 0, "trafilatura found no main text")
            doc.text = page.text
            doc.title = doc.title or page.title
            hints = {"author": page.author, "date": page.date, "language": page.language}
            doc.metadata["page"] = {key: value for key, value in hints.items() if value}
        elif payload_type != PayloadType.TEXT:
            return Drop(Outcome.QUARANTINED, "extract.unknown_payload_type", payload_type)
        if not doc.text.strip():
            self._pending = None
            return Drop(Outcome.FILTERED, "extract.empty", 0)
        return doc

    def page_metadata_step(self) -> PageMetadata:
        return PageMetadata(self)

    def take_html(self, doc: Document) -> str | None:
        """The HTML of `doc` if this step extracted it and its metadata is still to be read."""
        pending, self._pending = self._pending, None
        return pending[1] if pending is not None and pending[0] is doc else None


class PageMetadata:
    """Documents-stage step, last in the chain: title, author and date of an HTML page that
    passed every filter, from the HTML its `Extract` step held. Never drops."""

    name = "page_metadata"

    def __init__(self, extract: Extract):
        self.extract = extract

    def __call__(self, doc: Document) -> Document | Drop:
        html = self.extract.take_html(doc)
        if html is None:
            return doc
        found = page_metadata(html, doc.url)
        doc.title = doc.title or found.pop("title", None)
        found.pop("title", None)
        doc.metadata["page"] = {**found, **doc.metadata.get("page", {})}
        return doc
