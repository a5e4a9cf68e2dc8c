"""Discovery sensors: new upstream units of a source become partitions, and only they get runs.

One sensor per source that discovers its units (a Common Crawl `warc.paths` listing, ...). Each
tick lists the units through the mirror-aware fetcher, adds the keys not yet known as dynamic
partitions and requests one run per new key. The set of known keys lives in the Dagster
instance (the dynamic partitions), and the sensor cursor records the listing it last saw, so a
restarted daemon neither loses nor repeats work.
"""

import hashlib
import json

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.orchestration.assets import dynamic_partitions_name
from opencorpus_dagster.orchestration.jobs import source_job_name
from opencorpus_dagster.orchestration.resources import CorpusSettings

DISCOVERY_INTERVAL_SECONDS = 3600


def discovery_sensor(source: Source) -> SensorDefinition:
    @sensor(
        name=f"{source.name}_discovery",
        job_name=source_job_name(source.name),
        minimum_interval_seconds=DISCOVERY_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Lists the upstream units of {source.name} and requests runs for the new ones.",
    )
    def discover(context: SensorEvaluationContext, corpus: CorpusSettings):
        keys = [unit.key for unit in source.connector.discover_units(corpus.fetcher())]
        listing = hashlib.sha256(json.dumps(keys).encode()).hexdigest()
        name = dynamic_partitions_name(source.name)
        known = set(context.instance.get_dynamic_partitions(name))
        new = [key for key in keys if key not in known]
        if not new:
            return SkipReason(f"no new upstream unit among {len(keys)} listed")
        return SensorResult(
            run_requests=[RunRequest(run_key=f"{source.name}:{key}", partition_key=key) for key in new],
            dynamic_partitions_requests=[AddDynamicPartitionsRequest(partitions_def_name=name, partition_keys=new)],
            cursor=json.dumps({"listing_sha256": listing, "units": len(keys)}),
        )

    return discover
