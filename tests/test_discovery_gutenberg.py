"""Discovery of Project Gutenberg books from PG's RDF feed (`catalog_feed`).

The connector lists the feed's Text ebooks (optionally in some languages) as batches; the sensor
turns new batches, and batches that gained a book, into runs; a run takes its batch from the
listing recorded in the data home instead of reading the feed again. On the real fixture feed
(six RDF records) and on feeds built in tmp from those records.
"""

from __future__ import annotations

import bz2
import hashlib
import io
import json
import logging
import shutil
import tarfile
from pathlib import Path
from xml.etree import ElementTree

import pyarrow.parquet as pq
import pytest
from dagster import DagsterInstance
from pydantic import ValidationError
from sensor_ticks import one_source_definitions
from sensor_ticks import tick as sensor_tick

from opencorpus_dagster.catalog import load_source_file
from opencorpus_dagster.connectors.base import UnreadableInput
from opencorpus_dagster.connectors.gutenberg import GutenbergConnector
from opencorpus_dagster.licensing.spdx import PUBLIC_DOMAIN
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.orchestration.build import pending_partitions
from opencorpus_dagster.orchestration.resources import CorpusSettings
from opencorpus_dagster.stages.discovery import discover_and_record, listing_path, load_digests
from opencorpus_dagster.stages.ingest import PartitionFailed, find_unit
from opencorpus_dagster.state.home import data_home
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror, NotFound

FEED = "www.gutenberg.org/cache/epub/feeds/rdf-files.tar.bz2"  # mirror path of the feed
FEED_URL = f"https://{FEED}"
FIXTURE_FEED = "gutenberg/c-w-gutenberg/rdf/sample-rdf-files.tar.bz2"
RDF_NS = "{http://www.w3.org/1999/02/22-rdf-syntax-ns#}"
DC_NS = "{http://purl.org/dc/terms/}"
PG_NS = "{http://www.gutenberg.org/2009/pgterms/}"
# The default catalog's filters for PG books (a novel is no web page); without them Moby Dick
# would be filtered by Gopher's word-count bound.
BOOK_FILTERS = """
filters:
  quality:
    gopher_max_words: null
    c4_max_curly_brackets: null
    disabled_rules: [fineweb.line_punct_ratio]
  pii:
    enabled: false
"""


def _member_name(book: int) -> str:
    return f"cache/epub/{book}/pg{book}.rdf"


def _fixture_records(fixtures_dir: Path) -> dict[int, bytes]:
    """Ebook id -> its RDF record, as the members of the real fixture feed hold them."""
    records = {}
    with tarfile.open(fixtures_dir / FIXTURE_FEED, "r:bz2") as tar:
        for member in tar.getmembers():
            if member.isfile():
                book = int(Path(member.name).stem.removeprefix("pg"))
                records[book] = tar.extractfile(member).read()
    return records


def _what_records_say(records: dict[int, bytes]) -> dict[int, tuple[set[str], set[str]]]:
    """Ebook id (from `rdf:about`) -> (DCMI types, languages), read with the standard library."""
    facts = {}
    for record in records.values():
        ebook = ElementTree.fromstring(record).find(f"{PG_NS}ebook")
        book = int(ebook.get(f"{RDF_NS}about").removeprefix("ebooks/"))
        types = {value.text for value in ebook.iterfind(f"{DC_NS}type//{RDF_NS}value")}
        languages = {value.text for value in ebook.iterfind(f"{DC_NS}language//{RDF_NS}value")}
        facts[book] = (types, languages)
    return facts


def _feed_bytes(members: dict[str, bytes]) -> bytes:
    """A tar.bz2 laid out like PG's feed: a directory entry, then the file, per member."""
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w:bz2") as tar:
        for name, data in members.items():
            directory = tarfile.TarInfo(name.rsplit("/", 1)[0])
            directory.type = tarfile.DIRTYPE
            tar.addfile(directory)
            info = tarfile.TarInfo(name)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return buffer.getvalue()


