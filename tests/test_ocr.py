"""The `ocr` connector and the OCR text/quality module on every fixture OCR file."""

from __future__ import annotations

import re
from pathlib import Path

import pytest
from conftest import require_fixture

from opencorpus_dagster.connectors.base import UnreadableInput, connector_class
from opencorpus_dagster.records import Decision, Document, Drop
from opencorpus_dagster.text.ocr import (
    OcrFormatError,
    OcrQualityFilter,
    mean_confidence,
    ocr_quality,
    page_text,
    read_ocr_page,
)
from opencorpus_dagster.upstream.fetch import Fetcher

NDNP = "alto/ndnp-daily-national-democrat-1858"
SAMPLES = "alto/ocr-fileformat-samples"


def _read(options: dict, tmp_path: Path) -> dict[str, list]:
    root = require_fixture("digitised")
    connector = connector_class("ocr")(connector_class("ocr").Options.model_validate({"root": str(root), **options}))
    fetcher = Fetcher(tmp_path / "cache")
    return {unit.key: list(connector.read(unit, fetcher)) for unit in connector.units()}


def _units(root: Path) -> dict:
    return {
        "1858081301": {"mets": f"{root}/{NDNP}/1858081301/1858081301.xml"},
        "1858081401": {"mets": f"{root}/{NDNP}/1858081401/1858081401.xml"},
        "alto-pages": {"pages": [f"{root}/{SAMPLES}/{name}" for name in (
            "sn86069133.1910-10-31.alto", "417576986_0012.alto", "417576986_0078.alto",
            "wetzel_reisebegleiter_1901_0021.alto")]},
        "hocr-pages": {"pages": [f"{root}/hocr/{name}" for name in (
            "417576986_0012.hocr", "417576986_0013.hocr", "wetzel_reisebegleiter_1901_0021.hocr")]},
    }  # fmt: skip


@pytest.fixture(scope="module")
def pages(tmp_path_factory):
    root = require_fixture("digitised")
    return _read({"units": _units(root), "print": "newspaper"}, tmp_path_factory.mktemp("ocr"))


# Every fixture OCR file: (unit, record id, upstream URI tail, format, words, word confidence).
PAGE_CASES = [
    ("1858081301", "1858081301/p0001", "1858081301/0006.xml#page=1", "alto-2", 6018, 0.7994),
    ("1858081301", "1858081301/p0002", "1858081301/0007.xml#page=2", "alto-2", 6610, 0.7728),
    ("1858081401", "1858081401/p0001", "1858081401/0010.xml#page=1", "alto-2", 6213, 0.7908),
    ("alto-pages", "alto-pages/p0001", "sn86069133.1910-10-31.alto#page=1", "alto-1", 4430, 0.9519),
    ("alto-pages", "alto-pages/p0012", "417576986_0012.alto#page=12", "alto-2", 140, 0.6378),
    ("alto-pages", "alto-pages/p0078", "417576986_0078.alto#page=78", "alto-2", 206, 0.509),
    ("alto-pages", "alto-pages/p0021", "wetzel_reisebegleiter_1901_0021.alto#page=21", "alto-2", 212, None),
    ("hocr-pages", "hocr-pages/p0012", "hocr/417576986_0012.hocr#page=12", "hocr", 140, None),
    ("hocr-pages", "hocr-pages/p0013", "hocr/417576986_0013.hocr#page=13", "hocr", 143, 0.7787),
    ("hocr-pages", "hocr-pages/p0021", "hocr/wetzel_reisebegleiter_1901_0021.hocr#page=21", "hocr", 211, 0.8256),
]


def test_record_counts_per_unit(pages):
    assert {key: len(records) for key, records in pages.items()} == {
        "1858081301": 2,
        "1858081401": 1,
        "alto-pages": 4,
        "hocr-pages": 3,
    }
    assert not any(isinstance(r, Decision) for records in pages.values() for r in records)


@pytest.mark.parametrize(("unit", "record_id", "uri_tail", "fmt", "words", "confidence"), PAGE_CASES)
def test_page_provenance(pages, unit, record_id, uri_tail, fmt, words, confidence):
    record = next(r for r in pages[unit] if r.source_record_id == record_id)
    assert record.upstream_uri.endswith(uri_tail)
    assert record.metadata["ocr"]["format"] == fmt
    assert record.metadata["ocr"]["words"] == words
    assert record.metadata["ocr"]["word_confidence"] == confidence
    assert re.fullmatch(r"[0-9a-f]{64}", record.metadata["file_sha256"])


