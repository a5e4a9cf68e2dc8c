"""The lineage store: immutable Parquet files in the data home, queried through DuckDB views.

Parquet shards hold the text; the lineage holds where each record came from, every decision
taken about it, which shard row holds it, and what each shard contains. Nothing is a database
file that a writer must lock: every write is a set of new files, and a reader opens an
in-memory DuckDB connection whose tables (`raw_records`, `documents`, `rule_stats`,
`decisions`, `fetches`, `partitions`, `shards`, `shard_rows`, `takedown_audit`, and the
`outcomes` view) are views over the files current at that moment.

    <home>/lineage/<stage>/<source>/<partition>/<write>/<table>.parquet   one partition-stage run
    <home>/lineage/corpus/<kind>/<write>.parquet                          one corpus-level write
    <home>/lineage/compacted/<write>/<table>.parquet                      partition rows, compacted

`<write>` is `<UTC time>-<random>`: names sort by time and a rerun never overwrites a file a
reader may be reading. A partition-stage write (raw: decisions, raw_records, fetches; documents:
decisions, documents, rule_stats) ends with its `partitions.parquet`, the commit point: a
write without it (killed half-way) is ignored, and the partition's latest committed write is
the one the views show. A corpus-level kind (`decisions-dedup`, `decisions-takedown`,
`takedown_audit`, and `shard_rows` + `shards`, `shards` written last) is one file per write, the
latest wins. After the shard tables are written (the end of a corpus run) the current
partition files are compacted into one file per table (`compacted/<write>/`, committed by its
`_covered.parquet`) once `COMPACT_AFTER` partition-stage writes are not in the last compaction,
so a query at 100K documents opens a few dozen files, not thousands, and a refresh of one
partition does not rewrite every partition's rows (compacting 100K documents' rows costs about
as much as the partition's own lineage work); files superseded for longer than
`GRACE_SECONDS` are removed then.

Writers in several processes (parallel partition runs, Celery workers) never wait for one
another, and `trace`/`report` during a build read a consistent set of committed files.
The store works the same with a local home and an fsspec (object-storage) home.
"""

from __future__ import annotations

import contextlib
import errno
import json
import secrets
import time
from collections.abc import Callable, Iterator
from contextlib import AbstractContextManager
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.records import Outcome
from opencorpus_dagster.state.atomic import published
from opencorpus_dagster.state.storage import duckdb_connect, is_remote

Connect = Callable[[], AbstractContextManager[duckdb.DuckDBPyConnection]]

# Later stages override earlier ones when deciding a record's terminal outcome.
STAGE_RANK = {"raw": 0, "documents": 1, "dedup": 2, "takedown": 3}

