"""HTML decoding and main-text extraction (trafilatura) on real pages from the fixtures."""

from __future__ import annotations

import gzip
import json
import os
import re
import subprocess
import sys

import pydantic
import pytest

from opencorpus_dagster.connectors.warc import read_warc_file
from opencorpus_dagster.records import RawRecord
from opencorpus_dagster.text.html import (
    ExtractionOptions,
    decode_html,
    extract_html,
    meta_charset,
)

EVAL = "html_extraction/trafilatura-eval-subset"
WHIRLWIND = "webarchive/commoncrawl-whirlwind/whirlwind.warc.gz"


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


@pytest.fixture(scope="module")
def evaldata(fixtures_dir) -> dict:
    return json.loads((fixtures_dir / EVAL / "evaldata-subset.json").read_text(encoding="utf-8"))


@pytest.fixture(scope="module")
def escopete(fixtures_dir) -> RawRecord:
    """The Common Crawl whirlwind page (an.wikipedia.org/wiki/Escopete), as the WARC connector reads it."""
    path = fixtures_dir / WHIRLWIND
    (record,) = [r for r in read_warc_file("https://x/whirlwind.warc.gz", path) if isinstance(r, RawRecord)]
    return record


@pytest.mark.parametrize(
    ("key", "present", "absent"),
    [
        (
            "https://harpers.org/a-letter-on-justice-and-open-debate/",
            "Our cultural institutions are facing a moment of trial",
            "Do Not Sell My Personal Information",
        ),
        (
            "https://observer.com/2023/11/bernard-arnault-lvmh-louvre-chardin/",
            "For over a year, the Louvre has fought to acquire",
            "Advertising Guidelines",
        ),
        (
            "https://football.ua/germany/311510-podolski-zavershil-kareru-v-sbornojj.html",
            "Экс-игрок Арсенала и Баварии попал в заявку",
            "Политика в сфере конфиденциальности и персональных данных",
        ),
    ],
    ids=["harpers", "observer", "football.ua"],
)
def test_main_text_in_boilerplate_out(key, present, absent, evaldata, fixtures_dir):
    item = evaldata[key]
    html = decode_html(gzip.decompress((fixtures_dir / EVAL / "html" / item["file"]).read_bytes())).text
    page = extract_html(html, key, ExtractionOptions())
    text = norm(page.text)
    assert present in text and absent not in text
    # Every annotated snippet of these pages is right, not just the two named above.
    assert [w for w in item["with"] if norm(w) not in text] == []
    assert [w for w in item["without"] if norm(w) in text] == []


def test_wikipedia_page_from_the_warc(escopete):
    page = extract_html(escopete.payload, escopete.url)
    assert page.title == "Escopete - Biquipedia, a enciclopedia libre"
    assert page.language == "an"
    assert "Escopete ye un municipio d'a provincia de Guadalachara" in page.text
    # Site chrome that the WET conversion of the same page keeps.
    for chrome in ("Menú principal", "Politica de privacidat", "Declaración de cookies"):
        assert chrome in escopete.payload
        assert chrome not in page.text


def test_tables_follow_the_option(escopete):
    # "Alcalde | Hilario Lopez Ferrer" is a row of the page's infobox table.
    assert "Hilario Lopez Ferrer" in extract_html(escopete.payload, escopete.url, ExtractionOptions()).text
    without = extract_html(escopete.payload, escopete.url, ExtractionOptions(include_tables=False))
    assert "Hilario Lopez Ferrer" not in without.text
    assert "Escopete ye un municipio" in without.text


@pytest.mark.parametrize(
    "html",
    [
        "",
        "   \n",
        "<html><body><script>var page = 1;</script></body></html>",
        "<html><head></head><body></body></html>",
    ],
    ids=["empty", "blank", "script-only", "empty-body"],
)
def test_nothing_to_extract_is_none(html):
    assert extract_html(html, None, ExtractionOptions()) is None


def test_metadata_of_a_simple_article():
    body = " ".join(["The committee met on Tuesday to discuss the proposed changes to the water supply."] * 6)
    html = (
        '<html lang="en-GB"><head><title>Water supply changes</title><meta name="author" content="Ada Lovelace">'
        '<meta property="article:published_time" content="2021-03-04"></head>'
        f"<body><nav>Home | News | Contact</nav><article><h1>Water supply changes</h1><p>{body}</p></article>"
        "<footer>Copyright 2021 Example Council</footer></body></html>"
    )
    page = extract_html(html, "https://council.example/news/water", ExtractionOptions())
    assert (page.title, page.author, page.date, page.language) == (
        "Water supply changes",
        "Ada Lovelace",
        "2021-03-04",
        "en-GB",
    )
    assert page.text.startswith("Water supply changes\nThe committee met on Tuesday")
    assert "Copyright 2021 Example Council" not in page.text and "Home | News" not in page.text


