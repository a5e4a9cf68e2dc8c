"""Incremental-refresh schedules: the upstream units of a source not processed yet.

One schedule per source (a run materialises one partition of one partitions definition), all on
the same cron (`OPENCORPUS_REFRESH_CRON`, default daily at 03:00). The corpus assets follow by
declarative automation (`orchestration/automation.py`). Running by default wherever the Dagster
daemon runs (`dagster dev`, `dagster-daemon run`); stop them in the UI (Automation) or with
`dagster schedule stop`.
"""

import os

from dagster import (
    DefaultScheduleStatus,
    RunRequest,
    ScheduleDefinition,
    ScheduleEvaluationContext,
    SkipReason,
    schedule,
)

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.orchestration.assets import documents_key
from opencorpus_dagster.orchestration.jobs import source_job_name

REFRESH_CRON_ENV = "OPENCORPUS_REFRESH_CRON"
DEFAULT_REFRESH_CRON = "0 3 * * *"


def refresh_schedule(source: Source) -> ScheduleDefinition:
    """Runs for the declared partitions never materialised (discovered ones: the sensor's job)."""
    @schedule(
        name=f"{source.name}_refresh",
        cron_schedule=os.environ.get(REFRESH_CRON_ENV, DEFAULT_REFRESH_CRON),
        job_name=source_job_name(source.name),
        default_status=DefaultScheduleStatus.RUNNING,
        description=f"Materialise the upstream units of {source.name} not processed yet.",
    )
    def refresh(context: ScheduleEvaluationContext):
        done = context.instance.get_materialized_partitions(documents_key(source.name))
        requests = [
            RunRequest(run_key=f"{source.name}:{unit.key}:{source.partition_fingerprint(unit)}", partition_key=unit.key)
            for unit in source.connector.units()
            if unit.key not in done
        ]
        return requests or SkipReason(f"every upstream unit of {source.name} is materialised")

    return refresh
