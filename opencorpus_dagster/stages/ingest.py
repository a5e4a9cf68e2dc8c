"""The raw stage: fetch one upstream unit and parse it into raw records (one Parquet file).

Plain Python, no Dagster. The connector streams records; they are written in Arrow batches to
a temporary file that is renamed into place only when the whole unit was read, so a failed or
killed partition publishes nothing. Decisions the connector took (skipped, quarantined) and
the sha256 of every fetched file go to the lineage store in the same step.
"""

from __future__ import annotations

import dataclasses
import json
from collections import Counter
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.connectors.base import Unit, UnreadableInput, refusal_message
from opencorpus_dagster.lineage.store import LineageStore, decisions_table
from opencorpus_dagster.records import (
    Decision,
    Outcome,
    RawRecord,
    make_doc_id,
    sha256_text,
)
from opencorpus_dagster.stages.discovery import discovered_unit
from opencorpus_dagster.state.atomic import published
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.upstream.fetch import FetchedFile, Fetcher, FetchError, RecordingFetcher
from opencorpus_dagster.upstream.url_policy import UrlRefused

RAW_SCHEMA = pa.schema(
    [
        ("doc_id", pa.string()),
        ("source", pa.string()),
        ("partition", pa.string()),
        ("source_record_id", pa.string()),
        ("upstream_uri", pa.string()),
        ("url", pa.string()),
        ("title", pa.string()),
        ("payload", pa.large_string()),
        ("payload_type", pa.string()),
        ("license", pa.string()),
        ("license_evidence", pa.string()),
        ("attribution", pa.string()),
        ("metadata", pa.string()),
        ("retrieved_at", pa.string()),
    ]
)
BATCH_ROWS = 512


class PartitionFailed(Exception):
    """A partition could not be processed; the message names the file and the problem."""


@dataclass
class IngestResult:
    source: str
    partition: str
    records_in: int
    raw_records: int
    counts: Counter = field(default_factory=Counter)  # outcome -> n, for decisions taken here
    fetched: list[FetchedFile] = field(default_factory=list)
    path: Path | None = None


def find_unit(source: Source, partition: str, fetcher: Fetcher | None = None, home: DataHome | None = None) -> Unit:
    """The unit behind a partition key: declared in the catalog or, for a source that discovers
    its units (given `fetcher` and `home`), as last recorded by the sensor or `opencorpus build`,
    else listed upstream now (`discovery.discovered_unit`). The recorded unit wins over a declared
    one with the same key: a discovered batch can hold more books than the declared one."""
    if source.connector.discovers() and fetcher is not None and home is not None:
        unit = discovered_unit(source, partition, fetcher, home)
    else:
        unit = next((unit for unit in source.connector.units() if unit.key == partition), None)
    if unit is None:
        raise PartitionFailed(f"source {source.name!r} has no partition {partition!r} in {source.path}")
    return unit


def ingest_partition(
    source: Source,
    unit: Unit,
    fetcher: Fetcher,
    home: DataHome,
    store: LineageStore,
    run_id: str,
) -> IngestResult:
    """Read one unit into `<home>/raw/<source>/<partition>.parquet` and record it in lineage.

    Raises PartitionFailed (naming the file) when an input cannot be read; then nothing of the
    partition is published and its previous output, if any, stays as it was.
    """
    partition = unit.key
    refused = refusal_message(unit)
    if refused is not None:
        raise PartitionFailed(f"source {source.name!r}, partition {partition!r}: {refused}")
    target = home.raw_path(source.name, partition)
    recorder = RecordingFetcher(fetcher)
    now = _now()
    decisions: list[dict] = []
    notes: list[dict] = []  # decisions about records that go on (outcome kept): not outcomes
    lineage_rows: list[dict] = []
    occurrences: Counter = Counter()  # native id -> times seen in this unit
    counts: Counter = Counter()
    records = 0
    batch: list[dict] = []
    try:
        with published(target) as temporary, pq.ParquetWriter(temporary, RAW_SCHEMA, compression="zstd") as writer:
            for item in source.connector.read(unit, recorder):
                item = _with_unique_id(item, occurrences)
                if isinstance(item, Decision):
                    decisions.append(_decision_row(source.name, partition, item, run_id, now))
                    counts[item.outcome.value] += 1
                    continue
                notes.extend(_decision_row(source.name, partition, note, run_id, now) for note in item.notes)
                row = _raw_row(source.name, partition, item, recorder.retrieved_at(item.upstream_uri))
                batch.append(row)
                lineage_rows.append(_lineage_row(row, run_id))
                records += 1
                if len(batch) >= BATCH_ROWS:
                    writer.write_table(pa.Table.from_pylist(batch, schema=RAW_SCHEMA))
                    batch = []
            if batch:
                writer.write_table(pa.Table.from_pylist(batch, schema=RAW_SCHEMA))
    except (UnreadableInput, FetchError, UrlRefused) as error:
        raise PartitionFailed(f"source {source.name!r}, partition {partition!r}: {error}") from error
    records_in = records + len(decisions)
    store.replace_partition_stage(
        source.name,
        partition,
        "raw",
        decisions=decisions_table(decisions + notes),
        fingerprint=source.partition_fingerprint(unit),
        records_in=records_in,
        counts=dict(counts),
        run_id=run_id,
        materialized_at=now,
        raw_records=pa.Table.from_pylist(lineage_rows) if lineage_rows else None,
        fetches=_fetches_table(source.name, partition, recorder.fetched, run_id),
    )
    return IngestResult(source.name, partition, records_in, records, counts, recorder.fetched, target)


