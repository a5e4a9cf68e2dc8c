"""Takedowns after the fact: the request list, matching over the documents, and its application.

The corpus is the real fixture corpus, built once per module by `opencorpus build` with a catalog
that holds the Gutenberg source twice (`gutenberg` and `gutenberg_copy`), so Moby Dick exists in
two sources with the same text: an exact-duplicate cluster whose keeper a takedown can remove.
Tests that change the home work on a copy of it.
"""

from __future__ import annotations

import json
import shutil
from datetime import UTC, datetime
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_runner import shard_name
from conftest import shard_files
from test_build import ENWIKI_PARTITION, REPO, build

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.records import make_doc_id
from opencorpus_dagster.stages import corpus
from opencorpus_dagster.stages.audit import conservation_problems
from opencorpus_dagster.stages.documents import DOCUMENT_SCHEMA
from opencorpus_dagster.stages.takedown import (
    TakedownFileError,
    _connect,
    add_takedown,
    apply_takedowns,
    is_taken_down,
    load_takedowns,
    match_takedowns,
    new_request,
    normalise_url,
    record_shard_changes,
    removed_keys,
    request_id,
    shard_rows_taken_down,
    takedown_audit,
    takedowns_path,
    url_host,
)
from opencorpus_dagster.state.home import DataHome

AARDVARK = make_doc_id("enwiki", "680")  # https://en.wikipedia.org/wiki/Aardvark, page 680
MOBY_DICK = make_doc_id("gutenberg", "2701")
MOBY_DICK_COPY = make_doc_id("gutenberg_copy", "2701")
BOOKS = "02000-02999"
ENWIKI_SHARD = f"shards/enwiki/{ENWIKI_PARTITION}/part-00000.parquet"
ENWIKI_DUMP = f"https://dumps.wikimedia.org/enwiki/latest/{ENWIKI_PARTITION}.bz2"
MAY_1 = datetime(2024, 5, 1, 12, 0, tzinfo=UTC)
JUNE_1 = datetime(2024, 6, 1, 9, 30, tzinfo=UTC)


@pytest.fixture(scope="module")
def built_home(tmp_path_factory, fixture_mirror) -> Path:
    catalog = tmp_path_factory.mktemp("catalog")
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog / "enwiki.yaml")
    gutenberg = (REPO / "assets" / "gutenberg.yaml").read_text()
    (catalog / "gutenberg.yaml").write_text(gutenberg)
    assert "\nname: gutenberg\n" in gutenberg
    (catalog / "gutenberg_copy.yaml").write_text(gutenberg.replace("\nname: gutenberg\n", "\nname: gutenberg_copy\n"))
    home = tmp_path_factory.mktemp("home")
    build(home, fixture_mirror, catalog)
    return home


@pytest.fixture
def home(built_home, tmp_path) -> DataHome:
    """A private copy of the built home (without the download cache and Dagster instance)."""
    copy = tmp_path / "home"
    shutil.copytree(built_home, copy, ignore=shutil.ignore_patterns("downloads", "dagster"))
    return DataHome(copy)


def outcome_of(store: LineageStore, source: str, doc_id: str) -> dict:
    with store.connection() as conn:
        cursor = conn.execute("SELECT * FROM outcomes WHERE source = ? AND doc_id = ?", [source, doc_id])
        names = [d[0] for d in cursor.description]
        (row,) = cursor.fetchall()
    return dict(zip(names, row, strict=True))


def shard_doc_ids(home: DataHome) -> list[tuple[str, str]]:
    with duckdb.connect() as conn:
        shards = [str(p) for p in shard_files(home)]
        return conn.execute("SELECT source, doc_id FROM read_parquet(?) ORDER BY ALL", [shards]).fetchall()


# -- applying a takedown on the real corpus -------------------------------------------------


