"""Evaluate a discovery sensor the way the daemon does, against a fresh instance object each time.

    first, instance = tick(defs, "crawl_discovery", corpus, dagster_home, cursor=None)

Each call opens a new `DagsterInstance` on the same storage (what a restarted daemon sees),
applies the tick's dynamic-partition requests to it, and returns the run requests and cursor.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from dagster import DagsterInstance, Definitions, SkipReason, build_sensor_context


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
        instance.add_dynamic_partitions(
            request.partitions_def_name, list(request.partition_keys)
        )
    skip_message = result.skip_reason.skip_message if result.skip_reason else None
    return Tick(result.run_requests, result.cursor, skip_message), instance