_S, _I, _B, _D = pa.string(), pa.int64(), pa.bool_(), pa.float64()
TABLES: dict[str, pa.Schema] = {
    "raw_records": pa.schema(
        [(n, _S) for n in ("source", "partition", "doc_id", "source_record_id", "upstream_uri", "url", "title",
                           "license_statement", "license_statement_evidence", "attribution", "payload_sha256",
                           "retrieved_at", "run_id")]
    ),
    "documents": pa.schema(
        [("source", _S), ("partition", _S), ("doc_id", _S), ("passed", _B), ("license", _S), ("license_evidence", _S),
         ("language", _S), ("content_sha256", _S), ("text_length", _I), ("run_id", _S)]
    ),
    "rule_stats": pa.schema(
        [("source", _S), ("partition", _S), ("rule", _S), ("removed", _I), ("measured", _I), ("minimum", _D),
         ("p05", _D), ("median", _D), ("p95", _D), ("maximum", _D), ("run_id", _S)]
    ),
    "decisions": pa.schema(
        [(n, _S) for n in ("source", "partition", "doc_id", "source_record_id", "upstream_uri", "stage", "outcome",
                           "reason", "value", "detail", "run_id", "decided_at")]
    ),
    "fetches": pa.schema(
        [("source", _S), ("partition", _S), ("url", _S), ("fetched_from", _S), ("sha256", _S), ("size", _I),
         ("retrieved_at", _S), ("run_id", _S)]
    ),
    "partitions": pa.schema(
        [("source", _S), ("partition", _S), ("stage", _S), ("fingerprint", _S), ("records_in", _I), ("counts", _S),
         ("run_id", _S), ("materialized_at", _S)]
    ),
    "shards": pa.schema(
        [("shard", _S), ("path", _S), ("sha256", _S), ("rows", _I), ("bytes", _I), ("licenses", _S), ("source", _S),
         ("partition", _S), ("run_id", _S)]
    ),
    "shard_rows": pa.schema([("shard", _S), ("row", _I), ("doc_id", _S)]),
    "takedown_audit": pa.schema(
        [(n, _S) for n in ("run_id", "applied_at", "request_id", "kind", "value", "reason", "requested_at",
                           "requested_by")]
        + [("records", _I), ("new_records", _I), ("partitions", _S), ("shards_changed", _S)]
    ),
}
# What each partition stage writes; `partitions` (the commit point) comes last.
STAGE_TABLES = {
    "raw": ("decisions", "raw_records", "fetches", "partitions"),
    "documents": ("decisions", "documents", "rule_stats", "partitions"),
}
PARTITION_TABLES = ("decisions", "raw_records", "fetches", "documents", "rule_stats", "partitions")
CORPUS_STAGES = ("dedup", "takedown")  # their decisions are written whole by every corpus run
GRACE_SECONDS = 600  # a superseded file stays this long after its successor was committed
# Partition-stage writes (a partition's raw or documents run) a query may read besides the
# compaction before the next corpus run compacts them.
COMPACT_AFTER = 32

