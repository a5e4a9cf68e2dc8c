"""Run the pipeline's plain stages in-process (no Dagster), for tests that look at one stage's logic.

The Dagster assets call exactly these functions; tests of the orchestration itself use
`opencorpus build` (tests/test_build.py).
"""

from __future__ import annotations

from pathlib import Path

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.corpus import deduplicate_corpus, publish_corpus
from opencorpus_dagster.stages.documents import process_partition
from opencorpus_dagster.stages.ingest import ingest_partition
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror


def run_plain(catalog_dir: Path, home: Path, mirror: Path, run_id: str = "plain-run") -> tuple[DataHome, LineageStore]:
    catalog = load_catalog(catalog_dir)
    assert not catalog.errors, catalog.errors
    data_home = DataHome(Path(home))
    store = LineageStore.at(data_home.lineage_db)
    fetcher = Fetcher(data_home.downloads, [Mirror(base=str(mirror))])
    for source in catalog.sources:
        for unit in source.connector.units():
            ingest_partition(source, unit, fetcher, data_home, store, run_id)
            process_partition(source, unit.key, data_home, store, run_id, fetcher=fetcher)
    deduplicate_corpus(data_home, store, run_id)
    publish_corpus(data_home, store, run_id)
    return data_home, store
