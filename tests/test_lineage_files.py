"""The lineage store as immutable files: many writers, readers during a build, parallel partitions.

Real `opencorpus build` / `opencorpus trace` processes on the fixture mirror, and real
`LineageStore` writers in separate processes on rows of a real build's lineage.
"""

from __future__ import annotations

import json
import multiprocessing
import os
import random
import re
import shutil
import signal
import subprocess
import sys
import time
from pathlib import Path

import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
from cli_runner import REPO, build, run_opencorpus, shard_bytes, start_opencorpus
from conftest import current_manifest

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.audit import conservation_problems

ENWIKI = ("enwiki", "enwiki-latest-pages-articles1.xml-p000000010p000030302")
GUTENBERG = ("gutenberg", "10000-10999")
OUTCOMES = "SELECT source, partition, doc_id, stage, outcome, reason, value FROM outcomes ORDER BY ALL"


@pytest.fixture(scope="module")
def serial_build(tmp_path_factory, fixture_mirror):
    """The default catalog built with `--jobs 1` (partition runs one after another)."""
    home = tmp_path_factory.mktemp("serial") / "home"
    summary = json.loads(build(home, fixture_mirror, REPO / "assets", "--jobs", "1").stdout)
    return home, summary


def rows(home: Path, query: str) -> list[tuple]:
    with LineageStore.at(home / "lineage", read_only=True).connection() as conn:
        return conn.execute(query).fetchall()


def partition_rows(store: LineageStore, source: str, partition: str) -> dict[str, pa.Table]:
    """The tables one partition's raw and documents stages recorded, as Arrow tables."""
    with store.connection() as conn:
        where = f"WHERE source = '{source}' AND partition = '{partition}'"
        return {
            name: conn.sql(f"SELECT * FROM {name} {where}").to_arrow_table()
            for name in ("decisions", "raw_records", "fetches", "documents", "rule_stats", "partitions")
        }


def rewrite_partition(lineage: str, tables: dict[str, pa.Table], stage: str, run_id: str) -> None:
    """Write one stage of a partition again, as its asset does (`replace_partition_stage`)."""
    store = LineageStore.at(lineage)
    (part,) = tables["partitions"].filter(pc.equal(tables["partitions"]["stage"], stage)).to_pylist()
    decisions = tables["decisions"].filter(pc.equal(tables["decisions"]["stage"], stage))
    decisions = decisions.set_column(decisions.schema.get_field_index("run_id"), "run_id", pa.array([run_id] * decisions.num_rows))
    store.replace_partition_stage(
        part["source"], part["partition"], stage, decisions=decisions, fingerprint=part["fingerprint"],
        records_in=part["records_in"], counts=json.loads(part["counts"]), run_id=run_id,
        materialized_at=part["materialized_at"],
        **({"raw_records": tables["raw_records"], "fetches": tables["fetches"]} if stage == "raw"
           else {"documents": tables["documents"], "rule_stats": tables["rule_stats"]}),
    )  # fmt: skip


def _writer(lineage: str, tables: dict, start, label: str, times: int) -> None:
    start.wait()
    for i in range(times):
        for stage in ("raw", "documents"):
            rewrite_partition(lineage, tables, stage, f"{label}-{i}")


