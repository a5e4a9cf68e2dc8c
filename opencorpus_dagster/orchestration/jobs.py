"""Jobs: one per source (its raw + documents assets, by partition) and one for the corpus."""

from __future__ import annotations

from dagster import AssetSelection, define_asset_job

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.orchestration.assets import CORPUS_GROUP

CORPUS_JOB = "corpus_job"


def source_job_name(source_name: str) -> str:
    return f"{source_name}_job"


def source_job(source: Source):
    return define_asset_job(
        source_job_name(source.name),
        selection=AssetSelection.groups(source.name),
        description=f"Materialise one partition of {source.name}: raw records, then documents.",
    )


def corpus_job():
    return define_asset_job(
        CORPUS_JOB,
        selection=AssetSelection.groups(CORPUS_GROUP),
        description="Deduplicate across sources and publish shards + manifest, with their checks.",
    )
