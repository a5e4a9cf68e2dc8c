"""The MediaWiki dump connector on the real dump samples in ../shared/fixtures/mediawiki."""

from __future__ import annotations

import bz2
import gzip
import re
from collections import Counter
from pathlib import Path

import pytest
from fixture_mirror import ENWIKI_DUMP, ENWIKI_TABLES_DUMP, FIXTURE_HOST
from pydantic import ValidationError

from opencorpus_dagster.connectors.base import UnreadableInput, connector_class
from opencorpus_dagster.connectors.mediawiki import (
    CC_BY_SA_4_FROM,
    MediaWikiConnector,
    partition_key_for,
)
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.text.wikitext import wikitext_to_text
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

ENWIKI = f"https://{ENWIKI_DUMP}"
ENWIKI_TABLES = f"https://{ENWIKI_TABLES_DUMP}"
BGWIKI = "https://dumps.wikimedia.org/bgwiki/latest/bgwiki-latest-pages-articles.xml.bz2"
SIMPLEWIKI_HISTORY = f"https://{FIXTURE_HOST}/wikimedia-refinery/simplewiki-pages-meta-history.xml"
COMMONSWIKI_HISTORY = f"https://{FIXTURE_HOST}/wikimedia-refinery/commonswiki-pages-meta-history.xml"
ENWIKI_FIXTURE = "mediawiki/gensim/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
TABLES_FIXTURE = "mediawiki/gensim/enwiki-table-markup.xml.bz2"
SIMPLEWIKI_FIXTURE = "mediawiki/history-samples-wikimedia-refinery/MediawikiDumperOutputTest.Simplewiki.Sample.xml"


@pytest.fixture(scope="module")
def fetcher(tmp_path_factory, fixture_mirror) -> Fetcher:
    return Fetcher(cache_dir=tmp_path_factory.mktemp("cache"), mirrors=[Mirror(base=str(fixture_mirror))])


@pytest.fixture(scope="module")
def enwiki_items(fetcher) -> list[RawRecord | Decision]:
    return read(fetcher, dumps=[ENWIKI])


def read(fetcher: Fetcher, **options) -> list[RawRecord | Decision]:
    connector = MediaWikiConnector(MediaWikiConnector.Options(**options))
    (unit,) = connector.units()
    return list(connector.read(unit, fetcher))


def tally(items) -> Counter:
    """(kind, outcome/reason) -> count, e.g. ("record", None) or ("skipped", "mediawiki.redirect")."""
    return Counter(
        ("record", None) if isinstance(item, RawRecord) else (item.outcome.value, item.reason) for item in items
    )


def by_id(items) -> dict:
    return {item.source_record_id: item for item in items}


# -- registry and options ------------------------------------------------------------------------


def test_kind_is_registered():
    assert connector_class("mediawiki") is MediaWikiConnector


@pytest.mark.parametrize(
    ("url", "key"),
    [
        (ENWIKI, "enwiki-latest-pages-articles1.xml-p000000010p000030302"),
        (BGWIKI, "bgwiki-latest-pages-articles"),
        (SIMPLEWIKI_HISTORY, "simplewiki-pages-meta-history"),
        ("https://dumps.wikimedia.org/ukwiki/20230501/ukwiki-20230501-pages-articles.xml.gz", "ukwiki-20230501-pages-articles"),
        ("file:///data/my%20wiki/dump.xml.bz2", "dump"),
    ],
)
def test_partition_key_from_file_name(url, key):
    assert partition_key_for(url) == key


def test_units_in_declared_order_with_explicit_keys():
    options = MediaWikiConnector.Options(dumps=[BGWIKI, ENWIKI], partition_keys={ENWIKI: "enwiki-part1"})
    units = MediaWikiConnector(options).units()
    assert [(u.key, u.urls) for u in units] == [("bgwiki-latest-pages-articles", (BGWIKI,)), ("enwiki-part1", (ENWIKI,))]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"dumps": []}, "name the dump files in dumps, or a Wikimedia dump index in dump_index"),
        ({"dumps": [ENWIKI], "revision": "all"}, "Extra inputs are not permitted"),
        ({"dumps": [ENWIKI], "revisions": "some"}, "'latest' or 'all'"),
        ({"dumps": [ENWIKI], "partition_keys": {BGWIKI: "bg"}}, "not in dumps"),
        ({"dumps": [ENWIKI, ENWIKI]}, "same URL twice"),
        (
            {"dumps": ["https://a.example/x/dump.xml.bz2", "https://b.example/y/dump.xml.gz"]},
            "both get the partition key 'dump'",
        ),
        ({"dumps": [ENWIKI], "partition_keys": {ENWIKI: "en wiki"}}, "may only use letters"),
    ],
)
def test_bad_options_are_rejected_with_a_precise_message(options, message):
    with pytest.raises(ValidationError, match=re.escape(message)):
        MediaWikiConnector.Options(**options)


