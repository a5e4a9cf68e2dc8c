"""The record model and the outcome model shared by every stage.

A connector yields `RawRecord`s (or a `Decision` for an upstream record it could not turn into
one: a redirect, a malformed page). The documents stage turns a `RawRecord` into a `Document`
or a `Decision`. Every record that enters `raw` leaves with exactly one terminal outcome.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass, field
from enum import StrEnum
from typing import Any


class Outcome(StrEnum):
    """Terminal outcome of one upstream record."""

    KEPT = "kept"
    FILTERED = "filtered"  # a quality / licence / language rule removed it
    DUPLICATE = "duplicate"  # another record with the same (or nearly the same) text is kept
    QUARANTINED = "quarantined"  # bad input: the record could not be parsed
    REMOVED = "removed"  # opt-out or takedown
    SKIPPED = "skipped"  # not content: a redirect, a WARC request record, a non-article page


class PayloadType(StrEnum):
    """What `RawRecord.payload` holds, so the extract step knows how to read it."""

    TEXT = "text/plain"
    HTML = "text/html"
    WIKITEXT = "text/x-wiki"


def make_doc_id(source: str, source_record_id: str) -> str:
    """Stable id from source name and native record id (never from run order)."""
    digest = hashlib.sha256(f"{source}\x00{source_record_id}".encode()).hexdigest()
    return digest[:24]


def sha256_text(text: str) -> str:
    return hashlib.sha256(text.encode("utf-8")).hexdigest()


@dataclass
class RawRecord:
    """One upstream record as a connector parsed it; no licence or filter decided yet.

    `upstream_uri` must be precise enough to fetch the record again (a dump file URL plus
    page and revision id, a WARC file URL plus offset and length, a book file URL).
    `license` / `license_evidence` carry what the upstream *states* (a rights field, a dump's
    declared licence); the licensing stage normalises and judges it.
    """

    source_record_id: str
    upstream_uri: str
    payload: str
    payload_type: PayloadType = PayloadType.TEXT
    url: str | None = None
    title: str | None = None
    license: str | None = None
    license_evidence: str | None = None
    attribution: str | None = None
    metadata: dict[str, Any] = field(default_factory=dict)
    # What the connector did to a record it passes on (a cut, a repair): decisions with outcome
    # `kept`, recorded in the lineage for `trace`, never counted as the record's outcome.
    notes: list[Decision] = field(default_factory=list)


@dataclass
class Decision:
    """Why a record left the pipeline (or that it was kept), with the measured value.

    `stage` is where it was decided (`raw`, `documents`, `dedup`, `takedown`); `reason` is a
    dotted rule name (`mediawiki.redirect`, `license.denied`, `gopher.mean_word_length`);
    `value` is what the rule measured, as text (a number, a licence, the keeper's doc_id).
    """

    source_record_id: str
    upstream_uri: str
    outcome: Outcome
    stage: str
    reason: str
    value: str | None = None
    detail: str | None = None


@dataclass
class Drop:
    """What a documents-stage step returns instead of a document: outcome, rule, measured value."""

    outcome: Outcome
    reason: str
    value: str | float | int | None = None
    detail: str | None = None


@dataclass
class Document:
    """A record that survived the documents stage so far: text plus provenance."""

    doc_id: str
    source: str
    source_record_id: str
    upstream_uri: str
    url: str | None
    title: str | None
    text: str
    language: str | None
    license: str | None
    license_evidence: str | None
    attribution: str | None
    metadata: dict[str, Any] = field(default_factory=dict)

    @property
    def content_sha256(self) -> str:
        return sha256_text(self.text)