def test_url_takedown_of_one_enwiki_page_is_applied_audited_and_stays_applied(home):
    store = LineageStore.at(home.lineage_db)
    request = add_takedown(
        home, "url", "HTTPS://EN.Wikipedia.org:443/wiki/Aardvark#Taxonomy", "DMCA notice 2024-117",
        requested_by="legal@example.org", now=MAY_1,
    )
    assert request.value == "https://en.wikipedia.org/wiki/Aardvark#Taxonomy"
    assert request.id == request_id("url", request.value, "DMCA notice 2024-117")

    report = apply_takedowns(home, store, "run-1", now=JUNE_1)
    assert (report.requests, report.records, report.new_records) == (1, 1, 1)
    assert report.by_kind == {"url": 1} and report.by_request == {request.id: 1} and report.unmatched == []

    assert pq.read_table(home.dedup_dir / "removed.parquet").to_pylist() == [
        {"source": "enwiki", "partition": ENWIKI_PARTITION, "doc_id": AARDVARK, "request_id": request.id,
         "kind": "url", "reason": "DMCA notice 2024-117"}
    ]
    assert removed_keys(home) == {("enwiki", ENWIKI_PARTITION, AARDVARK)}
    assert is_taken_down(home, "enwiki", ENWIKI_PARTITION, AARDVARK)

    outcome = outcome_of(store, "enwiki", AARDVARK)
    assert outcome["stage"] == "takedown" and outcome["outcome"] == "removed"
    assert outcome["reason"] == "takedown:url" and outcome["value"] == request.id
    assert outcome["detail"] == "DMCA notice 2024-117 (requested 2024-05-01T12:00:00+00:00 by legal@example.org)"
    assert outcome["upstream_uri"] == f"{ENWIKI_DUMP}#page=680&revision=715558671"
    assert outcome["run_id"] == "run-1" and outcome["decided_at"] == "2024-06-01T09:30:00+00:00"
    assert store.outcome_counts("enwiki") == {"kept": 93, "removed": 1, "skipped": 100, "filtered": 12}
    assert conservation_problems(store) == []

    (audit,) = takedown_audit(store)
    assert audit | {"shards_changed": None} == {
        "run_id": "run-1", "applied_at": "2024-06-01T09:30:00+00:00", "request_id": request.id, "kind": "url",
        "value": "https://en.wikipedia.org/wiki/Aardvark#Taxonomy", "reason": "DMCA notice 2024-117",
        "requested_at": "2024-05-01T12:00:00+00:00", "requested_by": "legal@example.org", "records": 1,
        "new_records": 1, "partitions": [f"enwiki/{ENWIKI_PARTITION}"], "shards_changed": None,
    }

    # Republishing drops the page from its shard; the audit learns which shard changed.
    publish = corpus.publish_corpus(home, store, "run-1")
    assert [shard_name(p) for p in publish.written] == [ENWIKI_SHARD]
    record_shard_changes(store, "run-1", publish.written + publish.deleted)
    # The file that left and the one that replaced it (shard files are named by content).
    assert [shard_name(p) for p in takedown_audit(store, "run-1")[0]["shards_changed"]] == [ENWIKI_SHARD, ENWIKI_SHARD]
    ids = shard_doc_ids(home)
    assert ("enwiki", AARDVARK) not in ids and len(ids) == 94
    assert shard_rows_taken_down(home).num_rows == 0
    assert store.outcome_counts()["kept"] == 94  # 93 enwiki pages + Moby Dick

    # The next build applies the list again: still removed, nothing new, audit grows by a row.
    again = apply_takedowns(home, store, "run-2", now=JUNE_1)
    assert (again.records, again.new_records) == (1, 0)
    assert [(a["run_id"], a["records"], a["new_records"]) for a in takedown_audit(store)] == [("run-1", 1, 1), ("run-2", 1, 0)]
    with store.connection() as conn:
        # The decision is unchanged, so its row stays as first written (run and time of the removal).
        assert conn.execute("SELECT count(*), min(run_id) FROM decisions WHERE stage = 'takedown'").fetchone() == (1, "run-1")

    # Withdrawing the request (removing its line) re-admits the page on the next application.
    takedowns_path(home).write_text("")
    withdrawn = apply_takedowns(home, store, "run-3", now=JUNE_1)
    assert (withdrawn.requests, withdrawn.records) == (0, 0)
    assert removed_keys(home) == set()
    assert outcome_of(store, "enwiki", AARDVARK)["outcome"] == "kept"


def test_shards_published_before_a_takedown_are_caught_by_the_shard_check(home):
    add_takedown(home, "domain", "en.wikipedia.org", "site owner opt-out", now=MAY_1)
    hits = shard_rows_taken_down(home)  # the shards still hold every enwiki page
    assert hits.num_rows == 94
    assert set(hits.column("source").to_pylist()) == {"enwiki"}


