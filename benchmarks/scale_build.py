"""What `opencorpus build` costs as the corpus grows: full build, no-op build, one-partition refresh.

Corpus: ~5 KB documents in 1,000-document `textfiles` partitions (issue 13's set-up), under three
catalog sources that declare each text's real licence (the sources of incremental_refresh.py:
Gutenberg books + The Devil's Dictionary, Debian Reference, the Python 3.11 docs). The fixtures
hold ~6,000 such documents, not 100,000, so each document is drawn: paragraphs of its source's
texts picked at random (seeded by the document's number) until it reaches ~5 KB. Two documents
share a paragraph now and then but are neither exact nor near duplicates of each other, so dedup
does its real work and keeps (nearly) everything. Partitions are dealt to the sources in turn.
The quality rules are off (see write_catalog); language identification and PII redaction run.

For each size N (documents), in a fresh data home and Dagster instance, through the real
console script (`opencorpus build --home H --catalog C --json`, one subprocess per build):
  full build   every partition pending;
  no-op        the same catalog again: nothing new;
  refresh      the catalog with one more partition (1,000 documents), then a build.
CPU = user + system time of the child (os.wait4's rusage: the build and any process it waited
for); peak memory = the child's max RSS; lineage bytes per document = the lineage store's
files (`<home>/lineage.duckdb` + its WAL, plus a `lineage/` folder of Parquet files when the
store keeps one) over the documents read.

Then the stack's floor (stack_floor.py): the CPU that Dagster and Great Expectations alone cost
any build that runs a partition, beside the refresh's share.

Then the wall time of a 10-partition full build with the default --jobs (the cores) against
--jobs 1 (alternating, best of --jobs-rounds), and beside it, in the same rounds, how much
slower this machine runs a CPU-bound loop in as many processes at once as the build has
workers than in one: the floor of that ratio on this machine.

Run: .venv/bin/python benchmarks/scale_build.py [--sizes 2000 20000 100000] [--keep DIR] [--jobs-partitions 10]
"""

from __future__ import annotations

import argparse
import json
import os
import random
import re
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from incremental_refresh import CorpusSource, corpus_sources  # noqa: E402 (the same sources and licences)
from stack_floor import stack_floor  # noqa: E402

from opencorpus_dagster.upstream.compression import read_decompressed_bytes  # noqa: E402 (after the sys.path line)

FIXTURES = ROOT.parent / "shared" / "fixtures"
OPENCORPUS = Path(sys.executable).parent / "opencorpus"
DOC_BYTES = 5000
DOCS_PER_PARTITION = 1000
MIN_PARAGRAPH_BYTES = 80  # headings and blank-ish lines make poor documents


def paragraphs(source: CorpusSource) -> list[str]:
    pool = []
    for path in source.files:
        text = read_decompressed_bytes(path).decode("utf-8", errors="replace")
        pool += [p.strip() for p in re.split(r"(?:\r?\n){2,}", text) if len(p.strip().encode()) >= MIN_PARAGRAPH_BYTES]
    return pool


def draw_document(pool: list[str], number: int) -> str:
    rng = random.Random(number)
    parts, size = [], 0
    while size < DOC_BYTES:
        paragraph = pool[rng.randrange(len(pool))]
        parts.append(paragraph)
        size += len(paragraph.encode()) + 2
    return "\n\n".join(parts)


