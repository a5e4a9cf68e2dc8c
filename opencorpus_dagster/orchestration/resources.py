"""Dagster resources: where the data lives, how upstream is reached, and the lineage store."""

from __future__ import annotations

import os

from dagster import ConfigurableResource

from opencorpus_dagster.lineage.openlineage import LineageEmitter
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.orchestration.instance import usable_cores
from opencorpus_dagster.stages.shards import DEFAULT_MAX_SHARD_BYTES
from opencorpus_dagster.state.home import DataHome, data_home
from opencorpus_dagster.upstream.fetch import MIRROR_ENV, Fetcher, mirrors_from


class CorpusSettings(ConfigurableResource):
    """The data home, the mirror(s), the shard size bound and how many threads compress shards."""

    home: str
    mirror: str = ""  # comma-separated mirror specs (see fetch.py); empty = upstream
    max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
    shard_writers: int = 0  # 0: one per core, at most 4 (DuckDB's queries use every core too)

    def writers(self) -> int:
        return self.shard_writers if self.shard_writers > 0 else min(4, usable_cores())

    def data_home(self) -> DataHome:
        return data_home(self.home)

    def fetcher(self) -> Fetcher:
        return Fetcher(self.data_home().downloads, mirrors_from(self.mirror or ""))

    def lineage_emitter(self) -> LineageEmitter:
        """OpenLineage events: the standard OPENLINEAGE_* configuration, else JSON lines in the home."""
        return LineageEmitter.from_environment(self.data_home().root, self.data_home().state)


class LineageFiles(ConfigurableResource):
    """The lineage store of a data home: immutable Parquet files under `<home>/lineage/`.

    Every run writes files of its own and reads through an in-memory DuckDB connection, so runs
    in several processes (parallel partitions, Celery workers) never lock one another out.
    """

    home: str

    def store(self) -> LineageStore:
        return LineageStore.at(data_home(self.home).lineage_dir)


def lineage_store(lineage: LineageFiles) -> LineageStore:
    return lineage.store()


def default_resources() -> dict:
    """Resources from the environment (`OPENCORPUS_HOME`, `OPENCORPUS_MIRROR`)."""
    home = data_home()
    return {
        "corpus": CorpusSettings(
            home=str(home.root),
            mirror=os.environ.get(MIRROR_ENV, ""),
            max_shard_bytes=int(os.environ.get("OPENCORPUS_MAX_SHARD_BYTES", DEFAULT_MAX_SHARD_BYTES)),
        ),
        "lineage": LineageFiles(home=str(home.root)),
    }
