"""The Dagster instance opencorpus runs on: a `dagster.yaml` with the settings a build needs.

Written into `DAGSTER_HOME` when it has none (an existing file is the user's and is never
touched). Without it Dagster warns "No dagster.yaml found" on every command, prints its
telemetry banner into the first build's progress bar, and lets the daemon start every queued
run at once: a backfill of nine small partitions launched from the UI ran nine processes on two
cores and took 17 times as long as `opencorpus build`. The run queue admits one run per core;
telemetry is off (set `telemetry: enabled: true` in the file to opt in).
"""

from __future__ import annotations

import os
from pathlib import Path

from opencorpus_dagster.state.atomic import write_text_atomically

INSTANCE_FILE = "dagster.yaml"


def usable_cores() -> int:
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1


def instance_yaml(max_concurrent_runs: int) -> str:
    return (
        "# Written by opencorpus for its Dagster instance; it is not overwritten, edit it freely.\n"
        "# https://docs.dagster.io/deployment/oss/dagster-yaml\n"
        "run_queue:\n"
        f"  max_concurrent_runs: {max_concurrent_runs}   # one run per core of the machine that wrote this\n"
        "telemetry:\n"
        "  enabled: false\n"
    )


def ensure_instance_config(dagster_home: Path) -> Path:
    """`<dagster_home>/dagster.yaml`, written if missing; its path."""
    dagster_home.mkdir(parents=True, exist_ok=True)
    path = dagster_home / INSTANCE_FILE
    if not path.exists():
        write_text_atomically(path, instance_yaml(usable_cores()))
    return path
