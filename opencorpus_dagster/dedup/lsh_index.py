"""A persistent, incremental MinHash LSH index: Parquet files on disk, queried with DuckDB.

Layout under the index folder (nothing else; a new `LshIndex` on the same folder sees it all):

    index.json                               the MinHashConfig the index was built with
    signatures/<source>/<partition>.parquet  doc_id, signature (fixed-size list of num_perm ints)
    bands/<source>/<partition>.parquet       band_no, band_hash (uint64), doc_id

`<source>` and `<partition>` are percent-encoded so any partition key is a safe file name.
One (source, partition) pair is the unit of change: `add_partition` replaces both of its files
(write a temporary file, then `os.replace`), so a backfilled source replaces its own
signatures and nothing else. Candidate pairs come from a DuckDB join of one partition's band
rows against every band file, so the whole index never has to be loaded into memory.

Both files of a partition carry the same `generation` stamp in their Parquet metadata. A crash
between the two renames leaves them with different stamps; `inconsistent_partitions()` lists
such partitions and re-running `add_partition` for them repairs the index.

Signatures of texts without words (`minhash.is_empty_signature`) are stored but not banded, so
they are never a candidate of anything.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterable, Iterator, Sequence
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa

from opencorpus_dagster.dedup.minhash import MinHashConfig, is_empty_signature
from opencorpus_dagster.state.atomic import write_parquet_atomically, write_text_atomically
from opencorpus_dagster.state.storage import duckdb_connect, parquet_file, parquet_files, read_parquet_schema

_GENERATION_KEY = b"opencorpus.generation"
_FETCH_ROWS = 65536


# Band rows (13 a document by default) of the changed partitions joined in one query: a hash
# table of ~30 MB.
QUERY_BAND_ROWS = 500_000


def _groups_of_rows(files: list[Path], limit: int) -> Iterator[list[Path]]:
    """`files` in consecutive groups of at most `limit` rows (by their Parquet footers); a file
    larger than `limit` alone."""
    group: list[Path] = []
    rows = 0
    for file in files:
        count = parquet_file(file).metadata.num_rows
        if group and rows + count > limit:
            yield group
            group, rows = [], 0
        group.append(file)
        rows += count
    if group:
        yield group


class IndexConfigMismatch(ValueError):
    """The folder holds an index built with a different MinHashConfig (signatures would not
    be comparable); rebuild it or open it with the config recorded in index.json."""


def band_hashes(signatures: np.ndarray, config: MinHashConfig) -> np.ndarray:
    """uint64 hash of each band of each signature row, shape `(n_docs, config.bands)`.

    Band i covers slots `[i*rows, (i+1)*rows)` as in datasketch's `MinHashLSH` (trailing slots
    beyond bands*rows are unused). Two rows share a band hash when their band slots are equal
    (a 64-bit hash of at most 13 x 32-bit values; a collision only adds a candidate, which
    verification then rejects).
    """
    n_docs = signatures.shape[0]
    used = signatures[:, : config.bands * config.rows].astype(np.uint64)
    slots = used.reshape(n_docs, config.bands, config.rows)
    h = np.full((n_docs, config.bands), 0x243F6A8885A308D3, dtype=np.uint64)
    for j in range(config.rows):
        h ^= slots[:, :, j]
        h *= np.uint64(0x9E3779B97F4A7C15)
        h ^= h >> np.uint64(29)
    return h


class LshIndex:
    """Signatures and LSH band hashes of every indexed document, one file pair per partition."""

    def __init__(self, path: Path, config: MinHashConfig) -> None:
        """Open (or create) the index at `path`; raises `IndexConfigMismatch` if the folder
        was built with a different config."""
        self.path = path
        self.config = config
        self.path.mkdir(parents=True, exist_ok=True)
        config_file = self.path / "index.json"
        wanted = config.model_dump()
        if config_file.exists():
            recorded = json.loads(config_file.read_text())
            if recorded != wanted:
                raise IndexConfigMismatch(
                    f"{config_file}: index built with {recorded}, opened with {wanted}"
                )
        else:
            write_text_atomically(config_file, json.dumps(wanted, indent=2, sort_keys=True))

    # -- files -----------------------------------------------------------------------------

    def _file(self, kind: str, source: str, partition: str) -> Path:
        return self.path / kind / quote(source, safe="") / f"{quote(partition, safe='')}.parquet"

    def _files(self, kind: str) -> list[str]:
        """Every `kind` file (for `read_parquet(?)`; the index folder's name is never SQL text)."""
        return parquet_files(self.path / kind, "*/*.parquet")

    def partitions(self) -> list[tuple[str, str]]:
        """(source, partition) of every indexed partition, sorted."""
        found = []
        for file in (self.path / "signatures").glob("*/*.parquet"):
            found.append((unquote(file.parent.name), unquote(file.name[: -len(".parquet")])))
        return sorted(found)

    # -- changes -----------------------------------------------------------------------------

    def add_partition(
        self,
        source: str,
        partition: str,
        doc_ids: Sequence[str],
        signatures: np.ndarray,
    ) -> None:
        """Index one partition's documents, replacing whatever that partition held before.

        `signatures` is `compute_signatures` output for `doc_ids` (same order, same config).
        Raises ValueError on a shape or dtype mismatch or duplicate doc_ids.
        """
        signatures = np.asarray(signatures)
        if signatures.shape != (len(doc_ids), self.config.num_perm):
            raise ValueError(
                f"signatures shape {signatures.shape} != ({len(doc_ids)}, {self.config.num_perm})"
            )
        if signatures.dtype != self.config.signature_dtype:
            raise ValueError(
                f"signature dtype {signatures.dtype} != {self.config.signature_dtype} "
                f"(scheme {self.config.scheme})"
            )
        if len(set(doc_ids)) != len(doc_ids):
            raise ValueError(f"{source}/{partition}: duplicate doc_ids")
        ids = pa.array(list(doc_ids), type=pa.string())
        flat = pa.array(np.ascontiguousarray(signatures).ravel())
        sig_table = pa.table(
            {"doc_id": ids, "signature": pa.FixedSizeListArray.from_arrays(flat, self.config.num_perm)}
        )
        digest = hashlib.sha256("\x00".join(doc_ids).encode())
        digest.update(np.ascontiguousarray(signatures).tobytes())
        generation = digest.hexdigest().encode()

        banded = np.flatnonzero(~is_empty_signature(signatures))
        hashes = band_hashes(signatures[banded], self.config)
        band_no = np.tile(np.arange(self.config.bands, dtype=np.int16), len(banded))
        band_doc = np.repeat(np.asarray(list(doc_ids), dtype=object)[banded], self.config.bands)
        band_table = pa.table(
            {
                "band_no": pa.array(band_no),
                "band_hash": pa.array(hashes.ravel()),
                "doc_id": pa.array(band_doc, type=pa.string()),
            }
        )
        # Sorted, so equal inputs give identical files and row groups prune on band_hash.
        band_table = band_table.sort_by([("band_no", "ascending"), ("band_hash", "ascending")])

        meta = {_GENERATION_KEY: generation}
        write_parquet_atomically(band_table.replace_schema_metadata(meta), self._file("bands", source, partition))
        write_parquet_atomically(sig_table.replace_schema_metadata(meta), self._file("signatures", source, partition))

    def remove_partition(self, source: str, partition: str) -> None:
        """Forget one partition (bands first, so no candidate points at a missing signature)."""
        self._file("bands", source, partition).unlink(missing_ok=True)
        self._file("signatures", source, partition).unlink(missing_ok=True)

    def inconsistent_partitions(self) -> list[tuple[str, str]]:
        """Partitions whose two files are not from the same `add_partition` call (or one is
        missing): a crash between the renames. Re-adding the partition repairs it."""
        bad = []
        sources = {p.name for kind in ("signatures", "bands") for p in (self.path / kind).glob("*")}
        for quoted_source in sorted(sources):
            names = {
                f.name
                for kind in ("signatures", "bands")
                for f in (self.path / kind / quoted_source).glob("*.parquet")
            }
            for name in sorted(names):
                stamps = []
                for kind in ("signatures", "bands"):
                    file = self.path / kind / quoted_source / name
                    stamps.append(
                        read_parquet_schema(file).metadata.get(_GENERATION_KEY) if file.exists() else None
                    )
                if stamps[0] is None or stamps[0] != stamps[1]:
                    bad.append((unquote(quoted_source), unquote(name[: -len(".parquet")])))
        return bad

    # -- queries ----------------------------------------------------------------------------

    def _pairs(self, sql: str, params: list) -> Iterator[tuple[str, str]]:
        with duckdb_connect(self.path) as con:
            reader = con.sql(sql, params=params).to_arrow_reader(_FETCH_ROWS)
            for batch in reader:
                yield from zip(batch.column(0).to_pylist(), batch.column(1).to_pylist())

    def candidate_pairs(self, partitions: Iterable[tuple[str, str]]) -> Iterator[tuple[str, str]]:
        """Pairs `(a, b)`, `a < b`, of documents sharing at least one band, where at least one
        of them is in one of the given (source, partition)s and the other anywhere in the index
        (including those). Each pair once; sorted within each group of partitions (below).
        Empty if none of them is indexed.

        The partitions are taken in groups of at most `QUERY_BAND_ROWS` band rows, a query
        each: a group's bands are the build side of a hash join that streams the whole index
        past them, so memory is bounded by the group, and a full build reads the index once
        per ~38,000 new documents, not once per partition (which also found every pair across
        two new partitions twice). A group is not joined with the partitions of earlier groups:
        those pairs came with them.
        """
        files = [file for file in (self._file("bands", *part) for part in partitions) if file.exists()]
        remaining = self._files("bands")
        for group in _groups_of_rows(files, QUERY_BAND_ROWS):
            names = [str(file) for file in group]
            yield from self._pairs(
                """
                SELECT DISTINCT least(n.doc_id, o.doc_id) AS a, greatest(n.doc_id, o.doc_id) AS b
                FROM read_parquet(?) AS n
                JOIN read_parquet(?) AS o
                  ON n.band_no = o.band_no AND n.band_hash = o.band_hash
                WHERE n.doc_id <> o.doc_id
                ORDER BY a, b
                """,
                [names, remaining],
            )
            done = set(names)
            remaining = [name for name in remaining if name not in done]

    def all_candidate_pairs(self) -> Iterator[tuple[str, str]]:
        """Every pair `(a, b)`, `a < b`, sharing a band anywhere in the index (a full rebuild)."""
        files = self._files("bands")
        if not files:
            return iter(())
        sql = """
            WITH bands AS (SELECT * FROM read_parquet(?))
            SELECT DISTINCT x.doc_id AS a, y.doc_id AS b
            FROM bands AS x JOIN bands AS y
              ON x.band_no = y.band_no AND x.band_hash = y.band_hash AND x.doc_id < y.doc_id
            ORDER BY a, b
        """
        return self._pairs(sql, [files])

    def signatures_for(self, doc_ids: Iterable[str]) -> dict[str, np.ndarray]:
        """Signature row of each requested doc_id that is indexed (absent ids are left out)."""
        wanted = pa.table({"doc_id": pa.array(sorted(set(doc_ids)), type=pa.string())})
        files = self._files("signatures")
        if wanted.num_rows == 0 or not files:
            return {}
        found: dict[str, np.ndarray] = {}
        with duckdb_connect(self.path) as con:
            con.register("wanted", wanted)
            table = con.sql(
                """
                SELECT s.doc_id, s.signature
                FROM read_parquet(?) AS s
                JOIN wanted USING (doc_id)
                """,
                params=[files],
            ).to_arrow_table()
        if table.num_rows == 0:
            return found
        column = table.column("signature").combine_chunks()
        if isinstance(column, pa.ListArray | pa.LargeListArray):
            column = column.cast(pa.list_(column.type.value_type, self.config.num_perm))
        values = column.flatten().to_numpy(zero_copy_only=False).astype(self.config.signature_dtype)
        rows = values.reshape(table.num_rows, self.config.num_perm)
        for doc_id, row in zip(table.column("doc_id").to_pylist(), rows):
            found[doc_id] = row
        return found
