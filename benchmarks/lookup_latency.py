"""Latency of `opencorpus lookup` on a 100,000-document corpus (synthetic text).

Builds a data home with DOCS synthetic documents (Zipf-distributed words, 120-360 words each) in
10 documents partitions, the dedup stage's persistent MinHash LSH index over them (as
`corpus/dedup` builds it), a lineage store holding every record as kept in one shard row, and a
manifest; then builds the passage index (once, as the first lookup would) and times single-item
lookups, the way `opencorpus lookup ITEM` answers them (with the record's trace):

- exact: a document's text; near: the same with every sixth sentence changed; passage: 60
  consecutive words of a document; absent: text in no document; url: a page URL; domain: a host.

Prints the index build times and, per kind and overall, p50 / p95 / max query latency.

    .venv/bin/python benchmarks/lookup_latency.py [--docs 100000] [--queries 40]
"""

from __future__ import annotations

import argparse
import json
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.dedup.near import NearDuplicateIndex
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.records import sha256_text
from opencorpus_dagster.rights.lookup import PassageIndex, Query, lookup
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.text.normalise import normalise_text

PARTITIONS = 10
VOCABULARY = 30_000


def synthetic_texts(count: int, rng: np.random.Generator) -> list[str]:
    words = np.array([f"w{i:x}{'abcdefgh'[i % 8]}" for i in range(VOCABULARY)])
    ranks = np.minimum(rng.zipf(1.15, size=count * 360), VOCABULARY) - 1
    lengths = rng.integers(120, 361, size=count)
    texts, start = [], 0
    for length in lengths:
        chunk = words[ranks[start : start + length]]
        start += length
        sentences = [" ".join(chunk[i : i + 12]).capitalize() + "." for i in range(0, len(chunk), 12)]
        texts.append(normalise_text(" ".join(sentences)))
    return texts


def build_home(root: Path, docs: int) -> tuple[DataHome, dict, list[dict]]:
    rng = np.random.default_rng(17)
    home = DataHome(root)
    per = docs // PARTITIONS
    store = LineageStore.at(home.lineage_db)
    manifest = {"shards": []}
    samples = []
    for p in range(PARTITIONS):
        partition = f"part-{p:02d}"
        texts = synthetic_texts(per, rng)
        doc_ids = [f"{p:02d}{i:08d}" for i in range(per)]
        urls = [f"https://site{(p * per + i) % 5000}.example.org/page/{p}/{i}" for i in range(per)]
        sha = [sha256_text(t) for t in texts]
        table = pa.table(
            {
                "doc_id": doc_ids, "source": ["synthetic"] * per, "partition": [partition] * per,
                "source_record_id": doc_ids, "upstream_uri": urls, "url": urls, "text": texts,
                "content_sha256": sha, "license": ["CC0-1.0"] * per,
            }
        )  # fmt: skip
        path = home.root / "documents" / "synthetic" / f"{partition}.parquet"
        path.parent.mkdir(parents=True, exist_ok=True)
        pq.write_table(table, path)
        shard = f"shards/synthetic/{partition}/part-00000.parquet"
        manifest["shards"].append({"path": shard, "source": "synthetic", "partition": partition, "rows": per})
        with store.connection() as conn:
            conn.register("t", table)
            conn.execute(
                "INSERT INTO documents SELECT source, partition, doc_id, true, license, 'synthetic', 'en', "
                "content_sha256, "
                "length(text), 'bench' FROM t"
            )
            conn.execute(
                "INSERT INTO raw_records SELECT source, partition, doc_id, source_record_id, upstream_uri, url, "
                "NULL, NULL, NULL, "
                "NULL, NULL, '2026-01-01T00:00:00+00:00', 'bench' FROM t"
            )
            conn.execute(
                "INSERT INTO decisions SELECT source, partition, doc_id, source_record_id, upstream_uri, "
                "'dedup', 'kept', "
                "'dedup.unique', NULL, NULL, 'bench', '2026-01-01T00:00:00+00:00' FROM t"
            )
            conn.execute("INSERT INTO shard_rows SELECT ?, row_number() OVER () - 1, doc_id FROM t", [shard])
            conn.execute(
                "INSERT INTO shards VALUES (?, ?, '', ?, 0, '{}', 'synthetic', ?, 'bench')",
                [shard, shard, per, partition],
            )
            conn.unregister("t")
        for i in rng.choice(per, size=8, replace=False):
            samples.append({"doc_id": doc_ids[i], "text": texts[i], "url": urls[i]})
    return home, manifest, samples