OUTCOMES_VIEW = f"""
CREATE OR REPLACE {{temporary}} VIEW outcomes AS
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
    def __init__(self, root: Path):
        self.root = root  # `<home>/lineage`: a local folder or a UPath in object storage

    @classmethod
    def at(cls, path: Path | str, read_only: bool = False) -> LineageStore:
        """The store in the lineage folder `path` (`DataHome.lineage_dir`), for plain code and the CLI.

        Read-only, the folder must exist: raises LineageStoreMissing (a FileNotFoundError) when
        the home was never built. Nothing is ever locked, read-only or not.
        """
        if isinstance(path, str):
            from opencorpus_dagster.state.storage import resolve_location

            path = resolve_location(path)
        if read_only and not path.exists():
            raise LineageStoreMissing(path)
        store = cls(path)
        if not read_only:
            store.ensure_schema()
        return store

    def ensure_schema(self) -> None:
        """Nothing to create but the folder: the schema is in the files (TABLES)."""
        if not is_remote(self.root):
            Path(self.root).mkdir(parents=True, exist_ok=True)

    @contextlib.contextmanager
    def connection(self) -> Iterator[duckdb.DuckDBPyConnection]:
        """An in-memory DuckDB connection with every lineage table as a view over the current files."""
        conn = duckdb_connect(self.root)
        try:
            _create_views(conn, _Snapshot.of(self.root))
            yield conn
        finally:
            conn.close()

    def publish_copy(self, target: Path) -> Path:
        """Publish the current lineage as one DuckDB file at `target` (local or remote): a
        convenience for tools that want a database file; the store itself never needs it."""
        with published(target) as temporary, self.connection() as conn:
            Path(temporary).unlink(missing_ok=True)
            # An attached database belongs to the process's DuckDB database, not to `conn`.
            alias = f"lineage_copy_{secrets.token_hex(6)}"
            conn.execute(f"ATTACH ? AS {alias}", [str(temporary)])
            try:
                for name in TABLES:
                    conn.execute(f"CREATE TABLE {alias}.{name} AS SELECT * FROM {name}")
            finally:
                conn.execute(f"DETACH {alias}")
            with duckdb.connect(str(temporary)) as copy:
                copy.execute(OUTCOMES_VIEW.format(temporary=""))
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
        """Replace everything one stage recorded for one partition: new files in a folder of
        their own, `partitions.parquet` last (the commit point). Until it lands, readers see the
        partition's previous run; a write killed half-way is never seen."""
        if stage not in STAGE_TABLES:
            raise ValueError(f"unknown partition stage {stage!r} (expected one of {sorted(STAGE_TABLES)})")
        given = {"decisions": decisions, "raw_records": raw_records, "documents": documents,
                 "fetches": fetches, "rule_stats": rule_stats}
        given["partitions"] = pa.Table.from_pylist(
            [{"source": source, "partition": partition, "stage": stage, "fingerprint": fingerprint,
              "records_in": records_in, "counts": json.dumps(counts, sort_keys=True), "run_id": run_id,
              "materialized_at": materialized_at}]
        )
        folder = self.root / stage / source / partition / _write_name()
        for name in STAGE_TABLES[stage]:
            _write(folder / f"{name}.parquet", _conform(name, given[name]))

    def replace_stage(self, stage: str, decisions: pa.Table) -> None:
        """Make a corpus-level stage's decisions (dedup, takedown) equal `decisions`: one new file.

        A record whose decision is unchanged keeps its row as it was (its run_id and decided_at
        say when it was first decided); when nothing changed at all no file is written.
        """
        if stage not in CORPUS_STAGES:
            raise ValueError(f"unknown corpus stage {stage!r} (expected one of {CORPUS_STAGES})")
        kind = f"decisions-{stage}"
        incoming = _conform("decisions", decisions)
        previous = _Snapshot.of(self.root).corpus.get(kind)
        if previous is None:
            if incoming.num_rows:
                self._write_corpus(kind, incoming)
            return
        same = (
            "i.source = d.source AND i.partition = d.partition AND i.doc_id = d.doc_id "
            "AND i.outcome IS NOT DISTINCT FROM d.outcome AND i.reason IS NOT DISTINCT FROM d.reason "
            "AND i.value IS NOT DISTINCT FROM d.value AND i.detail IS NOT DISTINCT FROM d.detail"
        )
        with duckdb_connect(self.root) as conn:
            conn.register("incoming_rows", incoming)
            conn.execute("CREATE TEMP TABLE d AS SELECT * FROM read_parquet(?)", [str(previous)])
            kept = conn.sql(f"SELECT d.* FROM d SEMI JOIN incoming_rows i ON {same}").to_arrow_table()
            new = conn.sql(f"SELECT i.* FROM incoming_rows i ANTI JOIN d ON {same}").to_arrow_table()
            (before,) = conn.execute("SELECT count(*) FROM d").fetchone()
        if new.num_rows == 0 and kept.num_rows == before:
            return
        merged = pa.concat_tables([_conform("decisions", kept), _conform("decisions", new)])
        self._write_corpus(kind, merged.sort_by([("source", "ascending"), ("partition", "ascending"), ("doc_id", "ascending")]))

    def sync_shards(self, manifest: dict, corpus_dir: Path, changed: list[str], run_id: str) -> None:
        """Make the shard tables match a just-published manifest, then compact the partition files.

        Rows of shards that were rewritten (`changed`) or are new are read from the Parquet
        files' doc_id column; unchanged shards keep their rows. `shard_rows` is written before
        `shards` (the commit point of the pair, both named by the same write).
        """
        snapshot = _Snapshot.of(self.root)
        listed = [entry["path"] for entry in manifest["shards"]]
        with duckdb_connect(self.root, corpus_dir) as conn:
            conn.execute("CREATE TEMP TABLE rows_ (shard VARCHAR, row BIGINT, doc_id VARCHAR)")
            previous: set[str] = set()
            written_by: dict[str, str] = {}
            if "shards" in snapshot.corpus:
                written_by = dict(conn.execute(
                    "SELECT shard, run_id FROM read_parquet(?)", [str(snapshot.corpus["shards"])]).fetchall())
                rows_file = snapshot.corpus["shards"].parent.parent / "shard_rows" / snapshot.corpus["shards"].name
                conn.execute("CREATE TEMP TABLE prev_ AS SELECT * FROM read_parquet(?)", [str(rows_file)])
                previous = {row[0] for row in conn.execute("SELECT DISTINCT shard FROM prev_").fetchall()}
                keep = [s for s in listed if s in previous and s not in changed]
                conn.execute("INSERT INTO rows_ SELECT * FROM prev_ WHERE list_contains(?, shard)", [keep])
            for shard in sorted(set(changed) & set(listed) | (set(listed) - previous)):
                conn.execute(
                    "INSERT INTO rows_ SELECT ?, file_row_number, doc_id FROM read_parquet(?, file_row_number = true)",
                    [shard, str(corpus_dir / shard)],
                )
            shard_rows = conn.sql("SELECT * FROM rows_ ORDER BY shard, row").to_arrow_table()
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
            ],
            schema=TABLES["shards"],
        )
        name = _write_name()
        _write(self.root / "corpus" / "shard_rows" / f"{name}.parquet", _conform("shard_rows", shard_rows))
        _write(self.root / "corpus" / "shards" / f"{name}.parquet", shards)
        self.compact()

    def corpus_table(self, name: str) -> pa.Table:
        """The current rows of a corpus-level table written whole (`takedown_audit`)."""
        with self.connection() as conn:
            return _conform(name, conn.sql(f"SELECT * FROM {name}").to_arrow_table())

    def replace_corpus_table(self, name: str, rows: pa.Table) -> None:
        """Make a corpus-level table (`takedown_audit`) equal `rows`: one new file, the latest wins."""
        if name != "takedown_audit":
            raise ValueError(f"{name!r} is not a corpus-level table written whole")
        self._write_corpus(name, _conform(name, rows))

    def _write_corpus(self, kind: str, table: pa.Table) -> None:
        _write(self.root / "corpus" / kind / f"{_write_name()}.parquet", table)

    def compact(self, after: int = COMPACT_AFTER) -> Path | None:
        """Copy the current partition-stage rows into one file per table (`compacted/<write>/`)
        when at least `after` partition-stage writes are not in the last compaction (1: when
        any is); then remove superseded files."""
        snapshot = _Snapshot.of(self.root)
        target = None
        if len(snapshot.fresh()) >= max(1, after):
            with duckdb_connect(self.root) as conn:
                _create_views(conn, snapshot, corpus=False)
                tables = {name: conn.sql(f"SELECT * FROM {name}").to_arrow_table() for name in PARTITION_TABLES}
            target = self._write_compaction(tables, snapshot.current())
        self.collect_garbage()
        return target

    def replace_all(self, tables: dict[str, pa.Table]) -> None:
        """Make the whole store equal `tables` (name -> rows; missing names are empty): one
        compaction for the partition tables, one file per corpus-level kind. For tools and tests
        that edit lineage as tables (e.g. a DuckDB file made by `publish_copy`)."""
        decisions = _conform("decisions", tables.get("decisions"))
        stage = decisions.column("stage").to_pylist()
        by_stage = {s: decisions.filter(pa.array([v == s for v in stage])) for s in [*STAGE_TABLES, *CORPUS_STAGES]}
        partition_tables = {name: _conform(name, tables.get(name)) for name in PARTITION_TABLES}
        partition_tables["decisions"] = pa.concat_tables([by_stage[s] for s in STAGE_TABLES])
        keys: set[tuple[str, str, str]] = set()
        for name, table in partition_tables.items():
            stages = table.column("stage").to_pylist() if "stage" in table.column_names else [None] * table.num_rows
            for row_stage, source, partition in zip(
                stages, table.column("source").to_pylist(), table.column("partition").to_pylist(), strict=True
            ):
                keys.add((row_stage or _STAGE_OF[name].strip("'"), source, partition))
        name = _write_name()
        self._write_compaction(partition_tables, dict.fromkeys(keys, name), name)
        for corpus_stage in CORPUS_STAGES:
            self._write_corpus(f"decisions-{corpus_stage}", by_stage[corpus_stage])
        _write(self.root / "corpus" / "shard_rows" / f"{name}.parquet", _conform("shard_rows", tables.get("shard_rows")))
        _write(self.root / "corpus" / "shards" / f"{name}.parquet", _conform("shards", tables.get("shards")))
        self._write_corpus("takedown_audit", _conform("takedown_audit", tables.get("takedown_audit")))

    def _write_compaction(self, tables: dict[str, pa.Table], covered: dict, name: str | None = None) -> Path:
        target = self.root / "compacted" / (name or _write_name())
        for table_name in PARTITION_TABLES:
            _write(target / f"{table_name}.parquet", _conform(table_name, tables[table_name]))
        rows = [{"stage": k[0], "source": k[1], "partition": k[2], "write": w} for k, w in sorted(covered.items())]
        _write(target / "_covered.parquet", pa.Table.from_pylist(rows, schema=_COVERED))  # the commit point
        return target

    def collect_garbage(self, grace_seconds: float = GRACE_SECONDS) -> list[str]:
        """Remove files superseded by a write committed more than `grace_seconds` ago (a reader
        that listed the files before that commit has long finished). Returns what was removed."""
        now, removed = time.time(), []

        def old(name: str) -> bool:
            return now - _write_time(name) > grace_seconds

        compactions = sorted(c for c in _children(self.root / "compacted") if _exists(c / "_covered.parquet"))
        covered = _Snapshot.of(self.root).covered if compactions and old(compactions[-1].name) else {}
        for stage in STAGE_TABLES:
            for partition_dir in _glob(self.root / stage, "*/*"):
                writes = sorted(_children(partition_dir), key=lambda p: p.name)
                committed = [w for w in writes if _exists(w / "partitions.parquet")]
                if not committed or not old(committed[-1].name):
                    continue
                key = (stage, partition_dir.parent.name, partition_dir.name)
                for write in writes:
                    # Superseded, or held by a compaction committed long enough ago.
                    if write.name < committed[-1].name or covered.get(key, "") >= write.name:
                        removed.append(_remove(write))
        if compactions and old(compactions[-1].name):
            removed += [_remove(c) for c in _children(self.root / "compacted") if c.name < compactions[-1].name]
        for kind_dir in _children(self.root / "corpus"):
            if kind_dir.name == "shard_rows":
                continue
            files = sorted(_glob(kind_dir, "*.parquet"), key=lambda p: p.name)
            if files and old(files[-1].stem):
                for file in files[:-1]:
                    removed.append(_remove(file))
                    if kind_dir.name == "shards":
                        removed.append(_remove(self.root / "corpus" / "shard_rows" / file.name))
        return [r for r in removed if r]

    # -- reads -------------------------------------------------------------------------

    def partition_fingerprint(self, source: str, partition: str, stage: str) -> str | None:
        with self.connection() as conn:
            row = conn.execute(
                "SELECT fingerprint FROM partitions WHERE source = ? AND partition = ? AND stage = ?",
                [source, partition, stage],
            ).fetchone()
        return row[0] if row else None

    def partition_fingerprints(self, stage: str) -> dict[tuple[str, str], str]:
        """(source, partition) -> recorded fingerprint of every partition of a stage, in one query."""
        with self.connection() as conn:
            rows = conn.execute("SELECT source, partition, fingerprint FROM partitions WHERE stage = ?", [stage]).fetchall()
        return {(source, partition): fingerprint for source, partition, fingerprint in rows}

    def outcome_counts(self, source: str | None = None) -> dict[str, int]:
        """Terminal outcome -> number of upstream records, over the whole corpus or one source."""
        query = "SELECT outcome, count(*) FROM outcomes"
        params: list[Any] = []
        if source:
            query += " WHERE source = ?"
            params.append(source)
        with self.connection() as conn:
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
        with self.connection() as conn:
            rows = conn.execute(query).fetchall()
        result = []
        for source, partition, records_in, total, by_outcome in rows:
            counts = {o.value: int((by_outcome or {}).get(o.value, 0)) for o in Outcome}
            result.append(
                {"source": source, "partition": partition, "records_in": int(records_in), "total": int(total), **counts}
            )
        return result


