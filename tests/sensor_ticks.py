"""Evaluate a discovery sensor the way the daemon does, against a fresh instance object each time.

    defs, corpus = one_source_definitions(tmp_path, monkeypatch, mirror, "crawl", CATALOG_YAML)
    first, instance = tick(defs, "crawl_discovery", corpus, tmp_path / "dagster", cursor=None)

Each call opens a new `DagsterInstance` on the same storage (what a restarted daemon sees),
applies the tick's dynamic-partition requests to it, and returns the run requests and cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, Definitions, SkipReason, build_sensor_context

from opencorpus_dagster.definitions import build_definitions
from opencorpus_dagster.orchestration.resources import CorpusSettings


@dataclass
class Tick:
    run_requests: list
    cursor: str | None
    skip_message: str | None


def tick(
    defs: Definitions, sensor_name: str, corpus, dagster_home: Path, cursor: str | None
) -> tuple[Tick, DagsterInstance]:
    dagster_home.mkdir(exist_ok=True)
    instance = DagsterInstance.local_temp(str(dagster_home))
    sensor = defs.resolve_sensor_def(sensor_name)
    with build_sensor_context(
        instance=instance, cursor=cursor, resources={"corpus": corpus}, definitions=defs
    ) as context:
        result = sensor(context)
    if isinstance(result, SkipReason):
        return Tick([], cursor, result.skip_message), instance
    for request in result.dynamic_partitions_requests or []:
        instance.add_dynamic_partitions(request.partitions_def_name, list(request.partition_keys))
    skip_message = result.skip_reason.skip_message if result.skip_reason else None
    return Tick(result.run_requests, result.cursor, skip_message), instance


def one_source_definitions(tmp_path: Path, monkeypatch, mirror: Path, name: str, catalog_yaml: str):
    """(definitions, CorpusSettings) of a catalog with the one source `name`, its data home
    `tmp_path/home` and every fetch going to `mirror`."""
    catalog = tmp_path / "catalog"
    catalog.mkdir(exist_ok=True)
    (catalog / f"{name}.yaml").write_text(catalog_yaml)
    monkeypatch.setenv("OPENCORPUS_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("OPENCORPUS_MIRROR", str(mirror))
    return build_definitions(str(catalog)), CorpusSettings(home=str(tmp_path / "home"), mirror=str(mirror))
