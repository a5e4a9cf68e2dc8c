"""Quality defaults by kind of source: declared or inherited, and what they change on real books.

The 15 fixture Gutenberg books go through the raw and documents stages with the shipped
`assets/gutenberg.yaml` (its filters untouched), in a test catalog that adds a licence
declaration: only 1 of the 15 has an RDF record in the fixtures.
"""

from __future__ import annotations

import json
from collections import Counter
from pathlib import Path

import pyarrow.parquet as pq
import pytest
import yaml
from fixture_mirror import GUTENBERG_BOOKS

from opencorpus_dagster.catalog import CatalogFileError, load_source_file
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.records import Document
from opencorpus_dagster.stages.documents import process_partition
from opencorpus_dagster.stages.ingest import ingest_partition
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.text.quality import QualityConfig, QualityFilter, measure_quality
from opencorpus_dagster.text.quality_defaults import KIND_DEFAULTS, defaults_table
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

REPO = Path(__file__).resolve().parent.parent


@pytest.fixture(scope="module")
def books(tmp_path_factory, fixture_mirror):
    """doc title -> (outcome, reason, quality values) for the 15 books, and the source."""
    tmp = tmp_path_factory.mktemp("books")
    shipped = yaml.safe_load((REPO / "assets" / "gutenberg.yaml").read_text())
    shipped["license"] = {"spdx": "LicenseRef-PublicDomain", "evidence": "test: PG books are public domain in the USA"}
    catalog = tmp / "catalog"
    catalog.mkdir()
    (catalog / "gutenberg.yaml").write_text(yaml.safe_dump(shipped))
    source = load_source_file(catalog / "gutenberg.yaml")
    home = DataHome(tmp / "home")
    store = LineageStore.at(home.lineage_db)
    fetcher = Fetcher(home.downloads, [Mirror(base=str(fixture_mirror))])
    documents, dropped = [], Counter()
    for unit in source.connector.units():
        ingest_partition(source, unit, fetcher, home, store, "books")
        result = process_partition(source, unit.key, home, store, "books", fetcher=fetcher)
        documents += pq.read_table(result.path).to_pylist()
        dropped.update(result.reasons)
    return source, dropped, {d["source_record_id"]: d for d in documents}


def test_all_15_books_pass_the_shipped_gutenberg_rules(books):
    source, dropped, documents = books
    assert source.content_kind == "book"  # inherited from the gutenberg connector
    assert dropped == Counter()  # no decision of the documents stage: nothing filtered
    assert sorted(documents, key=int) == [str(book) for book in sorted(GUTENBERG_BOOKS)]
    assert {d["language"] for d in documents.values()} == {"en"}


# Books the web defaults would drop, with the measured value: verse, tables, a reference book.
WEB_DROPS = {
    "10028": ("fineweb.char_dup_ratio", 0.0106),  # Spalding's Baseball Guide: repeated table headings
    "10089": ("fineweb.char_dup_ratio", 0.029),  # Elves and Heroes (verse): refrains
    "35190": ("fineweb.char_dup_ratio", 0.0244),  # Torrent of Portyngale (verse romance)
    "38003": ("fineweb.char_dup_ratio", 0.0113),  # Color Key to North American Birds
}


def test_the_book_defaults_are_what_keeps_them(books):
    _, _, documents = books
    web = QualityConfig(gopher_max_words=None, c4_max_curly_brackets=None, disabled_rules=["fineweb.line_punct_ratio"])
    dropped = {}
    for book, document in documents.items():
        quality = json.loads(document["metadata"])["quality"]
        assert "fineweb.char_dup_ratio" not in quality  # not measured for books
        result = QualityFilter(web)(_as_doc(document))
        if not isinstance(result, Document):
            dropped[book] = (result.reason, result.value)
    # gutenberg.yaml before per-kind defaults (its own three overrides on the web values)
    assert dropped == WEB_DROPS


