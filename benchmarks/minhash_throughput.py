"""MinHash near-duplicate stage: signature throughput, LSH quality, incremental index cost, memory.

Run: .venv/bin/python benchmarks/minhash_throughput.py [--quick]

1. Signatures/s per core on ~5 KB documents (Gutenberg clean texts cut into 5,000-character
   pieces at two offsets), 128 perms, 5-word shingles, for: this implementation
   (`compute_signatures`), datasketch's per-document `MinHash.update_batch` loop, and
   DataTrove's `MinhashDedupSignature` step (16 buckets x 8 hashes = 128, 32-bit sha1 hashes:
   its xxhash config fails on str input with xxhash 3.x). "Per core" is documents divided by
   the process CPU time (`time.process_time`), so other load on the machine skews it less
   than wall time would; wall time is printed too.
2. LSH recall / precision against brute-force exact Jaccard (sparse shingle-incidence product)
   on a sample with real near-duplicates: copies of real text with 1-12 sentences dropped or
   replaced by sentences of another book. Thresholds 0.7, 0.8, 0.9, with the default
   (recall-first) banding and datasketch's equal-weight banding.
3. Incremental cost: add a partition of k real documents to an index of N documents and find
   its candidate pairs. The N filler documents have random signatures (unique documents: what
   most of a corpus is), written as 10,000-document partitions.
4. Memory: peak RSS of a fresh process that adds a partition and queries its candidates against
   an index of N, for two N; the per-million figure extrapolates the RSS difference linearly
   (and the Parquet bytes on disk per document).
"""

from __future__ import annotations

import argparse
import gzip
import multiprocessing
import random
import re
import resource
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
from scipy import sparse

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opencorpus_dagster.dedup.clusters import verify_pairs, verify_pairs_exact  # noqa: E402
from opencorpus_dagster.dedup.lsh_index import LshIndex  # noqa: E402
from opencorpus_dagster.dedup.minhash import (  # noqa: E402
    MinHashConfig,
    candidate_probability,
    compute_signatures,
    optimal_lsh_params,
    shingles,
)

BOOKS = ROOT / ".." / "shared" / "fixtures" / "gutenberg" / "c-w-gutenberg" / "clean-texts"
SENTENCE = re.compile(r"(?<=[.!?])\s+")


def load_books() -> list[str]:
    texts = []
    for path in sorted(BOOKS.glob("*.txt.gz")):
        with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
            texts.append(handle.read())
    return texts


def five_kb_documents(books: list[str], count: int) -> list[str]:
    """~5 KB pieces of real text; the second pass starts 2,500 characters later (variations)."""
    docs = []
    for offset in (0, 2500):
        for book in books:
            for start in range(offset, len(book) - 5000, 5000):
                docs.append(book[start : start + 5000])
    return docs[:count]


def timed(fn):
    cpu, wall = time.process_time(), time.perf_counter()
    result = fn()
    return result, time.process_time() - cpu, time.perf_counter() - wall


# -- 1. throughput ------------------------------------------------------------------------------


def bench_throughput(docs: list[str], peer_docs: int) -> None:
    config = MinHashConfig()
    # Warm-up: the code-point table and the power tables are built once per process.
    _, first_cpu, _ = timed(lambda: compute_signatures(docs, config))
    runs = [timed(lambda: compute_signatures(docs, config))[1:] for _ in range(3)]
    cpu, wall = min(runs)
    ours = len(docs) / cpu
    print(
        f"  this implementation      {len(docs):>5} docs  {ours:>8.0f} docs/s/core  (wall {len(docs) / wall:.0f}/s; "
        f"best of 3 after a warm-up run, which did {len(docs) / first_cpu:.0f}/s)"
    )

    from datasketch import MinHash

    subset = docs[:peer_docs]

    def datasketch_loop():
        for text in subset:
            m = MinHash(num_perm=128, seed=1)  # default sha1_hash32, affine32 scheme
            m.update_batch([" ".join(s).encode() for s in shingles(text, 5)])

    _, cpu, wall = timed(datasketch_loop)
    peer = len(subset) / cpu
    print(f"  datasketch update_batch  {len(subset):>5} docs  {peer:>8.0f} docs/s/core  (wall {len(subset) / wall:.0f}/s)  ratio ours/datasketch {ours / peer:.1f}x")

    try:
        from datatrove.data import Document
        from datatrove.pipeline.dedup.minhash import (
            MinhashConfig,
            MinhashDedupSignature,
        )
        from datatrove.utils.hashing import HashConfig
    except Exception as error:  # noqa: BLE001 - report why the peer is missing, keep going
        print(f"  datatrove: skipped ({type(error).__name__}: {error})")
        return
    with tempfile.TemporaryDirectory() as out:
        step = MinhashDedupSignature(
            out,
            config=MinhashConfig(
                n_grams=5, num_buckets=16, hashes_per_bucket=8, hash_config=HashConfig(precision=32, hash_fc="sha1")
            ),
        )
        step.get_signature(step.get_shingles(subset[0]))  # load its word tokenizer
        documents = [Document(text=t, id=str(i)) for i, t in enumerate(subset)]
        _, cpu, wall = timed(lambda: step.run(iter(documents)))
    peer = len(subset) / cpu
    print(f"  datatrove MinhashDedupSignature.run {len(subset)} docs  {peer:>8.0f} docs/s/core  (wall {len(subset) / wall:.0f}/s)  ratio ours/datatrove {ours / peer:.1f}x")