def test_two_writers_at_the_same_time_both_land(built_corpus, tmp_path):
    """Two processes rewrite two partitions' lineage 15 times each, at the same moment, into one
    store: nothing waits, nothing is lost, every partition shows its last complete write."""
    source_home, _ = built_corpus
    original = LineageStore.at(source_home / "lineage", read_only=True)
    lineage = tmp_path / "lineage"
    shutil.copytree(source_home / "lineage", lineage)
    tables = {key: partition_rows(original, *key) for key in (ENWIKI, GUTENBERG)}
    expected = {key: len(t["decisions"].filter(pc.is_in(t["decisions"]["stage"], pa.array(["raw", "documents"]))))
                for key, t in tables.items()}
    context = multiprocessing.get_context("spawn")
    start = context.Barrier(2)
    writers = [
        context.Process(target=_writer, args=(str(lineage), tables[key], start, key[0], 15)) for key in (ENWIKI, GUTENBERG)
    ]
    for writer in writers:
        writer.start()
    for writer in writers:
        writer.join(300)
    assert [w.exitcode for w in writers] == [0, 0]

    store = LineageStore.at(lineage, read_only=True)
    for (source, partition), count in expected.items():
        with store.connection() as conn:
            landed = conn.execute(
                "SELECT run_id, count(*) FROM decisions WHERE source = ? AND partition = ? AND stage IN ('raw', 'documents') "
                "GROUP BY run_id", [source, partition],
            ).fetchall()  # fmt: skip
            runs = conn.execute(
                "SELECT run_id FROM partitions WHERE source = ? AND partition = ? ORDER BY stage", [source, partition]
            ).fetchall()
        assert landed == [(f"{source}-14", count)]  # the last write of each, whole, and only it
        assert runs == [(f"{source}-14",), (f"{source}-14",)]
    assert sorted(rows(lineage.parent, OUTCOMES)) == sorted(rows(source_home, OUTCOMES))
    assert conservation_problems(store) == []
    # 15 writes x 2 stages x 2 partitions, each in a folder of its own
    writes = [p for p in lineage.glob("*/*/*/*") if p.parent.name in (ENWIKI[1], GUTENBERG[1])]
    assert len(writes) >= 60


_KILLED_WRITER = """
import json, sys
import pyarrow as pa
import pyarrow.ipc
import pyarrow.compute as pc
sys.path.insert(0, sys.argv[3])
from test_lineage_files import rewrite_partition
tables = {k: pa.ipc.open_file(f"{sys.argv[2]}/{k}.arrow").read_all() for k in
          ("decisions", "raw_records", "fetches", "documents", "rule_stats", "partitions")}
print("ready", flush=True)
i = 0
while True:
    rewrite_partition(sys.argv[1], tables, "raw", f"killed-{i}")
    i += 1
"""


def test_a_writer_killed_mid_write_leaves_the_partition_readable_and_whole(built_corpus, tmp_path):
    """SIGKILL a process rewriting the enwiki partition's raw lineage at 12 random moments: after
    each kill the partition reads as exactly one complete write (the previous run's or a finished
    new one), with the right number of rows, and the corpus conserves every record."""
    source_home, _ = built_corpus
    lineage = tmp_path / "lineage"
    shutil.copytree(source_home / "lineage", lineage)
    tables = partition_rows(LineageStore.at(lineage, read_only=True), *ENWIKI)
    scratch = tmp_path / "tables"
    scratch.mkdir()
    for name, table in tables.items():
        with pa.ipc.new_file(scratch / f"{name}.arrow", table.schema) as out:
            out.write_table(table)
    raw_decisions = len([s for s in tables["decisions"]["stage"].to_pylist() if s == "raw"])
    raw_records = tables["raw_records"].num_rows
    raw_part = tables["partitions"].filter(pc.equal(tables["partitions"]["stage"], "raw")).to_pylist()[0]
    # The enwiki fixture: 206 pages in; the raw stage decides the 100 redirects, 106 go on.
    assert (raw_part["records_in"], raw_decisions, raw_records) == (206, 100, 106)
    previous_runs = {tables["partitions"].filter(pc.equal(tables["partitions"]["stage"], "raw"))["run_id"][0].as_py()}
    random.seed(13)
    for attempt in range(12):
        writer = subprocess.Popen(
            [sys.executable, "-c", _KILLED_WRITER, str(lineage), str(scratch), str(Path(__file__).parent)],
            stdout=subprocess.PIPE, text=True, cwd=REPO,
        )  # fmt: skip
        assert writer.stdout.readline().strip() == "ready"
        time.sleep(random.uniform(0.05, 0.6))
        os.kill(writer.pid, signal.SIGKILL)
        writer.wait()
        store = LineageStore.at(lineage, read_only=True)
        with store.connection() as conn:
            decided = conn.execute(
                "SELECT run_id, count(*) FROM decisions WHERE source = ? AND partition = ? AND stage = 'raw' GROUP BY 1",
                list(ENWIKI),
            ).fetchall()
            (records,) = conn.execute(
                "SELECT count(DISTINCT doc_id) FROM raw_records WHERE source = ? AND partition = ?", list(ENWIKI)
            ).fetchone()
            (committed,) = conn.execute(
                "SELECT run_id FROM partitions WHERE source = ? AND partition = ? AND stage = 'raw'", list(ENWIKI)
            ).fetchall()
        assert len(decided) == 1 and decided[0][1] == raw_decisions, (attempt, decided)
        assert decided[0][0] == committed[0]
        assert committed[0] in previous_runs or committed[0].startswith("killed-")
        assert records == raw_records
        assert conservation_problems(store) == []
        previous_runs.add(committed[0])
    # Some kill landed half-way through a write: a folder without its commit point, ignored.
    folders = list((lineage / "raw" / ENWIKI[0] / ENWIKI[1]).iterdir())
    uncommitted = [f for f in folders if not (f / "partitions.parquet").exists()]
    print(f"\n{len(folders)} writes of the partition, {len(uncommitted)} killed before their commit point")
    assert uncommitted


