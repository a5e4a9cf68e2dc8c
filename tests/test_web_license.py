"""Licence detection in real web pages: the HTML benchmark pages and the WARC captures.

Expected values come from the fixtures' `cc_license_index.json` files (which pages carry
`rel="license"` and which CC licence paths appear in their bytes), made exact here: the
SPDX id each `rel="license"` page must get, written out row by row.
"""

from __future__ import annotations

import gzip
import json
import re
from pathlib import Path

import pytest
from conftest import require_fixture
from warcio.archiveiterator import ArchiveIterator

from opencorpus_dagster.licensing.web import (
    LicenseSignal,
    PageLicense,
    detect_page_licenses,
    restrictiveness,
)

# Every page of html_extraction/cc_license_index.json with has_rel_license=true, and the SPDX
# id it must get. The index lists CC paths without their port; the ported ids below are the
# SPDX ids of the ports the pages link (/de/, /at/); `/by-sa/3.0/us/` has no SPDX id of its own.
REL_LICENSE_PAGES = {
    "mozilla-readability-test-pages/pages/001/source.html.gz": "CC-BY-SA-3.0",
    "mozilla-readability-test-pages/pages/002/source.html.gz": "CC-BY-SA-3.0",
    "mozilla-readability-test-pages/pages/ebb-org/source.html.gz": "CC-BY-SA-3.0",
    # rel=license points at mozilla.org's licensing page, whose text says only "Creative Commons".
    "mozilla-readability-test-pages/pages/firefox-nightly-blog/source.html.gz": None,
    "mozilla-readability-test-pages/pages/wikipedia-2/source.html.gz": "CC-BY-SA-3.0",
    "mozilla-readability-test-pages/pages/wikipedia-3/source.html.gz": "CC-BY-SA-3.0",
    # rel=license points at a Wikipedia page; its link text names the licence and version.
    "mozilla-readability-test-pages/pages/wikipedia-4/source.html.gz": "CC-BY-SA-4.0",
    "mozilla-readability-test-pages/pages/wikipedia/source.html.gz": "CC-BY-SA-3.0",
    "trafilatura-eval-subset/html/1hundetagebuch.wordpress.com.langer.html.gz": "CC-BY-3.0",
    "trafilatura-eval-subset/html/andreabottlinger.wordpress.com.arent.html.gz": "CC-BY-NC-ND-3.0-DE",
    # <link rel="license"> to the site's imprint page: a licence signal that names no licence.
    "trafilatura-eval-subset/html/bsi.de-ki.html.gz": None,
    "trafilatura-eval-subset/html/colours-of-the-soul.alhelm.net.html.gz": "CC-BY-NC-ND-3.0-DE",
    "trafilatura-eval-subset/html/creativecommons.org.html.gz": "CC-BY-4.0",
    "trafilatura-eval-subset/html/gormulus.wordpress.com.durfen.html.gz": "CC-BY-NC-SA-3.0-DE",
    "trafilatura-eval-subset/html/lernpfadprismen.wordpress.com.masse.html.gz": "CC-BY-NC-ND-4.0",
    "trafilatura-eval-subset/html/maescot.de.schafskunde.html.gz": "CC-BY-NC-ND-3.0",
    "trafilatura-eval-subset/html/mediaarchitecture.de.weber.html.gz": "CC-BY-NC-SA-2.0-DE",
    "trafilatura-eval-subset/html/murdeltas.wordpress.com.politcamp.html.gz": "CC-BY-3.0-AT",
    # Also links /by-sa/3.0/ without rel: the rel=license port /de/ wins.
    "trafilatura-eval-subset/html/ritinardo.wordpress.com.btw17.html.gz": "CC-BY-SA-3.0-DE",
    "trafilatura-eval-subset/html/stackoverflow.com.rust.html.gz": "CC-BY-SA-4.0",
    "trafilatura-eval-subset/html/wolfgangschmale.eu.duchhardt.html.gz": "CC-BY-NC-ND-4.0",
}

# Index entries whose CC paths are not links to the page's licence, so the detector (rightly)
# finds none: the index was computed from raw bytes.
NOT_A_PAGE_LICENCE = {
    "mozilla-readability-test-pages/pages/liberation-1/source.html.gz": "CSS framework credit in an HTML comment",
    "mozilla-readability-test-pages/pages/medicalnewstoday/source.html.gz": "JS library licence in a script comment",
    "trafilatura-eval-subset/html/singapur-reiseinfo.de.abc.html.gz": "photo credits in running text",
    "trafilatura-eval-subset/html/villacc.de.galaxy.html.gz": "map tile attribution inside a script string",
}

CC_PATH = re.compile(r"creativecommons\.org/((?:licenses|publicdomain)/[a-z-]+/\d\.\d)", re.IGNORECASE)