def _replace_feed(mirror: Path, data: bytes) -> None:
    feed = mirror / FEED
    feed.unlink()  # in the copied mirror, a symlink into the (read-only) fixtures
    feed.write_bytes(data)


def _write_feed(mirror: Path, records: dict[int, bytes], books: list[int]) -> None:
    """A feed of the fixture records of `books`, in that order."""
    _replace_feed(mirror, _feed_bytes({_member_name(b): records[b] for b in books}))


@pytest.fixture
def records(fixtures_dir) -> dict[int, bytes]:
    return _fixture_records(fixtures_dir)


@pytest.fixture
def mirror(tmp_path, fixture_mirror) -> Path:
    """A private copy of the fixture mirror (symlinks), whose feed a test may replace."""
    copy = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, copy, symlinks=True)
    return copy


@pytest.fixture
def fetcher(tmp_path, mirror) -> Fetcher:
    return Fetcher(cache_dir=tmp_path / "cache", mirrors=[Mirror(base=str(mirror))])


def _feed_connector(**options) -> GutenbergConnector:
    return GutenbergConnector(GutenbergConnector.Options(catalog_feed=FEED_URL, **options))


def _books_by_key(units) -> dict[str, list[int]]:
    return {unit.key: unit.extra["books"] for unit in units}


# -- the connector on the real feed -------------------------------------------------------------


def test_the_real_feed_lists_its_text_ebooks_in_batches(fetcher, records):
    facts = _what_records_say(records)
    assert facts == {
        5: ({"Text"}, {"en"}),
        2701: ({"Text"}, {"en"}),
        14287: ({"Text"}, {"fr"}),
        23962: ({"Text"}, {"zh"}),
        30929: ({"Text"}, {"nl"}),
        50405: ({"Text"}, {"en"}),
    }
    connector = _feed_connector()
    assert connector.discovers() and connector.units() == []

    units = connector.discover_units(fetcher)

    expected = {f"{book // 1000 * 1000:05d}-{book // 1000 * 1000 + 999:05d}": [book] for book in sorted(facts)}
    assert _books_by_key(units) == expected
    assert list(expected) == ["00000-00999", "02000-02999", "14000-14999", "23000-23999", "30000-30999", "50000-50999"]
    assert units[1].urls == ("https://www.gutenberg.org/cache/epub/2701/pg2701.txt",)


@pytest.mark.parametrize(
    ("languages", "expected"),
    [
        (["en"], [5, 2701, 50405]),
        (["fr", "nl"], [14287, 30929]),
        (["ZH"], [23962]),  # PG writes codes in lower case; the filter does not care
        (["de"], []),
    ],
)
def test_languages_filter_by_the_records_dcterms_language(fetcher, records, languages, expected):
    wanted = {language.lower() for language in languages}
    said = sorted(book for book, (_, langs) in _what_records_say(records).items() if langs & wanted)
    assert said == expected

    units = _feed_connector(languages=languages).discover_units(fetcher)

    assert [book for unit in units for book in unit.extra["books"]] == expected


def test_explicit_books_join_the_feed_and_are_not_filtered(fetcher):
    connector = _feed_connector(books=[1013, 2701], languages=["fr"])
    assert _books_by_key(connector.units()) == {"01000-01999": [1013], "02000-02999": [2701]}
    assert _books_by_key(connector.discover_units(fetcher)) == {
        "01000-01999": [1013],
        "02000-02999": [2701],
        "14000-14999": [14287],
    }