def test_removed_keeper_promotes_the_next_cluster_member(home):
    # As built: one exact-duplicate cluster, Moby Dick in both sources; `gutenberg` is kept.
    duplicates = pq.read_table(home.dedup_dir / "duplicates.parquet").to_pylist()
    assert [(d["source"], d["doc_id"], d["keeper_source"], d["keeper_doc_id"], d["reason"]) for d in duplicates] == [
        ("gutenberg_copy", MOBY_DICK_COPY, "gutenberg", MOBY_DICK, "dedup.exact")
    ]
    assert shard_doc_ids(home)[-1] == ("gutenberg", MOBY_DICK)

    # The build order the assets follow: takedowns, then dedup (which treats removed records
    # as absent), then shards.
    store = LineageStore.at(home.lineage_db)
    add_takedown(home, "doc_id", MOBY_DICK, "rights holder request", now=MAY_1)
    report = apply_takedowns(home, store, "run-1", now=JUNE_1)
    assert report.by_kind == {"doc_id": 1}
    assert removed_keys(home) == {("gutenberg", BOOKS, MOBY_DICK)}
    corpus.deduplicate_corpus(home, store, "run-1")
    publish = corpus.publish_corpus(home, store, "run-1")
    record_shard_changes(store, "run-1", publish.written + publish.deleted)

    assert pq.read_table(home.dedup_dir / "duplicates.parquet").num_rows == 0  # the copy is the keeper now
    assert [row for row in shard_doc_ids(home) if row[0].startswith("gutenberg")] == [("gutenberg_copy", MOBY_DICK_COPY)]
    assert outcome_of(store, "gutenberg", MOBY_DICK)["outcome"] == "removed"
    assert outcome_of(store, "gutenberg_copy", MOBY_DICK_COPY)["outcome"] == "kept"
    assert conservation_problems(store) == []
    (audit,) = takedown_audit(store, "run-1")
    assert audit["partitions"] == [f"gutenberg/{BOOKS}"]
    assert [shard_name(p) for p in audit["shards_changed"]] == [f"shards/gutenberg/{BOOKS}/part-00000.parquet"]
    # The removed book's partition has no rows left: its shard is gone, the copy's written.
    assert ([shard_name(p) for p in publish.deleted], [shard_name(p) for p in publish.written]) == (
        [f"shards/gutenberg/{BOOKS}/part-00000.parquet"], [f"shards/gutenberg_copy/{BOOKS}/part-00000.parquet"]
    )


def test_sha256_takedown_removes_the_text_in_every_source(home):
    with duckdb.connect() as conn:
        hashes = conn.sql(
            f"SELECT DISTINCT content_sha256 FROM read_parquet('{home.root}/documents/gutenberg*/*.parquet')"
        ).fetchall()
    (digest,) = hashes  # both sources hold the same normalised text
    add_takedown(home, "sha256", digest[0].upper(), "text withdrawn by its publisher", now=MAY_1)
    report = apply_takedowns(home, LineageStore.at(home.lineage_db), "run-1", now=JUNE_1)
    assert report.by_kind == {"sha256": 2}
    assert removed_keys(home) == {("gutenberg", BOOKS, MOBY_DICK), ("gutenberg_copy", BOOKS, MOBY_DICK_COPY)}


# -- matching ------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "value", "expected"),
    [
        ("url", "https://en.wikipedia.org/wiki/Aardvark", {("enwiki", AARDVARK)}),
        ("url", "HTTPS://EN.WIKIPEDIA.ORG:443/wiki/Aardvark#History", {("enwiki", AARDVARK)}),
        ("url", "https://en.wikipedia.org/wiki/aardvark", set()),  # paths are case-sensitive
        ("url", f"{ENWIKI_DUMP}#page=680&revision=715558671", {("enwiki", AARDVARK)}),  # one upstream record
        ("url", f"{ENWIKI_DUMP}#page=680&revision=1", set()),  # another revision is not this record
        ("url", ENWIKI_DUMP, 94),  # a whole upstream file
        ("url", "https://www.gutenberg.org/cache/epub/2701/pg2701.txt", {("gutenberg", MOBY_DICK), ("gutenberg_copy", MOBY_DICK_COPY)}),
        ("url", "https://www.gutenberg.org/ebooks/2701", {("gutenberg", MOBY_DICK), ("gutenberg_copy", MOBY_DICK_COPY)}),
        ("domain", "en.wikipedia.org", 94),
        ("domain", "wikipedia.org", 94),
        ("domain", "EN.Wikipedia.ORG.", 94),
        ("domain", "pedia.org", 0),
        ("domain", "de.wikipedia.org", 0),
        ("domain", "wikimedia.org", 94),  # the upstream host (dumps.wikimedia.org) counts too
        ("domain", "gutenberg.org", {("gutenberg", MOBY_DICK), ("gutenberg_copy", MOBY_DICK_COPY)}),
        ("doc_id", AARDVARK, {("enwiki", AARDVARK)}),
        ("doc_id", "0" * 24, set()),
    ],
)
def test_match_on_the_fixture_corpus(built_home, kind, value, expected):
    table = match_takedowns(built_home, [new_request(kind, value, "test")])
    hits = set(zip(table.column("source").to_pylist(), table.column("doc_id").to_pylist(), strict=True))
    if isinstance(expected, int):
        assert len(hits) == table.num_rows == expected
    else:
        assert hits == expected