# -- enwiki --------------------------------------------------------------------------------------


def test_enwiki_counts(enwiki_items):
    items = enwiki_items
    # 206 pages: 100 redirects, of which one (page 724) is in the Wikipedia: namespace and is
    # reported as a namespace skip, since the namespace is checked first.
    assert tally(items) == {
        ("record", None): 106,
        ("skipped", "mediawiki.redirect"): 99,
        ("skipped", "mediawiki.namespace"): 1,
    }
    skipped = by_id(item for item in items if isinstance(item, Decision))
    assert skipped["724"].value == "4"
    assert skipped["10"].value == "Computer accessibility"
    assert skipped["10"].upstream_uri == f"{ENWIKI}#page=10"
    assert skipped["10"].stage == "raw"


def test_enwiki_article_record(enwiki_items):
    anarchism = by_id(enwiki_items)["12"]
    url = "https://en.wikipedia.org/wiki/Anarchism"
    assert anarchism.title == "Anarchism"
    assert anarchism.url == url
    assert anarchism.upstream_uri == f"{ENWIKI}#page=12&revision=716551092"
    assert anarchism.payload_type == PayloadType.WIKITEXT
    assert anarchism.payload.startswith("{{Redirect2|Anarchist|Anarchists|the fictional character|Anarchist (comics)")
    assert anarchism.license == "CC-BY-SA-3.0"
    assert anarchism.license_evidence == (
        "Wikimedia terms of use: text contributed before 2023-06-07 "
        "(revision timestamp 2016-04-22T10:19:33Z) in dump enwiki"
    )
    assert anarchism.attribution == (
        "Anarchism, https://en.wikipedia.org/wiki/Anarchism, revision 716551092 "
        "(https://en.wikipedia.org/w/index.php?oldid=716551092); "
        "authors: https://en.wikipedia.org/w/index.php?title=Anarchism&action=history"
    )
    assert anarchism.metadata == {
        "dbname": "enwiki",
        "page_id": 12,
        "revision_id": 716551092,
        "timestamp": "2016-04-22T10:19:33Z",
        "namespace": 0,
        "contributor": "85.193.216.88",
    }
    text = wikitext_to_text(anarchism.payload)
    assert text.startswith(
        "Anarchism is a political philosophy that advocates self-governed societies based on voluntary "
        "institutions. These are often described as stateless societies, although several authors have "
        "defined them more specifically as institutions based on non-hierarchical free associations."
    )
    assert "\n\nEtymology and terminology\n\nThe term anarchism is a compound word" in text
    for markup in ("{{", "}}", "[[", "]]", "<ref", "|}", "{|", "'''", "Category:"):
        assert markup not in text


def test_titles_are_url_quoted_like_mediawiki(enwiki_items):
    records = by_id(enwiki_items)
    assert records["303"].title == "Alabama"
    titled = {r.title: r.url for r in records.values() if isinstance(r, RawRecord)}
    assert titled["An American in Paris"] == "https://en.wikipedia.org/wiki/An_American_in_Paris"
    assert titled["Academy Award for Best Production Design"].endswith("/wiki/Academy_Award_for_Best_Production_Design")


def test_table_markup_dump_without_siteinfo(fetcher):
    records = read(fetcher, dumps=[ENWIKI_TABLES])
    assert [r.title for r in records] == [
        "Constructive vote of no confidence",
        "List of Prison Break characters",
        "Academy Award for Best Production Design",
        "Economy of Estonia",
        "Brahui language",
    ]
    first = records[0]
    # The excerpt has no <siteinfo>: the wiki is named by the dump's file name.
    assert first.url == "https://en.wikipedia.org/wiki/Constructive_vote_of_no_confidence"
    assert first.license_evidence.endswith("in dump enwiki (wiki named by the dump's file name: it has no <siteinfo>)")
    tables = sum(r.payload.count("{|") for r in records)
    assert tables == 20
    for record in records:
        text = wikitext_to_text(record.payload)
        assert text
        for markup in ("{|", "|}", "|-", "||", "!!", "class=", "wikitable"):
            assert markup not in text, (record.title, markup)
    awards = wikitext_to_text(records[2].payload)
    assert awards.startswith("The Academy Award for Best Production Design recognizes achievement for art direction")


