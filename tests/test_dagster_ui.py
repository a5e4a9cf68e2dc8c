"""The Dagster UI, checked for real: `dagster dev` on a built fixture corpus, asked over GraphQL.

The fixture corpus is built with `opencorpus build` into a tmp home; `dagster dev` then runs on the
same home and the same DAGSTER_HOME, so what the UI shows is what the build did. The queries live
in graphql_queries.py (shared with benchmarks/ui_screenshots.py).
"""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections import Counter
from pathlib import Path

import httpx
import pytest
from graphql_queries import (
    ASSETS_QUERY,
    CHECK_EXECUTIONS_QUERY,
    LATEST_MATERIALIZATION_QUERY,
    LOCATION,
    LOCATION_QUERY,
    PARTITION_MATERIALIZATIONS_QUERY,
    RUNS_QUERY,
    dagster_dev,
    metadata,
    query,
)

from opencorpus_dagster.lineage.store import LineageStore

REPO = Path(__file__).resolve().parent.parent
OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")
GUTENBERG_BATCHES = [
    "01000-01999", "02000-02999", "10000-10999", "33000-33999", "35000-35999",
    "36000-36999", "38000-38999", "39000-39999", "40000-40999",
]  # fmt: skip
ENWIKI_PARTITION = "enwiki-latest-pages-articles1.xml-p000000010p000030302"
SHARD_CHECKS = ["conservation", "doc_ids_unique", "licences_allowed_and_traceable", "manifest_checksums"]


