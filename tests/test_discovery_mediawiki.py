"""Discovery of Wikimedia dump runs: a `mediawiki` source with `dump_index` reads the dump index
(`https://dumps.wikimedia.org/hywiki/`) and each run's `dumpstatus.json`, and the files of the
finished runs become partitions, each checked against its sha1 before it is read.

The mirror is a copy of the fixture mirror with a test-written index and dumpstatus.json files in
Wikimedia's layout; the run of 2023-06-01 is a symlink to the same hywiki sample as 2023-05-01.
"""

from __future__ import annotations

import functools
import hashlib
import json
import logging
import shutil
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow.parquet as pq
import pytest
from pydantic import ValidationError
from sensor_ticks import one_source_definitions
from sensor_ticks import tick as sensor_tick

from opencorpus_dagster.connectors.base import Unit, UnreadableInput
from opencorpus_dagster.connectors.mediawiki import MediaWikiConnector
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror, NotFound

WIKI = "dumps.wikimedia.org/hywiki"
INDEX = f"https://{WIKI}/"
HYWIKI_FIXTURE = "mediawiki/wikipedia-multilingual-2023/hywiki-20230501-sample.xml.bz2"
HYWIKI_SHA1 = "3a93434c8a895cfb89653cf4cc27cef178a2eb0d"  # sha1sum of the fixture file
HYWIKI_SIZE = 290679
MAY, JUNE = "20230501", "20230601"
MAY_KEY, JUNE_KEY = "hywiki-20230501-pages-articles", "hywiki-20230601-pages-articles"
MAY_URL = f"https://{WIKI}/{MAY}/hywiki-{MAY}-pages-articles.xml.bz2"
ENWIKI_URL = "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles1.xml-p000000010p000030302.bz2"
ENWIKI_KEY = "enwiki-latest-pages-articles1.xml-p000000010p000030302"
CATALOG = """
name: hywiki
kind: mediawiki
description: Armenian Wikipedia, every finished pages-articles run.
options:
  dump_index: https://dumps.wikimedia.org/hywiki/
"""


# -- the mirror: Wikimedia's index and dumpstatus.json, written per test -------------------------


def write_index(mirror: Path, dates: list[str]) -> None:
    """The index as dumps.wikimedia.org serves it (nginx autoindex), with `../` and `latest/`."""
    rows = "".join(f'<a href="{date}/">{date}/</a>{" " * 42}02-Jun-2023 09:12{" " * 19}-\n' for date in dates)
    (mirror / WIKI / "index.html").write_text(
        "<html>\n<head><title>Index of /hywiki/</title></head>\n<body>\n"
        f'<h1>Index of /hywiki/</h1><hr><pre><a href="../">../</a>\n{rows}'
        f'<a href="latest/">latest/</a>{" " * 44}21-Jun-2023 02:31{" " * 19}-\n</pre><hr></body>\n</html>\n'
    )


def publish_run(mirror: Path, fixtures_dir: Path, date: str, status: str, sha1: str = HYWIKI_SHA1) -> None:
    """A run folder with its pages-articles file and a dumpstatus.json in Wikimedia's format."""
    name = f"hywiki-{date}-pages-articles.xml.bz2"
    folder = mirror / WIKI / date
    folder.mkdir(exist_ok=True)
    if not (folder / name).exists():
        (folder / name).symlink_to(fixtures_dir / HYWIKI_FIXTURE)
    done = status == "done"
    articles = {"size": HYWIKI_SIZE, "url": f"/hywiki/{date}/{name}", "md5": "0" * 32, "sha1": sha1}
    multistream = f"hywiki-{date}-pages-articles-multistream.xml.bz2"
    offsets = f"hywiki-{date}-pages-articles-multistream-index.txt.bz2"
    jobs = {
        "articlesdump": {
            "status": status,
            "updated": f"{date[:4]}-{date[4:6]}-02 09:12:44",
            "files": {name: articles} if done else {},
        },
        "articlesmultistreamdump": {
            "status": status,
            "updated": "2023-06-02 09:30:01",
            "files": {
                multistream: {"size": 301234, "url": f"/hywiki/{date}/{multistream}", "sha1": "1" * 40},
                offsets: {"size": 4000, "url": f"/hywiki/{date}/{offsets}", "sha1": "2" * 40},
            },
        },
        "metahistorybz2dump": {"status": "waiting", "updated": "", "files": {}},
    }
    (folder / "dumpstatus.json").write_text(json.dumps({"jobs": jobs, "version": "0.8"}))