# -- other languages and encodings ---------------------------------------------------------------


def test_bgwiki_utf16_dump(fetcher):
    # The file is UTF-16LE with a byte-order mark; lxml reads the BOM, nothing is transcoded.
    items = read(fetcher, dumps=[BGWIKI], namespaces=[0, 4])
    assert [(r.source_record_id, r.title, r.metadata["namespace"]) for r in items] == [
        ("558", "Григориански календар", 0),
        ("559", "Уикипедия:Редактиране на страници", 4),
        ("560", "Уикипедия:Разговори/Архив/2005/октомври-ноември-декември", 4),
    ]
    calendar = items[0]
    assert calendar.url == (
        "https://bg.wikipedia.org/wiki/"
        "%D0%93%D1%80%D0%B8%D0%B3%D0%BE%D1%80%D0%B8%D0%B0%D0%BD%D1%81%D0%BA%D0%B8_"
        "%D0%BA%D0%B0%D0%BB%D0%B5%D0%BD%D0%B4%D0%B0%D1%80"
    )
    assert calendar.metadata["contributor"] == "Ket"
    assert wikitext_to_text(calendar.payload).startswith(
        "Григорианският календар (понякога наричан и Грегориански календар, „нов стил“) е съвременният "
        "международно признат светски календар, на който се основава и международният стандарт ISO 8601."
    )
    assert tally(read(fetcher, dumps=[BGWIKI])) == {("record", None): 1, ("skipped", "mediawiki.namespace"): 2}


@pytest.mark.parametrize(
    ("lang", "counts", "first_id", "first_title", "snippet"),
    [
        ("uk", (27, 3, 5), "13", "Географія", "Геогра́фія, або заст. земле́пис (від γεωγραφία\xa0— опис Землі;"),
        ("hy", (22, 8, 5), "800", "Հայաստան", "Հայաստան, պաշտոնական անվանումը՝ Հայաստանի Հանրապետություն,"),
        ("vi", (25, 5, 5), "2", "Trang Chính", ""),
        ("mr", (23, 7, 5), "1", "औदुंबर (कविता)", "॥ औदुंबर रसग्रहण ॥\n\nएखाद्या कुशल चित्रकाराने"),
    ],
)
def test_multilingual_samples(fetcher, lang, counts, first_id, first_title, snippet):
    url = f"https://dumps.wikimedia.org/{lang}wiki/20230501/{lang}wiki-20230501-pages-articles.xml.bz2"
    items = read(fetcher, dumps=[url])
    records, redirects, other_namespaces = counts
    assert tally(items) == {
        ("record", None): records,
        ("skipped", "mediawiki.redirect"): redirects,
        ("skipped", "mediawiki.namespace"): other_namespaces,
    }
    first = next(item for item in items if isinstance(item, RawRecord))
    assert (first.source_record_id, first.title) == (first_id, first_title)
    assert first.url.startswith(f"https://{lang}.wikipedia.org/wiki/")
    assert first.metadata["dbname"] == f"{lang}wiki"
    assert wikitext_to_text(first.payload).startswith(snippet)
    for record in items:
        if isinstance(record, RawRecord):
            text = wikitext_to_text(record.payload)
            assert "[[" not in text and "<ref" not in text


# -- revisions -------------------------------------------------------------------------------------


def test_history_latest_revision_per_page(fetcher):
    items = read(fetcher, dumps=[SIMPLEWIKI_HISTORY], namespaces=[1, 2])
    assert [(r.source_record_id, r.metadata["revision_id"], r.license) for r in items] == [
        ("45046", 5566832, "CC-BY-SA-3.0"),
        ("279900", 8750749, "CC-BY-SA-3.0"),
    ]
    assert items[0].payload == "Buddyroid{{babel|en}}\n\n[[en:User:Ryulong]]"
    assert items[0].upstream_uri == f"{SIMPLEWIKI_HISTORY}#page=45046&revision=5566832"
    assert items[0].metadata["contributor"] == "206.255.40.218"
    # Default namespaces [0]: a user page and a talk page are not articles.
    assert tally(read(fetcher, dumps=[SIMPLEWIKI_HISTORY])) == {("skipped", "mediawiki.namespace"): 2}


