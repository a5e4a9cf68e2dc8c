"""A crawl's own robots.txt capture decides the opt-out of that crawl's pages.

The WARC is written here with warcio from real pages of the dolma fixture crawl, plus robots.txt
response records; it runs through the plain pipeline (raw, documents, dedup, shards) with a
directory mirror that also serves today's robots.txt of the same hosts, saying otherwise.
"""

from __future__ import annotations

import io

import pytest
from conftest import require_fixture
from plain_pipeline import run_plain
from warcio.archiveiterator import ArchiveIterator
from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

from opencorpus_dagster.connectors.warc import is_robots_txt_capture
from opencorpus_dagster.stages.audit import conservation_problems

CRAWL_URL = "https://crawl.opencorpus.invalid/test/CC-TEST-robots-00000.warc.gz"
PAGES = ("https://soldaini.net/facts/", "https://soldaini.net/lineage/", "https://kyleclo.com/", "https://joe.cat/")
# The capture reserves /facts/ for GPTBot; today's file (in the mirror) reserves nothing.
CAPTURED_SOLDAINI = b"User-agent: GPTBot\nDisallow: /facts/\n"
MIRROR_SOLDAINI = b"User-agent: *\nAllow: /\n"
# kyleclo.com had no robots.txt at crawl time (404: no rules); today's file reserves everything.
MIRROR_KYLECLO = b"User-agent: GPTBot\nDisallow: /\n"
# joe.cat: no capture in the crawl, so today's file decides.
MIRROR_JOECAT = b"User-agent: CCBot\nDisallow: /\n"


def _response(writer: WARCWriter, uri: str, status: str, body: bytes, content_type: str, date: str):
    http = StatusAndHeaders(status, [("Content-Type", content_type)], protocol="HTTP/1.1")
    return writer.create_warc_record(
        uri, "response", payload=io.BytesIO(body), http_headers=http, warc_headers_dict={"WARC-Date": date}
    )


@pytest.fixture(scope="module")
def crawl(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("robots-crawl")
    pages = {}
    with open(require_fixture("webarchive/dolma/sample-0000.warc.gz"), "rb") as stream:
        for record in ArchiveIterator(stream):
            uri = record.rec_headers.get_header("WARC-Target-URI")
            if record.rec_type == "response" and uri in PAGES:
                pages[uri] = (record.content_stream().read(), record.rec_headers.get_header("WARC-Date"))
    assert sorted(pages) == sorted(PAGES)
    mirror = tmp / "mirror"
    warc_path = mirror / "crawl.opencorpus.invalid" / "test" / "CC-TEST-robots-00000.warc.gz"
    warc_path.parent.mkdir(parents=True)
    with open(warc_path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for uri in PAGES:  # the pages first: the captures come after them in the file
            body, date = pages[uri]
            writer.write_record(_response(writer, uri, "200 OK", body, "text/html; charset=utf-8", date))
        robots = _response(writer, "https://soldaini.net/robots.txt", "200 OK", CAPTURED_SOLDAINI,
                           "text/plain", "2024-05-01T10:00:00Z")  # fmt: skip
        writer.write_record(robots)
        writer.write_record(_response(writer, "https://kyleclo.com/robots.txt", "404 Not Found", b"not found",
                                      "text/html", "2024-05-01T10:00:01Z"))  # fmt: skip
    for host, body in (("soldaini.net", MIRROR_SOLDAINI), ("kyleclo.com", MIRROR_KYLECLO), ("joe.cat", MIRROR_JOECAT)):
        (mirror / host).mkdir()
        (mirror / host / "robots.txt").write_bytes(body)
    catalog = tmp / "catalog"
    catalog.mkdir()
    (catalog / "crawl.yaml").write_text(
        f"name: crawl\nkind: warc\noptions: {{warcs: [{CRAWL_URL}]}}\n"
        "license: {spdx: CC-BY-4.0, evidence: test crawl}\n"
    )
    home, store = run_plain(catalog, tmp / "home", mirror)
    robots_id = robots.rec_headers.get_header("WARC-Record-ID")
    return store, robots_id


def outcomes(store) -> dict[str, tuple]:
    with store.connection() as conn:
        found = conn.execute(
            "SELECT r.url, o.stage, o.outcome, o.reason, o.value, o.detail FROM outcomes o "
            "JOIN raw_records r USING (doc_id) WHERE o.source = 'crawl'"
        ).fetchall()
    return {url: rest for url, *rest in found}


def test_the_crawls_robots_txt_removes_the_page_it_reserves_and_is_named(crawl):
    store, robots_id = crawl
    found = outcomes(store)
    stage, outcome, reason, value, detail = found["https://soldaini.net/facts/"]
    assert (stage, outcome, reason, value) == ("documents", "removed", "opt-out:robots-ai", "robots-ai")
    assert detail == (
        "robots.txt disallows /facts/ to GPTBot; robots.txt captured by the crawl: "
        f"{CRAWL_URL} record {robots_id}, 2024-05-01T10:00:00Z, HTTP 200"
    )


def test_capture_beats_todays_file_both_ways_and_the_mirror_decides_only_without_one(crawl):
    store, _ = crawl
    found = outcomes(store)
    # Not reserved by the capture, nor by today's file: past the page-rights step (the quality
    # rules decide: a page of links and names).
    assert found["https://soldaini.net/lineage/"][:3] == ["documents", "filtered", "gopher.alpha_words"]
    # The crawl saw no robots.txt (404); today's file reserving "/" does not apply to it: the
    # page goes on to the quality rules (a page of link lines, without sentence punctuation).
    assert found["https://kyleclo.com/"][:3] == ["documents", "filtered", "fineweb.line_punct_ratio"]
    # No capture of joe.cat in the crawl: the mirror's file decides, and says so.
    stage, outcome, reason, _, detail = found["https://joe.cat/"]
    assert (stage, outcome, reason) == ("documents", "removed", "opt-out:robots-ai")
    assert detail == (
        "robots.txt disallows / to CCBot; robots.txt fetched from https://joe.cat/robots.txt "
        "(mirror or live; the crawl holds no capture of it)"
    )


def test_the_captures_are_skipped_as_not_content(crawl):
    store, _ = crawl
    found = outcomes(store)
    assert tuple(found["https://soldaini.net/robots.txt"][:4]) == ("documents", "skipped", "warc.robots_txt", "200")
    assert tuple(found["https://kyleclo.com/robots.txt"][:4]) == ("documents", "skipped", "warc.robots_txt", "404")
    with store.connection() as conn:
        sql = "SELECT outcome, count(*) FROM outcomes WHERE source = 'crawl' GROUP BY 1"
        counts = dict(conn.execute(sql).fetchall())
    assert sum(counts.values()) == 6 and counts["skipped"] == 2
    assert conservation_problems(store) == []  # raw = kept + filtered + ... + skipped, per partition


@pytest.mark.parametrize(
    ("target", "status", "capture"),
    [
        ("https://example.org/robots.txt", "200", True),
        ("http://example.org/robots.txt", "404", True),  # no file: no rules (RFC 9309 2.3.1.3)
        ("https://example.org/robots.txt", "503", False),  # unreachable: says nothing definite
        ("https://example.org/robots.txt", "301", False),
        ("https://example.org/robots.txt?x=1", "200", False),
        ("https://example.org/a/robots.txt", "200", False),
        ("https://example.org/robots.txt", None, False),  # no HTTP head (resource record)
    ],
)
def test_what_counts_as_a_robots_txt_capture(target, status, capture):
    assert is_robots_txt_capture(target, status) is capture