def html_index() -> list[dict]:
    return json.loads(require_fixture("html_extraction/cc_license_index.json").read_text())


def read_page(relative: str) -> bytes:
    return gzip.decompress(require_fixture(relative).read_bytes())


def cc_paths(result: PageLicense) -> set[str]:
    """The index's notation (`licenses/by-sa/3.0`, no port) for the page's CC link signals."""
    paths = set()
    for signal in result.signals:
        match = CC_PATH.search(signal.raw)
        if match is not None and signal.kind in ("rel-license-link", "cc-link"):
            paths.add(match.group(1).lower())
    return paths


def test_rel_license_table_covers_the_index():
    expected = {e["file"].removeprefix("html_extraction/") for e in html_index() if e["has_rel_license"]}
    assert set(REL_LICENSE_PAGES) == expected
    assert len(expected) == 21


@pytest.mark.parametrize("relative", sorted(REL_LICENSE_PAGES))
def test_rel_license_page_gets_expected_spdx(relative):
    result = detect_page_licenses(read_page(f"html_extraction/{relative}"))

    assert result.license == REL_LICENSE_PAGES[relative]
    assert any(s.kind == "rel-license-link" for s in result.signals)
    if result.license is None:
        assert result.rule == "unrecognised-licence-signal"
    else:
        assert result.rule == "rel-license"


@pytest.mark.parametrize("relative", sorted(REL_LICENSE_PAGES))
def test_rel_license_expectations_agree_with_the_index(relative):
    """The table is the index made exact: same licence family and version, port aside."""
    entry = next(e for e in html_index() if e["file"] == f"html_extraction/{relative}")
    spdx = REL_LICENSE_PAGES[relative]
    if not entry["cc_links"]:
        return
    family_version = re.sub(r"-(?:DE|AT|US)$", "", spdx)
    index_ids = {"CC-" + path.split("/")[1].upper() + "-" + path.split("/")[2] for path in entry["cc_links"]}
    assert family_version in index_ids


def test_cc_link_agreement_with_the_index(capsys):
    entries = [e for e in html_index() if e["cc_links"]]
    agree, disagree = [], {}
    for entry in entries:
        result = detect_page_licenses(read_page(entry["file"]))
        found = cc_paths(result)
        if found == set(entry["cc_links"]):
            agree.append(entry["file"])
        else:
            disagree[entry["file"].removeprefix("html_extraction/")] = (sorted(found), entry["cc_links"])
    with capsys.disabled():
        print(f"\nCC-link agreement with html_extraction/cc_license_index.json: {len(agree)}/{len(entries)}")
    assert len(entries) == 31
    assert len(agree) == 27
    assert set(disagree) == set(NOT_A_PAGE_LICENCE)
    assert all(found == [] for found, _ in disagree.values())


@pytest.mark.parametrize("relative", sorted(NOT_A_PAGE_LICENCE))
def test_cc_urls_outside_links_are_not_signals(relative):
    raw = read_page(f"html_extraction/{relative}")
    assert b"creativecommons.org/licenses/" in raw  # the URL is there ...
    result = detect_page_licenses(raw)
    assert (result.license, result.rule, result.signals) == (None, "no-licence-signal", [])  # ... not as a link


def test_rights_meta_all_rights_reserved_is_evidence():
    result = detect_page_licenses(read_page("html_extraction/trafilatura-eval-subset/html/petri-heil-ch-hechte.html.gz"))
    assert result.signals == [LicenseSignal("meta", "LicenseRef-Copyrighted", "All rights reserved", "meta[name=dc.rights]")]
    assert (result.license, result.rule) == ("LicenseRef-Copyrighted", "other-signal")


# --- WARC captures ---------------------------------------------------------------------------

# (WARC, target URI) -> (licence, rule). The first five are the entries of
# webarchive/cc_license_index.json; the 2024/03/28 post links its CC BY 4.0 footer with a
# relative href (/licenses/by/4.0/), which the index (absolute URLs only) does not count.
WARC_LICENSED = {
    ("commoncrawl-whirlwind/whirlwind.warc.gz", "https://an.wikipedia.org/wiki/Escopete"): ("CC-BY-SA-4.0", "rel-license"),
    ("dolma/sample-0000.warc.gz", "https://soldaini.net/"): ("CC-BY-4.0", "rel-license"),
    # Links CC BY 2.0/3.0/4.0, the PD mark and BY-NC-SA 4.0 (an image credit): the most restrictive.
    ("dolma/sample-0001.warc.gz", "https://creativecommons.org/"): ("CC-BY-NC-SA-4.0", "other-signals-most-restrictive"),
    # CC BY 3.0 once, CC BY 4.0 twice (body + footer): equally restrictive, the most frequent wins.
    ("dolma/sample-0001.warc.gz", "https://creativecommons.org/mission/"): ("CC-BY-4.0", "other-signals-most-restrictive"),
    (
        "dolma/sample-0001.warc.gz",
        "https://creativecommons.org/2024/04/23/cc-at-wipo-slow-progress-on-copyright-exceptions-for-cultural-heritage-institutions/",
    ): ("CC-BY-4.0", "other-signal"),
    (
        "dolma/sample-0001.warc.gz",
        "https://creativecommons.org/2024/03/28/cc-joins-civil-society-letter-urging-u-s-to-support-openness-and-transparency-in-ai/",
    ): ("CC-BY-4.0", "other-signal"),
}


