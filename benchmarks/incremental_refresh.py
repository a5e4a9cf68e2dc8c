"""Cost of a refresh that adds one partition to a corpus of N partitions, vs a full build.

Corpus: real fixture text cut at paragraph breaks into ~5 KB files in a temporary directory,
grouped into `textfiles` partitions of a fixed number of files each, under three catalog
sources that declare each text's real licence:

  pd_books          the 15 Gutenberg clean texts + The Devil's Dictionary  LicenseRef-PublicDomain
  debian_reference  Debian Reference (plain-text edition)                  GPL-2.0-or-later
  python_docs       the Python 3.11 documentation reST sources             PSF-2.0

The corpus of N partitions takes a prefix of each source's partitions, spread in proportion
(so both sizes mix all sources); the refresh adds the next pd_books partition to its catalog
file. Every partition has the same number of files, so the ideal refresh costs 1/N of a full
build plus whatever the corpus-level stages cannot avoid.

Method, for each N, in a fresh data home, one process, after a warm-up build of one partition
in a throwaway home (so model loading and imports are charged to no one):
  full build = load catalog, `build.pending_partitions`, `ingest_partition` + `process_partition`
               for every pending partition, `deduplicate_corpus`, `publish_corpus`;
  refresh    = rewrite the catalog with one more partition, then the same steps (only the
               new partition is pending);
  no-op      = the same steps again with nothing new: the fixed floor of the corpus stages.
Shards written/kept come from `publish_corpus`'s report, re-signed partitions from
`DedupReport.reindexed_partitions` (out of the partitions in the corpus after the refresh).
Wall = time.perf_counter, CPU = time.process_time (all threads of this process: DuckDB's
worker threads count). The plain stages are what the Dagster assets call; the same full build
refresh and no-op for the smaller N are then run through the real console script
(`opencorpus build --home H --catalog C --json`, a subprocess with its own DAGSTER_HOME; CPU =
the child's rusage), whose extra cost is Dagster's (runs, event log, asset checks) plus the
corpus job's takedown and card assets, which the plain path does not run.

Run: .venv/bin/python benchmarks/incremental_refresh.py [--sizes 10 40] [--docs-per-partition 40]
"""

from __future__ import annotations

import argparse
import json
import os
import re
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.orchestration.build import pending_partitions
from opencorpus_dagster.stages.corpus import deduplicate_corpus, publish_corpus
from opencorpus_dagster.stages.documents import process_partition
from opencorpus_dagster.stages.ingest import ingest_partition
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.upstream.compression import read_decompressed_bytes
from opencorpus_dagster.upstream.fetch import Fetcher

FIXTURES = ROOT.parent / "shared" / "fixtures"
OPENCORPUS = Path(sys.executable).parent / "opencorpus"
CHUNK_BYTES = 5000
MIN_CHUNK_BYTES = 1000  # a file's tail shorter than this joins the previous chunk
STAGES = ("plan", "ingest", "documents", "dedup", "publish")


@dataclass(frozen=True)
class CorpusSource:
    name: str
    spdx: str
    evidence: str
    files: tuple[Path, ...]


def corpus_sources() -> list[CorpusSource]:
    gutenberg = sorted((FIXTURES / "gutenberg" / "c-w-gutenberg" / "clean-texts").glob("*.txt.gz"))
    debian = FIXTURES / "debian"
    python_rst = sorted(p for p in (debian / "python3.11-doc-subset" / "rst_sources").rglob("*.rst.txt") if p.name != "license.rst.txt")
    return [
        CorpusSource(
            "pd_books",
            "LicenseRef-PublicDomain",
            "Project Gutenberg books public domain in the USA; The Devil's Dictionary, Debian dict-devil copyright file",
            (*gutenberg, debian / "dict-devil" / "devil.dict.dz"),
        ),
        CorpusSource(
            "debian_reference",
            "GPL-2.0-or-later",
            "Debian debian-reference copyright file: GPL-2+",
            (debian / "debian-reference-en" / "debian-reference.en.txt.gz",),
        ),
        CorpusSource("python_docs", "PSF-2.0", "Debian python3.11-doc copyright file: PSF License", tuple(python_rst)),
    ]


def chunk_text(text: str) -> list[str]:
    """~CHUNK_BYTES pieces cut at blank lines (a short tail joins the previous piece)."""
    chunks: list[str] = []
    current: list[str] = []
    size = 0
    for paragraph in re.split(r"(?:\r?\n){2,}", text):
        current.append(paragraph)
        size += len(paragraph.encode()) + 2
        if size >= CHUNK_BYTES:
            chunks.append("\n\n".join(current))
            current, size = [], 0
    if current:
        tail = "\n\n".join(current)
        if chunks and size < MIN_CHUNK_BYTES:
            chunks[-1] += "\n\n" + tail
        elif tail.strip():
            chunks.append(tail)
    return chunks