def test_history_all_revisions(fetcher):
    items = read(fetcher, dumps=[SIMPLEWIKI_HISTORY], namespaces=[1, 2], revisions="all")
    # 33 revisions: 18 of page 45046, 15 of page 279900; 4 have suppressed text.
    assert tally(items) == {("record", None): 29, ("skipped", "mediawiki.text_deleted"): 4}
    deleted = sorted(item.source_record_id for item in items if isinstance(item, Decision))
    assert deleted == ["279900@4670942", "279900@4670944", "45046@1714215", "45046@4997170"]
    records = by_id(item for item in items if isinstance(item, RawRecord))
    assert records["45046@266092"].payload == "{{babel|en}}"
    assert records["45046@266092"].upstream_uri == f"{SIMPLEWIKI_HISTORY}#page=45046&revision=266092"
    assert records["45046@360821"].payload == ""  # blanked, not suppressed: the revision's real content
    assert "contributor" not in records["45046@360821"].metadata  # <contributor deleted="deleted" />
    assert all(r.payload_type == PayloadType.WIKITEXT for r in records.values())


TMP_HOST = "dumps.example.org"


def _serve(tmp_path: Path, name: str, xml: str) -> str:
    """Write `xml` in `tmp_path` and return the URL `_tmp_fetcher` serves it under."""
    (tmp_path / name).write_text(xml, encoding="utf-8")
    return _tmp_url(name)


def _tmp_url(name: str) -> str:
    return f"https://{TMP_HOST}/{name}"


def _tmp_fetcher(tmp_path: Path) -> Fetcher:
    """A fetcher whose mirror for `TMP_HOST` is `tmp_path` (catalog URLs are http(s) only)."""
    return Fetcher(tmp_path / "cache", [Mirror(str(tmp_path), host=TMP_HOST)])


def _page_blocks(xml: str) -> list[str]:
    return re.findall(r"  <page>.*?</page>\n", xml, flags=re.DOTALL)


def _edit_page(xml: str, page_id: str, edit) -> str:
    for block in _page_blocks(xml):
        if f"<id>{page_id}</id>" in block.split("<revision>")[0]:
            return xml.replace(block, edit(block))
    raise AssertionError(f"page {page_id} not in sample")


@pytest.fixture(scope="module")
def simplewiki_xml() -> str:
    from conftest import require_fixture

    return require_fixture(SIMPLEWIKI_FIXTURE).read_text(encoding="utf-8")


def test_latest_is_by_timestamp_not_position(tmp_path, simplewiki_xml):
    def move_last_revision_first(block: str) -> str:
        revisions = re.findall(r"    <revision>.*?</revision>\n", block, flags=re.DOTALL)
        return block.replace(revisions[-1], "").replace(revisions[0], revisions[-1] + revisions[0])

    url = _serve(tmp_path, "simplewiki-shuffled.xml", _edit_page(simplewiki_xml, "45046", move_last_revision_first))
    items = read(_tmp_fetcher(tmp_path), dumps=[url], namespaces=[2])
    records = [r for r in items if isinstance(r, RawRecord)]
    assert [(r.source_record_id, r.metadata["revision_id"]) for r in records] == [("45046", 5566832)]


def test_latest_skips_suppressed_text(tmp_path, simplewiki_xml):
    def suppress_latest(block: str) -> str:
        latest = re.findall(r"    <revision>.*?</revision>\n", block, flags=re.DOTALL)[-1]
        hidden = re.sub(r"<text [^>]*>.*?</text>", '<text bytes="-1" deleted="deleted" />', latest, flags=re.DOTALL)
        return block.replace(latest, hidden)

    def suppress_all(block: str) -> str:
        return re.sub(r"<text\b[^>]*/>|<text\b[^>]*>.*?</text>", '<text deleted="deleted" />', block, flags=re.DOTALL)

    xml = _edit_page(_edit_page(simplewiki_xml, "45046", suppress_latest), "279900", suppress_all)
    items = read(_tmp_fetcher(tmp_path), dumps=[_serve(tmp_path, "simplewiki-hidden.xml", xml)], namespaces=[1, 2])
    record, decision = items
    assert (record.source_record_id, record.metadata["revision_id"]) == ("45046", 4997179)
    assert record.payload == "{{babel|en}}\n\n[[en:User:Ryulong]]"
    assert (decision.source_record_id, decision.outcome, decision.reason, decision.value) == (
        "279900",
        Outcome.SKIPPED,
        "mediawiki.text_deleted",
        "15",
    )