def queries_of(samples: list[dict], count: int, rng: np.random.Generator, workdir: Path) -> list[tuple[str, Query]]:
    absent = synthetic_texts(count, np.random.default_rng(99))
    queries = []
    for n in range(count):
        sample = samples[n % len(samples)]
        sentences = sample["text"].split(". ")
        changed = ". ".join(s + " zz unseen words here" if i % 6 == 0 else s for i, s in enumerate(sentences))
        words = sample["text"].split()
        start = int(rng.integers(0, max(1, len(words) - 60)))
        queries += [
            ("exact", Query("text", "exact", sample["text"])),
            ("near", Query("text", "near", normalise_text(changed))),
            ("passage", Query("text", "passage", " ".join(words[start : start + 60]))),
            ("absent", Query("text", "absent", "Zq " + absent[n])),
            ("url", Query("url", sample["url"])),
            ("domain", Query("domain", sample["url"].split("/")[2])),
        ]
    return queries


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--docs", type=int, default=100_000)
    parser.add_argument("--queries", type=int, default=40, help="queries of each kind")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as workdir:
        started = time.perf_counter()
        home, manifest, samples = build_home(Path(workdir) / "home", args.docs)
        print(f"documents: {args.docs:,} in {PARTITIONS} partitions (built in {time.perf_counter() - started:.1f} s)")
        started = time.perf_counter()
        NearDuplicateIndex(home).update()
        print(f"MinHash LSH index (dedup stage's): {time.perf_counter() - started:.1f} s")
        started = time.perf_counter()
        PassageIndex(home, NearDuplicateIndex(home).config.shingle_words).update()
        print(f"passage index (first lookup builds it): {time.perf_counter() - started:.1f} s")
        store = LineageStore.at(home.lineage_db, read_only=True)
        releases = [("current", manifest)]
        timings: dict[str, list[float]] = {}
        found: dict[str, int] = {}
        for kind, query in queries_of(samples, args.queries, np.random.default_rng(5), Path(workdir)):
            started = time.perf_counter()
            (result,) = lookup(home, store, [query], releases)
            timings.setdefault(kind, []).append(time.perf_counter() - started)
            found[kind] = found.get(kind, 0) + bool(result["matches"])
        print(f"{'kind':<8} {'queries':>7} {'found':>6} {'p50 ms':>8} {'p95 ms':>8} {'max ms':>8}")
        everything = []
        for kind, values in timings.items():
            everything += values
            print(
                f"{kind:<8} {len(values):>7} {found[kind]:>6} {_ms(values, 50):>8} {_ms(values, 95):>8} "
                f"{max(values) * 1000:>8.0f}"
            )
        print(
            f"{'all':<8} {len(everything):>7} {sum(found.values()):>6} {_ms(everything, 50):>8} "
            f"{_ms(everything, 95):>8} {max(everything) * 1000:>8.0f}"
        )
        print(
            json.dumps({"docs": args.docs, "p50_ms": float(_ms(everything, 50)), "p95_ms": float(_ms(everything, 95))})
        )


def _ms(values: list[float], percentile: int) -> str:
    ordered = sorted(values)
    if percentile == 50:
        return f"{statistics.median(ordered) * 1000:.0f}"
    index = min(len(ordered) - 1, int(round(percentile / 100 * (len(ordered) - 1))))
    return f"{ordered[index] * 1000:.0f}"


if __name__ == "__main__":
    main()