def test_jobs_2_and_jobs_1_give_identical_lineage_and_shards(built_corpus, serial_build):
    """The default build (`jobs` = the cores, 2 here) and `--jobs 1`: the same outcome for every
    record at every stage, byte-identical shards, the same totals."""
    parallel_home, parallel = built_corpus
    serial_home, serial = serial_build
    assert parallel["failed"] == serial["failed"] == []
    assert (parallel["records_in"], parallel["outcomes"]) == (serial["records_in"], serial["outcomes"])
    assert sorted(parallel["processed"]) == sorted(serial["processed"]) and len(serial["processed"]) == 10
    outcomes = rows(serial_home, OUTCOMES)
    assert len(outcomes) == serial["records_in"] and rows(parallel_home, OUTCOMES) == outcomes
    decisions = "SELECT source, partition, doc_id, stage, outcome, reason, value, detail FROM decisions ORDER BY ALL"
    assert rows(parallel_home, decisions) == rows(serial_home, decisions)
    assert rows(parallel_home, "SELECT * FROM shard_rows ORDER BY ALL") == rows(serial_home, "SELECT * FROM shard_rows ORDER BY ALL")
    parallel_shards = {k: v for k, v in shard_bytes(parallel_home).items() if k.startswith("shards/")}
    assert parallel_shards == {k: v for k, v in shard_bytes(serial_home).items() if k.startswith("shards/")}
    assert parallel_shards