class Corpus:
    """Partitions of drawn documents, written once under `directory` and shared by every size."""

    def __init__(self, directory: Path, sources: list[CorpusSource]):
        self.directory = directory
        self.sources = sources
        self.pools = {s.name: paragraphs(s) for s in sources}
        self.partitions: list[tuple[str, list[str]]] = []  # (source, files), in the order they join

    def ensure(self, count: int) -> None:
        while len(self.partitions) < count:
            number = len(self.partitions)
            source = self.sources[number % len(self.sources)].name
            folder = self.directory / source / f"p{number:04d}"
            folder.mkdir(parents=True, exist_ok=True)  # --keep: drawn by an earlier run (the same text)
            files = []
            for i in range(DOCS_PER_PARTITION):
                doc = number * DOCS_PER_PARTITION + i
                if not (folder / f"{doc:07d}").is_file():
                    (folder / f"{doc:07d}").write_text(draw_document(self.pools[source], doc), encoding="utf-8")
                # Relative to the source's root, and short: a catalog file is limited to 1 MB
                # (catalog.MAX_CATALOG_FILE_BYTES) and at 100K documents each source lists ~34K.
                files.append(f"p{number:04d}/{doc:07d}")
            self.partitions.append((source, files))

    def write_catalog(self, catalog: Path, count: int) -> None:
        self.ensure(count)
        catalog.mkdir(parents=True, exist_ok=True)
        for stale in catalog.glob("*.yaml"):
            stale.unlink()
        for source in self.sources:
            listed = enumerate(self.partitions[:count])
            mine = {f"part-{n:04d}": files for n, (name, files) in listed if name == source.name}
            if not mine:
                continue
            spec = {
                "name": source.name,
                "kind": "textfiles",
                "description": f"benchmark corpus: {source.name} paragraphs drawn into ~{DOC_BYTES // 1000} KB files",
                "options": {"root": str(self.directory / source.name), "partitions": mine},
                "license": {"spdx": source.spdx, "evidence": source.evidence},
                # Drawn paragraphs of reST and man-page text fail the web-text quality rules
                # (curly brackets, repeated lines) two times in three: the corpus stages would
                # see a third of the documents. Language and PII run as the defaults have them.
                "filters": {"quality": {"enabled": False}},
            }
            (catalog / f"{source.name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


@dataclass
class Build:
    wall: float
    cpu: float
    max_rss: int  # bytes
    summary: dict


def run_build(catalog: Path, home: Path, jobs: int | None = None) -> Build:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    env["DAGSTER_HOME"] = str(home / "dagster")
    command = [str(OPENCORPUS), "build", "--home", str(home), "--catalog", str(catalog), "--json"]
    command += ["--jobs", str(jobs)] if jobs else []
    with tempfile.TemporaryFile() as out, tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(command, stdout=out, stderr=err, env=env, cwd=ROOT)
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        out.seek(0), err.seek(0)
        stdout, stderr = out.read().decode(), err.read().decode()
    if child.returncode != 0:
        raise SystemExit(f"opencorpus build failed ({child.returncode}):\n{stdout[-4000:]}\n{stderr[-4000:]}")
    return Build(wall, usage.ru_utime + usage.ru_stime, usage.ru_maxrss * 1024, json.loads(stdout))


def lineage_bytes(home: Path) -> int:
    files = [home / "lineage.duckdb", home / "lineage.duckdb.wal"]
    total = sum(p.stat().st_size for p in files if p.is_file())
    if (home / "lineage").is_dir():
        total += sum(p.stat().st_size for p in (home / "lineage").rglob("*") if p.is_file())
    return total


@dataclass
class SizeResult:
    documents: int
    partitions: int
    full: Build
    noop: Build
    refresh: Build
    lineage_bytes: int


def measure(corpus: Corpus, documents: int, work: Path) -> SizeResult:
    partitions = -(-documents // DOCS_PER_PARTITION)
    catalog, home = work / f"catalog-{documents}", work / f"home-{documents}"
    corpus.write_catalog(catalog, partitions)
    full = run_build(catalog, home)
    noop = run_build(catalog, home)
    corpus.write_catalog(catalog, partitions + 1)
    refresh = run_build(catalog, home)
    processed = [len(b.summary["processed"]) for b in (full, noop, refresh)]
    assert processed == [partitions, 0, 1], processed
    assert noop.summary["corpus_unchanged"], "the no-op build ran the corpus job"
    return SizeResult(documents, partitions, full, noop, refresh, lineage_bytes(home))


def report(results: list[SizeResult]) -> None:
    print(
        f"\nthrough `opencorpus build --json` (subprocess, fresh home per size); "
        f"{DOCS_PER_PARTITION:,}-document partitions of ~{DOC_BYTES / 1000:.0f} KB documents; refresh = +1 partition"
    )
    header = (
        f"{'documents':>9} | {'full cpu':>8} {'full wall':>9} | {'no-op cpu':>9} {'no-op wall':>10} | "
        f"{'refresh cpu':>11} {'refresh/full':>12} | {'peak RSS full/no-op/refresh (MB)':>32} | "
        f"{'lineage B/doc':>13} | kept"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        rss = "/".join(f"{b.max_rss / 2**20:.0f}" for b in (r.full, r.noop, r.refresh))
        records = r.refresh.summary["records_in"]
        kept = r.refresh.summary["outcomes"].get("kept", 0)
        print(
            f"{r.documents:>9,} | {r.full.cpu:>7.1f}s {r.full.wall:>8.1f}s | "
            f"{r.noop.cpu:>8.2f}s {r.noop.wall:>9.2f}s | "
            f"{r.refresh.cpu:>10.1f}s {100 * r.refresh.cpu / r.full.cpu:>11.1f}% | {rss:>32} | "
            f"{r.lineage_bytes / max(records, 1):>13.0f} | {kept:,}/{records:,}"
        )
    print(
        "\nrefresh/full is CPU; the ideal is 1 partition's share, 1/(N/1000+1), "
        "plus what the corpus stages cannot avoid."
    )


# A fixed CPU-bound loop, timed inside the process (its start-up is not counted).
_SPIN = "import time\nstart = time.perf_counter()\nx = 0\nfor i in range(15_000_000):\n    x += i * i\nprint(time.perf_counter() - start)"


def spin_walls(copies: int) -> list[float]:
    """Wall seconds of `_SPIN` in each of `copies` processes run at once."""
    children = [subprocess.Popen([sys.executable, "-c", _SPIN], stdout=subprocess.PIPE, text=True) for _ in range(copies)]
    return [float(child.communicate()[0]) for child in children]


def compare_jobs(corpus: Corpus, partitions: int, rounds: int, work: Path) -> None:
    """Wall time of a full build of `partitions` partitions with the default --jobs (the cores)
    and with --jobs 1, alternating, a fresh home each time. The peer, measured in the same
    rounds: how this machine runs one CPU-bound process against as many at once as the build
    has workers (shared cores or a busy host make two processes slower than one), which bounds
    the ratio any build can reach here."""
    catalog = work / f"catalog-jobs-{partitions}"
    corpus.write_catalog(catalog, partitions)
    workers = min(os.cpu_count() or 1, partitions)
    walls: dict[str, list[float]] = {"default": [], "1": []}
    alone: list[float] = []
    together: list[float] = []
    for round_ in range(rounds):
        alone.append(spin_walls(1)[0])
        together.append(max(spin_walls(workers)))
        for setting in ("default", "1") if round_ % 2 == 0 else ("1", "default"):
            home = work / f"home-jobs-{setting}-{round_}"
            build = run_build(catalog, home, None if setting == "default" else 1)
            assert len(build.summary["processed"]) == partitions
            walls[setting].append(build.wall)
    default, serial = min(walls["default"]), min(walls["1"])
    print(
        f"\n{partitions}-partition full build ({partitions * DOCS_PER_PARTITION:,} documents), best of {rounds}: "
        f"default jobs ({os.cpu_count()} cores) {default:.1f} s wall, --jobs 1 {serial:.1f} s wall, "
        f"ratio {default / serial:.2f}"
    )
    slowdown = min(together) / min(alone)
    print(
        f"this machine in the same rounds: a CPU-bound loop took {min(alone):.2f} s alone and {min(together):.2f} s "
        f"with {workers} copies at once (x{slowdown:.2f}); a build that ran every second in parallel would reach "
        f"ratio {slowdown / workers:.2f} here"
    )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000], help="corpus sizes in documents")
    parser.add_argument("--keep", type=Path, help="work in this folder and keep it (default: a temporary folder)")
    parser.add_argument("--jobs-partitions", type=int, default=10, help="partitions of the --jobs comparison (0: skip it)")
    parser.add_argument("--jobs-rounds", type=int, default=2, help="rounds of the --jobs comparison")
    args = parser.parse_args()
    sources = corpus_sources()
    with tempfile.TemporaryDirectory(prefix="opencorpus-scale-bench-") as tmp:
        work = args.keep or Path(tmp)
        work.mkdir(parents=True, exist_ok=True)
        corpus = Corpus(work / "text", sources)
        start = time.perf_counter()
        corpus.ensure(max(-(-max(args.sizes) // DOCS_PER_PARTITION) + 1, args.jobs_partitions))
        drawn = time.perf_counter() - start
        print(f"{len(corpus.partitions)} partitions of {DOCS_PER_PARTITION} documents drawn in {drawn:.0f} s")
        results = []
        for documents in sorted(args.sizes):
            results.append(measure(corpus, documents, work))
            report(results[-1:])  # as it goes: the largest size takes a while
        report(results)
        floor = stack_floor()
        print(f"\nthe stack's floor (stack_floor.py, in this run): {floor.describe()}")
        for r in results:
            print(
                f"  {r.documents:>9,} documents: the floor is {100 * floor.total / r.full.cpu:.1f}% of the full build; "
                f"the refresh spends {r.refresh.cpu - floor.total:.1f} s above it"
            )
        if args.jobs_partitions:
            compare_jobs(corpus, args.jobs_partitions, args.jobs_rounds, work)
    load = ", ".join(f"{x:.2f}" for x in os.getloadavg())
    print(f"\n{os.cpu_count()} cores; load average at the end {load} (other work on the machine inflates wall time)")


if __name__ == "__main__":
    main()
