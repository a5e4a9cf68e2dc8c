"""Deterministic, size-bounded Parquet shards and their manifest.

Shards are grouped by (source, partition) and ordered by doc_id inside a group, so a new
upstream unit adds shards without moving rows of the others, and a removed record rewrites
only the shards of its own group. A group whose membership fingerprint is unchanged keeps its
files byte for byte. Each release folder holds its own shards (releases.py), so a release is a
self-contained dataset: new shards are written into the release being staged, named after their
content (`part-NNNNN-<sha256[:16]>.parquet`, under a temporary name, then renamed), and the
files of unchanged groups are hard links to the previous release's (a server-side copy in
object storage). A shard file is never rewritten: an earlier release stays as it was published.
The manifest is written after every shard it names. The same inputs
and settings give byte-identical shards and manifest (no timestamps in either). Each shard
entry carries the Merkle root of its (doc_id, content_sha256) rows and the manifest the root
over the shards (merkle.py).
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import tempfile
from collections import Counter
from collections.abc import Iterable, Iterator
from concurrent.futures import FIRST_COMPLETED, Future, ThreadPoolExecutor, wait
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.state import merkle, releases
from opencorpus_dagster.state.atomic import temporary_sibling, write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import duckdb_connect, modified_stamp, read_parquet, sha256_file

MANIFEST_FORMAT = "opencorpus-manifest/2"
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
WRITER_VERSION = f"pyarrow-{pa.__version__}/zstd/rg{ROW_GROUP_ROWS}/named-by-content"


@dataclass(frozen=True)
class ShardGroup:
    source: str
    partition: str
    documents_path: Path


@dataclass
class ShardingReport:
    manifest: dict
    written: list[str]  # shard paths (relative) written in this run
    kept: list[str]  # shard paths of the previous release listed again
    deleted: list[str]  # shard paths of the previous release no longer listed (files stay until gc)
    release: str = ""  # the release being staged


def read_manifest(home: DataHome, release: str | None = None) -> dict | None:
    """The manifest of the current release (or of `release`); None before the first release."""
    return releases.read_manifest(home, release)


def release_shards(home: DataHome, release: str | None = None) -> list[Path]:
    """The shard files of `release` (default: the current one), in manifest order; none before
    the first release."""
    release = release or releases.current_release(home)
    if release is None:
        return []
    folder = releases.release_dir(home, release)
    return [folder / shard["path"] for shard in releases.read_manifest(home, release)["shards"]]


def shard_paths(home: DataHome, release: str | None = None) -> list[str]:
    """`release_shards` as strings (local paths or fsspec URLs), for DuckDB's `read_parquet(?)`."""
    return [str(path) for path in release_shards(home, release)]


