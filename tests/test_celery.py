"""The code location's jobs on other executors, for real on 127.0.0.1.

Celery: a Redis broker, a PostgreSQL-backed Dagster instance and two dagster-celery workers, all
started here; partition runs of the source jobs in parallel, then the corpus job, launched with
`dagster job execute` and OPENCORPUS_EXECUTOR=celery. The Dagster event log says which worker ran
each step (the Celery executor's engine event carries the worker's node name), and each step's
STEP_START event comes from a process of that worker.

Multiprocess: one partition run with OPENCORPUS_EXECUTOR=multiprocess; each step in its own process.

The two runs are marked `cluster` (select with `pytest -m cluster`); without redis-server / PostgreSQL / dagster-celery the Celery test
is skipped outside CI and fails in CI (`CI=true`).
"""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
import time
from collections import Counter
from contextlib import ExitStack
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pytest
import yaml
from celery_cluster import (
    Worker,
    celery_workers,
    postgres_server,
    redis_server,
    require_cluster_tools,
)
from conftest import current_manifest

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.orchestration.executors import (
    celery_config,
    celery_worker_config,
    executor_from_environment,
)
from opencorpus_dagster.stages.audit import conservation_problems, manifest_mismatches
from opencorpus_dagster.state.home import DataHome

REPO = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")
CODE_LOCATION = "opencorpus_dagster.definitions"
ENWIKI_PARTITION = "enwiki-latest-pages-articles1.xml-p000000010p000030302"
# Moby Dick (02000-02999) is the fixture book with a licence; the others are filtered for want of one.
PARTITION_RUNS = [
    ("enwiki_job", ENWIKI_PARTITION),
    ("gutenberg_job", "02000-02999"),
    ("gutenberg_job", "01000-01999"),
    ("gutenberg_job", "35000-35999"),
]
RUN_TIMEOUT = 240


