"""The corpus follows its sources by itself: a declarative-automation sensor, running by default.

Whatever materialises a source partition (a discovery sensor, a refresh schedule, a backfill or
a materialisation from the UI, `dagster asset materialize`), the next tick of this sensor sees
the documents updated and launches one run of the corpus assets (`CORPUS_AUTOMATION`: takedown,
dedup, shards with their checks, card), once nothing upstream is still running. Dagster's own
`default_automation_condition_sensor` is stopped until someone turns it on; this one is not.
`OPENCORPUS_AUTOMATION_INTERVAL` sets the seconds between ticks (default 30).
"""

import os

from dagster import AssetSelection, AutomationConditionSensorDefinition, DefaultSensorStatus

from opencorpus_dagster.orchestration.assets import CORPUS_GROUP

AUTOMATION_SENSOR = "corpus_automation"
INTERVAL_ENV = "OPENCORPUS_AUTOMATION_INTERVAL"
DEFAULT_INTERVAL_SECONDS = 30


def corpus_automation_sensor() -> AutomationConditionSensorDefinition:
    return AutomationConditionSensorDefinition(
        AUTOMATION_SENSOR,
        target=AssetSelection.groups(CORPUS_GROUP),
        default_status=DefaultSensorStatus.RUNNING,
        minimum_interval_seconds=int(os.environ.get(INTERVAL_ENV) or DEFAULT_INTERVAL_SECONDS),
        description="Rebuilds takedown, dedup, shards (with their checks) and card after any source partition is materialised.",
    )
