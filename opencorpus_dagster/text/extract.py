"""Turn a raw payload into plain text, by payload type (plain text, wikitext, HTML)."""

from __future__ import annotations

from opencorpus_dagster.records import Document, Drop, Outcome, PayloadType
from opencorpus_dagster.text.html import ExtractionOptions, extract_html
from opencorpus_dagster.text.wikitext import wikitext_to_text


class Extract:
    """Documents-stage step: `doc.text` holds the payload on entry and plain text on exit."""

    name = "extract"

    def __init__(self, html_options: ExtractionOptions | None = None):
        self.html_options = html_options or ExtractionOptions()

    def __call__(self, doc: Document) -> Document | Drop:
        payload_type = doc.metadata.pop("payload_type", PayloadType.TEXT.value)
        if payload_type == PayloadType.WIKITEXT:
            doc.text = wikitext_to_text(doc.text)
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
            return Drop(Outcome.FILTERED, "extract.empty", 0)
        return doc