def test_mets_issue_metadata_names_the_issue(pages):
    record = pages["1858081301"][0]
    assert record.title == "Daily national Democrat (Marysville, Calif.), 1858-08-13, p. 1"
    assert record.metadata["issue"]["mets"].endswith("1858081301/1858081301.xml")
    assert record.metadata["ocr"]["engine"] == "FineReader 11.0"


@pytest.mark.parametrize(
    ("unit", "record_id", "joined", "split"),
    [
        ("1858081301", "1858081301/p0001", "PRINTING", "PRINT\nING"),  # ALTO SUBS_TYPE/SUBS_CONTENT
        ("alto-pages", "alto-pages/p0001", "consideration", "considera\n"),  # ALTO 1.x (CCS namespace)
        ("alto-pages", "alto-pages/p0012", "naissance", "nais-"),  # ABBYY ALTO 2
        ("alto-pages", "alto-pages/p0021", "barmherzig", "barm-"),  # Tesseract ALTO: line-final hyphen
        ("hocr-pages", "hocr-pages/p0021", "Kapuzinerkloster", "Kapuziner-"),  # hOCR: line-final hyphen
    ],
)
def test_hyphenated_words_are_rejoined(pages, unit, record_id, joined, split):
    text = next(r for r in pages[unit] if r.source_record_id == record_id).payload
    assert joined in text and split not in text


def test_alto_and_hocr_of_the_same_page_agree():
    root = require_fixture("digitised")
    for alto, hocr in (
        (f"{SAMPLES}/wetzel_reisebegleiter_1901_0021.alto", "hocr/wetzel_reisebegleiter_1901_0021.hocr"),
        (f"{SAMPLES}/417576986_0012.alto", "hocr/417576986_0012.hocr"),
    ):
        words_alto = page_text(read_ocr_page((root / alto).read_bytes())).split()
        words_hocr = page_text(read_ocr_page((root / hocr).read_bytes())).split()
        assert words_alto == words_hocr


def test_quality_orders_the_clean_page_above_the_garbled_ones():
    root = require_fixture("digitised")

    clean = ocr_quality(
        page_text(read_ocr_page((root / f"{SAMPLES}/wetzel_reisebegleiter_1901_0021.alto").read_bytes())), None, "de"
    )
    winchester_page = read_ocr_page((root / f"{SAMPLES}/sn86069133.1910-10-31.alto").read_bytes())
    winchester = ocr_quality(page_text(winchester_page), mean_confidence(winchester_page.words), "en")
    long_s_page = read_ocr_page((root / "hocr/417576986_0013.hocr").read_bytes())
    long_s = ocr_quality(page_text(long_s_page), mean_confidence(long_s_page.words), "fr")
    # The engine is surest of the garbled Winchester News page; the text says otherwise.
    assert winchester.word_confidence == 0.9519 and winchester.word_confidence > 0.9
    assert (clean.score, winchester.score, long_s.score) == (0.9314, 0.8621, 0.5727)
    assert clean.score > winchester.score > long_s.score
    assert clean.measured_by == "lexicon:de" and long_s.measured_by == "lexicon:fr"


def test_quality_rule_keeps_its_values_and_drops_below_the_default_for_books():
    root = require_fixture("digitised")
    step = OcrQualityFilter()
    for path, kept in (("hocr/417576986_0013.hocr", False), ("hocr/417576986_0012.hocr", True)):
        page = read_ocr_page((root / path).read_bytes())
        doc = Document("d", "s", "r", path, None, None, page_text(page), "fr", None, None, None,
                       {"ocr": {"print": "book", "word_confidence": mean_confidence(page.words)}})  # fmt: skip
        result = step(doc)
        assert isinstance(result, Drop) != kept
        assert set(doc.metadata["quality"]) >= {"ocr.quality", "ocr.text_score"}
    assert result.metadata["quality"]["ocr.quality"] == 0.8508
    drop = step(
        Document(
            "d",
            "s",
            "r",
            "u",
            None,
            None,
            "tbe wcLL qnick brnwn fux",
            "en",
            None,
            None,
            None,
            {"ocr": {"print": "book"}},
        )
    )
    assert isinstance(drop, Drop) and drop.reason == "ocr.quality" and drop.value < 0.7
    untouched = Document("d", "s", "r", "u", None, None, "no OCR here", "en", None, None, None, {})
    assert step(untouched) is untouched and "quality" not in untouched.metadata


