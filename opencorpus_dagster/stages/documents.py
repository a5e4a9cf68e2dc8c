"""The documents stage: raw records of one partition -> documents, through a chain of steps.

Each step takes a `Document` and returns it (possibly changed) or a `Drop` with the rule and
the measured value; a drop becomes a decision in the lineage store and the record leaves the
chain. Steps, in order: page rights (HTML: licence signals and opt-outs), licence gate,
extract, then the source's filters (normalise, language, quality, PII), then the metadata of
the HTML pages that passed. Plain Python, no Dagster.
"""

from __future__ import annotations

import json
from collections import Counter, defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Protocol

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.licensing.gate import LicenseGate
from opencorpus_dagster.licensing.page_rights import PageRights, robots_captures
from opencorpus_dagster.licensing.renewals import renewal_step
from opencorpus_dagster.lineage.store import LineageStore, decisions_table
from opencorpus_dagster.records import Document, Drop, Outcome
from opencorpus_dagster.state.atomic import published
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import parquet_file
from opencorpus_dagster.text.extract import Extract
from opencorpus_dagster.text.filters_config import build_steps
from opencorpus_dagster.upstream.fetch import Fetcher

DOCUMENT_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("partition", pa.string()),
        ("source_record_id", pa.string()),
        ("upstream_uri", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("text", pa.large_string()),
        ("language", pa.string()),
        ("license", pa.string()),
        ("license_evidence", pa.string()),
        ("attribution", pa.string()),
        ("content_sha256", pa.string()),
        ("metadata", pa.string()),
    ]
)
BATCH_ROWS = 256


class Step(Protocol):
    name: str

    def __call__(self, doc: Document) -> Document | Drop: ...


@dataclass
class DocumentsResult:
    source: str
    partition: str
    records_in: int
    kept: int
    counts: Counter = field(default_factory=Counter)  # outcome -> n
    reasons: Counter = field(default_factory=Counter)  # reason -> n
    licenses: Counter = field(default_factory=Counter)  # licence of kept documents -> n
    measurements: dict[str, list[float]] = field(default_factory=lambda: defaultdict(list))
    path: Path | None = None


def steps_for(source: Source, fetcher: Fetcher | None = None, raw_path: Path | None = None) -> list[Step]:
    """The documents-stage chain for one catalog source.

    `fetcher` lets the page-rights step read robots.txt / tdmrep.json of web pages' hosts;
    `raw_path` (the partition's raw file) gives it the robots.txt captures of the crawl itself.
    """
    captures = robots_captures(raw_path) if raw_path is not None else None
    steps: list[Step] = [PageRights(fetcher, captures)]
    if source.spec.us_renewals is not None:  # decides a licence from bibliographic metadata
        steps.append(renewal_step(source.spec.us_renewals, fetcher))
    # The gate runs before extraction: a record whose licence is refused costs nothing more.
    steps.append(LicenseGate(source.policy))
    # Page metadata (title, author, date) is read last, for the pages every filter kept: it
    # costs half again the text extraction and most crawled pages are dropped by the filters.
    extract = Extract(source.extraction, defer_metadata=True)
    steps.append(extract)
    steps.extend(build_steps(source.filters))
    steps.append(extract.page_metadata_step())
    return steps


def documents_from_raw(source: Source, raw_path: Path) -> Iterator[Document]:
    """Documents (payload still unextracted) from a raw Parquet file, batch by batch."""
    declared = source.spec.license
    parquet = parquet_file(raw_path)
    for batch in parquet.iter_batches(batch_size=BATCH_ROWS):
        for row in batch.to_pylist():
            metadata = json.loads(row["metadata"] or "{}")
            metadata["payload_type"] = row["payload_type"]
            license, evidence = row["license"], row["license_evidence"]
            if license is None and declared is not None:
                license = declared.spdx
                evidence = f"declared by the catalog ({source.path.name}): {declared.evidence}"
            yield Document(
                doc_id=row["doc_id"],
                source=row["source"],
                source_record_id=row["source_record_id"],
                upstream_uri=row["upstream_uri"],
                url=row["url"],
                title=row["title"],
                text=row["payload"],
                language=None,
                license=license,
                license_evidence=evidence,
                attribution=row["attribution"],
                metadata=metadata,
            )


def step_name(step: Step) -> str:
    return getattr(step, "name", None) or type(step).__name__


def run_steps(doc: Document, steps: list[Step]) -> tuple[Document, Drop | None, str | None]:
    """Run the chain on one document.

    Returns (document, None, None) when every step passed it, else (the document as the failing
    step saw it, the drop, the step's name): what was decided before the drop (licence,
    language, measured values) stays visible to the lineage store.
    """
    for step in steps:
        name = step_name(step)
        try:
            result = step(doc)
        except Exception as error:  # a step bug or a pathological record must not sink the partition
            return doc, Drop(Outcome.QUARANTINED, f"{name}.error", None, f"{type(error).__name__}: {error}"), name
        if isinstance(result, Drop):
            return doc, result, name
        doc = result
    return doc, None, None


