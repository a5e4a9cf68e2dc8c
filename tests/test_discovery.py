"""Discovery: a sensor lists the upstream units (a Common Crawl `warc.paths` listing on the
mirror) and turns only the new ones into partitions and runs; its state survives a restart."""

from __future__ import annotations

import json
import shutil

import pytest
from sensor_ticks import one_source_definitions
from sensor_ticks import tick as sensor_tick

LISTING = "data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths"
FIRST = "crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.gz"
SECOND = "crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.wet.gz"
CATALOG = """
name: crawl
kind: warc
description: A Common Crawl segment, discovered from its warc.paths listing.
options:
  listing: https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths
"""


@pytest.fixture
def setup(tmp_path, fixture_mirror, monkeypatch):
    mirror = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, mirror, symlinks=True)
    (mirror / LISTING).write_text(FIRST + "\n")
    defs, corpus = one_source_definitions(tmp_path, monkeypatch, mirror, "crawl", CATALOG)
    return defs, corpus, mirror, tmp_path / "dagster"


def tick(defs, corpus, dagster_home, cursor):
    return sensor_tick(defs, "crawl_discovery", corpus, dagster_home, cursor)


def test_a_new_unit_is_added_once_and_gets_exactly_one_run(setup):
    defs, corpus, mirror, dagster_home = setup
    first, instance = tick(defs, corpus, dagster_home, None)
    assert [r.partition_key for r in first.run_requests] == ["whirlwind.warc"]
    assert instance.get_dynamic_partitions("crawl_units") == ["whirlwind.warc"]

    second, _ = tick(defs, corpus, dagster_home, first.cursor)
    assert second.run_requests == [] and second.skip_message.startswith("no new upstream unit")

    (mirror / LISTING).write_text(FIRST + "\n" + SECOND + "\n")
    third, instance = tick(defs, corpus, dagster_home, second.cursor)
    assert [r.partition_key for r in third.run_requests] == ["whirlwind.warc.wet"]
    assert instance.get_dynamic_partitions("crawl_units") == [
        "whirlwind.warc",
        "whirlwind.warc.wet",
    ]
    assert third.cursor != first.cursor

    fourth, _ = tick(defs, corpus, dagster_home, third.cursor)
    assert fourth.run_requests == []


def test_the_discovered_partition_materialises(setup):
    defs, corpus, _, dagster_home = setup
    _, instance = tick(defs, corpus, dagster_home, None)
    job = defs.resolve_job_def("crawl_job")
    result = job.execute_in_process(partition_key="whirlwind.warc", instance=instance)
    assert result.success
    records = result.asset_materializations_for_node("crawl_raw")[0].metadata["records_in"].value
    assert records == 4  # the whirlwind capture: warcinfo, request, response, metadata


def test_the_cursor_stays_small_for_a_long_listing(setup):
    """A crawl lists tens of thousands of files; the cursor names a saved snapshot of their
    digests instead of holding them (Dagster keeps every tick's cursor)."""
    defs, corpus, mirror, dagster_home = setup
    paths = [f"crawl-data/CC-MAIN-2024-22/segments/{n:05d}/warc/part-{n:05d}.warc.gz" for n in range(5000)]
    (mirror / LISTING).write_text("".join(path + "\n" for path in paths))
    first, instance = tick(defs, corpus, dagster_home, None)
    assert len(first.run_requests) == 5000 and len(instance.get_dynamic_partitions("crawl_units")) == 5000
    assert len(first.cursor) < 120

    (mirror / LISTING).write_text("".join(path + "\n" for path in [*paths, FIRST]))
    second, _ = tick(defs, corpus, dagster_home, first.cursor)
    assert [r.partition_key for r in second.run_requests] == ["whirlwind.warc"]
    snapshots = sorted((corpus.data_home().root / "units" / "crawl.digests").glob("*.json"))
    assert [p.stem for p in snapshots] == sorted(
        {json.loads(c)["digests_sha256"] for c in (first.cursor, second.cursor)}
    )