def write_shards(
    home: DataHome,
    groups: Iterable[ShardGroup],
    excluded_parquet: Path | None,
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES,
    writers: int = 1,
) -> ShardingReport:
    """Write shards for every group and stage their manifest in the next release; returns what changed.

    `excluded_parquet` holds (source, partition, doc_id) rows that must not be in any shard
    (duplicates, removed records). Changed groups are compressed by `writers` threads (zstd and
    hashing release the GIL) while the next group is read, so at most `writers` groups' rows
    plus one are in memory at a time; the files are the same whatever `writers` is. Nothing is
    published until `releases.commit_release` switches the current release.
    """
    if writers < 1:
        raise ValueError(f"writers must be at least 1, not {writers}")
    current = releases.current_release(home)
    previous = read_manifest(home) or {"shards": []}
    previous_folder = releases.release_dir(home, current) if current else None
    previous_by_group: dict[tuple[str, str], list[dict]] = {}
    for shard in previous["shards"]:
        previous_by_group.setdefault((shard["source"], shard["partition"]), []).append(shard)

    release = releases.stage_release(home)
    folder = releases.release_dir(home, release)
    (folder / "shards").mkdir(parents=True, exist_ok=True)
    _remove_temporaries(folder / "shards")
    # Per group in order: its previous entries (kept) or the future of its written ones.
    slots: list[list[dict] | Future[list[dict]]] = []
    kept: list[str] = []
    connection = duckdb_connect(home.root)
    in_flight: list[Future[list[dict]]] = []
    pool = ThreadPoolExecutor(max_workers=writers, thread_name_prefix="shard-writer")
    try:
        if excluded_parquet is not None and excluded_parquet.is_file():
            connection.execute(
                "CREATE TEMP TABLE excluded AS SELECT source, partition, doc_id FROM read_parquet(?)",
                [str(excluded_parquet)],
            )
        else:
            connection.execute("CREATE TEMP TABLE excluded (source VARCHAR, partition VARCHAR, doc_id VARCHAR)")
        fingerprints = _Fingerprints(home.state / FINGERPRINTS_FILE, excluded_parquet, max_shard_bytes)
        for group in sorted(groups, key=lambda g: (g.source, g.partition)):
            # The fingerprint needs no text (content_sha256 stands for it): an unchanged group
            # is decided without reading its text column, the bulk of a refresh's bytes.
            fingerprint = fingerprints.of(group, lambda g=group: _fingerprint(_group_rows(connection, g, FINGERPRINT_COLUMNS), max_shard_bytes))
            old = previous_by_group.get((group.source, group.partition), [])
            if old and all(s.get("fingerprint") == fingerprint for s in old) and _files_intact(previous_folder, old):
                for shard in old:
                    _link(previous_folder / shard["path"], folder / shard["path"], shard["bytes"])
                slots.append(old)
                kept.extend(s["path"] for s in old)
                continue
            table = _group_rows(connection, group, SHARD_COLUMNS)
            in_flight = _wait_for_a_writer(in_flight, writers)
            in_flight.append(pool.submit(_write_group, folder, group, table, fingerprint, max_shard_bytes))
            slots.append(in_flight[-1])
        fingerprints.save()
    finally:
        pool.shutdown(wait=True)
        connection.close()

    entries: list[dict] = []
    written: list[str] = []
    for slot in slots:
        if isinstance(slot, Future):
            slot = slot.result()
            written.extend(entry["path"] for entry in slot)
        entries.extend(slot)
    manifest = _manifest(entries)
    _remove_unlisted(folder, {e["path"] for e in entries})  # left by an earlier attempt at this release
    write_text_atomically(folder / releases.MANIFEST_FILE, json.dumps(manifest, indent=2, sort_keys=True) + "\n")
    listed = {e["path"] for e in entries}
    deleted = sorted(s["path"] for s in previous["shards"] if s["path"] not in listed)
    return ShardingReport(manifest, written, kept, deleted, release)


def _wait_for_a_writer(in_flight: list[Future], writers: int) -> list[Future]:
    """The writes of `in_flight` still running, once fewer than `writers` are (which bounds the
    groups in memory). A write that failed raises here, before more groups are read."""
    if len(in_flight) >= writers:
        wait(in_flight, return_when=FIRST_COMPLETED)
    for future in in_flight:
        if future.done():
            future.result()
    return [future for future in in_flight if not future.done()]


def _write_group(folder: Path, group: ShardGroup, table: pa.Table, fingerprint: str, max_shard_bytes: int) -> list[dict]:
    """The shards of one group's rows, written into the release `folder`: their entries."""
    return [_write_shard(folder, group, index, chunk, fingerprint) for index, chunk in enumerate(_split(table, max_shard_bytes))]


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


FINGERPRINTS_FILE = "shard-fingerprints.json"  # in the home's local state: a cache