def test_non_text_ebooks_are_not_listed_and_bad_members_are_skipped(mirror, fetcher, records, caplog):
    sound = records[5].replace(b"<rdf:value>Text</rdf:value>", b"<rdf:value>Sound</rdf:value>")
    assert sound != records[5]
    cut = records[14287][: len(records[14287]) // 2]  # ends mid-element
    members = {
        _member_name(5): sound,
        _member_name(2701): records[2701],
        _member_name(14287): cut,
        _member_name(23962): records[2701],  # a record of another ebook under this name
        "cache/epub/30929/README": b"not a record, passed over",
        _member_name(30929): records[30929],
    }
    _replace_feed(mirror, _feed_bytes(members))

    with caplog.at_level(logging.WARNING, logger="opencorpus_dagster.connectors.gutenberg"):
        units = _feed_connector().discover_units(fetcher)

    assert _books_by_key(units) == {"02000-02999": [2701], "30000-30999": [30929]}
    [warning] = [r.getMessage() for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.startswith(f"{FEED_URL}: skipped 2 unusable record(s); the first, cache/epub/14287/pg14287.rdf: ")


@pytest.mark.parametrize(
    ("damage", "problem"),
    [
        (lambda feed: feed[: len(feed) // 2], "Compressed file ended before the end-of-stream marker"),
        (lambda feed: bz2.compress(b"<html>503 Service Unavailable</html>\n"), "catalog feed cannot be read"),
        (lambda feed: b"", "empty file"),
    ],
    ids=["truncated-bz2", "not-a-tar", "empty"],
)
def test_an_unreadable_feed_names_its_url(mirror, fetcher, fixtures_dir, damage, problem):
    real = (fixtures_dir / FIXTURE_FEED).read_bytes()
    _replace_feed(mirror, damage(real))

    with pytest.raises(UnreadableInput) as raised:
        _feed_connector().discover_units(fetcher)

    assert raised.value.location == FEED_URL
    assert str(raised.value).startswith(f"{FEED_URL}: catalog feed cannot be read: ")
    assert problem in str(raised.value)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({}, "give `books` (ebook numbers), `catalog_feed` (the URL of PG's RDF feed"),
        ({"batch_size": 100}, "give `books` (ebook numbers), `catalog_feed`"),
        ({"books": []}, "at least 1 item"),
        ({"catalog_feed": ""}, "refused (url.scheme): no scheme"),
        ({"catalog_feed": FEED_URL, "languages": []}, "at least 1 item"),
        (
            {"books": [1], "languages": ["en"]},
            "`languages` filters the books of `catalog_feed`: set `catalog_feed` too",
        ),
    ],
)
def test_options_need_books_or_a_feed(options, message):
    with pytest.raises(ValidationError) as raised:
        GutenbergConnector.Options(**options)
    assert message in str(raised.value)


def test_listing_options_do_not_change_the_processing_fingerprint():
    plain = _feed_connector().processing_options()
    assert _feed_connector(languages=["en"], books=[2701]).processing_options() == plain
    assert "catalog_feed" not in plain and "languages" not in plain and "books" not in plain


# -- the recorded listing --------------------------------------------------------------------


def _source(tmp_path: Path, options: str, name: str = "books"):
    catalog = tmp_path / "catalog"
    catalog.mkdir(exist_ok=True)
    path = catalog / f"{name}.yaml"
    path.write_text(f"name: {name}\nkind: gutenberg\noptions:\n{options}{BOOK_FILTERS}")
    return load_source_file(path)


def _recorded_listing(home) -> tuple[dict, list[dict]]:
    """(header, units) of the listing recorded for `books`: JSON lines, header first."""
    header, *units = map(json.loads, listing_path(home, "books").read_text().splitlines())
    return header, units


def test_a_run_reads_its_batch_from_the_recorded_listing_made_with_the_same_options(tmp_path, mirror, fetcher):
    home = data_home(tmp_path / "home")
    listed = _source(tmp_path, f"  catalog_feed: {FEED_URL}\n")
    units = discover_and_record(listed, fetcher, home)
    header, recorded = _recorded_listing(home)
    assert header["source"] == "books" and len(header["options_sha256"]) == 64
    assert [unit["key"] for unit in recorded] == [unit.key for unit in units]
    moby = {
        "key": "02000-02999",
        "urls": ["https://www.gutenberg.org/cache/epub/2701/pg2701.txt"],
        "extra": {"books": [2701]},
        "listed": True,
    }
    assert recorded[1] == moby
    assert header["inputs"] == {FEED_URL: hashlib.sha256((mirror / FEED).read_bytes()).hexdigest()}

    (mirror / FEED).unlink()  # from here on, reading the feed fails
    unit = find_unit(listed, "02000-02999", fetcher, home)
    assert (unit.key, list(unit.urls), unit.extra) == (moby["key"], moby["urls"], moby["extra"])

    # Another filter makes the record stale: the feed is listed again (and is gone now).
    french = _source(tmp_path, f"  catalog_feed: {FEED_URL}\n  languages: [fr]\n")
    with pytest.raises(NotFound, match="rdf-files.tar.bz2"):
        find_unit(french, "14000-14999", fetcher, home)


def test_an_unchanged_feed_is_not_parsed_again(tmp_path, mirror, fetcher, records, monkeypatch):
    """The record keeps the feed's sha256: a listing whose inputs are unchanged is reused, one
    whose feed changed is made again (and keeps the batches the new feed no longer has)."""
    parsed = []
    listing = GutenbergConnector.discover_units
    monkeypatch.setattr(GutenbergConnector, "discover_units", lambda self, f: parsed.append(1) or listing(self, f))
    home = data_home(tmp_path / "home")
    source = _source(tmp_path, f"  catalog_feed: {FEED_URL}\n")
    _write_feed(mirror, records, [5, 2701])

    first = discover_and_record(source, fetcher, home)
    again = discover_and_record(source, fetcher, home)
    assert len(parsed) == 1 and again == first
    assert _books_by_key(first) == {"00000-00999": [5], "02000-02999": [2701]}

    _write_feed(mirror, records, [2701, 50405])  # 5 withdrawn, 50405 new
    changed = discover_and_record(source, fetcher, home)
    assert len(parsed) == 2
    assert _books_by_key(changed) == {"02000-02999": [2701], "50000-50999": [50405]}
    assert find_unit(source, "00000-00999", fetcher, home).extra == {"books": [5]}  # retired, still recorded
    _, recorded = _recorded_listing(home)
    assert [(unit["key"], unit["listed"]) for unit in recorded] == [
        ("02000-02999", True),
        ("50000-50999", True),
        ("00000-00999", False),
    ]


def test_build_discovery_records_the_listing_and_adds_the_partitions(tmp_path, fetcher):
    home = data_home(tmp_path / "home")
    source = _source(tmp_path, f"  catalog_feed: {FEED_URL}\n  languages: [en]\n")
    store = LineageStore.at(home.lineage_db)
    instance = DagsterInstance.ephemeral()

    pending, unchanged = pending_partitions([source], store, home, force=False, fetcher=fetcher, instance=instance)

    keys = ["00000-00999", "02000-02999", "50000-50999"]
    assert [key for _, key in pending] == keys and unchanged == []
    assert instance.get_dynamic_partitions("books_units") == keys
    _, recorded = _recorded_listing(home)
    assert [(unit["key"], unit["extra"]["books"]) for unit in recorded] == [
        ("00000-00999", [5]),
        ("02000-02999", [2701]),
        ("50000-50999", [50405]),
    ]


# -- the sensor and the runs -------------------------------------------------------------------


@pytest.fixture
def sensor_setup(tmp_path, mirror, monkeypatch):
    """(write_catalog, tick, mirror): a catalog with one feed-discovering source `books`."""
    state = {}

    def write_catalog(extra_options: str = ""):
        text = f"name: books\nkind: gutenberg\noptions:\n  catalog_feed: {FEED_URL}\n{extra_options}{BOOK_FILTERS}"
        state["defs"], state["corpus"] = one_source_definitions(tmp_path, monkeypatch, mirror, "books", text)
        return state["defs"]

    def tick(cursor):
        """One tick; when it asks for a listing run (the feed changed), that run is executed as
        the daemon would launch it, and the sensor ticks again on the recorded listing."""
        result, instance = sensor_tick(state["defs"], "books_discovery", state["corpus"], tmp_path / "dagster", cursor)
        if [request.job_name for request in result.run_requests] != ["books_listing"]:
            return result, instance
        assert result.cursor == cursor  # nothing decided until the listing is made
        listing = state["defs"].resolve_job_def("books_listing").execute_in_process(instance=instance)
        assert listing.success
        return sensor_tick(state["defs"], "books_discovery", state["corpus"], tmp_path / "dagster", cursor)

    return write_catalog, tick, mirror


def _digests(tmp_path: Path, cursor: str) -> dict[str, str]:
    """The unit digests a tick saw: the snapshot its cursor names, in the data home."""
    return load_digests(data_home(tmp_path / "home"), "books", json.loads(cursor)["digests_sha256"])


def _requested(result) -> list[str]:
    return [request.partition_key for request in result.run_requests]


def test_new_batches_become_partitions_with_exactly_one_run_each(sensor_setup, records, tmp_path):
    write_catalog, tick, mirror = sensor_setup
    write_catalog()
    _write_feed(mirror, records, [5, 2701, 14287, 23962, 30929])

    first, instance = tick(None)
    keys = ["00000-00999", "02000-02999", "14000-14999", "23000-23999", "30000-30999"]
    assert _requested(first) == keys
    assert instance.get_dynamic_partitions("books_units") == keys
    assert len({request.run_key for request in first.run_requests}) == 5
    assert all(r.run_key.startswith(f"books:{r.partition_key}:") for r in first.run_requests)

    second, _ = tick(first.cursor)
    assert second.run_requests == []
    assert second.skip_message == "no new upstream unit and none changed among 5 listed"

    _write_feed(mirror, records, [5, 2701, 14287, 23962, 30929, 50405])
    third, instance = tick(second.cursor)
    assert _requested(third) == ["50000-50999"]
    assert instance.get_dynamic_partitions("books_units") == [*keys, "50000-50999"]

    fourth, instance = tick(third.cursor)
    assert fourth.run_requests == []
    assert len(instance.get_dynamic_partitions("books_units")) == 6
    assert _digests(tmp_path, fourth.cursor).keys() == {*keys, "50000-50999"}


def test_a_book_added_inside_a_batch_reruns_that_batch_only(sensor_setup, records, tmp_path):
    write_catalog, tick, mirror = sensor_setup
    write_catalog("  batch_size: 10000\n")
    _write_feed(mirror, records, [5, 14287, 23962, 30929, 50405])
    first, _ = tick(None)
    keys = ["00000-09999", "10000-19999", "20000-29999", "30000-39999", "50000-59999"]
    assert _requested(first) == keys

    # A cursor lost (or partitions added by `opencorpus build`): known keys are not run again.
    fresh, _ = tick(None)
    assert fresh.run_requests == [] and fresh.cursor == first.cursor

    _write_feed(mirror, records, [5, 2701, 14287, 23962, 30929, 50405])
    second, instance = tick(fresh.cursor)
    assert _requested(second) == ["00000-09999"]
    before = _digests(tmp_path, fresh.cursor)
    after = _digests(tmp_path, second.cursor)
    assert [key for key in keys if before[key] != after[key]] == ["00000-09999"]
    assert second.run_requests[0].run_key == (f"books:00000-09999:{before['00000-09999']}>{after['00000-09999']}")
    assert first.run_requests[0].run_key == f"books:00000-09999:new>{before['00000-09999']}"
    assert instance.get_dynamic_partitions("books_units") == keys

    third, _ = tick(second.cursor)
    assert third.run_requests == []

    source = load_source_file(tmp_path / "catalog" / "books.yaml")
    (mirror / FEED).unlink()  # the run must not need the feed
    corpus = CorpusSettings(home=str(tmp_path / "home"), mirror=str(mirror))
    unit = find_unit(source, "00000-09999", corpus.fetcher(), corpus.data_home())
    assert unit.extra == {"books": [5, 2701]}


def test_a_changed_feed_is_listed_in_a_run_not_in_the_sensor(tmp_path, mirror, records, monkeypatch):
    """PG's real feed takes minutes to read, past Dagster's 60 s sensor timeout: a tick that
    finds the feed changed (or never listed) asks for one run of `books_listing` instead, and
    only once while that run is pending; the tick after the run decides from the record."""
    _write_feed(mirror, records, [5, 2701])
    text = f"name: books\nkind: gutenberg\noptions:\n  catalog_feed: {FEED_URL}\n{BOOK_FILTERS}"
    defs, corpus = one_source_definitions(tmp_path, monkeypatch, mirror, "books", text)
    dagster_home = tmp_path / "dagster"

    first, instance = sensor_tick(defs, "books_discovery", corpus, dagster_home, None)
    assert [(r.job_name, r.partition_key) for r in first.run_requests] == [("books_listing", None)]
    assert (
        instance.get_dynamic_partitions("books_units") == [] and not listing_path(corpus.data_home(), "books").exists()
    )

    instance.create_run_for_job(defs.resolve_job_def("books_listing"))  # launched, not yet started
    pending, _ = sensor_tick(defs, "books_discovery", corpus, dagster_home, None)
    assert pending.run_requests == [] and pending.skip_message.startswith("the upstream listing is being made by run")

    result = defs.resolve_job_def("books_listing").execute_in_process(instance=instance)
    assert result.success
    assert [unit["key"] for unit in _recorded_listing(corpus.data_home())[1]] == ["00000-00999", "02000-02999"]
    second, instance = sensor_tick(defs, "books_discovery", corpus, dagster_home, None)
    assert [(r.job_name, r.partition_key) for r in second.run_requests] == [
        ("books_job", "00000-00999"),
        ("books_job", "02000-02999"),
    ]


def test_a_discovered_batch_materialises_from_the_recorded_listing(sensor_setup, records, tmp_path):
    write_catalog, tick, mirror = sensor_setup
    defs = write_catalog()
    _write_feed(mirror, records, [5, 2701, 14287, 23962, 30929, 50405])
    _, instance = tick(None)
    (mirror / FEED).unlink()  # the runs must take their batch from the recorded listing
    job = defs.resolve_job_def("books_job")

    moby = job.execute_in_process(partition_key="02000-02999", instance=instance)

    raw = moby.asset_materializations_for_node("books_raw")[0].metadata
    documents = moby.asset_materializations_for_node("books_documents")[0].metadata
    assert (raw["records_in"].value, raw["raw_records"].value) == (1, 1)
    assert (documents["records_in"].value, documents["kept"].value) == (1, 1)
    kept = pq.read_table(tmp_path / "home" / "documents" / "books" / "02000-02999.parquet").to_pylist()
    assert [(row["source_record_id"], row["title"], row["license"]) for row in kept] == [
        ("2701", "Moby Dick; Or, The Whale", PUBLIC_DOMAIN)
    ]

    # 14287 has an RDF record in the feed but no text file on the mirror: quarantined, not lost.
    french = job.execute_in_process(partition_key="14000-14999", instance=instance)
    raw = french.asset_materializations_for_node("books_raw")[0].metadata
    assert (raw["records_in"].value, raw["raw_records"].value) == (1, 0)
    with LineageStore.at(tmp_path / "home" / "lineage", read_only=True).connection() as conn:
        decisions = conn.execute(
            "SELECT source_record_id, outcome, reason FROM decisions WHERE partition = '14000-14999'"
        ).fetchall()
    assert decisions == [("14287", "quarantined", "gutenberg.missing_text")]


def test_a_partition_not_in_any_listing_fails_with_its_key(tmp_path, fetcher):
    home = data_home(tmp_path / "home")
    source = _source(tmp_path, f"  catalog_feed: {FEED_URL}\n")
    with pytest.raises(PartitionFailed, match="has no partition '77000-77999'"):
        find_unit(source, "77000-77999", fetcher, home)