def write_chunk_files(sources: list[CorpusSource], directory: Path) -> dict[str, list[Path]]:
    """source name -> its chunk files, written under `directory/<source>/`."""
    written: dict[str, list[Path]] = {}
    for source in sources:
        target = directory / source.name
        target.mkdir(parents=True)
        paths = []
        for upstream in source.files:
            stem = upstream.name.split(".")[0]
            text = read_decompressed_bytes(upstream).decode("utf-8", errors="replace")
            for number, chunk in enumerate(chunk_text(text)):
                path = target / f"{stem}-{number:04d}.txt"
                path.write_text(chunk, encoding="utf-8")
                paths.append(path)
        written[source.name] = paths
    return written


@dataclass
class Layout:
    """Partitions of each source (lists of file URLs) and the global order they join the corpus in."""

    partitions: dict[str, list[list[str]]]
    order: list[tuple[str, int]]  # (source, partition number)

    def corpus(self, n: int) -> dict[str, int]:
        """source -> number of its partitions in the corpus of `n` partitions (a prefix of each)."""
        counts: dict[str, int] = {}
        for name, _ in self.order[:n]:
            counts[name] = counts.get(name, 0) + 1
        return counts


def make_layout(files: dict[str, list[Path]], docs_per_partition: int) -> Layout:
    partitions = {
        name: [[str(p) for p in paths[i : i + docs_per_partition]] for i in range(0, len(paths) - docs_per_partition + 1, docs_per_partition)]
        for name, paths in files.items()
    }
    # Spread each source evenly over the order, so any prefix holds each in proportion.
    order = sorted(
        ((name, i) for name, parts in partitions.items() for i in range(len(parts))),
        key=lambda item: ((item[1] + 0.5) / len(partitions[item[0]]), item[0]),
    )
    return Layout(partitions, order)