def _with_unique_id(item: RawRecord | Decision, occurrences: Counter) -> RawRecord | Decision:
    """`item`, or what stands for it when its native id was already used in this unit.

    doc_id is derived from the native id, and every upstream record must have its own outcome:
    so the n-th use of an id (n > 1) becomes `<id>#<n>`. A repeated record is quarantined as
    `raw.repeated_record_id` (the first is kept); a connector's decision about a repeated id (a
    WARC whose two records share a WARC-Record-ID) keeps its reason under the new id.
    """
    native = item.source_record_id
    occurrences[native] += 1
    if occurrences[native] == 1:
        return item
    unique = f"{native}#{occurrences[native]}"
    if isinstance(item, Decision):
        return dataclasses.replace(item, source_record_id=unique)
    detail = f"the native id {native!r} appears {occurrences[native]} times in one upstream unit; the first is kept"
    return Decision(unique, item.upstream_uri, Outcome.QUARANTINED, "raw", "raw.repeated_record_id", native, detail)


def _raw_row(source: str, partition: str, record: RawRecord, retrieved_at: str | None) -> dict:
    return {
        "doc_id": make_doc_id(source, record.source_record_id),
        "source": source,
        "partition": partition,
        "source_record_id": record.source_record_id,
        "upstream_uri": record.upstream_uri,
        "url": record.url,
        "title": record.title,
        "payload": record.payload,
        "payload_type": str(record.payload_type),
        "license": record.license,
        "license_evidence": record.license_evidence,
        "attribution": record.attribution,
        "metadata": json.dumps(record.metadata, sort_keys=True, default=str),
        "retrieved_at": retrieved_at,
    }


def _lineage_row(row: dict, run_id: str) -> dict:
    return {
        "source": row["source"],
        "partition": row["partition"],
        "doc_id": row["doc_id"],
        "source_record_id": row["source_record_id"],
        "upstream_uri": row["upstream_uri"],
        "url": row["url"],
        "title": row["title"],
        "license_statement": row["license"],
        "license_statement_evidence": row["license_evidence"],
        "attribution": row["attribution"],
        "payload_sha256": sha256_text(row["payload"]),
        "retrieved_at": row["retrieved_at"],
        "run_id": run_id,
    }


def _decision_row(source: str, partition: str, decision: Decision, run_id: str, now: str) -> dict:
    return {
        "source": source,
        "partition": partition,
        "doc_id": make_doc_id(source, decision.source_record_id),
        "source_record_id": decision.source_record_id,
        "upstream_uri": decision.upstream_uri,
        "stage": decision.stage,
        "outcome": decision.outcome.value,
        "reason": decision.reason,
        "value": None if decision.value is None else str(decision.value),
        "detail": decision.detail,
        "run_id": run_id,
        "decided_at": now,
    }


def _fetches_table(source: str, partition: str, fetched: list[FetchedFile], run_id: str) -> pa.Table | None:
    if not fetched:
        return None
    return pa.Table.from_pylist(
        [
            {
                "source": source,
                "partition": partition,
                "url": f.url,
                "fetched_from": f.fetched_from,
                "sha256": f.sha256,
                "size": f.size,
                "retrieved_at": f.retrieved_at,
                "run_id": run_id,
            }
            for f in fetched
        ]
    )


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