def test_match_table_lists_every_request_hitting_a_record_in_order(built_home):
    requests = [
        new_request("domain", "wikipedia.org", "site opt-out", now=MAY_1),
        new_request("url", "https://en.wikipedia.org/wiki/Aardvark", "DMCA", now=JUNE_1),
    ]
    table = match_takedowns(built_home, requests)
    assert table.schema.names == ["source", "partition", "doc_id", "source_record_id", "upstream_uri", "request_id", "kind", "value", "reason"]
    assert table.num_rows == 95
    rows = table.to_pylist()
    assert rows == sorted(rows, key=lambda r: (r["source"], r["partition"], r["doc_id"], r["request_id"]))
    aardvark = [(r["kind"], r["reason"], r["source_record_id"]) for r in rows if r["doc_id"] == AARDVARK]
    assert sorted(aardvark) == [("domain", "site opt-out", "680"), ("url", "DMCA", "680")]


def _documents_with_urls(home: Path, urls: dict[str, str]) -> None:
    """A documents file whose records differ only in their `url` (upstream on an unrelated host)."""
    rows = [
        {name: None for name in DOCUMENT_SCHEMA.names}
        | {"doc_id": name, "source": "web", "partition": "p1", "source_record_id": name, "url": url,
           "upstream_uri": f"https://crawl.example.net/segment.warc.gz#offset={i}", "text": name, "content_sha256": str(i)}
        for i, (name, url) in enumerate(urls.items())
    ]
    target = DataHome(home).documents_path("web", "p1")
    target.parent.mkdir(parents=True)
    pq.write_table(pa.Table.from_pylist(rows, schema=DOCUMENT_SCHEMA), target)


PAGES = {
    "en": "https://en.wikipedia.org/wiki/X",
    "de_mobile": "https://de.m.wikipedia.org/wiki/Y",
    "apex": "https://Wikipedia.ORG/",
    "other_site": "https://notwikipedia.org/",
    "pedia": "https://pedia.org/a",
    "ported": "http://user@www.example.com:8080/a",
    "www": "https://www.example.com./b",
    "no_url": "urn:isbn:0451450523",
}


@pytest.mark.parametrize(
    ("domain", "expected"),
    [
        ("en.wikipedia.org", {"en"}),
        ("wikipedia.org", {"en", "de_mobile", "apex"}),
        ("m.wikipedia.org", {"de_mobile"}),
        ("pedia.org", {"pedia"}),
        ("example.com", {"ported", "www"}),
        ("www.example.com", {"ported", "www"}),
        ("example.net", {"en", "de_mobile", "apex", "other_site", "pedia", "ported", "www", "no_url"}),  # upstream host
        ("ample.com", set()),
    ],
)
def test_domain_matches_itself_and_subdomains_only(tmp_path, domain, expected):
    _documents_with_urls(tmp_path, PAGES)
    table = match_takedowns(tmp_path, [new_request("domain", domain, "test")])
    assert set(table.column("doc_id").to_pylist()) == expected


@pytest.mark.parametrize(
    ("url", "normalised", "host"),
    [
        ("HTTP://A.COM:80", "http://a.com/", "a.com"),
        ("https://u:P@Ex.com:443/P?q=A#F", "https://u:P@ex.com/P?q=A#F", "ex.com"),
        ("https://ex.com:80/x", "https://ex.com:80/x", "ex.com"),  # 80 is not https's default
        ("ftp://x.org:21/a", "ftp://x.org:21/a", "x.org"),
        ("https://[::1]:443/x", "https://[::1]/x", "[::1]"),
        ("https://a.com:?x", "https://a.com/?x", "a.com"),
        ("  https://a.com/#top ", "https://a.com/#top", "a.com"),
    ],
)
def test_url_normalisation_is_the_same_in_python_and_duckdb(url, normalised, host):
    assert normalise_url(url) == normalised
    assert url_host(url) == host
    connection = _connect()
    try:
        assert connection.execute("SELECT oc_normalise_url(?), oc_host(?)", [url, url]).fetchone() == (normalised, host)
    finally:
        connection.close()