# -- 2. LSH quality ------------------------------------------------------------------------------


def near_duplicate_sample(books: list[str], bases: int, rng: random.Random) -> list[str]:
    """`bases` real 5 KB texts, plus for half of them one edited copy (1-12 sentences dropped
    or replaced with a sentence from another book)."""
    docs = five_kb_documents(books, 10**9)
    rng.shuffle(docs)
    base_docs = docs[:bases]
    donor = SENTENCE.split(books[-1])
    edited = []
    for text in base_docs[: bases // 2]:
        sentences = SENTENCE.split(text)
        for _ in range(rng.randint(1, 12)):
            i = rng.randrange(len(sentences))
            if rng.random() < 0.5:
                del sentences[i]
            else:
                sentences[i] = rng.choice(donor)
            if len(sentences) < 3:
                break
        edited.append(" ".join(sentences))
    return base_docs + edited


def exact_pairs(docs: list[str], threshold: float, jaccard: sparse.csr_matrix) -> set[tuple[int, int]]:
    rows, cols = (jaccard >= threshold).nonzero()
    return {(int(a), int(b)) for a, b in zip(rows, cols) if a < b}


def exact_jaccard_matrix(docs: list[str]) -> sparse.csr_matrix:
    vocab: dict[tuple[str, ...], int] = {}
    indptr, indices = [0], []
    for text in docs:
        ids = {vocab.setdefault(s, len(vocab)) for s in shingles(text, 5)}
        indices.extend(sorted(ids))
        indptr.append(len(indices))
    incidence = sparse.csr_matrix(
        (np.ones(len(indices), dtype=np.float64), indices, indptr), shape=(len(docs), len(vocab))
    )
    intersection = (incidence @ incidence.T).tocoo()
    sizes = np.asarray(incidence.sum(axis=1)).ravel()
    union = sizes[intersection.row] + sizes[intersection.col] - intersection.data
    return sparse.csr_matrix((intersection.data / union, (intersection.row, intersection.col)), shape=intersection.shape)


def bench_quality(books: list[str], bases: int) -> None:
    rng = random.Random(7)
    docs = near_duplicate_sample(books, bases, rng)
    jaccard = exact_jaccard_matrix(docs)
    ids = [f"d{i:05d}" for i in range(len(docs))]
    index_of = {d: i for i, d in enumerate(ids)}
    print(f"  sample: {len(docs)} docs ({bases} real 5 KB texts + {len(docs) - bases} edited copies), brute force over {len(docs) * (len(docs) - 1) // 2} pairs")
    for threshold in (0.7, 0.8, 0.9):
        truth = exact_pairs(docs, threshold, jaccard)
        for label, banding in (
            ("recall-first", None),
            ("datasketch equal-weight", optimal_lsh_params(threshold, 128)),
        ):
            config = MinHashConfig(threshold=threshold) if banding is None else MinHashConfig(
                threshold=threshold, bands=banding[0], rows=banding[1]
            )
            signatures = compute_signatures(docs, config)
            with tempfile.TemporaryDirectory() as folder:
                index = LshIndex(Path(folder), config)
                for part, start in enumerate(range(0, len(docs), 500)):
                    index.add_partition("sample", f"p{part}", ids[start : start + 500], signatures[start : start + 500])
                candidates = list(index.all_candidate_pairs())
                lookup = index.signatures_for(ids)
            cand = {(index_of[a], index_of[b]) for a, b in candidates}
            cand = {(min(p), max(p)) for p in cand}
            cand_recall = len(cand & truth) / len(truth) if truth else float("nan")
            print(
                f"  J>={threshold}: {len(truth):>4} true pairs | {label:<23} b={config.bands:>2} r={config.rows:>2} "
                f"P(cand|J=t)={candidate_probability(threshold, config.bands, config.rows):.2f} | "
                f"candidates {len(cand):>5}, candidate recall {cand_recall:.3f}"
            )
            texts = dict(zip(ids, docs))
            for how, verified in (
                ("estimate", verify_pairs(candidates, lookup, threshold)),
                ("exact", verify_pairs_exact(candidates, texts, threshold, config.shingle_words)),
            ):
                kept = {(min(index_of[a], index_of[b]), max(index_of[a], index_of[b])) for a, b, _ in verified}
                near_miss = sum(1 for a, b in kept - truth if jaccard[a, b] >= threshold - 0.05)
                recall = len(kept & truth) / len(truth) if truth else float("nan")
                precision = len(kept & truth) / len(kept) if kept else float("nan")
                print(
                    f"      verified by {how:<8}: recall {recall:.3f}, precision {precision:.3f} "
                    f"({len(kept - truth)} false, {near_miss} of them within 0.05 below t)"
                )


# -- 3 & 4. incremental cost and memory ----------------------------------------------------------------


def build_filler_index(folder: Path, config: MinHashConfig, n_docs: int) -> None:
    index = LshIndex(folder, config)
    rng = np.random.default_rng(11)
    for part, start in enumerate(range(0, n_docs, 10_000)):
        size = min(10_000, n_docs - start)
        sig = rng.integers(0, 2**32 - 1, size=(size, config.num_perm), dtype=np.uint32)
        index.add_partition("filler", f"{part:05d}", [f"f{start + i:09d}" for i in range(size)], sig)


def add_and_query(folder: str, docs: list[str]) -> tuple:
    """In a fresh process: signatures + add partition + candidate pairs, then a full rebuild
    query. Returns times, pair counts, peak RSS (KB) and tracemalloc peak (bytes)."""
    import tracemalloc

    config = MinHashConfig()
    tracemalloc.start()
    signatures = compute_signatures(docs, config)
    index = LshIndex(Path(folder), config)
    # Warm up pyarrow's writer and DuckDB (first use in a process costs ~1 s of set-up).
    index.add_partition("warmup", "w", ["w"], signatures[:1])
    list(index.candidate_pairs([("warmup", "w")]))
    index.remove_partition("warmup", "w")
    start = time.perf_counter()
    index.add_partition("new", "batch", [f"n{i:06d}" for i in range(len(docs))], signatures)
    added = time.perf_counter() - start
    pairs = list(index.candidate_pairs([("new", "batch")]))
    queried = time.perf_counter() - start - added
    start = time.perf_counter()
    rebuild_pairs = sum(1 for _ in index.all_candidate_pairs())
    rebuild = time.perf_counter() - start
    index.remove_partition("new", "batch")
    traced_peak = tracemalloc.get_traced_memory()[1]
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    return added, queried, len(pairs), rebuild, rebuild_pairs, rss, traced_peak


def bench_incremental(docs: list[str], sizes: list[int], k: int) -> None:
    config = MinHashConfig()
    new_docs = docs[:k]
    spawn = multiprocessing.get_context("spawn")
    results = {}
    for n_docs in sizes:
        with tempfile.TemporaryDirectory() as folder:
            build_filler_index(Path(folder), config, n_docs)
            disk = sum(f.stat().st_size for f in Path(folder).rglob("*.parquet"))
            with spawn.Pool(1) as pool:
                added, queried, pairs, rebuild, rebuild_pairs, rss_kb, traced = pool.apply(
                    add_and_query, (folder, new_docs)
                )
        results[n_docs] = rss_kb
        print(
            f"  N={n_docs:>7}: add_partition(k={k}) {added * 1000:.0f} ms, its candidate query "
            f"{queried * 1000:.0f} ms ({pairs} pairs); full rebuild query {rebuild:.1f} s ({rebuild_pairs} pairs); "
            f"index on disk {disk / n_docs:.0f} bytes/doc; worker peak RSS {rss_kb / 1024:.0f} MB, "
            f"Python-heap peak (tracemalloc) {traced / 2**20:.0f} MB"
        )
    low, high = sizes[0], sizes[-1]
    slope_kb = (results[high] - results[low]) / (high - low)
    print(
        f"  peak RSS per million indexed docs, extrapolated linearly from the two N: {slope_kb * 1e6 / 1024:.0f} MB "
        "(the index is streamed from Parquet by DuckDB: nothing of it stays resident between calls)"
    )


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="smaller runs (about a minute)")
    args = parser.parse_args()
    books = load_books()
    docs = five_kb_documents(books, 3000)
    sizes = [f"{len(d)}" for d in docs[:1]]
    print(f"documents: {len(docs)} pieces of {sizes[0]} characters, mean {np.mean([len(d) for d in docs]):.0f}, "
          f"{np.mean([len(shingles(d, 5)) for d in docs[:200]]):.0f} shingles each")
    print("1. signatures per second per core (128 perms, 5-word shingles)")
    bench_throughput(docs, peer_docs=200 if args.quick else 500)
    print("2. LSH + verification vs brute-force exact Jaccard")
    bench_quality(books, bases=400 if args.quick else 1200)
    print("3/4. incremental add + candidate query, and memory")
    bench_incremental(docs, sizes=[10_000, 50_000] if args.quick else [50_000, 250_000], k=1000)


if __name__ == "__main__":
    main()