def process_partition(
    source: Source,
    partition: str,
    home: DataHome,
    store: LineageStore,
    run_id: str,
    steps: list[Step] | None = None,
    fetcher: Fetcher | None = None,
) -> DocumentsResult:
    """Raw records of one partition -> `<home>/documents/<source>/<partition>.parquet`.

    The output file appears atomically; the partition's documents-stage decisions replace the
    previous ones in the lineage store in one transaction.
    """
    raw_path = home.raw_path(source.name, partition)
    if not raw_path.is_file():
        raise FileNotFoundError(f"{raw_path}: the raw stage of {source.name}/{partition} has not been materialised")
    steps = steps if steps is not None else steps_for(source, fetcher, raw_path)
    target = home.documents_path(source.name, partition)
    now = datetime.now(UTC).replace(microsecond=0).isoformat()
    result = DocumentsResult(source.name, partition, 0, 0)
    decisions: list[dict] = []
    lineage_rows: list[dict] = []
    batch: list[dict] = []
    with published(target) as temporary, pq.ParquetWriter(temporary, DOCUMENT_SCHEMA, compression="zstd") as writer:
        for raw_doc in documents_from_raw(source, raw_path):
            result.records_in += 1
            upstream_uri, record_id = raw_doc.upstream_uri, raw_doc.source_record_id
            doc, drop, _ = run_steps(raw_doc, steps)
            for rule, value in (doc.metadata.get("quality") or {}).items():
                if isinstance(value, int | float):
                    result.measurements[rule].append(float(value))
            lineage_rows.append(
                {
                    "source": source.name,
                    "partition": partition,
                    "doc_id": doc.doc_id,
                    "passed": drop is None,
                    "license": doc.license,
                    "license_evidence": doc.license_evidence,
                    "language": doc.language,
                    "content_sha256": doc.content_sha256 if drop is None else None,
                    "text_length": len(doc.text) if drop is None else None,
                    "run_id": run_id,
                }
            )
            if drop is not None:
                decisions.append(
                    {
                        "source": source.name,
                        "partition": partition,
                        "doc_id": raw_doc.doc_id,
                        "source_record_id": record_id,
                        "upstream_uri": upstream_uri,
                        "stage": "documents",
                        "outcome": drop.outcome.value,
                        "reason": drop.reason,
                        "value": None if drop.value is None else str(drop.value),
                        "detail": drop.detail,
                        "run_id": run_id,
                        "decided_at": now,
                    }
                )
                result.counts[drop.outcome.value] += 1
                result.reasons[drop.reason] += 1
                continue
            result.kept += 1
            result.licenses[doc.license or "none"] += 1
            batch.append(_document_row(doc, partition))
            if len(batch) >= BATCH_ROWS:
                writer.write_table(pa.Table.from_pylist(batch, schema=DOCUMENT_SCHEMA))
                batch = []
        if batch:
            writer.write_table(pa.Table.from_pylist(batch, schema=DOCUMENT_SCHEMA))
    store.replace_partition_stage(
        source.name,
        partition,
        "documents",
        decisions=decisions_table(decisions),
        fingerprint=store.partition_fingerprint(source.name, partition, "raw") or source.fingerprint,
        records_in=result.records_in,
        counts={**result.counts, "passed": result.kept},
        run_id=run_id,
        materialized_at=now,
        documents=pa.Table.from_pylist(lineage_rows) if lineage_rows else None,
        rule_stats=rule_stats_table(source.name, partition, result, run_id),
    )
    result.path = target
    return result


RULE_STATS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition", pa.string()),
        ("rule", pa.string()),
        ("removed", pa.int64()),
        ("measured", pa.int64()),
        ("minimum", pa.float64()),
        ("p05", pa.float64()),
        ("median", pa.float64()),
        ("p95", pa.float64()),
        ("maximum", pa.float64()),
        ("run_id", pa.string()),
    ]
)


def rule_stats_table(source: str, partition: str, result: DocumentsResult, run_id: str) -> pa.Table:
    """Per rule: records it removed and the distribution of what it measured (kept and dropped)."""
    rows = []
    for rule in sorted(set(result.reasons) | set(result.measurements)):
        values = np.asarray(result.measurements.get(rule, []), dtype=float)
        quantiles = np.quantile(values, [0.0, 0.05, 0.5, 0.95, 1.0]).tolist() if len(values) else [None] * 5
        rows.append(
            {
                "source": source,
                "partition": partition,
                "rule": rule,
                "removed": result.reasons.get(rule, 0),
                "measured": len(values),
                "minimum": quantiles[0],
                "p05": quantiles[1],
                "median": quantiles[2],
                "p95": quantiles[3],
                "maximum": quantiles[4],
                "run_id": run_id,
            }
        )
    return pa.Table.from_pylist(rows, schema=RULE_STATS_SCHEMA)


def _document_row(doc: Document, partition: str) -> dict:
    return {
        "doc_id": doc.doc_id,
        "source": doc.source,
        "partition": partition,
        "source_record_id": doc.source_record_id,
        "upstream_uri": doc.upstream_uri,
        "url": doc.url,
        "title": doc.title,
        "text": doc.text,
        "language": doc.language,
        "license": doc.license,
        "license_evidence": doc.license_evidence,
        "attribution": doc.attribution,
        "content_sha256": doc.content_sha256,
        "metadata": json.dumps(doc.metadata, sort_keys=True, default=str),
    }