# -- the files ---------------------------------------------------------------------------

_COVERED = pa.schema([("stage", _S), ("source", _S), ("partition", _S), ("write", _S)])
_TIME_FORMAT = "%Y%m%dT%H%M%S%fZ"


def _write_name() -> str:
    """A new write's name: UTC time (sorts by time) and a random part (two writers never collide)."""
    return f"{datetime.now(UTC).strftime(_TIME_FORMAT)}-{secrets.token_hex(4)}"


def _write_time(name: str) -> float:
    try:
        return datetime.strptime(name.split("-", 1)[0], _TIME_FORMAT).replace(tzinfo=UTC).timestamp()
    except ValueError:
        return time.time()  # not ours: never old enough to be removed


def _conform(name: str, table: pa.Table | None) -> pa.Table:
    """`table` with exactly the columns and types of TABLES[name] (missing columns are null)."""
    schema = TABLES[name]
    if table is None:
        return schema.empty_table()
    columns = [
        table.column(field.name).cast(field.type) if field.name in table.column_names else pa.nulls(table.num_rows, field.type)
        for field in schema
    ]
    return pa.Table.from_arrays(columns, schema=schema)


def _write(path: Path, table: pa.Table) -> None:
    with published(path) as temporary:
        pq.write_table(table, str(temporary), compression="zstd")