# -- licences ------------------------------------------------------------------------------------


def test_licence_follows_the_2023_terms_of_use_cut_over(fetcher):
    items = read(fetcher, dumps=[COMMONSWIKI_HISTORY], namespaces=[6], revisions="all")
    assert Counter(r.license for r in items) == {"CC-BY-SA-3.0": 45, "CC-BY-SA-4.0": 14}
    assert CC_BY_SA_4_FROM == "2023-06-07T00:00:00Z"
    records = by_id(items)
    before, after = records["13327093@766288715"], records["13327093@778379188"]
    assert (before.metadata["timestamp"], before.license) == ("2023-05-24T02:24:01Z", "CC-BY-SA-3.0")
    assert (after.metadata["timestamp"], after.license) == ("2023-06-29T11:25:41Z", "CC-BY-SA-4.0")
    assert after.license_evidence == (
        "Wikimedia terms of use: text contributed on or after 2023-06-07 "
        "(revision timestamp 2023-06-29T11:25:41Z) in dump commonswiki"
    )
    assert after.url == (
        "https://commons.wikimedia.org/wiki/"
        "File:Goddess_Bhadrakali_Worshipped_by_the_Gods-_from_a_tantric_Devi_series_-_Google_Art_Project.jpg"
    )


def test_catalog_licence_override(fetcher):
    items = read(fetcher, dumps=[SIMPLEWIKI_HISTORY], namespaces=[1, 2], license="CC-BY-SA-4.0")
    assert {(r.license, r.license_evidence) for r in items} == {("CC-BY-SA-4.0", "catalog override")}


def test_non_wikimedia_wiki_states_no_licence(tmp_path, simplewiki_xml):
    xml = simplewiki_xml.replace("<base>https://simple.wikipedia.org/wiki/Main_Page</base>",
                                 "<base>https://wiki.example.org/wiki/Main_Page</base>")  # fmt: skip
    items = read(_tmp_fetcher(tmp_path), dumps=[_serve(tmp_path, "example.xml", xml)], namespaces=[2])
    (record,) = [r for r in items if isinstance(r, RawRecord)]
    assert record.license is None
    assert record.license_evidence == (
        "dump simplewiki is from wiki.example.org, not a Wikimedia wiki; the dump states no licence"
    )
    assert record.url == "https://wiki.example.org/wiki/User:Ryulong"


# -- bad input -----------------------------------------------------------------------------------


def test_malformed_pages_are_quarantined_and_the_rest_read(tmp_path, fixtures_dir):
    xml = bz2.decompress((fixtures_dir / ENWIKI_FIXTURE).read_bytes()).decode("utf-8")
    xml = _edit_page(xml, "12", lambda b: re.sub(r"    <revision>.*</revision>\n", "", b, flags=re.DOTALL))
    xml = _edit_page(xml, "25", lambda b: b.replace("<id>25</id>", "<id>twenty-five</id>", 1))
    xml = _edit_page(xml, "39", lambda b: re.sub(r"(<revision>\s*<id>)\d+", r"\1abc", b))
    xml = _edit_page(xml, "290", lambda b: b.replace("<title>A</title>", "<title></title>"))
    xml = _edit_page(xml, "303", lambda b: re.sub(r"<timestamp>[^<]*", "<timestamp>yesterday", b))
    url = _serve(tmp_path, "enwiki-broken.xml", xml)
    items = read(_tmp_fetcher(tmp_path), dumps=[url])
    assert tally(items) == {
        ("record", None): 101,
        ("quarantined", "mediawiki.malformed_page"): 5,
        ("skipped", "mediawiki.redirect"): 99,
        ("skipped", "mediawiki.namespace"): 1,
    }
    quarantined = {d.source_record_id: (d.upstream_uri, d.stage, d.detail) for d in items
                   if isinstance(d, Decision) and d.outcome == Outcome.QUARANTINED}
    assert quarantined == {
        "12": (f"{url}#page=12", "raw", "page 12 (Anarchism) has no <revision>"),
        "twenty-five": (f"{url}#page=twenty-five", "raw", "page id 'twenty-five' is not a number"),
        "39": (f"{url}#page=39", "raw", "page 39 (Albedo): revision id 'abc' is not a number"),
        "290": (f"{url}#page=290", "raw", "page has no <title>"),
        "303": (f"{url}#page=303", "raw", "page 303 (Alabama): revision 717329061: timestamp 'yesterday' is not YYYY-MM-DDTHH:MM:SSZ"),
    }