def write_catalog(directory: Path, layout: Layout, counts: dict[str, int], sources: list[CorpusSource]) -> None:
    directory.mkdir(parents=True, exist_ok=True)
    for stale in directory.glob("*.yaml"):
        stale.unlink()
    for source in sources:
        count = counts.get(source.name, 0)
        if not count:
            continue
        spec = {
            "name": source.name,
            "kind": "textfiles",
            "description": f"benchmark corpus: {source.name} cut into ~{CHUNK_BYTES // 1000} KB files",
            "options": {
                "root": os.path.commonpath([str(Path(file).parent) for part in layout.partitions[source.name] for file in part]),
                "partitions": {f"part-{i:04d}": layout.partitions[source.name][i] for i in range(count)},
            },
            "license": {"spdx": source.spdx, "evidence": source.evidence},
            # Keep (nearly) every chunk: the benchmark measures the pipeline, not the quality
            # rules' verdicts on book and reST chunks; normalise and language identification run.
            "filters": {"quality": {"enabled": False}, "pii": {"enabled": False}},
        }
        (directory / f"{source.name}.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


@dataclass
class Timed:
    wall: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    cpu: dict[str, float] = field(default_factory=lambda: dict.fromkeys(STAGES, 0.0))
    partitions: int = 0
    documents: int = 0
    kept: int = 0
    shards_written: int = 0
    shards_kept: int = 0
    reindexed: int = 0

    @contextmanager
    def stage(self, name: str):
        wall, cpu = time.perf_counter(), time.process_time()
        yield
        self.wall[name] += time.perf_counter() - wall
        self.cpu[name] += time.process_time() - cpu

    @property
    def total_wall(self) -> float:
        return sum(self.wall.values())

    @property
    def total_cpu(self) -> float:
        return sum(self.cpu.values())


def plain_build(catalog_dir: Path, home: DataHome, run_id: str) -> Timed:
    """One `opencorpus build` done with the plain stages: pending partitions, then the corpus."""
    timed = Timed()
    with timed.stage("plan"):
        catalog = load_catalog(catalog_dir)
        assert not catalog.errors, catalog.errors
        store = LineageStore.at(home.lineage_db)
        pending, _ = pending_partitions(catalog.sources, store, home, force=False)
        units = {(s.name, u.key): u for s in catalog.sources for u in s.connector.units()}
    fetcher = Fetcher(home.downloads)
    for source, key in pending:
        with timed.stage("ingest"):
            ingest_partition(source, units[(source.name, key)], fetcher, home, store, run_id)
        with timed.stage("documents"):
            result = process_partition(source, key, home, store, run_id, fetcher=fetcher)
        timed.documents += result.records_in
        timed.kept += result.kept
    timed.partitions = len(pending)
    with timed.stage("dedup"):
        dedup = deduplicate_corpus(home, store, run_id)
    with timed.stage("publish"):
        report = publish_corpus(home, store, run_id)
    timed.reindexed = dedup.reindexed_partitions
    timed.shards_written, timed.shards_kept = len(report.written), len(report.kept)
    return timed


@dataclass
class SizeResult:
    n: int
    corpus_docs: int
    full: Timed
    refresh: Timed
    noop: Timed
    corpus_partitions_after: int


def measure_plain(n: int, layout: Layout, sources: list[CorpusSource], work: Path) -> SizeResult:
    catalog_dir, home = work / f"catalog-{n}", DataHome(work / f"home-{n}")
    write_catalog(catalog_dir, layout, layout.corpus(n), sources)
    full = plain_build(catalog_dir, home, "full")
    grown = layout.corpus(n)
    grown["pd_books"] += 1
    write_catalog(catalog_dir, layout, grown, sources)
    refresh = plain_build(catalog_dir, home, "refresh")
    noop = plain_build(catalog_dir, home, "noop")
    assert full.partitions == n and refresh.partitions == 1 and noop.partitions == 0, (full.partitions, refresh.partitions, noop.partitions)
    return SizeResult(n, full.documents, full, refresh, noop, sum(grown.values()))


@dataclass
class CliResult:
    wall: float
    cpu: float
    summary: dict


def cli_build(catalog_dir: Path, home: Path) -> CliResult:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    env["DAGSTER_HOME"] = str(home / "dagster")
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    start = time.perf_counter()
    completed = subprocess.run(
        [str(OPENCORPUS), "build", "--home", str(home), "--catalog", str(catalog_dir), "--json"],
        capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800, check=False,
    )  # fmt: skip
    wall = time.perf_counter() - start
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if completed.returncode != 0:
        raise SystemExit(f"opencorpus build failed ({completed.returncode}):\n{completed.stdout}\n{completed.stderr[-4000:]}")
    cpu = (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)
    return CliResult(wall, cpu, json.loads(completed.stdout))


def measure_cli(n: int, layout: Layout, sources: list[CorpusSource], work: Path) -> tuple[CliResult, CliResult, CliResult]:
    catalog_dir, home = work / f"cli-catalog-{n}", work / f"cli-home-{n}"
    write_catalog(catalog_dir, layout, layout.corpus(n), sources)
    full = cli_build(catalog_dir, home)
    grown = layout.corpus(n)
    grown["pd_books"] += 1
    write_catalog(catalog_dir, layout, grown, sources)
    refresh = cli_build(catalog_dir, home)
    noop = cli_build(catalog_dir, home)
    processed = [len(r.summary["processed"]) for r in (full, refresh, noop)]
    assert processed == [n, 1, 0], processed
    return full, refresh, noop


def warm_up(layout: Layout, sources: list[CorpusSource], work: Path) -> None:
    """Build one partition in a throwaway home: imports, model loads and caches are paid here."""
    catalog_dir, home = work / "warm-catalog", DataHome(work / "warm-home")
    write_catalog(catalog_dir, layout, {"pd_books": 1}, sources)
    plain_build(catalog_dir, home, "warm-up")
    shutil.rmtree(home.root)


METHOD = """method: plain stages in this process (no Dagster), each N in a fresh data home after a warm-up build;
  full build = catalog + pending_partitions, ingest_partition + process_partition per pending partition, deduplicate_corpus, publish_corpus;
  refresh = one more pd_books partition in the catalog, then the same steps (1 pending); no-op = the same steps with nothing new.
  wall = perf_counter, cpu = process_time (all threads); ratio = refresh / full build; ideal = 1/N (the new partition's share)."""


def report(results: list[SizeResult], cli: tuple[int, CliResult, CliResult, CliResult] | None, docs_per_partition: int, chunk_bytes: int) -> None:
    print("\n" + METHOD)
    print(f"\npartition = {docs_per_partition} files of ~{chunk_bytes / 1000:.1f} KB (mean); refresh adds 1 partition\n")
    header = (
        f"{'N':>3} {'docs':>5} | {'full wall':>9} {'full cpu':>8} | {'refr wall':>9} {'refr cpu':>8} | "
        f"{'ratio wall':>10} {'ratio cpu':>9} {'ideal 1/N':>9} | {'shards wr/kept':>14} | {'re-signed':>9} | "
        f"{'no-op wall':>10} {'no-op cpu':>9}"
    )
    print(header)
    print("-" * len(header))
    for r in results:
        print(
            f"{r.n:>3} {r.corpus_docs:>5} | {r.full.total_wall:>8.2f}s {r.full.total_cpu:>7.2f}s | "
            f"{r.refresh.total_wall:>8.2f}s {r.refresh.total_cpu:>7.2f}s | "
            f"{r.refresh.total_wall / r.full.total_wall:>10.3f} {r.refresh.total_cpu / r.full.total_cpu:>9.3f} {1 / r.n:>9.3f} | "
            f"{f'{r.refresh.shards_written}/{r.refresh.shards_kept}':>14} | "
            f"{f'{r.refresh.reindexed}/{r.corpus_partitions_after}':>9} | "
            f"{r.noop.total_wall:>9.2f}s {r.noop.total_cpu:>8.2f}s"
        )
    print("\nper stage, wall seconds (cpu seconds): full build -> refresh (+1 partition) -> no-op")
    for r in results:
        print(f"  N={r.n}")
        for stage in STAGES:
            cells = [f"{t.wall[stage]:7.3f} ({t.cpu[stage]:6.3f})" for t in (r.full, r.refresh, r.noop)]
            print(f"    {stage:<10} {' -> '.join(cells)}")
        print(
            f"    full build: {r.full.documents} records in, {r.full.kept} passed the documents stage, "
            f"shards written {r.full.shards_written}, partitions signed {r.full.reindexed}"
        )
    if cli:
        n, full, refresh, noop = cli
        plain = next(r for r in results if r.n == n)
        print(f"\nthrough `opencorpus build --json` (Dagster, subprocess), N={n}")
        print(f"  {'':<8} {'wall':>8} {'cpu':>8} | {'plain wall':>10} | {'Dagster/plain wall':>18} | processed  shards written/total")
        for label, result, timed in (("full", full, plain.full), ("refresh", refresh, plain.refresh), ("no-op", noop, plain.noop)):
            s = result.summary
            print(
                f"  {label:<8} {result.wall:>7.2f}s {result.cpu:>7.2f}s | {timed.total_wall:>9.2f}s | {result.wall / timed.total_wall:>18.2f} | "
                f"{len(s['processed']):>9}  {s['shards_written']}/{s['shards_total']}"
            )
        print(f"  ratio refresh/full via the CLI: wall {refresh.wall / full.wall:.3f}, cpu {refresh.cpu / full.cpu:.3f}")
        print("  (the CLI also runs the takedown and card assets, the asset checks and expectation suites; the plain path does not)")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[10, 40], help="corpus sizes N (partitions)")
    parser.add_argument("--docs-per-partition", type=int, default=40)
    parser.add_argument("--no-cli", action="store_true", help="skip the `opencorpus build` subprocess runs")
    args = parser.parse_args()

    sources = corpus_sources()
    with tempfile.TemporaryDirectory(prefix="opencorpus-refresh-bench-") as tmp:
        work = Path(tmp)
        files = write_chunk_files(sources, work / "text")
        layout = make_layout(files, args.docs_per_partition)
        chunk_bytes = sum(p.stat().st_size for paths in files.values() for p in paths) / sum(map(len, files.values()))
        available = {name: len(parts) for name, parts in layout.partitions.items()}
        print(f"chunk files: { {k: len(v) for k, v in files.items()} }; partitions available: {available}")
        largest = max(args.sizes)
        if largest + 1 > len(layout.order) or layout.corpus(largest).get("pd_books", 0) >= available["pd_books"]:
            raise SystemExit(f"not enough text for N={largest}+1 partitions of {args.docs_per_partition} files: lower --docs-per-partition")
        for n in args.sizes:
            print(f"N={n}: {layout.corpus(n)} + 1 pd_books partition")
        warm_up(layout, sources, work)
        results = [measure_plain(n, layout, sources, work) for n in sorted(args.sizes)]
        cli = None
        if not args.no_cli:
            n = min(args.sizes)
            cli = (n, *measure_cli(n, layout, sources, work))
        report(results, cli, args.docs_per_partition, chunk_bytes)
    print(f"\n{os.cpu_count()} cores; load average at the end {', '.join(f'{x:.2f}' for x in os.getloadavg())} (other work on the machine inflates wall time)")


if __name__ == "__main__":
    main()