@pytest.fixture
def mirror(tmp_path, fixture_mirror, fixtures_dir) -> Path:
    """The fixture mirror with hywiki runs 20230501 (done) and 20230601 (in progress)."""
    copy = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, copy, symlinks=True)
    write_index(copy, [MAY, JUNE])
    publish_run(copy, fixtures_dir, MAY, "done")
    publish_run(copy, fixtures_dir, JUNE, "in-progress")
    return copy


@pytest.fixture
def served(mirror):
    """The test's mirror copy over real HTTP on 127.0.0.1 (conftest's http_mirror serves the shared one)."""

    class Quiet(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Quiet, directory=str(mirror)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def connector(**options) -> MediaWikiConnector:
    return MediaWikiConnector(MediaWikiConnector.Options(**{"dump_index": INDEX, **options}))


def directory_fetcher(mirror: Path, cache: Path) -> Fetcher:
    return Fetcher(cache, [Mirror.parse(str(mirror))])


# -- connector: which runs and files become units ------------------------------------------------


def test_only_the_finished_run_becomes_a_unit(mirror, tmp_path):
    units = connector().discover_units(directory_fetcher(mirror, tmp_path / "cache"))
    assert units == [Unit(key=MAY_KEY, urls=(MAY_URL,))]
    assert units[0].extra == {"sha1": HYWIKI_SHA1, "size": HYWIKI_SIZE}


@pytest.mark.parametrize(
    ("options", "june", "keys"),
    [
        ({}, "done", [MAY_KEY, JUNE_KEY]),  # oldest run first: a new run appends
        ({"since": "20230601"}, "done", [JUNE_KEY]),
        ({"since": "20230502"}, "done", [JUNE_KEY]),
        ({"since": "20230701"}, "done", []),
        ({"latest_runs": 1}, "done", [JUNE_KEY]),
        ({"latest_runs": 1}, "in-progress", []),  # the newest run is looked at, and is not ready
        ({"latest_runs": 5}, "done", [MAY_KEY, JUNE_KEY]),
        ({"dumps": [ENWIKI_URL], "latest_runs": 1}, "done", [ENWIKI_KEY, JUNE_KEY]),
        ({"dumps": [MAY_URL]}, "failed", [MAY_KEY]),  # declared and listed: one unit
        # The multistream job also lists its offset index (.txt): only the XML file is a dump.
        (
            {"dump_job": "articlesmultistreamdump", "since": "20230601"},
            "done",
            ["hywiki-20230601-pages-articles-multistream"],
        ),
        ({"dump_job": "metahistorybz2dump"}, "done", []),  # waiting in every run
    ],
)
def test_run_selection(mirror, fixtures_dir, tmp_path, options, june, keys):
    publish_run(mirror, fixtures_dir, JUNE, june)
    units = connector(**options).discover_units(directory_fetcher(mirror, tmp_path / "cache"))
    assert [unit.key for unit in units] == keys


def test_a_declared_file_keeps_its_unit_when_the_index_lists_it_too(mirror, tmp_path):
    declared = connector(dumps=[MAY_URL])
    assert declared.discover_units(directory_fetcher(mirror, tmp_path / "cache")) == declared.units()
    assert declared.units()[0].extra == {}  # read as declared: no sha1 to check


def test_a_file_listed_without_url_or_checksum_is_found_in_its_run_folder(mirror, tmp_path):
    name = f"hywiki-{MAY}-pages-articles.xml.bz2"
    status = {"jobs": {"articlesdump": {"status": "done", "files": {name: {"size": HYWIKI_SIZE}}}}}
    (mirror / WIKI / MAY / "dumpstatus.json").write_text(json.dumps(status))
    (unit,) = connector().discover_units(directory_fetcher(mirror, tmp_path / "cache"))
    assert (unit.key, unit.urls, unit.extra) == (MAY_KEY, (MAY_URL,), {"size": HYWIKI_SIZE})


def test_a_listed_file_that_takes_a_declared_key_is_an_error(mirror, tmp_path):
    elsewhere = f"https://mirror.example/hywiki/{MAY}/hywiki-{MAY}-pages-articles.xml.bz2"
    with pytest.raises(ValueError, match=f"{MAY_URL} .* and {elsewhere} both get the partition key '{MAY_KEY}'"):
        connector(dumps=[elsewhere]).discover_units(directory_fetcher(mirror, tmp_path / "cache"))


@pytest.mark.parametrize(
    ("dumpstatus", "logged"),
    [
        (None, "no dumpstatus.json"),  # the run folder exists, its status file not yet
        ('{"jobs": {"articlesdump": {"status": "do', "invalid dumpstatus.json"),  # cut while written
        ('{"jobs": ["articlesdump"]}', "invalid dumpstatus.json"),
        (
            '{"jobs": {"xmlstubsdump": {"status": "done"}}}',
            "no job 'articlesdump' in dumpstatus.json (jobs: xmlstubsdump)",
        ),
    ],
)
def test_a_run_without_usable_dumpstatus_is_skipped_with_a_warning(mirror, tmp_path, caplog, dumpstatus, logged):
    status = mirror / WIKI / JUNE / "dumpstatus.json"
    status.unlink()
    if dumpstatus is not None:
        status.write_text(dumpstatus)
    with caplog.at_level(logging.INFO, logger="opencorpus_dagster.connectors.mediawiki"):
        units = connector().discover_units(directory_fetcher(mirror, tmp_path / "cache"))
    assert [unit.key for unit in units] == [MAY_KEY]
    (warning,) = [r for r in caplog.records if r.levelno == logging.WARNING]
    assert warning.getMessage().startswith(f"dump run {JUNE} skipped: ")
    assert logged in warning.getMessage()


def test_a_run_in_progress_is_skipped_without_a_warning(mirror, tmp_path, caplog):
    with caplog.at_level(logging.INFO, logger="opencorpus_dagster.connectors.mediawiki"):
        connector().discover_units(directory_fetcher(mirror, tmp_path / "cache"))
    assert [(r.levelno, r.getMessage()) for r in caplog.records] == [
        (
            logging.INFO,
            f"dump run {JUNE} skipped: {INDEX}{JUNE}/dumpstatus.json: job 'articlesdump' is 'in-progress', not done",
        )
    ]


@pytest.mark.parametrize(
    ("index", "problem"),
    [
        ("", "not an HTML index"),
        (
            '<html><body><a href="../">../</a><a href="latest/">latest/</a><a href="2023/">2023/</a></body></html>',
            "links to no dump run",
        ),
    ],
)
def test_an_unreadable_index_fails_naming_it(mirror, tmp_path, index, problem):
    (mirror / WIKI / "index.html").write_text(index)
    with pytest.raises(UnreadableInput, match=problem) as error:
        connector().discover_units(directory_fetcher(mirror, tmp_path / "cache"))
    assert error.value.location == INDEX


def test_a_missing_index_fails_naming_it(mirror, tmp_path):
    with pytest.raises(NotFound, match=r"https://dumps\.wikimedia\.org/mrwiki/: not in any mirror"):
        connector(dump_index="https://dumps.wikimedia.org/mrwiki").discover_units(directory_fetcher(mirror, tmp_path))


@pytest.mark.parametrize(
    ("options", "error"),
    [
        ({}, "name the dump files in dumps, or a Wikimedia dump index in dump_index"),
        ({"dumps": [MAY_URL], "since": "20230501"}, "since select runs of dump_index, which is not set"),
        ({"dumps": [MAY_URL], "dump_job": "metahistorybz2dump", "latest_runs": 2}, "dump_job, latest_runs select runs"),
        ({"dump_index": INDEX, "since": "2023-05-01"}, "String should match pattern"),
        ({"dump_index": INDEX, "latest_runs": 0}, "greater than or equal to 1"),
        ({"dump_index": INDEX, "dump_jobs": "articlesdump"}, "Extra inputs are not permitted"),
    ],
)
def test_invalid_options_are_named(options, error):
    with pytest.raises(ValidationError, match=error):
        MediaWikiConnector.Options(**options)


def test_the_index_url_is_a_folder_with_or_without_its_slash():
    assert MediaWikiConnector.Options(dump_index="https://dumps.wikimedia.org/hywiki").dump_index == INDEX


# -- reading a discovered file: its sha1 is checked ------------------------------------------------


def test_a_file_whose_sha1_disagrees_with_dumpstatus_fails_naming_it(mirror, fixtures_dir, tmp_path):
    publish_run(mirror, fixtures_dir, MAY, "done", sha1="da39a3ee5e6b4b0d3255bfef95601890afd80709")
    fetcher = directory_fetcher(mirror, tmp_path / "cache")
    hywiki = connector()
    (unit,) = hywiki.discover_units(fetcher)
    with pytest.raises(UnreadableInput) as error:
        list(hywiki.read(unit, fetcher))
    assert error.value.location == MAY_URL
    assert error.value.problem.startswith(
        f"sha1 {HYWIKI_SHA1} does not match dumpstatus.json's da39a3ee5e6b4b0d3255bfef95601890afd80709 "
        f"({HYWIKI_SIZE} bytes; dumpstatus.json says {HYWIKI_SIZE})"
    )


def test_a_damaged_cached_download_is_fetched_again(mirror, served, tmp_path):
    cache = tmp_path / "cache"
    damaged = cache / WIKI / MAY / f"hywiki-{MAY}-pages-articles.xml.bz2"
    damaged.parent.mkdir(parents=True)
    damaged.write_bytes(b"BZh9 cut short")
    damaged.with_name(damaged.name + ".sha256").write_text(f"{'0' * 64}\t2023-06-01T00:00:00+00:00\t{served}")
    fetcher = Fetcher(cache, [Mirror.parse(served)])
    hywiki = connector()
    (unit,) = hywiki.discover_units(fetcher)
    items = list(hywiki.read(unit, fetcher))
    assert len(items) == 35  # every page of the sample: 22 records, 13 skipped
    assert hashlib.sha1(damaged.read_bytes()).hexdigest() == HYWIKI_SHA1


# -- over real HTTP: the same units; the index and unfinished runs are asked again ----------------


def test_http_mirror_lists_the_same_units_as_the_directory(mirror, served, tmp_path):
    over_http = connector().discover_units(Fetcher(tmp_path / "http-cache", [Mirror.parse(served)]))
    from_directory = connector().discover_units(directory_fetcher(mirror, tmp_path / "cache"))
    assert over_http == from_directory == [Unit(key=MAY_KEY, urls=(MAY_URL,))]
    assert over_http[0].extra == from_directory[0].extra == {"sha1": HYWIKI_SHA1, "size": HYWIKI_SIZE}
    assert (tmp_path / "http-cache" / WIKI / "index.html").read_text() == (mirror / WIKI / "index.html").read_text()


def test_http_refetches_the_index_and_unfinished_runs_but_not_finished_ones(mirror, fixtures_dir, served, tmp_path):
    fetcher = Fetcher(tmp_path / "cache", [Mirror.parse(served)])
    assert [unit.key for unit in connector().discover_units(fetcher)] == [MAY_KEY]
    july = "20230701"
    write_index(mirror, [MAY, JUNE, july])
    publish_run(mirror, fixtures_dir, JUNE, "done")
    publish_run(mirror, fixtures_dir, july, "done")
    (mirror / WIKI / MAY / "dumpstatus.json").unlink()  # a finished run's status is read from the cache
    keys = [unit.key for unit in connector().discover_units(fetcher)]
    assert keys == [MAY_KEY, JUNE_KEY, "hywiki-20230701-pages-articles"]


# -- Dagster: the discovery sensor and the discovered partition -----------------------------------


@pytest.fixture
def dagster_setup(mirror, tmp_path, monkeypatch):
    defs, corpus = one_source_definitions(tmp_path, monkeypatch, mirror, "hywiki", CATALOG)
    return defs, corpus, tmp_path / "dagster"


def tick(defs, corpus, dagster_home, cursor):
    return sensor_tick(defs, "hywiki_discovery", corpus, dagster_home, cursor)


def test_a_finished_run_is_added_once_and_gets_exactly_one_run(dagster_setup, mirror, fixtures_dir):
    defs, corpus, dagster_home = dagster_setup
    first, instance = tick(defs, corpus, dagster_home, None)
    assert [r.partition_key for r in first.run_requests] == [MAY_KEY]
    assert first.run_requests[0].run_key.startswith(f"hywiki:{MAY_KEY}")
    assert instance.get_dynamic_partitions("hywiki_units") == [MAY_KEY]

    second, _ = tick(defs, corpus, dagster_home, first.cursor)
    assert second.run_requests == []
    assert second.skip_message.startswith("no new upstream unit")

    publish_run(mirror, fixtures_dir, JUNE, "done")
    third, instance = tick(defs, corpus, dagster_home, second.cursor)
    assert [r.partition_key for r in third.run_requests] == [JUNE_KEY]
    assert instance.get_dynamic_partitions("hywiki_units") == [MAY_KEY, JUNE_KEY]

    fourth, _ = tick(defs, corpus, dagster_home, third.cursor)
    assert fourth.run_requests == []
    assert fourth.skip_message.startswith("no new upstream unit")


def test_the_discovered_partition_materialises(dagster_setup):
    defs, corpus, dagster_home = dagster_setup
    _, instance = tick(defs, corpus, dagster_home, None)
    result = defs.resolve_job_def("hywiki_job").execute_in_process(partition_key=MAY_KEY, instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("hywiki_raw")[0].metadata
    # The sample's 35 pages: 22 articles, 8 redirects and 5 MediaWiki: (namespace 8) pages.
    assert metadata["records_in"].value == 35
    assert metadata["raw_records"].value == 22
    assert MAY_URL in metadata["files"].value
    raw = pq.read_table(metadata["path"].value).to_pylist()
    assert {row["partition"] for row in raw} == {MAY_KEY}
    assert {row["license"] for row in raw} == {"CC-BY-SA-3.0"}  # revisions of April 2023
    assert all(row["upstream_uri"].startswith(f"{MAY_URL}#page=") for row in raw)
    assert all(row["url"].startswith("https://hy.wikipedia.org/wiki/") for row in raw)


def test_a_partition_whose_file_fails_its_sha1_fails_naming_the_file(dagster_setup, mirror, fixtures_dir):
    defs, corpus, dagster_home = dagster_setup
    publish_run(mirror, fixtures_dir, MAY, "done", sha1="f" * 40)  # the mirror's file is not the one listed
    _, instance = tick(defs, corpus, dagster_home, None)
    result = defs.resolve_job_def("hywiki_job").execute_in_process(
        partition_key=MAY_KEY, instance=instance, raise_on_error=False
    )
    assert not result.success
    (failure,) = [event for event in result.all_events if event.is_step_failure]
    error, messages = failure.step_failure_data.error, []
    while error is not None:  # Dagster's wrapper first, then the PartitionFailed it was raised from
        messages.append(error.message)
        error = error.cause
    message = "\n".join(messages)
    assert (
        f"partition '{MAY_KEY}': {MAY_URL}: sha1 {HYWIKI_SHA1} does not match dumpstatus.json's {'f' * 40}" in message
    )
    assert not list((Path(corpus.home) / "raw").rglob("*.parquet"))


def test_a_run_that_leaves_the_listing_window_can_still_be_rematerialised(tmp_path, mirror, fixtures_dir, monkeypatch):
    """`latest_runs: 1`: once June is done, May is no longer listed upstream, but its partition
    exists, and a backfill of it must still find its file (from the recorded listing)."""
    defs, corpus = one_source_definitions(tmp_path, monkeypatch, mirror, "hywiki", CATALOG + "  latest_runs: 1\n")
    dagster_home = tmp_path / "dagster"

    write_index(mirror, [MAY])  # June's run has not started yet
    first, _ = tick(defs, corpus, dagster_home, None)
    assert [r.partition_key for r in first.run_requests] == [MAY_KEY]
    write_index(mirror, [MAY, JUNE])
    publish_run(mirror, fixtures_dir, JUNE, "done")
    second, instance = tick(defs, corpus, dagster_home, first.cursor)
    assert [r.partition_key for r in second.run_requests] == [JUNE_KEY]
    assert instance.get_dynamic_partitions("hywiki_units") == [MAY_KEY, JUNE_KEY]

    result = defs.resolve_job_def("hywiki_job").execute_in_process(partition_key=MAY_KEY, instance=instance)
    assert result.success
    metadata = result.asset_materializations_for_node("hywiki_raw")[0].metadata
    assert MAY_URL in metadata["files"].value
    assert metadata["records_in"].value == 35


def test_a_run_whose_status_appears_later_is_found_though_the_index_did_not_change(dagster_setup, mirror, fixtures_dir):
    """The recorded listing is reused only while every file it was made from is unchanged; a
    dumpstatus.json that was missing counts as one of those files."""
    defs, corpus, dagster_home = dagster_setup
    (mirror / WIKI / JUNE / "dumpstatus.json").unlink()  # June's run folder exists, its status not yet
    first, _ = tick(defs, corpus, dagster_home, None)
    assert [r.partition_key for r in first.run_requests] == [MAY_KEY]
    second, _ = tick(defs, corpus, dagster_home, first.cursor)
    assert second.run_requests == []

    publish_run(mirror, fixtures_dir, JUNE, "done")  # the index page is byte-identical
    third, _ = tick(defs, corpus, dagster_home, second.cursor)
    assert [r.partition_key for r in third.run_requests] == [JUNE_KEY]
