"""Every upstream record keeps its own outcome, even when a unit repeats a native id.

The cc_net WET fixture has two records with one WARC-Record-ID: before, both got one doc_id,
one of them vanished from the outcome counts and the conservation check failed.
"""

from __future__ import annotations

from collections import Counter

from opencorpus_dagster.catalog import load_source_file
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.records import Decision, Outcome, RawRecord
from opencorpus_dagster.stages.ingest import _with_unique_id, ingest_partition
from opencorpus_dagster.state.home import data_home
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

CC_NET = "https://fixtures.opencorpus.invalid/cc_net/sample.warc.wet.txt"


def test_a_repeated_warc_record_id_gets_its_own_doc_id_and_outcome(tmp_path, fixture_mirror):
    (tmp_path / "wet.yaml").write_text(f"name: wet\nkind: warc\noptions:\n  warcs: ['{CC_NET}']\n")
    source = load_source_file(tmp_path / "wet.yaml")
    (unit,) = source.connector.units()
    home = data_home(tmp_path / "home")
    store = LineageStore.at(home.lineage_db)

    result = ingest_partition(source, unit, Fetcher(tmp_path / "cache", [Mirror(str(fixture_mirror))]), home, store, "run-1")

    assert (result.records_in, result.raw_records, dict(result.counts)) == (4, 2, {"skipped": 1, "quarantined": 1})
    with store.connection() as conn:
        ((record_id, reason, value),) = conn.execute(
            "SELECT source_record_id, reason, value FROM decisions WHERE outcome = 'quarantined'"
        ).fetchall()
        ids = [row[0] for row in conn.execute("SELECT doc_id FROM raw_records UNION ALL SELECT doc_id FROM decisions").fetchall()]
    assert reason == "warc.duplicate_record_id" and record_id == f"{value}#2"
    assert len(ids) == len(set(ids)) == 4  # four records in, four doc_ids: each can have its outcome


def test_the_nth_use_of_an_id_is_renamed_and_a_repeated_record_quarantined():
    seen: Counter = Counter()
    first = RawRecord("42", "https://h.example/a#1", "text")
    again = RawRecord("42", "https://h.example/a#2", "other text")
    skipped = Decision("42", "https://h.example/a#3", Outcome.SKIPPED, "raw", "x.skip")
    assert _with_unique_id(first, seen) is first
    repeated = _with_unique_id(again, seen)
    assert (repeated.source_record_id, repeated.outcome, repeated.reason, repeated.value) == (
        "42#2",
        Outcome.QUARANTINED,
        "raw.repeated_record_id",
        "42",
    )
    assert _with_unique_id(skipped, seen).source_record_id == "42#3"