def clean_environment(**extra: str) -> dict[str, str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    env.update(extra, PYTHONUNBUFFERED="1")
    return env


def launch(job: str, env: dict, log: Path, partition: str | None = None) -> subprocess.Popen:
    """`dagster job execute` of one job of the code location (this process orchestrates the run)."""
    tags = {"opencorpus/test": log.stem, **({"dagster/partition": partition} if partition else {})}
    with open(log, "wb") as out:
        return subprocess.Popen(
            [DAGSTER, "job", "execute", "-m", CODE_LOCATION, "-j", job, "--tags", json.dumps(tags)],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )


def wait_all(processes: dict[str, tuple[subprocess.Popen, Path]], timeout: float) -> None:
    deadline = time.monotonic() + timeout
    try:
        for label, (process, log) in processes.items():
            returncode = process.wait(max(1, deadline - time.monotonic()))
            assert returncode == 0, f"{label} failed ({returncode}):\n{log.read_text(errors='replace')[-4000:]}"
    finally:
        for process, _ in processes.values():
            if process.poll() is None:
                process.kill()
                process.wait(10)


@dataclass
class StepExecution:
    run: str          # the run's label (its `opencorpus/test` tag)
    step: str
    pid: int          # the process that emitted STEP_START
    worker: str | None = None   # Celery node name reported by the executor's engine event
    started: float = 0.0        # STEP_START's timestamp
    ended: float = 0.0          # STEP_SUCCESS's (or STEP_FAILURE's) timestamp


def step_executions(instance) -> tuple[dict[str, str], list[StepExecution]]:
    """(run label -> status, one StepExecution per started step), from the instance's event log."""
    from dagster import DagsterEventType

    statuses, executions = {}, []
    for run in instance.get_runs():
        label = run.tags.get("opencorpus/test", run.run_id)
        statuses[label] = run.status.value
        workers, starts, times, ends = {}, {}, {}, {}
        for entry in instance.all_logs(run.run_id):
            event = entry.dagster_event
            if event is None:
                continue
            if event.event_type == DagsterEventType.STEP_START:
                starts[event.step_key] = event.pid
                times[event.step_key] = entry.timestamp
            elif event.event_type in (DagsterEventType.STEP_SUCCESS, DagsterEventType.STEP_FAILURE):
                ends[event.step_key] = entry.timestamp
            elif event.event_type == DagsterEventType.ENGINE_EVENT and event.engine_event_data:
                worker = event.engine_event_data.metadata.get("Celery worker")
                if worker is not None:
                    workers[event.step_key] = worker.value
        executions += [
            StepExecution(label, step, pid, workers.get(step), times[step], ends.get(step, times[step]))
            for step, pid in sorted(starts.items())
        ]
    return statuses, executions


def assert_outputs_consistent(home: Path, expected_partitions: set[tuple[str, str]]) -> dict:
    """Manifest rows = kept outcomes = shard rows, conservation holds; returns the manifest."""
    store = LineageStore.at(home / "lineage", read_only=True)
    with store.connection() as conn:
        partitions = set(conn.execute("SELECT source, partition FROM partitions WHERE stage = 'raw'").fetchall())
        kept = conn.execute("SELECT count(*) FROM outcomes WHERE outcome = 'kept'").fetchone()[0]
        shard_rows = conn.execute("SELECT count(*) FROM shard_rows").fetchone()[0]
    manifest = current_manifest(home)
    assert partitions == expected_partitions
    assert manifest["totals"]["rows"] == kept == shard_rows > 0
    assert conservation_problems(store) == []
    assert manifest_mismatches(DataHome(home)) == []
    return manifest


@pytest.mark.parametrize(
    "environ, executor",
    [
        ({}, "multiprocess"),
        ({"OPENCORPUS_EXECUTOR": "multiprocess"}, "multiprocess"),
        ({"OPENCORPUS_EXECUTOR": " In_Process "}, "in_process"),
        ({"OPENCORPUS_EXECUTOR": "celery", "OPENCORPUS_CELERY_BROKER": "redis://127.0.0.1:6379/0"}, "celery"),
    ],
)
def test_executor_named_by_the_environment(environ, executor):
    if executor == "celery":
        pytest.importorskip("dagster_celery")
    assert executor_from_environment(environ).name == executor


@pytest.mark.parametrize(
    "environ, message",
    [
        ({"OPENCORPUS_EXECUTOR": "k8s"}, "OPENCORPUS_EXECUTOR='k8s' is not one of multiprocess, in_process, celery"),
        ({"OPENCORPUS_EXECUTOR": "celery"}, "needs OPENCORPUS_CELERY_BROKER"),
    ],
)
def test_executor_misconfiguration_names_the_variable(environ, message):
    pytest.importorskip("dagster_celery")
    with pytest.raises(ValueError, match=re.escape(message)):
        executor_from_environment(environ)


@pytest.mark.parametrize(
    "broker, backend, expected_backend",
    [
        ("redis://127.0.0.1:6379/0", "", "redis://127.0.0.1:6379/0"),
        ("redis://127.0.0.1:6379/0", "redis://127.0.0.1:6379/1", "redis://127.0.0.1:6379/1"),
        ("pyamqp://guest@127.0.0.1//", "", "rpc://"),
    ],
)
def test_celery_config_and_the_worker_file_agree(broker, backend, expected_backend):
    environ = {"OPENCORPUS_CELERY_BROKER": broker, "OPENCORPUS_CELERY_BACKEND": backend}
    config = celery_config(environ)
    assert (config["broker"], config["backend"]) == (broker, expected_backend)
    assert config["config_source"] == {"worker_prefetch_multiplier": 1}
    assert celery_worker_config(environ) == {"execution": {"config": config}}


@dataclass
class Cluster:
    base: Path
    home: Path
    dagster_home: Path
    env: dict
    workers: list[Worker]


@pytest.fixture(scope="module")
def cluster(tmp_path_factory, fixture_mirror):
    require_cluster_tools()
    base = tmp_path_factory.mktemp("cluster")
    home, dagster_home = base / "home", base / "dagster"
    home.mkdir()
    dagster_home.mkdir()
    with ExitStack() as stack:
        # Meanwhile, ask the code location which executor its jobs get in this environment.
        probe = subprocess.Popen(
            [sys.executable, "-c", f"from {CODE_LOCATION} import defs; print(defs.resolve_job_def('corpus_job').executor_def.name)"],
            env=clean_environment(OPENCORPUS_EXECUTOR="celery", OPENCORPUS_CELERY_BROKER="redis://127.0.0.1:1/0",
                                  OPENCORPUS_HOME=str(home), DAGSTER_HOME=str(dagster_home)),
            cwd=REPO, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True,
        )
        stack.callback(probe.kill)
        broker = stack.enter_context(redis_server(base))
        postgres = stack.enter_context(postgres_server())
        (dagster_home / "dagster.yaml").write_text(
            yaml.safe_dump({"storage": postgres.dagster_storage(), "telemetry": {"enabled": False}})
        )
        env = clean_environment(
            DAGSTER_HOME=str(dagster_home),
            OPENCORPUS_HOME=str(home),
            OPENCORPUS_MIRROR=str(fixture_mirror),
            OPENCORPUS_CATALOG=str(REPO / "assets"),
            OPENCORPUS_EXECUTOR="celery",
            OPENCORPUS_CELERY_BROKER=f"{broker}/0",
            OPENCORPUS_CELERY_BACKEND=f"{broker}/1",
        )
        out, err = probe.communicate(timeout=120)
        assert out.strip() == "celery", (
            f"with OPENCORPUS_EXECUTOR=celery the jobs of {CODE_LOCATION} use executor {out.strip()!r}: "
            f"Definitions(executor=executor_from_environment()) missing?\n{err[-2000:]}"
        )
        worker_config = base / "celery.yaml"
        worker_config.write_text(yaml.safe_dump(celery_worker_config(env)))
        workers = stack.enter_context(celery_workers(["w1", "w2"], worker_config, env, base, concurrency=1))
        yield Cluster(base, home, dagster_home, env, workers)


@pytest.mark.cluster
def test_jobs_run_on_two_celery_workers_with_a_postgres_instance(cluster):
    from dagster import DagsterInstance

    started = time.monotonic()
    runs = {}
    for job, partition in PARTITION_RUNS:
        log = cluster.base / f"{job}-{partition}.log"
        runs[log.stem] = (launch(job, cluster.env, log, partition), log)
    wait_all(runs, RUN_TIMEOUT)
    partitions_done = time.monotonic()
    corpus_log = cluster.base / "corpus_job.log"
    wait_all({"corpus_job": (launch("corpus_job", cluster.env, corpus_log), corpus_log)}, RUN_TIMEOUT)
    corpus_done = time.monotonic()

    with DagsterInstance.from_config(str(cluster.dagster_home)) as instance:
        assert type(instance.run_storage).__name__ == "PostgresRunStorage"
        statuses, executions = step_executions(instance)
    worker_pids = {f"{w.name}@": w.process_ids() for w in cluster.workers}

    print(
        f"\n{len(executions)} steps of {len(statuses)} runs: {len(runs)} partition runs in parallel "
        f"{partitions_done - started:.0f}s, then corpus_job {corpus_done - partitions_done:.0f}s"
    )
    width = max(len(e.run) for e in executions)
    print(f"{'run':<{width}}  {'step':<46} {'worker':<12} pid")
    for e in executions:
        print(f"{e.run:<{width}}  {e.step:<46} {e.worker or '-':<12} {e.pid}")

    assert statuses == {label: "SUCCESS" for label in [*runs, "corpus_job"]}
    not_on_celery = [e.step for e in executions if e.worker is None]
    assert not not_on_celery, (
        f"steps {not_on_celery} did not run on a Celery worker: does {CODE_LOCATION} pass "
        "executor=executor_from_environment() to Definitions?"
    )
    for e in executions:
        (prefix,) = [p for p in worker_pids if e.worker.startswith(p)]
        assert e.pid in worker_pids[prefix], f"{e.step}: STEP_START from pid {e.pid}, not a process of {e.worker}"
    per_worker = Counter(e.worker.split("@")[0] for e in executions)
    assert set(per_worker) == {"w1", "w2"}, f"one worker took every step: {per_worker}"
    for worker in cluster.workers:  # each worker's own log agrees: one finished task per step
        finished = re.findall(rb"Task execute_plan\[[0-9a-f-]+\] succeeded", worker.log.read_bytes())
        assert len(finished) == per_worker[worker.name]
    # Partition runs at once on both workers: steps of two partitions, on two workers, overlapping in time.
    partition_steps = sorted((e for e in executions if e.run != "corpus_job"), key=lambda e: e.started)
    overlaps = [
        (a, b) for i, a in enumerate(partition_steps) for b in partition_steps[i + 1:]
        if b.started < a.ended and a.run != b.run and a.worker.split("@")[0] != b.worker.split("@")[0]
    ]
    assert overlaps, "no two partition steps ran at the same time on two workers: " + ", ".join(
        f"{e.run}:{e.step}@{e.worker.split('@')[0]} {e.started:.1f}-{e.ended:.1f}" for e in partition_steps
    )
    a, b = overlaps[0]
    print(f"overlap: {a.run}:{a.step} on {a.worker} {a.started:.1f}-{a.ended:.1f}, "
          f"{b.run}:{b.step} on {b.worker} {b.started:.1f}-{b.ended:.1f}")
    steps = {e.step for e in executions if e.run == "corpus_job"}
    assert {"corpus__takedown", "corpus__dedup", "corpus__shards", "corpus__card"} <= steps
    assert len(executions) == 2 * len(PARTITION_RUNS) + len(steps)

    manifest = assert_outputs_consistent(
        cluster.home, {(job.removesuffix("_job"), partition) for job, partition in PARTITION_RUNS}
    )
    assert set(manifest["totals"]["sources"]) == {"enwiki", "gutenberg"}
    assert manifest["totals"]["licenses"]["LicenseRef-PublicDomain"] == 1  # Moby Dick


@pytest.mark.cluster
def test_multiprocess_executor_runs_each_step_in_its_own_process(tmp_path, fixture_mirror):
    from dagster import DagsterEventType, DagsterInstance

    home, dagster_home = tmp_path / "home", tmp_path / "dagster"
    home.mkdir()
    dagster_home.mkdir()
    env = clean_environment(
        DAGSTER_HOME=str(dagster_home), OPENCORPUS_HOME=str(home), OPENCORPUS_MIRROR=str(fixture_mirror),
        OPENCORPUS_CATALOG=str(REPO / "assets"), OPENCORPUS_EXECUTOR="multiprocess",
    )
    log = tmp_path / "gutenberg_job.log"
    process = launch("gutenberg_job", env, log, "02000-02999")
    wait_all({"gutenberg_job": (process, log)}, RUN_TIMEOUT)

    with DagsterInstance.from_config(str(dagster_home)) as instance:
        statuses, executions = step_executions(instance)
        (run,) = instance.get_runs()
        run_start = [e for e in instance.all_logs(run.run_id) if e.dagster_event and e.dagster_event.event_type == DagsterEventType.RUN_START]
        engine = [e.message for e in instance.all_logs(run.run_id) if "multiprocess executor: parent process" in e.message]
    assert statuses == {"gutenberg_job": "SUCCESS"}
    assert engine, "the run was not executed by the multiprocess executor"
    orchestrator = run_start[0].dagster_event.pid
    pids = {e.step: e.pid for e in executions}
    print(f"\norchestrator pid {orchestrator}; steps: {pids}")
    assert set(pids) == {"gutenberg_raw", "gutenberg_documents"}
    assert len(set(pids.values())) == 2 and orchestrator not in pids.values()

    store = LineageStore.at(home / "lineage", read_only=True)
    with store.connection() as conn:
        passed = conn.execute(
            "SELECT count(*) FROM documents WHERE source = 'gutenberg' AND partition = '02000-02999' AND passed"
        ).fetchone()[0]
    documents = home / "documents" / "gutenberg" / "02000-02999.parquet"
    with duckdb.connect() as conn:
        rows = conn.execute("SELECT title, license FROM read_parquet(?)", [str(documents)]).fetchall()
    assert len(rows) == passed == 1
    assert rows[0][1] == "LicenseRef-PublicDomain" and "Moby" in rows[0][0]
