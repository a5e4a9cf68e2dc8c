"""The scheduled path is as safe as `opencorpus build`: a backfill launched from the UI, then the
corpus automation sensor (running by default), republishes the corpus with every check evaluated.

A copy of the built fixture corpus runs under `dagster dev` (webserver + daemon, the instance's
own `dagster.yaml` written by `opencorpus build`). The test does what a user does in the UI:
select three Project Gutenberg partitions of `gutenberg_raw` + `gutenberg_documents` and launch
them (GraphQL `launchPartitionBackfill`), then waits for the daemon: the backfill's runs go
through the run queue (one per core), and once they are done the automation sensor launches one
run of the corpus assets. Nobody turns a sensor on.
"""

from __future__ import annotations

import shutil
import time

import httpx
import pytest
import yaml
from conftest import current_manifest
from graphql_queries import (
    ASSETS_QUERY,
    BACKFILL_STATUS_QUERY,
    LATEST_MATERIALIZATION_QUERY,
    LAUNCH_BACKFILL_MUTATION,
    RUNS_QUERY,
    dagster_dev,
    metadata,
    query,
)

from opencorpus_dagster.orchestration.automation import AUTOMATION_SENSOR, INTERVAL_ENV
from opencorpus_dagster.orchestration.checks import SHARD_CHECKS
from opencorpus_dagster.orchestration.instance import usable_cores

BACKFILLED = ["01000-01999", "02000-02999", "10000-10999"]  # more than the 2 cores CI has
WAIT_SECONDS = 900


@pytest.fixture(scope="module")
def automated(built_corpus, fixture_mirror, tmp_path_factory):
    """(home, corpus runs before, runs after, latest corpus/shards and corpus/card nodes)."""
    home = tmp_path_factory.mktemp("automation") / "home"
    shutil.copytree(built_corpus[0], home, symlinks=True)
    with (
        dagster_dev(home, fixture_mirror, env={INTERVAL_ENV: "5"}) as url,
        httpx.Client(base_url=url, timeout=60) as ui,
    ):
        before = _runs(ui)
        launched = query(
            ui,
            LAUNCH_BACKFILL_MUTATION,
            partitions=BACKFILLED,
            assets=[{"path": ["gutenberg_raw"]}, {"path": ["gutenberg_documents"]}],
        )["launchPartitionBackfill"]
        assert launched["__typename"] == "LaunchBackfillSuccess", launched
        deadline = time.monotonic() + WAIT_SECONDS
        status = None
        while time.monotonic() < deadline:
            status = query(ui, BACKFILL_STATUS_QUERY, id=launched["backfillId"])["partitionBackfillOrError"]["status"]
            corpus_runs = [r for i, r in _runs(ui).items() if i not in before and _tag(r, "dagster/partition") is None]
            done = [r for r in corpus_runs if r["status"] in ("SUCCESS", "FAILURE", "CANCELED")]
            if status != "REQUESTED" and done and len(done) == len(corpus_runs):
                break
            time.sleep(2)
        else:
            log = (home / "dagster-dev.log").read_text()[-4000:]
            pytest.fail(f"no corpus run finished within {WAIT_SECONDS} s (backfill {status}):\n{log}")
        time.sleep(6)  # one more automation tick: it must not start another corpus run
        after = _runs(ui)
        nodes = {"/".join(n["assetKey"]["path"]): n for n in query(ui, ASSETS_QUERY)["assetNodes"]}
        shards_metadata = metadata(
            query(ui, LATEST_MATERIALIZATION_QUERY, path=["corpus", "shards"])["assetNodeOrError"]["assetMaterializations"][0][
                "metadataEntries"
            ]
        )
    return home, before, after, nodes, shards_metadata


def _runs(ui: httpx.Client) -> dict[str, dict]:
    return {r["runId"]: r for r in query(ui, RUNS_QUERY)["runsOrError"]["results"]}


def _new_runs(automated) -> list[dict]:
    _, before, after, _, _ = automated
    return [run for run_id, run in after.items() if run_id not in before]


def test_the_backfill_ran_each_selected_partition_once_and_succeeded(automated):
    partition_runs = [r for r in _new_runs(automated) if _tag(r, "dagster/partition") is not None]
    assert {_tag(r, "dagster/backfill") for r in partition_runs} != {None}
    partitions = sorted(_tag(r, "dagster/partition") for r in partition_runs)
    assert partitions == BACKFILLED
    assert {r["status"] for r in partition_runs} == {"SUCCESS"}


def test_the_automation_sensor_made_exactly_one_corpus_run_after_the_backfill(automated):
    corpus_runs = [r for r in _new_runs(automated) if _tag(r, "dagster/partition") is None]
    assert len(corpus_runs) == 1, corpus_runs
    (run,) = corpus_runs
    assert run["status"] == "SUCCESS"
    assert _tag(run, "dagster/sensor_name") == AUTOMATION_SENSOR
    last_partition_end = max(r["endTime"] for r in _new_runs(automated) if _tag(r, "dagster/partition"))
    assert run["startTime"] >= last_partition_end  # it waited for the whole backfill


def test_every_shard_check_was_evaluated_and_passed_in_the_automated_run(automated):
    _, _, _, nodes, _ = automated
    (corpus_run,) = [r for r in _new_runs(automated) if _tag(r, "dagster/partition") is None]
    shards = nodes["corpus/shards"]
    assert shards["assetMaterializations"][0]["runId"] == corpus_run["runId"]
    checks = {c["name"]: c["executionForLatestMaterialization"] for c in shards["assetChecksOrError"]["checks"]}
    assert set(checks) == set(SHARD_CHECKS)
    for name, execution in checks.items():
        assert execution["runId"] == corpus_run["runId"], name
        assert (execution["status"], execution["evaluation"]["success"]) == ("SUCCEEDED", True), name
    # ... and everything after the shards was republished in the same run.
    for key in ("corpus/takedown", "corpus/dedup", "corpus/card", "corpus/release"):
        assert nodes[key]["assetMaterializations"][0]["runId"] == corpus_run["runId"], key


def test_the_run_queue_admits_one_run_per_core(automated):
    home = automated[0]
    config = yaml.safe_load((home / "dagster" / "dagster.yaml").read_text())
    assert config == {"run_queue": {"max_concurrent_runs": usable_cores()}, "telemetry": {"enabled": False}}
    intervals = sorted((r["startTime"], r["endTime"]) for r in _new_runs(automated))
    overlap = max(sum(1 for s, e in intervals if s <= start < e) for start, _ in intervals)
    assert 1 <= overlap <= usable_cores()
    assert "No dagster.yaml found" not in (home / "dagster-dev.log").read_text()


def test_the_shards_table_lists_every_shard_of_the_manifest_with_its_trace_command(automated):
    home, _, _, _, shown = automated
    manifest = current_manifest(home)
    table = shown["shard_files"]
    assert [row["path"] for row in table] == [shard["path"] for shard in manifest["shards"]]
    for row, shard in zip(table, manifest["shards"], strict=True):
        assert (row["source"], row["partition"], row["rows"], row["sha256"]) == (
            shard["source"], shard["partition"], shard["rows"], shard["sha256"]
        )  # fmt: skip
        assert row["licences"] == ", ".join(f"{k}: {v}" for k, v in shard["licenses"].items())
        assert row["trace"] == f"opencorpus trace --shard {shard['path']} --row 0"


def _tag(run: dict, key: str) -> str | None:
    return next((t["value"] for t in run["tags"] if t["key"] == key), None)

