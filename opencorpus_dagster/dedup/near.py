"""Near duplicates across the corpus, incrementally: only changed partitions pay.

The MinHash LSH index (`lsh_index.LshIndex`) keeps signatures and band hashes per documents
partition. On each run, partitions whose documents file changed since they were indexed are
(re)signed and replaced in the index, vanished ones are removed, and only they are queried for
candidates against the whole index. Candidates are verified on the exact shingle Jaccard of the
two texts (the signature estimate has a spread of about +-0.035 at 128 permutations, too wide
for 0.99 precision), and the verified pairs are kept in `pairs.parquet`, so unchanged
partitions' pairs are reused. Index keys are `source|partition|doc_id`. A partition's
signatures are usually computed by its own partition run (`presign`), taken here when they match.
"""

from __future__ import annotations

import json
from collections.abc import Iterable, Iterator
from pathlib import Path

import pyarrow as pa

from opencorpus_dagster.dedup.clusters import exact_jaccard, verify_pairs_exact
from opencorpus_dagster.dedup.exact import member_key, partition_of
from opencorpus_dagster.dedup.lsh_index import LshIndex
from opencorpus_dagster.dedup.minhash import MinHashConfig
from opencorpus_dagster.dedup.presign import discard_orphans, discard_presigned, sign_documents, take_presigned
from opencorpus_dagster.state.atomic import write_parquet_atomically, write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import (
    duckdb_connect,
    modified_stamp,
    read_cached_table,
    read_parquet,
)

PAIRS_SCHEMA = pa.schema([("a", pa.string()), ("b", pa.string()), ("similarity", pa.float64())])
# A measured pair with what it was measured on: the shingle size and both documents files' stamps.
MEASURED_SCHEMA = pa.schema(
    [("a", pa.string()), ("b", pa.string()), ("similarity", pa.float64()), ("shingle_words", pa.int64()), ("stamps", pa.string())]
)


# Candidate pairs are verified in batches naming at most this many documents: their texts and
# shingle sets (~5 KB + ~3 KB a document, ~80 MB in all) are what a batch holds in memory.
VERIFY_KEYS = 10_000