def _sql(path: Path) -> str:
    return str(path).replace("'", "''")


def _exists(path: Path) -> bool:
    return path.exists()


def _children(folder: Path) -> list[Path]:
    try:
        return [child for child in folder.iterdir() if not child.name.startswith(".")]
    except (FileNotFoundError, NotADirectoryError):
        return []


def _glob(folder: Path, pattern: str) -> list[Path]:
    try:
        return [path for path in folder.glob(pattern) if not path.name.startswith(".")]
    except FileNotFoundError:
        return []


def _remove(path: Path) -> str:
    try:
        if is_remote(path):
            path.fs.rm(path.path, recursive=True)
        elif Path(path).is_dir():
            import shutil

            shutil.rmtree(path, ignore_errors=True)
        else:
            Path(path).unlink(missing_ok=True)
    except FileNotFoundError:
        return ""
    return str(path)


class _Snapshot:
    """The files current at one moment: committed partition writes, the latest compaction and
    the latest file of every corpus-level kind."""

    def __init__(self) -> None:
        self.commits: dict[tuple[str, str, str], Path] = {}  # (stage, source, partition) -> write folder
        self.compaction: Path | None = None
        self.covered: dict[tuple[str, str, str], str] = {}  # what the compaction holds: key -> write name
        self.corpus: dict[str, Path] = {}  # kind -> latest file

    def from_compaction(self, key: tuple[str, str, str]) -> bool:
        """Whether `key`'s current rows are in the compaction (else in its latest write's files)."""
        return key in self.covered and (key not in self.commits or self.covered[key] >= self.commits[key].name)

    def current(self) -> dict[tuple[str, str, str], str]:
        """Every partition-stage key -> the name of the write whose rows are current."""
        keys = set(self.commits) | set(self.covered)
        return {k: self.covered[k] if self.from_compaction(k) else self.commits[k].name for k in keys}

    def fresh(self) -> dict[tuple[str, str, str], Path]:
        """The keys whose current rows are not in the compaction -> their write folder."""
        return {k: w for k, w in self.commits.items() if not self.from_compaction(k)}

    @classmethod
    def of(cls, root: Path) -> _Snapshot:
        snapshot = cls()
        for stage in STAGE_TABLES:
            for commit in _glob(root / stage, "*/*/*/partitions.parquet"):
                write = commit.parent
                key = (stage, write.parent.parent.name, write.parent.name)
                if key not in snapshot.commits or write.name > snapshot.commits[key].name:
                    snapshot.commits[key] = write
        compactions = sorted(c.parent for c in _glob(root / "compacted", "*/_covered.parquet"))
        if compactions:
            snapshot.compaction = compactions[-1]
            # ParquetFile, not read_table: read_table goes through pyarrow.dataset, whose import
            # (pandas with it) is ~0.3 s of a no-op build's CPU.
            covered = pq.ParquetFile(_open(snapshot.compaction / "_covered.parquet")).read().to_pylist()
            snapshot.covered = {(r["stage"], r["source"], r["partition"]): r["write"] for r in covered}
        for kind_dir in _children(root / "corpus"):
            files = sorted(_glob(kind_dir, "*.parquet"), key=lambda p: p.name)
            if files and kind_dir.name != "shard_rows":
                snapshot.corpus[kind_dir.name] = files[-1]
        return snapshot


