"""The lineage store: an embedded DuckDB database with the bookkeeping of every record.

Parquet files hold the text; this database holds where each record came from, every decision
taken about it, which shard row holds it, and what each shard contains. A partition's rows are
replaced in one transaction, so a re-materialised (backfilled) partition never leaves rows of
its previous run behind.

The store takes a connection factory (a context manager yielding a DuckDB connection), so the
Dagster layer can hand it dagster-duckdb's `DuckDBResource.get_connection` and plain code can
use `LineageStore.at(path)`.
"""

from __future__ import annotations

import contextlib
import errno
import json
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from opencorpus_dagster.atomic import published
from opencorpus_dagster.records import Outcome
from opencorpus_dagster.storage import register_locations

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

# Later stages override earlier ones when deciding a record's terminal outcome.
STAGE_RANK = {"raw": 0, "documents": 1, "dedup": 2, "takedown": 3}

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS raw_records (
    source VARCHAR, partition VARCHAR, doc_id VARCHAR, source_record_id VARCHAR,
    upstream_uri VARCHAR, url VARCHAR, title VARCHAR, license_statement VARCHAR,
    license_statement_evidence VARCHAR, attribution VARCHAR, payload_sha256 VARCHAR,
    retrieved_at VARCHAR, run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS documents (
    source VARCHAR, partition VARCHAR, doc_id VARCHAR, passed BOOLEAN, license VARCHAR,
    license_evidence VARCHAR, language VARCHAR, content_sha256 VARCHAR, text_length BIGINT,
    run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS rule_stats (
    source VARCHAR, partition VARCHAR, rule VARCHAR, removed BIGINT, measured BIGINT,
    minimum DOUBLE, p05 DOUBLE, median DOUBLE, p95 DOUBLE, maximum DOUBLE, run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS decisions (
    source VARCHAR, partition VARCHAR, doc_id VARCHAR, source_record_id VARCHAR,
    upstream_uri VARCHAR, stage VARCHAR, outcome VARCHAR, reason VARCHAR, value VARCHAR,
    detail VARCHAR, run_id VARCHAR, decided_at VARCHAR
);
CREATE TABLE IF NOT EXISTS fetches (
    source VARCHAR, partition VARCHAR, url VARCHAR, fetched_from VARCHAR, sha256 VARCHAR,
    size BIGINT, retrieved_at VARCHAR, run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS partitions (
    source VARCHAR, partition VARCHAR, stage VARCHAR, fingerprint VARCHAR, records_in BIGINT,
    counts VARCHAR, run_id VARCHAR, materialized_at VARCHAR
);
CREATE TABLE IF NOT EXISTS shards (
    shard VARCHAR, path VARCHAR, sha256 VARCHAR, rows BIGINT, bytes BIGINT, licenses VARCHAR,
    source VARCHAR, partition VARCHAR, run_id VARCHAR
);
CREATE TABLE IF NOT EXISTS shard_rows (shard VARCHAR, row BIGINT, doc_id VARCHAR);
CREATE OR REPLACE VIEW outcomes AS
SELECT * EXCLUDE (rank_) FROM (
    SELECT *, row_number() OVER (
        PARTITION BY source, partition, doc_id
        ORDER BY CASE stage {" ".join(f"WHEN '{s}' THEN {r}" for s, r in STAGE_RANK.items())} END DESC
    ) AS rank_
    FROM decisions
) WHERE rank_ = 1;
"""


class LineageStoreMissing(FileNotFoundError):
    """A store opened read-only does not exist: the data home was never built (or is not this one)."""

    def __init__(self, path: Path):
        super().__init__(errno.ENOENT, "no lineage store (the data home was never built)", str(path))
        self.path = path


class LineageStore:
    def __init__(self, connect: Connect):
        self._connect = connect

    @classmethod
    def at(cls, path: Path | str, read_only: bool = False) -> LineageStore:
        """A store on a DuckDB file, for plain (non-Dagster) use and the CLI.

        Read-only, the file must exist: raises LineageStoreMissing (a FileNotFoundError) rather
        than DuckDB's "database does not exist" on first use. Read-write, it is created.
        """
        path = Path(path)
        if read_only and not path.exists():
            raise LineageStoreMissing(path)

        @contextlib.contextmanager
        def connect() -> Iterator[duckdb.DuckDBPyConnection]:
            if not read_only:
                path.parent.mkdir(parents=True, exist_ok=True)
            connection = duckdb.connect(str(path), read_only=read_only)
            try:
                yield connection
            finally:
                connection.close()

        store = cls(connect)
        if not read_only:
            store.ensure_schema()
        return store

    def ensure_schema(self) -> None:
        with self._connect() as conn:
            conn.execute(SCHEMA)

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        with self._connect() as conn:
            yield conn

    def publish_copy(self, target: Path) -> Path:
        """Publish a consistent copy of the store as one DuckDB file at `target` (local or remote).

        The copy is made by DuckDB (`COPY FROM DATABASE`) inside one connection, so it is a
        snapshot even while the store is in use; `opencorpus trace --home` works on it.
        """
        with published(target) as temporary, self._connect() as conn:
            (current,) = conn.execute("SELECT current_database()").fetchone()
            conn.execute("ATTACH ? AS lineage_copy", [str(temporary)])
            try:
                # A database name is an identifier, which DuckDB cannot bind; it is the store
                # file's stem (`lineage`), quoted as an identifier all the same.
                conn.execute(f"COPY FROM DATABASE {_identifier(current)} TO lineage_copy")
            finally:
                conn.execute("DETACH lineage_copy")
        return target

    # -- writes ------------------------------------------------------------------------

    def replace_partition_stage(
        self,
        source: str,
        partition: str,
        stage: str,
        *,
        decisions: pa.Table,
        fingerprint: str,
        records_in: int,
        counts: dict[str, int],
        run_id: str,
        materialized_at: str,
        raw_records: pa.Table | None = None,
        documents: pa.Table | None = None,
        fetches: pa.Table | None = None,
        rule_stats: pa.Table | None = None,
    ) -> None:
        """Replace everything one stage recorded for one partition, in one transaction."""
        with self._connect() as conn:
            conn.execute(SCHEMA)
            conn.execute("BEGIN TRANSACTION")
            try:
                key = [source, partition]
                conn.execute("DELETE FROM decisions WHERE source = ? AND partition = ? AND stage = ?", [*key, stage])
                conn.execute("DELETE FROM partitions WHERE source = ? AND partition = ? AND stage = ?", [*key, stage])
                if stage == "raw":
                    conn.execute("DELETE FROM raw_records WHERE source = ? AND partition = ?", key)
                    conn.execute("DELETE FROM fetches WHERE source = ? AND partition = ?", key)
                if stage == "documents":
                    conn.execute("DELETE FROM documents WHERE source = ? AND partition = ?", key)
                    conn.execute("DELETE FROM rule_stats WHERE source = ? AND partition = ?", key)
                _insert(conn, "decisions", decisions)
                if raw_records is not None:
                    _insert(conn, "raw_records", raw_records)
                if documents is not None:
                    _insert(conn, "documents", documents)
                if fetches is not None:
                    _insert(conn, "fetches", fetches)
                if rule_stats is not None:
                    _insert(conn, "rule_stats", rule_stats)
                conn.execute(
                    "INSERT INTO partitions VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                    [source, partition, stage, fingerprint, records_in, json.dumps(counts, sort_keys=True), run_id, materialized_at],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    def replace_stage(self, stage: str, decisions: pa.Table) -> None:
        """Make a corpus-level stage's decisions (dedup, takedown) equal `decisions`, in one transaction.

        A record whose decision is unchanged keeps its row as it was (its run_id and decided_at
        say when it was first decided), so a run that changes nothing for a source leaves that
        source's decisions byte-identical; only new, changed and vanished decisions are written.
        """
        same = (
            "i.source = d.source AND i.partition = d.partition AND i.doc_id = d.doc_id "
            "AND i.outcome IS NOT DISTINCT FROM d.outcome AND i.reason IS NOT DISTINCT FROM d.reason "
            "AND i.value IS NOT DISTINCT FROM d.value AND i.detail IS NOT DISTINCT FROM d.detail"
        )
        with self._connect() as conn:
            conn.execute(SCHEMA)
            conn.register("incoming_rows", decisions)
            conn.execute("BEGIN TRANSACTION")
            try:
                conn.execute(
                    f"DELETE FROM decisions d WHERE d.stage = ? AND NOT EXISTS (SELECT 1 FROM incoming_rows i WHERE {same})",
                    [stage],
                )
                columns = ", ".join(f"i.{name}" for name in decisions.column_names)
                conn.execute(
                    f"INSERT INTO decisions ({', '.join(decisions.column_names)}) SELECT {columns} FROM incoming_rows i "
                    f"WHERE NOT EXISTS (SELECT 1 FROM decisions d WHERE d.stage = ? AND {same})",
                    [stage],
                )
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise
            finally:
                conn.unregister("incoming_rows")

    def sync_shards(self, manifest: dict, corpus_dir: Path, changed: list[str], run_id: str) -> None:
        """Make the shard tables match a just-published manifest.

        Rows of shards that were rewritten (`changed`) or are no longer listed are re-read from
        the Parquet files' doc_id column; unchanged shards keep their rows.
        """
        listed = {entry["path"] for entry in manifest["shards"]}
        with self._connect() as conn:
            conn.execute(SCHEMA)
            conn.execute("BEGIN TRANSACTION")
            try:
                previous = {row[0] for row in conn.execute("SELECT DISTINCT shard FROM shard_rows").fetchall()}
                # An unchanged shard keeps the run that wrote it.
                written_by = dict(conn.execute("SELECT shard, run_id FROM shards").fetchall())
                for shard in sorted((previous - listed) | set(changed)):
                    conn.execute("DELETE FROM shard_rows WHERE shard = ?", [shard])
                register_locations(conn, corpus_dir)
                for shard in sorted(set(changed) | (listed - previous)):
                    conn.execute(
                        "INSERT INTO shard_rows SELECT ?, file_row_number, doc_id "
                        "FROM read_parquet(?, file_row_number = true)",
                        [shard, str(corpus_dir / shard)],
                    )
                conn.execute("DELETE FROM shards")
                shards = pa.Table.from_pylist(
                    [
                        {
                            "shard": entry["path"],
                            # Relative to the data home, so a moved or copied home stays valid.
                            "path": (corpus_dir / entry["path"]).relative_to(corpus_dir.parent).as_posix(),
                            "sha256": entry["sha256"],
                            "rows": entry["rows"],
                            "bytes": entry["bytes"],
                            "licenses": json.dumps(entry["licenses"], sort_keys=True),
                            "source": entry["source"],
                            "partition": entry["partition"],
                            "run_id": run_id if entry["path"] in changed else written_by.get(entry["path"], run_id),
                        }
                        for entry in manifest["shards"]
                    ]
                )
                _insert(conn, "shards", shards)
                conn.execute("COMMIT")
            except BaseException:
                conn.execute("ROLLBACK")
                raise

    # -- reads -------------------------------------------------------------------------

    def partition_fingerprint(self, source: str, partition: str, stage: str) -> str | None:
        with self._connect() as conn:
            row = conn.execute(
                "SELECT fingerprint FROM partitions WHERE source = ? AND partition = ? AND stage = ?",
                [source, partition, stage],
            ).fetchone()
        return row[0] if row else None

    def partition_fingerprints(self, stage: str) -> dict[tuple[str, str], str]:
        """(source, partition) -> recorded fingerprint of every partition of a stage, in one query."""
        with self._connect() as conn:
            rows = conn.execute("SELECT source, partition, fingerprint FROM partitions WHERE stage = ?", [stage]).fetchall()
        return {(source, partition): fingerprint for source, partition, fingerprint in rows}

    def outcome_counts(self, source: str | None = None) -> dict[str, int]:
        """Terminal outcome -> number of upstream records, over the whole corpus or one source."""
        query = "SELECT outcome, count(*) FROM outcomes"
        params: list[Any] = []
        if source:
            query += " WHERE source = ?"
            params.append(source)
        with self._connect() as conn:
            rows = conn.execute(query + " GROUP BY outcome", params).fetchall()
        return {outcome: count for outcome, count in rows}

    def conservation(self) -> list[dict[str, Any]]:
        """Per partition: records in (raw) vs the sum of terminal outcomes; one row per partition.

        `records_in` is what the raw stage saw (content records + records it skipped or
        quarantined); every one of them must have exactly one terminal outcome.
        """
        query = """
        WITH raw_in AS (
            SELECT source, partition, records_in FROM partitions WHERE stage = 'raw'
        ), terminal AS (
            SELECT source, partition, outcome, count(*) AS n FROM outcomes GROUP BY ALL
        ), by_partition AS (
            SELECT source, partition, sum(n) AS total,
                   map_from_entries(list(struct_pack(k := outcome, v := n))) AS by_outcome
            FROM terminal GROUP BY ALL
        )
        SELECT r.source, r.partition, r.records_in, coalesce(p.total, 0) AS total, p.by_outcome
        FROM raw_in r LEFT JOIN by_partition p USING (source, partition)
        ORDER BY r.source, r.partition
        """
        with self._connect() as conn:
            rows = conn.execute(query).fetchall()
        result = []
        for source, partition, records_in, total, by_outcome in rows:
            counts = {o.value: int((by_outcome or {}).get(o.value, 0)) for o in Outcome}
            result.append(
                {"source": source, "partition": partition, "records_in": int(records_in), "total": int(total), **counts}
            )
        return result


def _insert(conn: duckdb.DuckDBPyConnection, table: str, rows: pa.Table) -> None:
    if rows.num_rows == 0:
        return
    conn.register("incoming_rows", rows)
    try:
        columns = ", ".join(rows.column_names)
        conn.execute(f"INSERT INTO {table} ({columns}) SELECT {columns} FROM incoming_rows")
    finally:
        conn.unregister("incoming_rows")


DECISION_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition", pa.string()),
        ("doc_id", pa.string()),
        ("source_record_id", pa.string()),
        ("upstream_uri", pa.string()),
        ("stage", pa.string()),
        ("outcome", pa.string()),
        ("reason", pa.string()),
        ("value", pa.string()),
        ("detail", pa.string()),
        ("run_id", pa.string()),
        ("decided_at", pa.string()),
    ]
)


def decisions_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Decision rows (dicts with DECISION_SCHEMA's fields) as an Arrow table."""
    return pa.Table.from_pylist(rows, schema=DECISION_SCHEMA)


def _identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'