def test_malformed_revision_with_all_revisions(tmp_path, simplewiki_xml):
    xml = simplewiki_xml.replace("<id>558764</id>", "<id>5587x64</id>")
    items = read(_tmp_fetcher(tmp_path), dumps=[_serve(tmp_path, "h.xml", xml)], namespaces=[1, 2], revisions="all")
    assert tally(items) == {
        ("record", None): 28,
        ("skipped", "mediawiki.text_deleted"): 4,
        ("quarantined", "mediawiki.malformed_page"): 1,
    }
    (bad,) = [d for d in items if isinstance(d, Decision) and d.outcome == Outcome.QUARANTINED]
    assert (bad.source_record_id, bad.detail) == ("45046@#4", "revision id '5587x64' is not a number")


def test_gzip_dump_reads_like_plain(tmp_path, simplewiki_xml):
    path = tmp_path / "simplewiki-history.xml.gz"
    path.write_bytes(gzip.compress(simplewiki_xml.encode("utf-8")))
    items = read(_tmp_fetcher(tmp_path), dumps=[_tmp_url(path.name)], namespaces=[1, 2])
    assert [r.metadata["revision_id"] for r in items] == [5566832, 8750749]


@pytest.mark.parametrize(
    ("name", "make", "problem"),
    [
        ("enwiki-truncated.xml.bz2", lambda data, xml: data[: len(data) // 2], "compressed stream ends early, file truncated"),
        ("enwiki-cut.xml", lambda data, xml: xml[: len(xml) // 2], "not well-formed XML (Premature end of data"),
        ("notes.txt", lambda data, xml: b"just some text\n", "not well-formed XML (Start tag expected"),
        ("feed.xml", lambda data, xml: b"<rss><channel/></rss>", "not a MediaWiki export: root element is <rss>"),
        ("enwiki-corrupt.xml.bz2", lambda data, xml: data[:1000] + bytes(1000) + data[2000:], "cannot read or decompress (Invalid data stream)"),
        ("dump.xml", lambda data, xml: b"<mediawiki><page><title>T</title></page></mediawiki>", "the dump has no <siteinfo> and its file name"),
    ],
)  # fmt: skip
def test_unreadable_files_raise_naming_the_file(tmp_path, fixtures_dir, name, make, problem):
    data = (fixtures_dir / TABLES_FIXTURE).read_bytes()
    path = tmp_path / name
    path.write_bytes(make(data, bz2.decompress(data)))
    url = _tmp_url(name)
    connector = MediaWikiConnector(MediaWikiConnector.Options(dumps=[url]))
    (unit,) = connector.units()
    with pytest.raises(UnreadableInput) as raised:
        for _ in connector.read(unit, _tmp_fetcher(tmp_path)):
            pass
    assert raised.value.location == url
    assert raised.value.problem.startswith(problem)


def test_entities_are_not_expanded(tmp_path):
    secret = tmp_path / "secret.txt"
    secret.write_text("TOP SECRET")
    xml = (
        f'<?xml version="1.0"?><!DOCTYPE mediawiki [<!ENTITY x SYSTEM "{secret.as_uri()}">]>'
        "<mediawiki><siteinfo><dbname>enwiki</dbname><base>https://en.wikipedia.org/wiki/Main_Page</base></siteinfo>"
        "<page><title>T</title><ns>0</ns><id>1</id><revision><id>2</id><timestamp>2024-01-01T00:00:00Z</timestamp>"
        "<text>before &x; after</text></revision></page></mediawiki>"
    )
    (record,) = read(_tmp_fetcher(tmp_path), dumps=[_serve(tmp_path, "enwiki-xxe.xml", xml)])
    assert record.payload == "before &x; after"
    assert record.license == "CC-BY-SA-4.0"
