"""The Dagster code location: the asset graph as a reviewed snapshot, and one partition
materialised with Dagster's own CLI without touching the other sources."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

from cli_runner import REPO, build

from opencorpus_dagster.definitions import build_definitions

SNAPSHOT = Path(__file__).parent / "asset_graph.txt"
DAGSTER = str(Path(sys.executable).parent / "dagster")


def describe_graph(catalog: Path) -> str:
    defs = build_definitions(str(catalog))
    graph = defs.resolve_asset_graph()
    lines = []
    for key in sorted(graph.get_all_asset_keys(), key=lambda k: k.to_user_string()):
        node = graph.get(key)
        partitions = node.partitions_def.get_partition_keys() if node.partitions_def else []
        deps = sorted(p.to_user_string() for p in node.parent_keys)
        checks = sorted(c.name for c in node.check_keys)
        lines.append(
            f"{key.to_user_string()} group={node.group_name} deps={deps} partitions={partitions} checks={checks}"
        )
    for job in sorted(j.name for j in defs.resolve_all_job_defs() if not j.name.startswith("__")):
        lines.append(f"job {job}")
    for schedule in sorted(defs.schedules, key=lambda s: s.name):
        lines.append(f"schedule {schedule.name} default={schedule.default_status.value.lower()}")
    for sensor in sorted(defs.sensors, key=lambda s: s.name):
        lines.append(f"sensor {sensor.name} default={sensor.default_status.value.lower()}")
    return "\n".join(lines) + "\n"


def test_asset_graph_matches_the_reviewed_snapshot():
    current = describe_graph(REPO / "assets")
    if os.environ.get("UPDATE_SNAPSHOTS") == "1":
        SNAPSHOT.write_text(current)
    assert current == SNAPSHOT.read_text(), "asset graph changed: review and rerun with UPDATE_SNAPSHOTS=1"


def test_one_partition_materialises_with_dagster_cli_alone(tmp_path, fixture_mirror):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    for name in ("enwiki.yaml", "gutenberg.yaml"):
        shutil.copy(REPO / "assets" / name, catalog / name)
    home = tmp_path / "home"
    build(home, fixture_mirror, catalog)
    gutenberg = {p: p.read_bytes() for p in sorted((home / "documents" / "gutenberg").glob("*.parquet"))}
    raw = home / "raw" / "enwiki" / "enwiki-latest-pages-articles1.xml-p000000010p000030302.parquet"
    mtime = raw.stat().st_mtime_ns
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_"))}
    env.update(
        OPENCORPUS_HOME=str(home), OPENCORPUS_MIRROR=str(fixture_mirror), OPENCORPUS_CATALOG=str(catalog), DAGSTER_HOME=str(home / "dagster")
    )
    result = subprocess.run(
        [DAGSTER, "asset", "materialize", "-m", "opencorpus_dagster.definitions", "--select", "enwiki_raw,enwiki_documents",
         "--partition", "enwiki-latest-pages-articles1.xml-p000000010p000030302"],
        capture_output=True, text=True, env=env, cwd=REPO, timeout=600,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    assert "RUN_SUCCESS" in result.stderr
    assert raw.stat().st_mtime_ns != mtime  # re-materialised
    assert {p: p.read_bytes() for p in sorted((home / "documents" / "gutenberg").glob("*.parquet"))} == gutenberg
    summary = json.loads((home / "catalog.json").read_text())
    assert sorted(summary["sources"]) == ["enwiki", "gutenberg"]