@pytest.fixture(scope="module")
def home(tmp_path_factory, fixture_mirror) -> Path:
    home = tmp_path_factory.mktemp("ui-home")
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(home / "dagster")
    result = subprocess.run(
        [OPENCORPUS, "build", "--home", str(home), "--mirror", str(fixture_mirror), "--json"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=300,
    )  # fmt: skip
    assert result.returncode == 0, f"opencorpus build failed:\n{result.stdout}\n{result.stderr}"
    assert json.loads(result.stdout)["failed"] == []
    return home


@pytest.fixture(scope="module")
def ui(home, fixture_mirror):
    with dagster_dev(home, fixture_mirror) as url, httpx.Client(base_url=url, timeout=60) as client:
        yield client


@pytest.fixture(scope="module")
def assets(ui) -> dict[str, dict]:
    return {"/".join(node["assetKey"]["path"]): node for node in query(ui, ASSETS_QUERY)["assetNodes"]}


def test_code_location_loads_without_error(ui):
    entry = query(ui, LOCATION_QUERY, name=LOCATION)["workspaceLocationEntryOrError"]
    assert entry["__typename"] == "WorkspaceLocationEntry"
    assert entry["loadStatus"] == "LOADED"
    location = entry["locationOrLoadError"]
    assert location["__typename"] == "RepositoryLocation", location.get("message")
    assert location["name"] == "opencorpus"
    assert [r["name"] for r in location["repositories"]] == ["__repository__"]


def test_asset_keys_groups_and_lineage(assets):
    assert sorted(assets) == [
        "corpus/catalog", "corpus/dedup", "corpus/shards",
        "enwiki/documents", "enwiki/raw", "gutenberg/documents", "gutenberg/raw",
    ]  # fmt: skip
    assert {key: node["groupName"] for key, node in assets.items()} == {
        "corpus/catalog": "corpus", "corpus/dedup": "corpus", "corpus/shards": "corpus",
        "enwiki/documents": "enwiki", "enwiki/raw": "enwiki",
        "gutenberg/documents": "gutenberg", "gutenberg/raw": "gutenberg",
    }  # fmt: skip
    deps = {key: sorted("/".join(d["path"]) for d in node["dependencyKeys"]) for key, node in assets.items()}
    assert deps["gutenberg/documents"] == ["gutenberg/raw"]
    assert deps["enwiki/documents"] == ["enwiki/raw"]
    assert deps["corpus/dedup"] == ["enwiki/documents", "gutenberg/documents"]
    assert deps["corpus/shards"] == ["corpus/dedup"]
    # Every node says what it is in the UI: a description, and kinds for the badges.
    assert all(node["description"] and node["kinds"] for node in assets.values())
    assert "Project Gutenberg" in assets["gutenberg/raw"]["description"]
    assert sorted(assets["gutenberg/raw"]["kinds"]) == ["gutenberg", "parquet"]
    assert sorted(assets["enwiki/raw"]["kinds"]) == ["mediawiki", "parquet"]


@pytest.mark.parametrize(
    ("asset", "partitions"),
    [
        ("gutenberg/raw", GUTENBERG_BATCHES),
        ("gutenberg/documents", GUTENBERG_BATCHES),
        ("enwiki/raw", [ENWIKI_PARTITION]),
        ("enwiki/documents", [ENWIKI_PARTITION]),
    ],
)
def test_partitions_are_the_upstream_units_and_all_materialized(assets, asset, partitions):
    node = assets[asset]
    assert node["isPartitioned"]
    assert node["partitionKeys"] == partitions
    statuses = node["assetPartitionStatuses"]
    assert statuses["__typename"] == "DefaultPartitionStatuses"
    assert sorted(statuses["materializedPartitions"]) == partitions
    assert statuses["failedPartitions"] == statuses["unmaterializedPartitions"] == []


def test_partition_metadata_matches_the_lineage_store(ui, home):
    nodes = query(ui, PARTITION_MATERIALIZATIONS_QUERY, path=["gutenberg", "raw"], partitions=GUTENBERG_BATCHES)
    shown = {
        m["partition"]: metadata(m["metadataEntries"])
        for m in nodes["assetNodeOrError"]["latestMaterializationByPartition"]
    }
    store = LineageStore.at(home / "lineage.duckdb", read_only=True)
    with store.connection() as conn:
        records_in = dict(
            conn.execute("SELECT partition, records_in FROM partitions WHERE source = 'gutenberg' AND stage = 'raw'").fetchall()
        )
    assert {p: m["records_in"] for p, m in shown.items()} == records_in
    assert sorted(shown) == GUTENBERG_BATCHES
    assert shown["02000-02999"]["path"] == str(home / "raw" / "gutenberg" / "02000-02999.parquet")
    assert "| file | sha256 | bytes |" in shown["02000-02999"]["files"]
    assert "https://www.gutenberg.org/cache/epub/2701/pg2701.txt" in shown["02000-02999"]["files"]


def test_unpartitioned_corpus_assets_were_materialized_by_the_corpus_run(assets, ui):
    runs = {r["runId"]: r["jobName"] for r in query(ui, RUNS_QUERY)["runsOrError"]["results"]}
    for key in ("corpus/catalog", "corpus/dedup", "corpus/shards"):
        (latest,) = assets[key]["assetMaterializations"]
        assert latest["partition"] is None
        assert runs[latest["runId"]] == "corpus_job"


def test_shard_checks_passed_on_the_latest_materialization(assets):
    node = assets["corpus/shards"]
    latest_run = node["assetMaterializations"][0]["runId"]
    checks = node["assetChecksOrError"]
    assert checks["__typename"] == "AssetChecks"
    assert sorted(c["name"] for c in checks["checks"]) == SHARD_CHECKS
    for check in checks["checks"]:
        assert check["description"], check["name"]
        execution = check["executionForLatestMaterialization"]
        assert (execution["status"], execution["evaluation"]["success"]) == ("SUCCEEDED", True), check["name"]
        assert execution["runId"] == latest_run


@pytest.mark.parametrize(("source", "runs"), [("gutenberg", 9), ("enwiki", 1)])
def test_partition_conservation_passed_in_every_partition_run(ui, source, runs):
    executions = query(ui, CHECK_EXECUTIONS_QUERY, path=[source, "documents"], check="partition_conservation")
    executions = executions["assetCheckExecutions"]
    assert len(executions) == runs
    assert {(e["status"], e["evaluation"]["success"]) for e in executions} == {("SUCCEEDED", True)}


def test_shards_metadata_equals_the_manifest(ui, home):
    node = query(ui, LATEST_MATERIALIZATION_QUERY, path=["corpus", "shards"])["assetNodeOrError"]
    (latest,) = node["assetMaterializations"]
    shown = metadata(latest["metadataEntries"])
    totals = json.loads((home / "corpus" / "manifest.json").read_text())["totals"]
    assert shown["rows"] == totals["rows"] > 0
    assert shown["shards"] == totals["shards"]
    assert shown["bytes"] == totals["bytes"]
    assert shown["manifest"] == str(home / "corpus" / "manifest.json")
    # The licence table in the UI names every licence with its row count.
    for licence, count in totals["licenses"].items():
        assert f"| {licence} | {count} (" in shown["licenses"]


def test_runs_are_the_builds_and_the_ui_launched_none(ui):
    runs = query(ui, RUNS_QUERY)["runsOrError"]
    assert runs["__typename"] == "Runs"
    assert Counter((r["jobName"], r["status"]) for r in runs["results"]) == {
        ("gutenberg_job", "SUCCESS"): 9,
        ("enwiki_job", "SUCCESS"): 1,
        ("corpus_job", "SUCCESS"): 1,
    }
    partitions = sorted(
        t["value"] for r in runs["results"] if r["jobName"] == "gutenberg_job" for t in r["tags"] if t["key"] == "dagster/partition"
    )
    assert partitions == GUTENBERG_BATCHES
