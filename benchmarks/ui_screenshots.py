"""Screenshots of the Dagster UI on the built fixture corpus, and what its GraphQL API says.

Builds the fixture corpus with `opencorpus build` into a tmp home (or takes `--home`, an already
built one), runs `dagster dev` on it (tests/graphql_queries.py), prints a GraphQL summary of the
code location, then, if Chromium is installed, takes headless screenshots of the global asset
lineage, the `corpus/shards` page and its checks tab, and a partitioned asset's partitions tab.
Each page is also loaded once with `--dump-dom` to confirm it rendered the expected text rather
than a blank or loading page. The PNGs go to a tmp directory (not the repository); their paths
are printed. Figures: build time, time until the UI answered with the location loaded, GraphQL
round trips (the asset query vs `/server_info`, the cheapest request the server answers), and
seconds per screenshot.

It tells the UI the first-visit newsletter dialog was seen (the `setNuxSeen` mutation, what its
"Skip" button sends), which writes one key to the home's Dagster instance.

Run: .venv/bin/python benchmarks/ui_screenshots.py [--home H] [--out DIR] [--budget-ms 15000]
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from urllib.parse import quote

import httpx

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixture_mirror import FIXTURES, build_fixture_mirror  # noqa: E402
from graphql_queries import (  # noqa: E402
    ASSETS_QUERY,
    LATEST_MATERIALIZATION_QUERY,
    LOCATION,
    LOCATION_QUERY,
    MARK_NUX_SEEN,
    RUNS_QUERY,
    dagster_dev,
    metadata,
    query,
)

OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")
CHROMIUM = "/usr/bin/chromium"


def pages(groups: list[str]) -> list[tuple[str, str, str]]:
    """(name, path, text the rendered DOM must contain) for each screenshot."""
    # The global lineage page collapses groups unless `expanded` names them (ids `global@global:<group>`).
    expanded = quote(",".join(f"global@global:{g}" for g in groups))
    return [
        ("asset-lineage", f"/asset-groups?expanded={expanded}", "dedup"),  # a node label: the graph drew
        ("corpus-shards", "/assets/corpus/shards", "manifest.json"),
        ("corpus-shards-checks", "/assets/corpus/shards?view=checks", "licences_allowed_and_traceable"),
        ("gutenberg-raw-partitions", "/assets/gutenberg_raw?view=partitions", "40000-40999"),
        (
            "gutenberg-documents-partition",
            "/assets/gutenberg_documents?view=partitions&partition=02000-02999",
            "LicenseRef-PublicDomain",
        ),
    ]


def chromium(url: str, profile: Path, budget_ms: int, *mode: str) -> subprocess.CompletedProcess:
    return subprocess.run(
        [
            CHROMIUM, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
            "--disable-background-networking", "--disable-component-update", "--disable-sync",
            f"--user-data-dir={profile}", "--window-size=1600,1000", f"--virtual-time-budget={budget_ms}",
            *mode, url,
        ],
        check=False, capture_output=True, text=True, timeout=120,
    )  # fmt: skip


def build(home: Path, mirror: Path) -> float:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(home / "dagster")
    started = time.perf_counter()
    result = subprocess.run(
        [OPENCORPUS, "build", "--home", str(home), "--mirror", str(mirror), "--json"],
        check=False, capture_output=True, text=True, env=env, cwd=ROOT,
    )  # fmt: skip
    if result.returncode != 0:
        sys.exit(f"opencorpus build failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return time.perf_counter() - started


def timed(function, *args, repeat: int = 5):
    """(result, median seconds) of `repeat` calls."""
    times, result = [], None
    for _ in range(repeat):
        started = time.perf_counter()
        result = function(*args)
        times.append(time.perf_counter() - started)
    return result, sorted(times)[len(times) // 2]


def summary(client: httpx.Client, home: Path) -> list[str]:
    """The GraphQL view of the code location, one line per fact."""
    entry = query(client, LOCATION_QUERY, name=LOCATION)["workspaceLocationEntryOrError"]
    location = entry.get("locationOrLoadError") or {}
    problem = location.get("message", "")
    lines = [f"location {LOCATION}: {entry.get('loadStatus')} ({location.get('__typename')}) {problem}".rstrip()]
    for node in sorted(query(client, ASSETS_QUERY)["assetNodes"], key=lambda n: n["assetKey"]["path"]):
        key = "/".join(node["assetKey"]["path"])
        if node["isPartitioned"]:
            done = len(node["assetPartitionStatuses"].get("materializedPartitions", []))
            state = f"{done}/{len(node['partitionKeys'])} partitions materialized"
        else:
            state = "materialized" if node["assetMaterializations"] else "never materialized"
        checks = ", ".join(
            f"{c['name']}={(c['executionForLatestMaterialization'] or {}).get('status', 'never run')}"
            for c in node["assetChecksOrError"].get("checks", [])
        )
        lines.append(f"  {key:<22} group={node['groupName']:<10} {state}; checks: {checks or '-'}")
    shards = query(client, LATEST_MATERIALIZATION_QUERY, path=["corpus", "shards"])["assetNodeOrError"]
    shown = metadata(shards["assetMaterializations"][0]["metadataEntries"]) if shards.get("assetMaterializations") else {}
    manifest_rows = json.loads((home / "corpus" / "manifest.json").read_text())["totals"]["rows"]
    lines.append(f"corpus/shards metadata rows={shown.get('rows')} (manifest.json totals.rows={manifest_rows})")
    runs = query(client, RUNS_QUERY)["runsOrError"]["results"]
    by_job: dict[str, list[str]] = {}
    for run in runs:
        by_job.setdefault(run["jobName"], []).append(run["status"])
    lines.append("runs: " + ", ".join(f"{job} {len(s)} ({', '.join(sorted(set(s)))})" for job, s in sorted(by_job.items())))
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--home", type=Path, help="an already built data home (default: build the fixtures into a tmp one)")
    parser.add_argument("--out", type=Path, help="where the PNGs go (default: a new tmp directory)")
    parser.add_argument("--budget-ms", type=int, default=15000, help="Chromium --virtual-time-budget per page")
    args = parser.parse_args()

    work = Path(tempfile.mkdtemp(prefix="opencorpus-ui-"))
    out = args.out or work / "screenshots"
    out.mkdir(parents=True, exist_ok=True)
    mirror = build_fixture_mirror(work / "mirror", FIXTURES)
    if args.home:
        home, build_seconds = args.home.resolve(), None
    else:
        home = work / "home"
        build_seconds = build(home, mirror)
        print(f"opencorpus build (fixture corpus): {build_seconds:.1f} s")

    started = time.perf_counter()
    with dagster_dev(home, mirror) as url, httpx.Client(base_url=url, timeout=60) as client:
        ready = time.perf_counter() - started
        ratio = f" = {ready / build_seconds:.2f} x the build" if build_seconds else ""
        print(f"dagster dev ready (location loaded): {ready:.1f} s{ratio}")
        _, info_seconds = timed(lambda: client.get("/server_info").raise_for_status())
        nodes, assets_seconds = timed(query, client, ASSETS_QUERY)
        print(f"GraphQL assetNodes query: {assets_seconds * 1000:.0f} ms median of 5; /server_info {info_seconds * 1000:.1f} ms "
              f"({assets_seconds / info_seconds:.0f} x)")  # fmt: skip
        print("\n".join(summary(client, home)))

        if not (Path(CHROMIUM).exists() and os.access(CHROMIUM, os.X_OK)):
            print(f"{CHROMIUM} not found: no screenshots (apt-get install chromium)")
            return
        query(client, MARK_NUX_SEEN)
        groups = sorted({n["groupName"] for n in nodes["assetNodes"]})
        for name, path, expected in pages(groups):
            png = out / f"{name}.png"
            started = time.perf_counter()
            shot = chromium(url + path, work / f"profile-{name}", args.budget_ms, f"--screenshot={png}")
            seconds = time.perf_counter() - started
            dom = chromium(url + path, work / f"profile-{name}-dom", args.budget_ms, "--dump-dom")
            rendered = "rendered" if expected in dom.stdout else f"DOM lacks {expected!r} (blank or still loading?)"
            if shot.returncode != 0 or not png.exists():
                print(f"{name}: chromium failed ({shot.returncode}): {shot.stderr[-500:]}")
                continue
            print(f"{png}  {path}  {png.stat().st_size // 1024} KB, {seconds:.1f} s, {rendered}")
    shutil.rmtree(work / "mirror", ignore_errors=True)


if __name__ == "__main__":
    main()