# -- the request list ----------------------------------------------------------------------


def test_adding_the_same_request_twice_is_a_no_op(tmp_path):
    first = add_takedown(tmp_path, "url", "https://en.wikipedia.org/wiki/Aardvark", "DMCA notice", now=MAY_1)
    again = add_takedown(tmp_path, "url", "HTTPS://en.wikipedia.org:443/wiki/Aardvark", " DMCA notice ", requested_by="x", now=JUNE_1)
    assert again == first and again.requested_at == "2024-05-01T12:00:00+00:00"
    other = add_takedown(tmp_path, "url", "https://en.wikipedia.org/wiki/Aardvark", "second notice", now=JUNE_1)
    assert other.id != first.id
    lines = takedowns_path(tmp_path).read_text().splitlines()
    assert [json.loads(line)["id"] for line in lines] == [first.id, other.id]
    assert json.loads(lines[0]) == {
        "id": first.id, "kind": "url", "value": "https://en.wikipedia.org/wiki/Aardvark", "reason": "DMCA notice",
        "requested_at": "2024-05-01T12:00:00+00:00", "requested_by": None,
    }
    assert load_takedowns(tmp_path) == [first, other]
    assert not list(tmp_path.glob(".takedowns.jsonl.tmp-*"))


@pytest.mark.parametrize(
    ("kind", "value", "reason", "message"),
    [
        ("url", "https://a.org/x", "  ", "needs a reason"),
        ("url", "en.wikipedia.org/wiki/X", "r", "not an absolute URL"),
        ("domain", "org", "r", "at least two labels"),
        ("domain", "https://example.com/", "r", "not a domain name"),
        ("sha256", "abc", "r", "64 hexadecimal digits"),
        ("doc_id", "a b", "r", "whitespace"),
        ("page", "x", "r", "unknown takedown kind 'page'"),
    ],
)
def test_invalid_requests_are_refused(tmp_path, kind, value, reason, message):
    with pytest.raises(ValueError, match=message):
        add_takedown(tmp_path, kind, value, reason)
    assert not takedowns_path(tmp_path).exists()


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("{not json", "not a JSON object"),
        ('["url"]', "not a JSON object"),
        ('{"kind": "page", "value": "x", "reason": "r", "requested_at": "2024-05-01T00:00:00Z"}', "unknown takedown kind 'page'"),
        ('{"kind": "url", "value": "https://a.org/", "requested_at": "2024-05-01T00:00:00Z"}', "field 'reason' is missing"),
        ('{"kind": "url", "value": "https://a.org/", "reason": "r", "requested_at": "May 1st"}', "not an ISO-8601 time"),
        ('{"kind": "url", "value": "https://a.org/", "reason": "r", "requested_at": "2024-05-01T00:00:00"}', "timezone-aware"),
        ('{"id": "abc", "kind": "url", "value": "https://a.org/", "reason": "r", "requested_at": "2024-05-01T00:00:00Z"}', "was kind, value or reason edited"),
        ('{"kind": "url", "value": "https://a.org/", "reason": "r", "requested_at": "2024-05-01T00:00:00Z", "note": 1}', "unknown field"),
    ],
)
def test_a_malformed_line_names_the_file_and_line(tmp_path, line, message):
    add_takedown(tmp_path, "doc_id", AARDVARK, "first", now=MAY_1)
    path = takedowns_path(tmp_path)
    path.write_text(path.read_text() + "\n" + line + "\n")  # line 3: a blank line 2 is allowed
    with pytest.raises(TakedownFileError, match=message) as error:
        load_takedowns(tmp_path)
    assert str(error.value).startswith(f"{path}:3: ")
    with pytest.raises(TakedownFileError):  # nothing is appended to a broken list
        add_takedown(tmp_path, "doc_id", MOBY_DICK, "second")


def test_a_hand_written_line_without_id_gets_its_canonical_id(tmp_path):
    takedowns_path(tmp_path).write_text(
        '{"kind": "domain", "value": "WWW.Example.COM", "reason": "opt-out", "requested_at": "2024-05-01T14:00:00+02:00"}\n'
    )
    (request,) = load_takedowns(tmp_path)
    assert request.value == "www.example.com" and request.requested_at == "2024-05-01T12:00:00+00:00"
    assert request.id == request_id("domain", "www.example.com", "opt-out")
