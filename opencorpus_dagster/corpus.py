"""The corpus-level stages: deduplicate across all sources, then publish shards.

Plain Python over the documents files and the lineage store; the Dagster assets
`corpus/dedup` and `corpus/shards` call these.
"""

from __future__ import annotations

import os
from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.dedup.exact import Duplicate, find_exact_duplicates
from opencorpus_dagster.home import DataHome
from opencorpus_dagster.licensing.policy import permissiveness_rank
from opencorpus_dagster.lineage.store import LineageStore, decisions_table
from opencorpus_dagster.shards import DEFAULT_MAX_SHARD_BYTES, ShardGroup, ShardingReport, write_shards

DUPLICATES_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition", pa.string()),
        ("doc_id", pa.string()),
        ("keeper_source", pa.string()),
        ("keeper_partition", pa.string()),
        ("keeper_doc_id", pa.string()),
        ("reason", pa.string()),
        ("similarity", pa.float64()),
    ]
)


@dataclass
class DedupReport:
    documents: int
    duplicates: int
    by_reason: Counter


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def duplicates_path(home: DataHome):
    return home.dedup_dir / "duplicates.parquet"


def removed_path(home: DataHome):
    return home.dedup_dir / "removed.parquet"


def deduplicate_corpus(home: DataHome, store: LineageStore, run_id: str) -> DedupReport:
    """Find duplicates over every documents file; record `duplicate` / `kept` decisions."""
    duplicates: list[Duplicate] = find_exact_duplicates(home.documents_glob(), permissiveness_rank)
    rows = [
        {
            "source": d.member.source,
            "partition": d.member.partition,
            "doc_id": d.member.doc_id,
            "keeper_source": d.keeper.source,
            "keeper_partition": d.keeper.partition,
            "keeper_doc_id": d.keeper.doc_id,
            "reason": d.reason,
            "similarity": d.similarity,
        }
        for d in duplicates
    ]
    home.dedup_dir.mkdir(parents=True, exist_ok=True)
    target = duplicates_path(home)
    temporary = target.with_name(f".{target.name}.tmp-{os.getpid()}")
    pq.write_table(pa.Table.from_pylist(rows, schema=DUPLICATES_SCHEMA), temporary, compression="zstd")
    os.replace(temporary, target)

    now = _now()
    by_member = {(d.member.source, d.member.partition, d.member.doc_id): d for d in duplicates}
    decisions = []
    connection = duckdb.connect()
    try:
        try:
            keys = connection.execute(
                f"SELECT source, partition, doc_id, source_record_id, upstream_uri "
                f"FROM read_parquet('{home.documents_glob()}', union_by_name = true) ORDER BY ALL"
            ).fetchall()
        except duckdb.IOException:
            keys = []
    finally:
        connection.close()
    for source, partition, doc_id, record_id, upstream_uri in keys:
        duplicate = by_member.get((source, partition, doc_id))
        decisions.append(
            {
                "source": source,
                "partition": partition,
                "doc_id": doc_id,
                "source_record_id": record_id,
                "upstream_uri": upstream_uri,
                "stage": "dedup",
                "outcome": "duplicate" if duplicate else "kept",
                "reason": duplicate.reason if duplicate else "dedup.unique",
                "value": duplicate.keeper.doc_id if duplicate else None,
                "detail": f"similarity {duplicate.similarity:.3f} to {duplicate.keeper.source}/{duplicate.keeper.doc_id}"
                if duplicate
                else None,
                "run_id": run_id,
                "decided_at": now,
            }
        )
    store.replace_stage("dedup", decisions_table(decisions))
    return DedupReport(len(keys), len(duplicates), Counter(d.reason for d in duplicates))


def publish_corpus(
    home: DataHome, store: LineageStore, run_id: str, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
) -> ShardingReport:
    """Write the shards of every partition that has documents, minus duplicates and removals."""
    groups = [
        ShardGroup(path.parent.name, path.stem, path)
        for path in sorted((home.root / "documents").glob("*/*.parquet"))
        if not path.name.startswith(".")
    ]
    excluded = home.dedup_dir / "excluded.parquet"
    _write_excluded(home, excluded)
    report = write_shards(home, groups, excluded, max_shard_bytes)
    store.sync_shards(report.manifest, home.corpus_dir, report.written, run_id)
    return report


def _write_excluded(home: DataHome, target) -> None:
    """(source, partition, doc_id) of every record that must not be in a shard."""
    home.dedup_dir.mkdir(parents=True, exist_ok=True)
    parts = [p for p in (duplicates_path(home), removed_path(home)) if p.is_file()]
    connection = duckdb.connect()
    try:
        if parts:
            union = " UNION ".join(f"SELECT source, partition, doc_id FROM read_parquet('{p}')" for p in parts)
            table = connection.execute(union + " ORDER BY ALL").to_arrow_table()
        else:
            table = pa.table({"source": pa.array([], pa.string()), "partition": pa.array([], pa.string()), "doc_id": pa.array([], pa.string())})
    finally:
        connection.close()
    pq.write_table(table, target)