def _open(path: Path) -> Any:
    return path.open("rb") if is_remote(path) else str(path)


_STAGE_OF = {"raw_records": "'raw'", "fetches": "'raw'", "documents": "'documents'", "rule_stats": "'documents'"}


def _create_views(conn: duckdb.DuckDBPyConnection, snapshot: _Snapshot, corpus: bool = True) -> None:
    """The lineage tables as views over `snapshot`'s files on `conn`."""
    fresh = snapshot.fresh()
    compacted = [key for key in snapshot.covered if snapshot.from_compaction(key)]
    if compacted:
        # Three bound lists unnested side by side, not executemany (one INSERT per key: most of
        # a no-op build's lineage reads at 100 partitions) nor an Arrow scan (imports pandas).
        conn.execute(
            "CREATE TEMP TABLE _compacted_keys AS "
            "SELECT unnest(?::VARCHAR[]) AS stage, unnest(?::VARCHAR[]) AS source, unnest(?::VARCHAR[]) AS partition",
            [list(column) for column in zip(*compacted, strict=True)],
        )
    for name, schema in TABLES.items():
        columns = ", ".join(f'"{field.name}"' for field in schema)
        parts = []
        if name in PARTITION_TABLES:
            if compacted:
                stage = _STAGE_OF.get(name, "t.stage")
                parts.append(
                    f"SELECT {', '.join(f't.{c}' for c in columns.split(', '))} "
                    f"FROM read_parquet('{_sql(snapshot.compaction / f'{name}.parquet')}') t "
                    f"SEMI JOIN _compacted_keys k ON k.source = t.source AND k.partition = t.partition AND k.stage = {stage}"
                )
            files = [write / f"{name}.parquet" for (stage, _, _), write in sorted(fresh.items()) if name in STAGE_TABLES[stage]]
            if files:
                listed = ", ".join(f"'{_sql(f)}'" for f in files)
                parts.append(f"SELECT {columns} FROM read_parquet([{listed}])")
        if corpus:
            kinds = {"decisions": [f"decisions-{s}" for s in CORPUS_STAGES]}.get(name, [name])
            for kind in kinds:
                if kind in snapshot.corpus:
                    path = snapshot.corpus[kind]
                    if kind == "shard_rows":
                        continue
                    parts.append(f"SELECT {columns} FROM read_parquet('{_sql(path)}')")
            if name == "shard_rows" and "shards" in snapshot.corpus:
                rows_file = snapshot.corpus["shards"].parent.parent / "shard_rows" / snapshot.corpus["shards"].name
                parts.append(f"SELECT {columns} FROM read_parquet('{_sql(rows_file)}')")
        if not parts:
            empty = ", ".join(f'NULL::{_DUCK[field.type]} AS "{field.name}"' for field in schema)
            parts.append(f"SELECT {empty} WHERE false")
        conn.execute(f"CREATE TEMP VIEW {name} AS " + " UNION ALL ".join(parts))
    conn.execute(OUTCOMES_VIEW.format(temporary="TEMP"))


_DUCK = {_S: "VARCHAR", _I: "BIGINT", _B: "BOOLEAN", _D: "DOUBLE"}


DECISION_SCHEMA = TABLES["decisions"]


def decisions_table(rows: list[dict[str, Any]]) -> pa.Table:
    """Decision rows (dicts with DECISION_SCHEMA's fields) as an Arrow table."""
    return pa.Table.from_pylist(rows, schema=DECISION_SCHEMA)
