"""Wall time of `opencorpus build` of the default catalog (10 partitions: 9 Gutenberg batches, one
enwiki dump file) with the default `--jobs` (the number of cores) vs `--jobs 1`, and what the
lineage files cost per upstream record.

Method: ../shared/fixtures laid out as a mirror (tests/fixture_mirror.py); for each round and each
setting, a fresh data home and Dagster instance, the real console script in a subprocess
(`opencorpus build --home H --catalog assets --mirror M --json [--jobs 1]`), wall time by
time.perf_counter, CPU by the child's rusage (user + system). The settings alternate within a
round, so machine noise falls on both. Lineage bytes = every file under `<home>/lineage/` after
the build (partition writes, corpus files, the compaction), divided by records in; the
compaction's share alone is printed too (what a query at scale reads).

Run: .venv/bin/python benchmarks/parallel_build.py [--rounds 2]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import subprocess
import sys
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixture_mirror import build_fixture_mirror  # noqa: E402

OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")
FIXTURES = (ROOT / ".." / "shared" / "fixtures").resolve()


def child_cpu() -> float:
    usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    return usage.ru_utime + usage.ru_stime


def timed_build(home: Path, mirror: Path, jobs: list[str]) -> tuple[float, float, dict]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    env["DAGSTER_HOME"] = str(home / "dagster")
    command = [OPENCORPUS, "build", "--home", str(home), "--catalog", str(ROOT / "assets"), "--mirror", str(mirror),
               "--json", *jobs]  # fmt: skip
    cpu, started = child_cpu(), time.perf_counter()
    result = subprocess.run(command, capture_output=True, text=True, env=env, cwd=ROOT, timeout=1800)
    wall = time.perf_counter() - started
    if result.returncode != 0:
        raise SystemExit(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr[-3000:]}")
    return wall, child_cpu() - cpu, json.loads(result.stdout)


def folder_bytes(folder: Path) -> int:
    return sum(p.stat().st_size for p in folder.rglob("*") if p.is_file())


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=2)
    args = parser.parse_args()
    cores = len(os.sched_getaffinity(0))
    settings = {f"default (--jobs {cores})": [], "--jobs 1": ["--jobs", "1"]}
    figures: dict[str, list[tuple[float, float]]] = {name: [] for name in settings}
    with tempfile.TemporaryDirectory(prefix="parallel-build-") as scratch:
        mirror = build_fixture_mirror(Path(scratch) / "mirror", FIXTURES)
        lineage = None
        for round_ in range(args.rounds):
            for name, jobs in settings.items():
                home = Path(scratch) / f"home-{round_}-{len(jobs)}"
                wall, cpu, summary = timed_build(home, mirror, jobs)
                assert summary["failed"] == [] and len(summary["processed"]) == 10, summary
                figures[name].append((wall, cpu))
                print(f"round {round_ + 1} {name:<18} wall {wall:6.1f} s  cpu {cpu:6.1f} s  "
                      f"records in {summary['records_in']}, kept {summary['outcomes'].get('kept', 0)}", flush=True)
                if lineage is None:
                    lineage = (folder_bytes(home / "lineage"), folder_bytes(home / "lineage" / "compacted"),
                               summary["records_in"], sum(1 for p in (home / "lineage").rglob("*.parquet")))
    print(f"\n10-partition build of the default catalog, {cores} cores, best of {args.rounds}:")
    best = {name: min(values) for name, values in figures.items()}
    for name, (wall, cpu) in best.items():
        print(f"  {name:<18} wall {wall:6.1f} s   cpu {cpu:6.1f} s   cpu/wall {cpu / wall:4.2f}")
    (parallel, _), (serial, _) = best.values()
    print(f"  speed-up (wall, --jobs 1 / default): {serial / parallel:.2f}x")
    total, compacted, records, files = lineage
    print(f"lineage: {total:,} bytes in {files} Parquet files for {records} records = {total / records:,.0f} bytes/record "
          f"(the compaction alone: {compacted / records:,.0f} bytes/record)")


if __name__ == "__main__":
    main()