def test_moby_dick_values_under_the_book_rules(books):
    _, _, documents = books
    quality = json.loads(documents["2701"]["metadata"])["quality"]
    assert quality["gopher.word_count"] == 212_100
    for rule in ("fineweb.line_punct_ratio", "fineweb.short_line_ratio", "fineweb.char_dup_ratio", "c4.curly_bracket"):
        assert rule not in quality
    assert measure_quality(documents["2701"]["text"], "en", QualityConfig(), ["fineweb.line_punct_ratio"]) == {
        "fineweb.line_punct_ratio": 0.1722
    }


def _as_doc(row: dict) -> Document:
    return Document(
        doc_id=row["doc_id"], source=row["source"], source_record_id=row["source_record_id"],
        upstream_uri=row["upstream_uri"], url=row["url"], title=row["title"], text=row["text"],
        language=row["language"], license=row["license"], license_evidence=row["license_evidence"],
        attribution=row["attribution"],
    )


# --- the catalog field ------------------------------------------------------------------------


def write_entry(tmp_path: Path, body: str, name: str = "src") -> Path:
    path = tmp_path / f"{name}.yaml"
    path.write_text(f"name: {name}\n{body}")
    return path


MEDIAWIKI = "kind: mediawiki\noptions: {dumps: [https://dumps.wikimedia.org/hywiki/20230501/hywiki-20230501-pages-articles.xml.bz2]}\n"
TEXTFILES = "kind: textfiles\noptions: {root: /srv/x, partitions: {a: [a.txt]}}\n"


@pytest.mark.parametrize(
    ("body", "kind", "curly", "line_punct"),
    [
        (MEDIAWIKI, "encyclopedia", None, 0.12),
        (TEXTFILES, "general", 0, 0.12),  # no kind of its own: the published values
        (TEXTFILES + "content_kind: book\n", "book", None, None),
        (MEDIAWIKI + "content_kind: web\n", "web", 0, 0.12),  # declared beats inherited
        # what the entry sets beats its kind's default, field by field
        (MEDIAWIKI + "filters: {quality: {c4_max_curly_brackets: 5}}\n", "encyclopedia", 5, 0.12),
    ],
)
def test_content_kind_is_declared_or_inherited(tmp_path, body, kind, curly, line_punct):
    source = load_source_file(write_entry(tmp_path, body))
    assert source.content_kind == kind
    assert source.filters.quality.c4_max_curly_brackets == curly
    assert source.filters.quality.fineweb_min_line_punct_ratio == line_punct


def test_unknown_content_kind_names_the_field_and_the_kinds(tmp_path):
    with pytest.raises(CatalogFileError) as error:
        load_source_file(write_entry(tmp_path, TEXTFILES + "content_kind: novel\n"))
    assert str(error.value) == (
        "content_kind: unknown kind 'novel' (expected one of: book, encyclopedia, forum, general, print, web)"
    )


def test_a_kind_or_its_defaults_change_the_fingerprint(tmp_path):
    web = load_source_file(write_entry(tmp_path, MEDIAWIKI + "content_kind: web\n", "a"))
    encyclopedia = load_source_file(write_entry(tmp_path, MEDIAWIKI, "b"))
    same = load_source_file(write_entry(tmp_path, MEDIAWIKI + "content_kind: encyclopedia\n", "c"))
    assert web.fingerprint != encyclopedia.fingerprint
    # Declaring the kind the connector has already is the same processing, but a different spec.
    assert same.filters == encyclopedia.filters


def test_every_kind_default_is_documented_with_its_published_source():
    table = {row["field"]: row for row in defaults_table()}
    assert table["c4_max_curly_brackets"]["published"] == 0
    assert table["c4_max_curly_brackets"]["source"] == "C4 (Raffel et al. 2020)"
    assert set(table["c4_max_curly_brackets"]["kinds"]) == {"book", "print", "encyclopedia", "forum"}
    assert table["fineweb_max_char_dup_ratio"]["kinds"]["book"][0] is None
    for kind, defaults in KIND_DEFAULTS.items():
        for default in defaults:
            assert default.why, (kind, default.field)
