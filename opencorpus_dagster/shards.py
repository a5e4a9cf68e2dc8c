"""Deterministic, size-bounded Parquet shards and their manifest.

Shards are grouped by (source, partition) and ordered by doc_id inside a group, so a new
upstream unit adds shards without moving rows of the others, and a removed record rewrites
only the shards of its own group. A group whose membership fingerprint is unchanged keeps its
files byte for byte. Every file is written under a temporary name and renamed; the manifest is
renamed into place last, so it only ever names complete shards. The same inputs and settings
give byte-identical shards and manifest (no timestamps in either).
"""

from __future__ import annotations

import hashlib
import json
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.atomic import published, write_text_atomically
from opencorpus_dagster.home import DataHome
from opencorpus_dagster.storage import duckdb_connect

MANIFEST_FORMAT = "opencorpus-manifest/1"
SHARD_COLUMNS = (
    "doc_id",
    "source",
    "partition",
    "source_record_id",
    "upstream_uri",
    "url",
    "title",
    "text",
    "language",
    "license",
    "license_evidence",
    "attribution",
    "content_sha256",
)
SHARD_SCHEMA = pa.schema([(name, pa.large_string() if name == "text" else pa.string()) for name in SHARD_COLUMNS])
DEFAULT_MAX_SHARD_BYTES = 128 * 1024 * 1024
ROW_GROUP_ROWS = 4096
WRITER_VERSION = f"pyarrow-{pa.__version__}/zstd/rg{ROW_GROUP_ROWS}"


@dataclass(frozen=True)
class ShardGroup:
    source: str
    partition: str
    documents_path: Path


@dataclass
class ShardingReport:
    manifest: dict
    written: list[str]  # shard paths (relative) written in this run
    kept: list[str]  # shard paths whose bytes were left as they were
    deleted: list[str]


def sha256_file(path: Path) -> str:
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()


def read_manifest(home: DataHome) -> dict | None:
    if not home.manifest.is_file():
        return None
    return json.loads(home.manifest.read_text())


