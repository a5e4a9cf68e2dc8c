"""Normalisation on real text: Gutenberg CRLF files, Stack Exchange posts, mojibake repair."""

from __future__ import annotations

import gzip
import unicodedata

import pytest
from conftest import require_fixture
from lxml import html

from opencorpus_dagster.records import Document, Drop, Outcome
from opencorpus_dagster.text.normalise import Normalise, normalise_text

# Real lines from beer.stackexchange post 4528 (a list of Saarland/Luxembourg/Lorraine breweries).
BREWERIES = "Dudweiler Landstraße 3-9, Bière de Metz, Bière Artisanale Lorraine L’Epitaphe"


def make_doc(text: str) -> Document:
    return Document(
        doc_id="d", source="fixture", source_record_id="r", upstream_uri="u", url=None,
        title=None, text=text, language=None, license=None, license_evidence=None,
        attribution=None,
    )


@pytest.mark.parametrize(
    ("damaged", "expected"),
    [
        # UTF-8 bytes decoded as Windows-1252: the commonest mojibake on the web.
        (BREWERIES.encode("utf-8").decode("cp1252"), BREWERIES),
        # Decoded as Latin-1 (C1 controls instead of cp1252 punctuation).
        ("Bière de Metz".encode("utf-8").decode("latin-1"), "Bière de Metz"),
        # Already clean text is left alone, curly apostrophe included.
        (BREWERIES, BREWERIES),
    ],
    ids=["cp1252", "latin-1", "clean"],
)
def test_mojibake_repaired(damaged, expected):
    assert normalise_text(damaged) == expected


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("Bie\u0300re de Metz", "Bière de Metz"),  # NFD -> NFC
        ("Go Ten Café\r\nType: Bar\r\n", "Go Ten Café\nType: Bar"),  # CRLF
        ("Liquid Café\rType: Bar", "Liquid Café\nType: Bar"),  # bare CR
        ("Luxembourg, Luxembourg L-1728   \n+352 26203652", "Luxembourg, Luxembourg L-1728\n+352 26203652"),
        ("15 - 17,\t\true  Munster,   Grund", "15 - 17, rue Munster, Grund"),
        ("Lorraine\n\n\n\n\nFinde here a list", "Lorraine\n\nFinde here a list"),
        ("    indented verse line\n      more", "indented verse line\n      more"),  # strip; indent kept
        ("Bière\x00 de\x07 Metz\ufeff", "Bière de Metz"),  # control characters, stray BOM
        ("tab\tinside and\nkeep\u200dzwj", "tab inside and\nkeep\u200dzwj"),
        ("line\u2028separator", "line\nseparator"),
        ("  \n\t\n ", ""),
    ],
)
def test_whitespace_and_unicode_form(raw, expected):
    assert normalise_text(raw) == expected


def test_real_mojibake_in_a_web_page():
    # Mozilla Readability's "qq" page (no charset declared) parses as UTF-8 read as Latin-1;
    # one of its bytes is U+0085 (NEL), a line break if taken literally before the repair.
    path = require_fixture("html_extraction/mozilla-readability-test-pages/pages/qq/expected.html.gz")
    page = html.fromstring(gzip.open(path).read()).text_content()
    assert "è½¬æ\x92\xadå\x88°è\x85¾è®¯å¾®å\x8d\x9a" in page  # 转播到腾讯微博
    text = normalise_text(page)
    assert text.startswith("TNW中文站2016年10月14日07:17\n\n")
    assert "\n转播到腾讯微博\n" in text.replace(" ", "")
    assert "è" not in text


def test_gutenberg_crlf_book():
    path = require_fixture("gutenberg/c-w-gutenberg/clean-texts/2701.txt.gz")
    raw = gzip.open(path, "rt", encoding="utf-8", newline="").read()
    assert raw.count("\r\n") == 21_722
    text = normalise_text(raw)
    assert "\r" not in text
    assert "\n\n\n" not in text
    assert unicodedata.is_normalized("NFC", text)
    assert text.startswith("MOBY DICK; OR THE WHALE")
    assert "Call me Ishmael. Some years ago--never mind how long precisely--having" in text
    assert normalise_text(text) == text  # idempotent


def test_step_replaces_text_and_drops_empty():
    doc = Normalise()(make_doc("Go Ten Café\r\n\r\n\r\nType: Bar  "))
    assert isinstance(doc, Document)
    assert doc.text == "Go Ten Café\n\nType: Bar"
    assert doc.content_sha256 == Normalise()(make_doc("Go Ten Café\n\nType: Bar")).content_sha256

    result = Normalise()(make_doc(" \r\n\x00\t "))
    assert result == Drop(Outcome.FILTERED, "normalise.empty", 0)


def plainly_normalised_whitespace(text: str) -> str:
    """The whitespace rules as plain substitutions over the whole text (lookbehind first, no
    shortcuts), applied to text that has been through the earlier rules."""
    import re

    text = re.sub(r"(?<=[^ \t\n])(?:[ \t]{2,}|\t)(?=[^ \t\n])", " ", text)
    text = re.sub(r"[ \t]+$", "", text, flags=re.MULTILINE)
    return re.sub(r"\n{3,}", "\n\n", text).strip()


def test_the_whitespace_shortcuts_give_what_the_plain_substitutions_give():
    import random

    rng = random.Random(7)
    pieces = ["a", "b", "é", " ", "  ", "\t", " \t ", "\n", "\n\n\n", " \n", "\t\n", "\r\n", "\u2028"]
    texts = ["".join(rng.choice(pieces) for _ in range(rng.randint(0, 40))) for _ in range(50_000)]
    with gzip.open(require_fixture("gutenberg/c-w-gutenberg/clean-texts/2701.txt.gz"), "rt") as f:
        book = f.read()
    texts += [book[i : i + 5000] for i in range(0, 200_000, 5000)]
    for text in texts:
        # The earlier rules (line breaks, NFC, the BOM as a control) leave their blanks alone.
        prepared = text.replace("\r\n", "\n").replace("\u2028", "\n").replace("\ufeff", "")
        prepared = unicodedata.normalize("NFC", prepared)
        assert normalise_text(text) == plainly_normalised_whitespace(prepared), repr(text)