class NearDuplicateIndex:
    def __init__(self, home: DataHome, config: MinHashConfig | None = None):
        self.home = home
        self.config = config or MinHashConfig()
        self.root = home.dedup_dir / "minhash"
        self.index = LshIndex(self.root, self.config)
        self.state_file = self.root / "indexed.json"
        self.pairs_file = self.root / "pairs.parquet"
        self.measured_file = self.root / "measured.parquet"

    def documents_files(self) -> dict[tuple[str, str], Path]:
        return {
            (path.parent.name, path.stem): path
            for path in sorted((self.home.root / "documents").glob("*/*.parquet"))
            if not path.name.startswith(".")
        }

    def update(self) -> tuple[list[tuple[str, str, float]], list[tuple[str, str]]]:
        """Bring the index up to date; returns (all verified pairs, partitions re-indexed)."""
        state = json.loads(self.state_file.read_text()) if self.state_file.is_file() else {}
        files = self.documents_files()
        stale = {
            part for part, path in files.items() if state.get("|".join(part)) != modified_stamp(path)
        } | {part for part in self.index.inconsistent_partitions() if part in files}
        gone = {part for part in self.index.partitions() if part not in files}
        for part in sorted(gone):
            self.index.remove_partition(*part)
            state.pop("|".join(part), None)
        discard_orphans(self.home, set(files))
        for part in sorted(stale):
            self._index_partition(part, files[part])
        changed = stale | gone
        pairs = [p for p in self._stored_pairs() if partition_of(p[0]) not in changed and partition_of(p[1]) not in changed]
        for candidates in _bounded_by_keys(self.index.candidate_pairs(sorted(stale)), VERIFY_KEYS):
            pairs.extend(self._verify(candidates))
        pairs = sorted(set(pairs))
        self._write_pairs(pairs)
        for part in stale:
            state["|".join(part)] = modified_stamp(files[part])
        write_text_atomically(self.state_file, json.dumps(state, indent=1, sort_keys=True))
        return pairs, sorted(changed)

    def _index_partition(self, part: tuple[str, str], path: Path) -> None:
        source, partition = part
        signed = take_presigned(self.home, source, partition, path, self.config)
        doc_ids, signatures = signed if signed is not None else sign_documents(path, self.config)
        self.index.add_partition(source, partition, [member_key(source, partition, d) for d in doc_ids], signatures)
        discard_presigned(self.home, source, partition)

    def _verify(self, candidates: list[tuple[str, str]]) -> list[tuple[str, str, float]]:
        if not candidates:
            return []
        texts = self.texts({k for pair in candidates for k in pair})
        verified = verify_pairs_exact(candidates, texts, self.config.threshold, self.config.shingle_words)
        return [(a, b, round(float(s), 6)) for a, b, s in verified]

    def texts(self, keys: Iterable[str]) -> dict[str, str]:
        """Texts of the given keys, read partition by partition from the documents files."""
        by_partition: dict[tuple[str, str], set[str]] = {}
        for key in keys:
            source, partition, doc_id = key.split("|", 2)
            by_partition.setdefault((source, partition), set()).add(doc_id)
        files = self.documents_files()
        found: dict[str, str] = {}
        with duckdb_connect(self.home.root) as connection:
            for (source, partition), doc_ids in sorted(by_partition.items()):
                connection.register("wanted", pa.table({"doc_id": pa.array(sorted(doc_ids), pa.string())}))
                rows = connection.execute(
                    "SELECT doc_id, text FROM read_parquet(?) WHERE doc_id IN (SELECT doc_id FROM wanted)",
                    [str(files[(source, partition)])],
                ).fetchall()
                connection.unregister("wanted")
                found.update({member_key(source, partition, doc_id): text for doc_id, text in rows})
        return found

    def similarities(self, pairs: Iterable[tuple[str, str]]) -> dict[tuple[str, str], float]:
        """The exact shingle Jaccard of each (a, b) pair of keys.

        A pair measured by an earlier run is taken from `measured.parquet` while both documents
        files have the stamps they had then and the shingle size is the same; the others are
        measured from their texts. The file then holds exactly these pairs. (The corpus dedup
        measures every cluster member joined to its keeper only through other members, on every
        run: at 100K documents, reading their texts again cost 1.5 s of each run.)
        """
        wanted = sorted(set(pairs))
        files = self.documents_files()
        stamps: dict[tuple[str, str], str] = {}

        def stamp_of(key: str) -> str:
            part = partition_of(key)
            if part not in stamps:
                stamps[part] = modified_stamp(files[part]) if part in files else ""
            return stamps[part]

        kept = self._stored_measures()
        measured: dict[tuple[str, str], tuple[float, str]] = {}
        missing = []
        for a, b in wanted:
            on = f"{stamp_of(a)} {stamp_of(b)}"
            stored = kept.get((a, b))
            if stored is not None and stored[1] == self.config.shingle_words and stored[2] == on:
                measured[(a, b)] = (stored[0], on)
            else:
                missing.append((a, b))
        if missing:
            texts = self.texts({key for pair in missing for key in pair})
            for a, b in missing:
                on = f"{stamp_of(a)} {stamp_of(b)}"
                measured[(a, b)] = (exact_jaccard(texts[a], texts[b], self.config.shingle_words), on)
        rows = [
            {"a": a, "b": b, "similarity": value, "shingle_words": self.config.shingle_words, "stamps": on}
            for (a, b), (value, on) in measured.items()
        ]
        if rows or self.measured_file.is_file():
            self.root.mkdir(parents=True, exist_ok=True)
            write_parquet_atomically(pa.Table.from_pylist(rows, schema=MEASURED_SCHEMA), self.measured_file)
        return {pair: value for pair, (value, _) in measured.items()}

    def _stored_measures(self) -> dict[tuple[str, str], tuple[float, int, str]]:
        """What `measured.parquet` holds."""
        table = read_cached_table(self.measured_file, MEASURED_SCHEMA)
        columns = [table[name].to_pylist() for name in MEASURED_SCHEMA.names]
        return {(a, b): (similarity, words, on) for a, b, similarity, words, on in zip(*columns, strict=True)}

    def _stored_pairs(self) -> list[tuple[str, str, float]]:
        if not self.pairs_file.is_file():
            return []
        table = read_parquet(self.pairs_file)
        return list(zip(table["a"].to_pylist(), table["b"].to_pylist(), table["similarity"].to_pylist(), strict=True))

    def _write_pairs(self, pairs: list[tuple[str, str, float]]) -> None:
        table = pa.Table.from_pylist([{"a": a, "b": b, "similarity": s} for a, b, s in pairs], schema=PAIRS_SCHEMA)
        write_parquet_atomically(table, self.pairs_file)


def _bounded_by_keys(pairs: Iterable[tuple[str, str]], limit: int) -> Iterator[list[tuple[str, str]]]:
    """`pairs` in consecutive batches, each naming at most `limit` distinct keys (a pair alone
    names two)."""
    batch: list[tuple[str, str]] = []
    keys: set[str] = set()
    for a, b in pairs:
        if batch and len(keys) + (a not in keys) + (b not in keys) > limit:
            yield batch
            batch, keys = [], set()
        batch.append((a, b))
        keys.update((a, b))
    if batch:
        yield batch