class _Fingerprints:
    """Each group's fingerprint as the last run computed it, while what it was computed from is
    the same: the documents file (its size and modification time), the group's excluded doc_ids
    and the settings. Computing one reads the group's rows; at 100K documents in 101 groups that
    was 1.5 s of every corpus run, for groups that had not changed."""

    def __init__(self, path: Path, excluded_parquet: Path | None, max_shard_bytes: int):
        self.path = path
        self._settings = [WRITER_VERSION, str(SHARD_SCHEMA), FINGERPRINT_COLUMNS, max_shard_bytes]
        self._excluded: dict[tuple[str, str], list[str]] = {}
        if excluded_parquet is not None and excluded_parquet.is_file():
            table = read_parquet(excluded_parquet, columns=["source", "partition", "doc_id"])
            for source, partition, doc_id in zip(*(table[n].to_pylist() for n in ("source", "partition", "doc_id")), strict=True):
                self._excluded.setdefault((source, partition), []).append(doc_id)
        try:
            self._kept = json.loads(path.read_text(encoding="utf-8"))
            if not isinstance(self._kept, dict):
                self._kept = {}
        except (OSError, ValueError):
            self._kept = {}
        self._now: dict[str, list[str]] = {}

    def of(self, group: ShardGroup, compute) -> str:
        name = f"{group.source}/{group.partition}"
        try:
            stamp = modified_stamp(group.documents_path)
        except OSError:
            return compute()
        inputs = json.dumps([stamp, sorted(self._excluded.get((group.source, group.partition), [])), self._settings])
        key = hashlib.sha256(inputs.encode()).hexdigest()
        kept = self._kept.get(name)
        fingerprint = kept[1] if isinstance(kept, list) and len(kept) == 2 and kept[0] == key else compute()
        self._now[name] = [key, fingerprint]
        return fingerprint

    def save(self) -> None:
        if self._now != self._kept:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            write_text_atomically(self.path, json.dumps(self._now, sort_keys=True) + "\n")


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


def _write_shard(release_folder: Path, group: ShardGroup, index: int, table: pa.Table, fingerprint: str) -> dict:
    folder = Path(group.source) / group.partition
    shards = release_folder / "shards"
    with _scratch(shards / folder / f"part-{index:05d}.parquet") as temporary:
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
        relative = folder / f"part-{index:05d}-{digest[:16]}.parquet"
        _publish_named(shards / relative, temporary, size)
    licenses = Counter(table.column("license").to_pylist())
    rows = zip(table.column("doc_id").to_pylist(), table.column("content_sha256").to_pylist(), strict=True)
    return {
        "merkle_root": merkle.rows_root(rows),
        "path": f"shards/{relative.as_posix()}",
        "source": group.source,
        "partition": group.partition,
        "sha256": digest,
        "rows": table.num_rows,
        "bytes": size,
        "licenses": dict(sorted((k or "none", v) for k, v in licenses.items())),
        "fingerprint": fingerprint,
    }


@contextmanager
def _scratch(near: Path) -> Iterator[Path]:
    """A temporary file to write a shard into: a hidden sibling of `near` on local disk (so the
    rename stays on one filesystem), local scratch for object storage. Removed on the way out."""
    if hasattr(near, "fs"):
        with tempfile.TemporaryDirectory(prefix="opencorpus-shard-") as folder:
            yield Path(folder) / near.name
        return
    near.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(near)
    try:
        yield temporary
    finally:
        temporary.unlink(missing_ok=True)


def _publish_named(target: Path, temporary: Path, size: int) -> None:
    """Move a written shard to its content-named place; a file already there has this content."""
    if target.is_file() and target.stat().st_size == size:
        return  # same name = same sha256 prefix and size: an earlier release's identical shard
    if hasattr(target, "fs"):  # object storage: one PUT, visible whole or not at all
        target.fs.put_file(str(temporary), target.path)
        return
    with open(temporary, "rb+") as handle:
        os.fsync(handle.fileno())
    os.replace(temporary, target)


def _link(source: Path, target: Path, size: int) -> None:
    """`target` becomes the same file as `source` (an unchanged shard of the previous release):
    a hard link on local disk, a server-side copy in object storage."""
    if target.is_file() and target.stat().st_size == size:
        return  # linked by an earlier attempt at this release
    if hasattr(target, "fs"):
        target.fs.copy(source.path, target.path)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(target)
    temporary.unlink(missing_ok=True)
    try:
        os.link(source, temporary)
    except OSError:  # a filesystem without hard links
        shutil.copyfile(source, temporary)
    os.replace(temporary, target)


def _remove_unlisted(folder: Path, listed: set[str]) -> None:
    for path in sorted((folder / "shards").rglob("*.parquet")):
        if path.relative_to(folder).as_posix() not in listed:
            path.unlink()


def _files_intact(folder: Path | None, shards: list[dict]) -> bool:
    if folder is None:
        return False
    for shard in shards:
        path = folder / shard["path"]
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
        "merkle_root": merkle.release_root([e["merkle_root"] for e in entries]),
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