def write_shards(
    home: DataHome,
    groups: Iterable[ShardGroup],
    excluded_parquet: Path | None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
) -> ShardingReport:
    """Publish shards for every group and a new manifest; returns what changed.

    `excluded_parquet` holds (source, partition, doc_id) rows that must not be in any shard
    (duplicates, removed records). Only one group's rows are in memory at a time.
    """
    previous = read_manifest(home) or {"shards": []}
    previous_by_group: dict[tuple[str, str], list[dict]] = {}
    for shard in previous["shards"]:
        previous_by_group.setdefault((shard["source"], shard["partition"]), []).append(shard)

    home.shards_dir.mkdir(parents=True, exist_ok=True)
    _remove_temporaries(home.shards_dir)
    entries: list[dict] = []
    written: list[str] = []
    kept: list[str] = []
    connection = duckdb_connect(home.root)
    try:
        if excluded_parquet is not None and excluded_parquet.is_file():
            connection.execute(
                "CREATE TEMP TABLE excluded AS SELECT source, partition, doc_id FROM read_parquet(?)",
                [str(excluded_parquet)],
            )
        else:
            connection.execute("CREATE TEMP TABLE excluded (source VARCHAR, partition VARCHAR, doc_id VARCHAR)")
        for group in sorted(groups, key=lambda g: (g.source, g.partition)):
            # The fingerprint needs no text (content_sha256 stands for it): an unchanged group
            # is decided without reading its text column, the bulk of a refresh's bytes.
            fingerprint = _fingerprint(_group_rows(connection, group, FINGERPRINT_COLUMNS), max_shard_bytes)
            old = previous_by_group.get((group.source, group.partition), [])
            if old and all(s.get("fingerprint") == fingerprint for s in old) and _files_intact(home, old):
                entries.extend(old)
                kept.extend(s["path"] for s in old)
                continue
            table = _group_rows(connection, group, SHARD_COLUMNS)
            for index, chunk in enumerate(_split(table, max_shard_bytes)):
                entry = _write_shard(home, group, index, chunk, fingerprint)
                entries.append(entry)
                written.append(entry["path"])
    finally:
        connection.close()

    manifest = _manifest(entries)
    write_text_atomically(home.manifest, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    deleted = _delete_unlisted(home, {e["path"] for e in entries})
    return ShardingReport(manifest, written, kept, deleted)


def _group_rows(connection: duckdb.DuckDBPyConnection, group: ShardGroup, names: tuple[str, ...]) -> pa.Table:
    """`names` of the group's rows that are in no exclusion, ordered by doc_id, as shard types."""
    columns = ", ".join(f"d.{c}" for c in names)
    table = connection.sql(
        f"""
        SELECT {columns}
        FROM read_parquet(?) AS d
        ANTI JOIN excluded AS e ON e.source = d.source AND e.partition = d.partition AND e.doc_id = d.doc_id
        ORDER BY d.doc_id
        """,
        params=[str(group.documents_path)],
    ).to_arrow_table()
    return table.cast(pa.schema([SHARD_SCHEMA.field(name) for name in names]))


_PROVENANCE_COLUMNS = ("license", "license_evidence", "attribution", "upstream_uri", "title", "url", "language")
FINGERPRINT_COLUMNS = ("doc_id", "content_sha256", *_PROVENANCE_COLUMNS)


def _fingerprint(table: pa.Table, max_shard_bytes: int) -> str:
    hasher = hashlib.sha256(f"{WRITER_VERSION}|{max_shard_bytes}|{SHARD_SCHEMA}".encode())
    for doc_id, content in zip(
        table.column("doc_id").to_pylist(), table.column("content_sha256").to_pylist(), strict=True
    ):
        hasher.update(f"{doc_id}:{content}\n".encode())
    # Provenance columns count too: a changed licence decision must rewrite the shard.
    for name in _PROVENANCE_COLUMNS:
        hasher.update(json.dumps(table.column(name).to_pylist()).encode())
    return hasher.hexdigest()[:32]


def _split(table: pa.Table, max_shard_bytes: int) -> Iterable[pa.Table]:
    """Consecutive slices whose text bytes stay under the bound (a larger single row is alone)."""
    if table.num_rows == 0:
        return
    sizes = pa.compute.binary_length(table.column("text").cast(pa.large_binary())).to_pylist()
    start, running = 0, 0
    for index, size in enumerate(sizes):
        if index > start and running + size > max_shard_bytes:
            yield table.slice(start, index - start)
            start, running = index, 0
        running += size
    yield table.slice(start)


def _write_shard(home: DataHome, group: ShardGroup, index: int, table: pa.Table, fingerprint: str) -> dict:
    relative = Path(group.source) / group.partition / f"part-{index:05d}.parquet"
    with published(home.shards_dir / relative) as temporary:
        pq.write_table(
            table,
            temporary,
            compression="zstd",
            compression_level=9,
            row_group_size=ROW_GROUP_ROWS,
            use_dictionary=["source", "partition", "language", "license", "license_evidence"],
            write_statistics=True,
            store_schema=True,
        )
        digest, size = sha256_file(temporary), temporary.stat().st_size
    licenses = Counter(table.column("license").to_pylist())
    return {
        "path": f"shards/{relative.as_posix()}",
        "source": group.source,
        "partition": group.partition,
        "sha256": digest,
        "rows": table.num_rows,
        "bytes": size,
        "licenses": dict(sorted((k or "none", v) for k, v in licenses.items())),
        "fingerprint": fingerprint,
    }


def _files_intact(home: DataHome, shards: list[dict]) -> bool:
    for shard in shards:
        path = home.corpus_dir / shard["path"]
        if not path.is_file() or path.stat().st_size != shard["bytes"]:
            return False
    return True


def _manifest(entries: list[dict]) -> dict:
    entries = sorted(entries, key=lambda e: e["path"])
    licenses: Counter = Counter()
    sources: Counter = Counter()
    for entry in entries:
        licenses.update(entry["licenses"])
        sources[entry["source"]] += entry["rows"]
    return {
        "format": MANIFEST_FORMAT,
        "shards": entries,
        "totals": {
            "shards": len(entries),
            "rows": sum(e["rows"] for e in entries),
            "bytes": sum(e["bytes"] for e in entries),
            "licenses": dict(sorted(licenses.items())),
            "sources": dict(sorted(sources.items())),
        },
    }


def _remove_temporaries(root: Path) -> None:
    for leftover in root.rglob(".*.tmp-*"):
        leftover.unlink(missing_ok=True)


def _delete_unlisted(home: DataHome, listed: set[str]) -> list[str]:
    deleted = []
    for path in sorted(home.shards_dir.rglob("*.parquet")):
        relative = path.relative_to(home.corpus_dir).as_posix()
        if relative not in listed:
            path.unlink()
            deleted.append(relative)
    return deleted
