"""The Dagster UI, checked for real: `dagster dev` on a built fixture corpus, asked over GraphQL.

The fixture corpus is built with `opencorpus build` into a tmp home; `dagster dev` then runs on the
same home and the same DAGSTER_HOME, so what the UI shows is what the build did. The queries live
in graphql_queries.py (shared with benchmarks/ui_screenshots.py).
"""

from __future__ import annotations

import sys
from pathlib import Path

import httpx
import pytest
from conftest import current_manifest, release_folder
from graphql_queries import (
    ASSETS_QUERY,
    CHECK_EVALUATIONS_QUERY,
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
SHARD_CHECKS = {"conservation", "doc_ids_unique", "licences_allowed_and_traceable", "manifest_checksums"}
GROUPS = {
    "gutenberg_raw": "gutenberg", "gutenberg_documents": "gutenberg",
    "enwiki_raw": "enwiki", "enwiki_documents": "enwiki",
    "corpus/catalog": "corpus", "corpus/dedup": "corpus", "corpus/shards": "corpus", "corpus/release": "corpus",
}  # fmt: skip


@pytest.fixture(scope="module")
def home(built_corpus) -> Path:
    """The fixture corpus built by `opencorpus build` (shared); the UI reads its Dagster instance."""
    return built_corpus[0]


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
    groups = {key: node["groupName"] for key, node in assets.items()}
    assert {key: groups.get(key) for key in GROUPS} == GROUPS
    assert set(groups.values()) == {"gutenberg", "enwiki", "corpus"}
    deps = {key: {"/".join(d["path"]) for d in node["dependencyKeys"]} for key, node in assets.items()}
    assert deps["gutenberg_raw"] == deps["enwiki_raw"] == {"corpus/catalog"}  # each reads its catalog entry
    assert deps["corpus/card"] == {"corpus/shards", "corpus/catalog"}  # owners and descriptions
    assert deps["corpus/release"] == {"corpus/shards", "corpus/card"}  # publishes what they staged
    assert deps["gutenberg_documents"] == {"gutenberg_raw"}
    assert deps["enwiki_documents"] == {"enwiki_raw"}
    assert {"enwiki_documents", "gutenberg_documents"} <= deps["corpus/dedup"]
    assert "corpus/dedup" in deps["corpus/shards"]
    # Every node says what it is in the UI: a description, and kinds for the badges.
    assert [key for key, node in assets.items() if not (node["description"] and node["kinds"])] == []
    assert "Project Gutenberg" in assets["gutenberg_raw"]["description"]
    assert sorted(assets["gutenberg_raw"]["kinds"]) == ["gutenberg", "parquet"]
    assert sorted(assets["enwiki_raw"]["kinds"]) == ["mediawiki", "parquet"]


@pytest.mark.parametrize(
    ("asset", "partitions"),
    [
        ("gutenberg_raw", GUTENBERG_BATCHES),
        ("gutenberg_documents", GUTENBERG_BATCHES),
        ("enwiki_raw", [ENWIKI_PARTITION]),
        ("enwiki_documents", [ENWIKI_PARTITION]),
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
    nodes = query(ui, PARTITION_MATERIALIZATIONS_QUERY, path=["gutenberg_raw"], partitions=GUTENBERG_BATCHES)
    shown = {
        m["partition"]: metadata(m["metadataEntries"])
        for m in nodes["assetNodeOrError"]["latestMaterializationByPartition"]
    }
    store = LineageStore.at(home / "lineage", read_only=True)
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
    assert SHARD_CHECKS <= {c["name"] for c in checks["checks"]}
    for check in checks["checks"]:
        assert check["executionForLatestMaterialization"]["runId"] == latest_run, check["name"]


def test_every_check_passed_on_its_assets_latest_materialization(assets):
    results = {}
    for key, node in assets.items():
        for check in node["assetChecksOrError"]["checks"]:
            execution = check["executionForLatestMaterialization"] or {}
            success = (execution.get("evaluation") or {}).get("success")
            results[f"{key}:{check['name']}"] = (execution.get("status"), success, bool(check["description"]))
    assert "gutenberg_documents:partition_conservation" in results
    # kept_documents warns about the partitions that kept nothing (the next test); every other passed.
    failed = {name: result for name, result in results.items() if result != ("SUCCEEDED", True, True)}
    assert set(failed) <= {"gutenberg_documents:kept_documents"}, failed


def test_kept_documents_warns_on_exactly_the_partitions_that_kept_nothing(ui, home):
    """The fixture mirror has the RDF record of one Gutenberg book (2701): the other batches keep
    nothing (licence unknown), each run green, and the UI shows a failed WARN check for each."""
    runs = {r["runId"]: {t["key"]: t["value"] for t in r["tags"]}.get("dagster/partition") for r in query(ui, RUNS_QUERY)["runsOrError"]["results"]}
    executions = query(ui, CHECK_EVALUATIONS_QUERY, path=["gutenberg_documents"], check="kept_documents")["assetCheckExecutions"]
    shown = {runs[e["runId"]]: e["evaluation"] for e in executions}
    with LineageStore.at(home / "lineage", read_only=True).connection() as conn:
        kept = dict(conn.execute(
            "SELECT partition, (counts::JSON->>'passed')::INT FROM partitions WHERE source = 'gutenberg' AND stage = 'documents'"
        ).fetchall())  # fmt: skip
        unknown = dict(conn.execute(
            "SELECT partition, count(*) FROM decisions WHERE source = 'gutenberg' AND reason = 'license.unknown' GROUP BY 1"
        ).fetchall())  # fmt: skip
    assert sorted(shown) == GUTENBERG_BATCHES
    assert {p for p, e in shown.items() if e["success"]} == {p for p, n in kept.items() if n > 0} == {"02000-02999"}
    for partition, evaluation in shown.items():
        if not evaluation["success"]:
            assert evaluation["severity"] == "WARN"
            records = unknown[partition]
            assert evaluation["description"] == f"kept 0 of {records} records; top reasons: {{'license.unknown': {records}}}"


@pytest.mark.parametrize(("source", "runs"), [("gutenberg", 9), ("enwiki", 1)])
def test_partition_conservation_passed_in_every_partition_run(ui, source, runs):
    executions = query(ui, CHECK_EXECUTIONS_QUERY, path=[f"{source}_documents"], check="partition_conservation")
    executions = executions["assetCheckExecutions"]
    assert len(executions) == runs
    assert {(e["status"], e["evaluation"]["success"]) for e in executions} == {("SUCCEEDED", True)}


def test_shards_metadata_equals_the_manifest(ui, home):
    node = query(ui, LATEST_MATERIALIZATION_QUERY, path=["corpus", "shards"])["assetNodeOrError"]
    (latest,) = node["assetMaterializations"]
    shown = metadata(latest["metadataEntries"])
    totals = current_manifest(home)["totals"]
    assert shown["rows"] == totals["rows"] > 0
    assert shown["shards"] == totals["shards"]
    assert shown["bytes"] == totals["bytes"]
    assert shown["manifest"] == str(release_folder(home) / "manifest.json")
    # The licence table in the UI names every licence with its row count.
    for licence, count in totals["licenses"].items():
        assert f"| {licence} | {count} (" in shown["licenses"]


def test_runs_are_the_builds_and_the_ui_launched_none(ui):
    runs = query(ui, RUNS_QUERY)["runsOrError"]
    assert runs["__typename"] == "Runs"
    assert {r["status"] for r in runs["results"]} == {"SUCCESS"}
    partitions = {job: [] for job in ("gutenberg_job", "enwiki_job", "corpus_job")}
    for run in runs["results"]:
        tags = {t["key"]: t["value"] for t in run["tags"]}
        partitions.setdefault(run["jobName"], []).append(tags.get("dagster/partition"))
    assert sorted(partitions["gutenberg_job"]) == GUTENBERG_BATCHES
    assert partitions["enwiki_job"] == [ENWIKI_PARTITION]
    assert partitions["corpus_job"] == [None]  # one unpartitioned corpus run
    assert set(partitions) == {"gutenberg_job", "enwiki_job", "corpus_job"}  # none launched by the daemon
