"""Web and forum sources through the whole pipeline (`opencorpus build`), fetched over loopback HTTP.

Fixture WARCs (Common Crawl + wget captures) and two Stack Exchange dumps; the licence of a web
page is read from the page, a page without one is removed, NC/ND pages are refused by the
default policy, and a kept web row traces back to a byte range that refetches the record.
"""

from __future__ import annotations

import io
import json

import pytest
from cli_runner import REPO, build, run_opencorpus
from conftest import current_manifest, require_fixture
from warcio.archiveiterator import ArchiveIterator

from opencorpus_dagster.connectors.warc import record_location
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

CATALOG = REPO / "tests" / "catalogs" / "web"
EXPECTED_BY_CC_PATH = {"licenses/by-sa/4.0": "CC-BY-SA-4.0", "licenses/by/4.0": "CC-BY-4.0"}


@pytest.fixture(scope="module")
def web(tmp_path_factory, http_mirror):
    home = tmp_path_factory.mktemp("web")
    summary = json.loads(build(home, http_mirror, CATALOG).stdout)
    return home, summary, LineageStore.at(home / "lineage", read_only=True)


def rows(store, sql, *params):
    with store.connection() as conn:
        return conn.execute(sql, list(params)).fetchall()


def test_build_succeeds_and_every_record_has_one_outcome(web):
    _, summary, store = web
    assert summary["failed"] == []
    assert sum(summary["outcomes"].values()) == summary["records_in"]
    per_source = dict(rows(store, "SELECT source, sum(records_in) FROM partitions WHERE stage = 'raw' GROUP BY 1"))
    # WARCs: 3 warcinfo + 3 metadata + 38 requests + 4 non-HTML responses + 38 HTML responses.
    # Stack Exchange: one record per question (225 + 663) and one skip per non-Q&A row (40 + 119);
    # answers are folded into their question's record.
    assert per_source == {"webarchive": 86, "stackexchange": 1047}
    skipped = dict(rows(store, "SELECT reason, count(*) FROM outcomes WHERE outcome = 'skipped' GROUP BY 1"))
    assert skipped == {"warc.warcinfo": 3, "warc.metadata": 3, "warc.request": 38, "warc.non_html": 4, "stackexchange.post_type": 159}


def test_rel_license_pages_get_the_linked_licence(web):
    _, _, store = web
    index = json.loads(require_fixture("webarchive/cc_license_index.json").read_text())
    checked = 0
    for entry in index:
        if not entry["has_rel_license"]:
            continue
        (expected,) = {EXPECTED_BY_CC_PATH[link] for link in entry["cc_links"]}
        (license, evidence), = rows(
            store,
            "SELECT d.license, d.license_evidence FROM documents d JOIN raw_records r USING (source, partition, doc_id) WHERE r.url = ?",
            entry["uri"],
        )
        assert license == expected
        assert "rel-license" in evidence
        checked += 1
    assert checked == 2


def test_nc_pages_are_refused_and_pages_without_licence_removed(web):
    _, _, store = web
    ((reason, value),) = rows(
        store,
        "SELECT o.reason, o.value FROM outcomes o JOIN raw_records r USING (source, partition, doc_id) WHERE r.url = 'https://creativecommons.org/'",
    )
    assert (reason, value) == ("license.denied", "CC-BY-NC-SA-4.0")
    unknown = rows(store, "SELECT detail FROM outcomes WHERE source = 'webarchive' AND reason = 'license.unknown'")
    assert len(unknown) == 32
    assert all(detail.startswith("no licence found") for (detail,) in unknown)


def test_a_kept_web_row_refetches_by_byte_range(web, http_mirror, tmp_path):
    home, _, store = web
    ((doc_id, url),) = rows(
        store,
        "SELECT o.doc_id, r.url FROM outcomes o JOIN raw_records r USING (source, partition, doc_id) "
        "WHERE o.outcome = 'kept' AND r.url = 'https://soldaini.net/'",
    )
    result = run_opencorpus("trace", "--doc-id", doc_id, home=home)
    line = next(x for x in result.stdout.splitlines() if x.startswith("upstream uri: "))
    upstream_uri = line.removeprefix("upstream uri: ")
    warc_url, offset, length = record_location(upstream_uri)
    assert warc_url == "https://fixtures.opencorpus.invalid/dolma/sample-0000.warc.gz"
    assert f"#offset={offset}&length={length}" in upstream_uri
    assert "licence: CC-BY-4.0" in result.stdout
    data = Fetcher(tmp_path, [Mirror.parse(http_mirror)]).fetch_range(warc_url, offset, length)
    assert len(data) == length
    records = [
        (record.rec_headers.get_header("WARC-Target-URI"), record.content_stream().read())
        for record in ArchiveIterator(io.BytesIO(data))
    ]
    ((target, payload),) = records
    assert target == url
    assert b"soldaini" in payload.lower()


def test_stack_exchange_questions_are_kept_under_cc_by_sa(web):
    home, summary, store = web
    licences = dict(rows(store, "SELECT license, count(*) FROM documents WHERE source = 'stackexchange' AND passed GROUP BY 1"))
    assert set(licences) == {"CC-BY-SA-3.0"}
    questions = rows(store, "SELECT count(*) FROM raw_records WHERE source = 'stackexchange'")[0][0]
    assert questions == 225 + 663
    manifest = current_manifest(home)
    assert manifest["totals"]["sources"]["stackexchange"] == summary["outcomes"]["kept"] - manifest["totals"]["sources"]["webarchive"]
