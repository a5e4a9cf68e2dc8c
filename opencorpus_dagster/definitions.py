"""The opencorpus code location: the catalog in `assets/` turned into Dagster definitions."""

from __future__ import annotations

import logging

from dagster import Definitions

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.orchestration.assets import corpus_assets, source_assets
from opencorpus_dagster.orchestration.automation import corpus_automation_sensor
from opencorpus_dagster.orchestration.catalog_report import catalog_asset
from opencorpus_dagster.orchestration.executors import executor_from_environment
from opencorpus_dagster.orchestration.jobs import corpus_job, source_job
from opencorpus_dagster.orchestration.resources import default_resources
from opencorpus_dagster.orchestration.schedules import refresh_schedule
from opencorpus_dagster.orchestration.sensors import discovery_sensor, listing_job


def build_definitions(catalog_directory: str | None = None) -> Definitions:
    catalog = load_catalog(catalog_directory)
    for error in catalog.errors:
        logging.getLogger("opencorpus").error("invalid catalog file (source not loaded): %s", error)
    sources = list(catalog.sources)
    jobs = {source.name: source_job(source) for source in sources}
    listing_jobs = {
        s.name: listing_job(s) for s in sources if s.connector.discovers() and s.connector.listing_is_slow()
    }
    return Definitions(
        assets=[
            *[a for source in sources for a in source_assets(source)],
            *corpus_assets(sources),
            catalog_asset(catalog),
        ],
        jobs=[*jobs.values(), *listing_jobs.values(), corpus_job()],
        schedules=[refresh_schedule(source) for source in sources],
        sensors=[
            corpus_automation_sensor(),
            *[
                discovery_sensor(source, jobs[source.name], listing_jobs.get(source.name))
                for source in sources
                if source.connector.discovers()
            ],
        ],
        resources=default_resources(),
        executor=executor_from_environment(),
    )


defs = build_definitions()