@pytest.mark.parametrize(
    ("body", "declared", "charset", "source", "replaced", "snippet"),
    [
        ("Crème brûlée".encode(), "UTF-8", "utf-8", "header", 0, "Crème"),
        (b'<meta charset="iso-8859-15">' + "Crème".encode("iso-8859-15"), None, "iso8859-15", "meta", 0, "Crème"),
        (
            b'<meta http-equiv="Content-Type" content="text/html; charset=windows-1251">' + "Мир".encode("cp1251"),
            None,
            "cp1251",
            "meta",
            0,
            "Мир",
        ),
        # A declared charset that cannot decode the bytes is passed over for the next source.
        (b'<meta charset="windows-1252">' + "Crème".encode("cp1252"), "utf-8", "cp1252", "meta", 0, "Crème"),
        # One stray byte in a long UTF-8 page: the declaration stands, the byte becomes U+FFFD.
        ("Crème brûlée. ".encode() * 100 + b"\xff", "utf-8", "utf-8", "header", 1, "Crème brûlée."),
        (b"\xef\xbb\xbfhello", "iso-8859-1", "utf-8", "bom", 0, "hello"),
        ("Grüße".encode("utf-16"), None, "utf-16", "bom", 0, "Grüße"),
        # An unknown label is ignored; ASCII is detected, and decoded as cp1252 as browsers do.
        (b"plain ascii", "no-such-charset", "cp1252", "detected", 0, "plain ascii"),
    ],
    ids=[
        "header",
        "meta-charset",
        "meta-http-equiv",
        "bad-header-falls-back",
        "stray-byte",
        "bom-beats-header",
        "utf16-bom",
        "unknown-label",
    ],
)
def test_decode_html(body, declared, charset, source, replaced, snippet):
    decoded = decode_html(body, declared)
    assert (decoded.charset, decoded.charset_source, decoded.replaced) == (charset, source, replaced)
    assert snippet in decoded.text


def test_meta_charset_only_reads_the_head_window():
    assert meta_charset(b"<html><head><meta charset='utf-8'>") == "utf-8"
    assert meta_charset(b" " * 9000 + b"<meta charset='koi8-r'>") is None


def test_options_are_strict():
    with pytest.raises(pydantic.ValidationError, match="include_table"):
        ExtractionOptions(include_table=True)
    with pytest.raises(pydantic.ValidationError, match="mutually exclusive"):
        ExtractionOptions(favor_precision=True, favor_recall=True)
    assert ExtractionOptions(favor_precision=False, favor_recall=True).favor_recall


PRELOAD_SCRIPT = """
import json, sys
from dateparser.languages.loader import default_loader
from opencorpus_dagster.definitions import build_definitions
from opencorpus_dagster.orchestration import build

def loaded():
    return len(default_loader._loaded_locales)  # dateparser's built locale tables

before = loaded()
pool = build._partition_pool(2, 2, build_definitions(), web=sys.argv[1] == "web")
in_workers = sorted({pool.submit(loaded).result() for _ in range(4)})
pool.shutdown()
from htmldate.extractors import external_date_parser
external_date_parser("still no date in here", "%Y-%m-%d")
print(json.dumps([before, in_workers, loaded()]))
"""


@pytest.mark.parametrize("kind", ["web", "text"])
def test_web_build_workers_start_with_dateparsers_locales_built(kind, tmp_path):
    # The first date string htmldate hands to dateparser makes it build every locale's tables
    # (seconds of CPU). A build with web partitions does that once, before its workers fork.

    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "OPENCORPUS_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", PRELOAD_SCRIPT, kind], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    before, in_workers, after = json.loads(done.stdout.strip().splitlines()[-1])
    assert before == 0
    assert after > 100  # every locale, once a string no locale reads has been parsed
    assert in_workers == ([after] if kind == "web" else [0])


def test_page_metadata_is_what_trafilatura_extract_metadata_finds(fixtures_dir):
    # page_metadata runs the first half of trafilatura's extract_metadata (to the date) and its
    # clean-up: the title, author and date must be exactly what the whole function gives.
    from html_pages_warc import html_pages
    from trafilatura.metadata import extract_metadata
    from trafilatura.settings import set_date_params
    from trafilatura.utils import load_html

    from opencorpus_dagster.text.html import page_metadata

    pages = html_pages(fixtures_dir)
    assert len(pages) > 250
    found = {"title": 0, "author": 0, "date": 0}
    for url, body in pages:
        html = decode_html(body).text
        tree = load_html(html)
        whole = extract_metadata(tree, url, set_date_params(True), False, None) if tree is not None else None
        expected = {} if whole is None else {
            key: value for key, value in {"title": whole.title, "author": whole.author, "date": whole.date}.items() if value
        }
        assert page_metadata(html, url) == expected, url
        for key in expected:
            found[key] += 1
    # The pages have each kind of field (a comparison of empty dicts would prove nothing).
    assert min(found.values()) > 50, found