def run_intervals(home: Path) -> dict[str, tuple[float, float]]:
    """Partition run label -> (start, end) time, from the home's Dagster instance."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        intervals = {}
        for record in instance.get_run_records():
            run = record.dagster_run
            partition = run.tags.get("dagster/partition")
            if partition:
                intervals[f"{run.job_name}/{partition}"] = (record.start_time, record.end_time)
    return intervals


def overlapping(intervals: dict[str, tuple[float, float]]) -> list[tuple[str, str]]:
    ordered = sorted(intervals.items(), key=lambda item: item[1][0])
    return [(a, b) for i, (a, (_, a_end)) in enumerate(ordered) for b, (b_start, _) in ordered[i + 1:] if b_start < a_end]


def test_parallel_build_runs_partitions_at_overlapping_times(built_corpus, serial_build):
    """`--jobs 2`: the partition runs (each its own Dagster run on the home's instance) overlap in
    time; `--jobs 1`: none does."""
    parallel = run_intervals(built_corpus[0])
    serial = run_intervals(serial_build[0])
    assert len(parallel) == len(serial) == 10
    if len(os.sched_getaffinity(0)) > 1:
        assert overlapping(parallel), parallel
    assert overlapping(serial) == []


def test_trace_in_a_loop_during_a_build_never_fails_it(built_corpus, fixture_mirror, tmp_path):
    """`opencorpus trace` again and again (the real CLI) while `opencorpus build --force --jobs 2`
    rewrites every partition's lineage and the corpus: every trace answers with the shard row's
    record, and the build succeeds with the same outcomes."""
    source_home, summary = built_corpus
    home = tmp_path / "home"
    shutil.copytree(source_home, home, symlinks=True, ignore=shutil.ignore_patterns("dagster", "build.lock"))
    manifest = current_manifest(home)
    shard = next(s for s in manifest["shards"] if s["source"] == "enwiki")
    (expected,) = json.loads(run_opencorpus("trace", "--shard", shard["path"], "--row", "3", "--json", home=home).stdout)

    builder = start_opencorpus(
        "build", "--catalog", str(REPO / "assets"), "--mirror", str(fixture_mirror), "--force", "--jobs", "2", "--json", home=home
    )
    traces = []
    while builder.poll() is None:
        result = run_opencorpus("trace", "--shard", shard["path"], "--row", "3", "--json", home=home, check=False)
        traces.append(result)
        assert result.returncode == 0, result.stderr
        (traced,) = json.loads(result.stdout)
        assert (traced["doc_id"], traced["outcome"], traced["license"]) == (expected["doc_id"], "kept", expected["license"])
        report = run_opencorpus("report", "--json", home=home, check=False)
        assert report.returncode == 0, report.stderr
    out, err = builder.communicate()
    assert builder.returncode == 0, err
    rebuilt = json.loads(out)
    print(f"\n{len(traces)} traces (and as many reports) during the build, none failed")
    assert len(traces) >= 5
    assert rebuilt["failed"] == [] and len(rebuilt["processed"]) == 10
    assert (rebuilt["records_in"], rebuilt["outcomes"]) == (summary["records_in"], summary["outcomes"])
    assert rows(home, OUTCOMES) == rows(source_home, OUTCOMES)


def test_partition_writes_are_compacted_once_enough_of_them_are_fresh(built_corpus, tmp_path):
    """A refreshed partition's rows are read from its own files until `after` partition-stage
    writes are outside the last compaction; then one compaction takes them all. The rows a
    query sees are the same before, between and after."""
    source_home, _ = built_corpus
    original = LineageStore.at(source_home / "lineage", read_only=True)
    lineage = tmp_path / "lineage"
    shutil.copytree(source_home / "lineage", lineage)
    store = LineageStore.at(lineage)
    store.compact(after=1)  # whatever the build left outside a compaction
    compactions = sorted(p.name for p in (lineage / "compacted").iterdir())
    expected = sorted(rows(source_home, OUTCOMES))

    tables = partition_rows(original, *ENWIKI)
    for stage in ("raw", "documents"):
        rewrite_partition(str(lineage), tables, stage, "refresh")
    assert store.compact(after=3) is None  # two fresh writes: nothing rewritten
    assert sorted(p.name for p in (lineage / "compacted").iterdir()) == compactions
    assert sorted(rows(tmp_path, OUTCOMES)) == expected
    assert rows(tmp_path, f"SELECT DISTINCT run_id FROM partitions WHERE source = '{ENWIKI[0]}'") == [("refresh",)]

    target = store.compact(after=2)
    assert target is not None and target.name not in compactions
    covered = pq.read_table(target / "_covered.parquet")
    assert {(r["stage"], r["source"], r["partition"]) for r in covered.to_pylist()} >= {("raw", *ENWIKI), ("documents", *ENWIKI)}
    assert sorted(rows(tmp_path, OUTCOMES)) == expected
    assert rows(tmp_path, f"SELECT DISTINCT run_id FROM partitions WHERE source = '{ENWIKI[0]}'") == [("refresh",)]
    assert store.compact(after=1) is None  # nothing left outside it


def test_the_readme_lineage_query_counts_every_decision(built_corpus, tmp_path):
    # The README's example, run as written from a folder where the data home is `opencorpus-data`.
    home, _ = built_corpus
    readme = (REPO / "README.md").read_text()
    [code] = re.findall(r'\.venv/bin/python -c "\n(from opencorpus_dagster\.lineage\.store import LineageStore\n.*?)"\n```', readme, re.DOTALL)
    (tmp_path / "opencorpus-data").symlink_to(home)
    printed = subprocess.run([sys.executable, "-c", code], cwd=tmp_path, capture_output=True, text=True, check=True).stdout
    cells = [[cell.strip() for cell in line.split("│")[1:-1]] for line in printed.splitlines() if line.startswith("│")]
    counted = [(stage, outcome, int(count)) for stage, outcome, count in cells if count.isdigit()]
    expected = rows(home, "SELECT stage, outcome, count(*) FROM decisions GROUP BY ALL ORDER BY ALL")
    assert counted == expected
    assert {stage for stage, _, _ in expected} >= {"documents", "dedup"}