def test_block_and_unit_records(tmp_path):
    root = require_fixture("digitised")
    units = {"1858081301": _units(root)["1858081301"]}
    blocks = _read({"units": units, "record": "block"}, tmp_path)["1858081301"]
    assert len(blocks) == 46
    assert blocks[0].upstream_uri.endswith("1858081301/0006.xml#page=1&block=P6_TB00002")
    assert blocks[0].source_record_id == "1858081301/p0001/P6_TB00002"
    (issue,) = _read({"units": units, "record": "unit"}, tmp_path)["1858081301"]
    assert issue.upstream_uri.endswith("1858081301/1858081301.xml#pages=1-2")
    assert [p["page"] for p in issue.metadata["ocr"]["pages"]] == [1, 2]
    assert issue.metadata["ocr"]["words"] == 6018 + 6610


def test_unreadable_page_fails_the_unit_naming_the_file(tmp_path):
    bad = tmp_path / "collection" / "broken.alto"
    bad.parent.mkdir()
    bad.write_bytes(b"<alto><Layout><Page>")
    cls = connector_class("ocr")
    connector = cls(cls.Options.model_validate({"root": str(bad.parent), "units": {"u": {"pages": [str(bad)]}}}))
    (unit,) = connector.units()
    with pytest.raises(UnreadableInput, match="broken.alto: not well-formed XML"):
        list(connector.read(unit, Fetcher(tmp_path / "cache")))


def test_missing_page_is_quarantined(tmp_path):
    root = require_fixture("digitised")
    missing = f"{root}/{SAMPLES}/no-such-page.alto"
    records = _read({"units": {"u": {"pages": [missing, f"{root}/{SAMPLES}/417576986_0012.alto"]}}}, tmp_path)["u"]
    assert isinstance(records[0], Decision) and records[0].reason == "ocr.missing_page"
    assert records[1].source_record_id == "u/p0012"


# ALTO 4 with an explicit reading order (no fixture has one: written here, two blocks listed
# right column first) and a word hyphenated across the two blocks.
ALTO4 = b"""<?xml version="1.0" encoding="UTF-8"?>
<alto xmlns="http://www.loc.gov/standards/alto/ns-v4#">
  <ReadingOrder><OrderedGroup ID="o1">
    <ElementRef ID="r1" REF="right"/><ElementRef ID="r2" REF="left"/>
  </OrderedGroup></ReadingOrder>
  <Layout><Page ID="p1"><PrintSpace>
    <TextBlock ID="left"><TextLine><String CONTENT="second" WC="0.9"/></TextLine></TextBlock>
    <TextBlock ID="right">
      <TextLine><String CONTENT="first" WC="0.5"/>
        <String CONTENT="col" SUBS_TYPE="HypPart1" SUBS_CONTENT="column"/></TextLine>
      <TextLine><String CONTENT="umn" SUBS_TYPE="HypPart2" SUBS_CONTENT="column"/><String CONTENT="ends"/></TextLine>
    </TextBlock>
  </PrintSpace></Page></Layout>
</alto>"""


def test_alto4_reading_order_is_followed():
    page = read_ocr_page(ALTO4)
    assert page.format == "alto-4"
    assert [b.block_id for b in page.blocks] == ["right", "left"]
    assert page_text(page) == "first column\nends\n\nsecond"
    assert mean_confidence(page.words) == pytest.approx(0.7)


def test_entity_declarations_are_refused():
    # lxml would expand `&a;` inside the CONTENT attribute even with resolve_entities=False.
    bomb = (
        b'<?xml version="1.0"?><!DOCTYPE alto [<!ENTITY a "aaaaaaaaaa">]>'
        b'<alto><Layout><Page><TextBlock ID="b"><TextLine><String CONTENT="&a;"/></TextLine>'
        b"</TextBlock></Page></Layout></alto>"
    )
    with pytest.raises(OcrFormatError, match="DOCTYPE declares entities"):
        read_ocr_page(bomb)