def warc_responses(fixtures_dir: Path) -> list[tuple[str, str, bytes]]:
    responses = []
    for name in ("commoncrawl-whirlwind/whirlwind.warc.gz", "dolma/sample-0000.warc.gz", "dolma/sample-0001.warc.gz"):
        with open(fixtures_dir / "webarchive" / name, "rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type == "response":
                    uri = record.rec_headers.get_header("WARC-Target-URI")
                    responses.append((name, uri, record.content_stream().read()))
    return responses


@pytest.fixture(scope="module")
def warc_results(fixtures_dir):
    return [(name, uri, detect_page_licenses(body, uri)) for name, uri, body in warc_responses(fixtures_dir)]


def test_warc_index_entries_are_in_the_expectations():
    index = json.loads(require_fixture("webarchive/cc_license_index.json").read_text())
    indexed = {(e["file"].removeprefix("webarchive/"), e["uri"]) for e in index}
    assert len(indexed) == 5
    assert {uri for _, uri in set(WARC_LICENSED) - indexed} == {
        "https://creativecommons.org/2024/03/28/cc-joins-civil-society-letter-urging-u-s-to-support-openness-and-transparency-in-ai/"
    }
    for entry in index:
        licence, rule = WARC_LICENSED[(entry["file"].removeprefix("webarchive/"), entry["uri"])]
        assert (rule.startswith("rel-license")) == entry["has_rel_license"]


def test_warc_pages_get_expected_licences(warc_results):
    licensed = {(name, uri): (r.license, r.rule) for name, uri, r in warc_results if r.license is not None}
    assert licensed == WARC_LICENSED
    assert len(warc_results) == 38
    unlicensed = [r for _, _, r in warc_results if r.license is None]
    assert all(r.rule == "no-licence-signal" and r.signals == [] for r in unlicensed)


def test_warc_whirlwind_signals_and_evidence(warc_results):
    (result,) = [r for _, uri, r in warc_results if uri == "https://an.wikipedia.org/wiki/Escopete"]
    assert result.signals == [
        LicenseSignal("rel-license-link", "CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0/deed.an", "link[rel=license]"),
        LicenseSignal("cc-link", "CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0/", "a[href]"),
    ]
    assert result.evidence == "rel-license: link[rel=license] https://creativecommons.org/licenses/by-sa/4.0/deed.an"


# --- edge cases: the parts of the rule no fixture page exercises ------------------------------


def page(head: str = "", body: str = "") -> str:
    return f"<!DOCTYPE html><html><head><title>t</title>{head}</head><body><p>text</p>{body}</body></html>"


@pytest.mark.parametrize(
    ("html", "page_url", "license", "rule", "kinds"),
    [
        # rel holds several tokens, in any case
        (page(body='<a rel="External LICENSE" href="https://creativecommons.org/licenses/by/4.0/">CC BY</a>'), None,
         "CC-BY-4.0", "rel-license", ["rel-license-link"]),
        # a ported licence SPDX does not list maps to the unported one (port stays in raw)
        (page(body='<a rel="license" href="http://creativecommons.org/licenses/by-sa/2.5/it/">x</a>'), None,
         "CC-BY-SA-2.5", "rel-license", ["rel-license-link"]),
        # several rel=license licences: the most restrictive of them, even if a cc-link is stricter
        (page(body='<a rel="license" href="https://creativecommons.org/licenses/by-sa/4.0/">a</a>'
                   '<a rel="license" href="https://creativecommons.org/licenses/by-nc/4.0/">b</a>'
                   '<a href="https://creativecommons.org/licenses/by-nc-nd/4.0/">image</a>'), None,
         "CC-BY-NC-4.0", "rel-license-most-restrictive", ["rel-license-link", "rel-license-link", "cc-link"]),
        # a rel=license that names nothing falls back to the other signals
        (page(body='<a rel="license" href="/terms">Terms</a><a href="https://creativecommons.org/publicdomain/zero/1.0/">CC0</a>'),
         None, "CC0-1.0", "other-signal", ["rel-license-link", "cc-link"]),
        # relative and protocol-relative hrefs are resolved against the page URL
        (page(body='<a href="/licenses/by-nd/3.0/">x</a>'), "https://creativecommons.org/about/",
         "CC-BY-ND-3.0", "other-signal", ["cc-link"]),
        (page(body='<a href="/licenses/by-nd/3.0/">x</a>'), "https://example.org/about/",
         None, "no-licence-signal", []),
        # meta fields, in any case, by name or property
        (page(head='<meta name="DC.rights" content="https://creativecommons.org/licenses/by-sa/4.0/">'), None,
         "CC-BY-SA-4.0", "other-signal", ["meta"]),
        (page(head='<meta name="dcterms.license" content="CC BY-NC-SA 3.0">'), None,
         "CC-BY-NC-SA-3.0", "other-signal", ["meta"]),
        (page(head='<meta property="og:license" content="http://creativecommons.org/licenses/by/3.0/de/">'), None,
         "CC-BY-3.0-DE", "other-signal", ["meta"]),
        (page(head='<meta name="license" content="Some rights reserved">'), None,
         None, "unrecognised-licence-signal", ["meta"]),
        # JSON-LD: string, object with url, list, nested in @graph; broken JSON-LD is ignored
        (page(head='<script type="application/ld+json">{"@type":"Article","license":"https://creativecommons.org/licenses/by/4.0/"}</script>'),
         None, "CC-BY-4.0", "other-signal", ["json-ld"]),
        (page(head='<script type="application/ld+json">{"@graph":[{"@type":"WebPage","license":{"@type":"CreativeWork","url":"https://creativecommons.org/licenses/by-sa/3.0/"}}]}</script>'),
         None, "CC-BY-SA-3.0", "other-signal", ["json-ld"]),
        (page(head='<script type="application/ld+json">[{"license":["https://creativecommons.org/licenses/by/4.0/","https://creativecommons.org/licenses/by-nd/4.0/"]}]</script>'),
         None, "CC-BY-ND-4.0", "other-signals-most-restrictive", ["json-ld", "json-ld"]),
        (page(head='<script type="application/ld+json">{"license": "https://creativecommons.org/licenses/by/4.0/",</script>'),
         None, None, "no-licence-signal", []),
        # broken markup still yields its links
        ('<html><body><div><a rel=license href=http://creativecommons.org/licenses/by/3.0/>x<p><table><tr>', None,
         "CC-BY-3.0", "rel-license", ["rel-license-link"]),
        # nothing to parse
        ("", None, None, "no-licence-signal", []),
        (b"\x00\x01\x02", None, None, "no-licence-signal", []),
        ('<?xml version="1.0" encoding="ISO-8859-1"?><html><body><a rel="license" href="https://creativecommons.org/licenses/by/4.0/">x</a></body></html>',
         None, "CC-BY-4.0", "rel-license", ["rel-license-link"]),
    ],
)  # fmt: skip
def test_edge_cases(html, page_url, license, rule, kinds):
    result = detect_page_licenses(html, page_url)
    assert (result.license, result.rule) == (license, rule)
    assert [s.kind for s in result.signals] == kinds


def test_edge_case_in_a_real_page():
    """A JSON-LD licence spliced into a real page with no licence signal of its own."""
    raw = read_page("html_extraction/mozilla-readability-test-pages/pages/medicalnewstoday/source.html.gz")
    tag = b'<script type="application/ld+json">{"license": {"@id": "https://creativecommons.org/licenses/by-nc/4.0/"}}</script>'
    spliced = raw.replace(b"</head>", tag + b"</head>", 1)
    assert spliced != raw
    result = detect_page_licenses(spliced)
    assert result.signals == [
        LicenseSignal("json-ld", "CC-BY-NC-4.0", "https://creativecommons.org/licenses/by-nc/4.0/", "script[type=application/ld+json]")
    ]
    assert (result.license, result.rule) == ("CC-BY-NC-4.0", "other-signal")


@pytest.mark.parametrize(
    ("spdx", "rank"),
    [
        ("CC-BY-NC-ND-4.0", 4), ("CC-BY-ND-3.0-DE", 4), ("CC-BY-NC-SA-2.0-DE", 3), ("CC-BY-NC-4.0", 3),
        ("CC-BY-SA-3.0", 2), ("CC-SA-1.0", 2), ("CC-BY-4.0", 1), ("CC-BY-3.0-IGO", 1), ("CC0-1.0", 0),
        ("LicenseRef-PublicDomain", 0), ("CC-PDDC", 0), ("LicenseRef-CC-NC-1.0", 3),
        ("LicenseRef-Copyrighted", 5), ("MIT", 5),
    ],
)  # fmt: skip
def test_restrictiveness_order(spdx, rank):
    assert restrictiveness(spdx) == rank
