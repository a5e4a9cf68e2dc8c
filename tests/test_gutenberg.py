"""The Project Gutenberg connector and its boilerplate stripper, on the c-w/gutenberg fixtures."""

from __future__ import annotations

import functools
import gzip
import hashlib
import re
import threading
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from fixture_mirror import GUTENBERG_BOOKS
from pydantic import ValidationError

from opencorpus_dagster.connectors.base import UnreadableInput, connector_class
from opencorpus_dagster.connectors.gutenberg import GutenbergConnector
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.text.gutenberg_boilerplate import (
    NoEndMarker,
    NoStartMarker,
    line_closeness,
    locate_gutenberg_body,
    strip_gutenberg_boilerplate,
)
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

PG = "https://www.gutenberg.org"
EPUB_DIR = "www.gutenberg.org/cache/epub"  # mirror layout of PG's files
FIXTURE_TEXTS = "gutenberg/c-w-gutenberg"


def _connector(books=GUTENBERG_BOOKS, **options) -> GutenbergConnector:
    return GutenbergConnector(GutenbergConnector.Options(books=list(books), **options))


def _read(connector: GutenbergConnector, fetcher: Fetcher, key: str) -> list[RawRecord | Decision]:
    unit = next(unit for unit in connector.units() if unit.key == key)
    return list(connector.read(unit, fetcher))


def _raw_text(fixtures_dir: Path, book: int) -> str:
    return gzip.decompress((fixtures_dir / FIXTURE_TEXTS / "raw-texts" / f"{book}.txt.gz").read_bytes()).decode("utf-8")


def _fetcher_with(tmp_path: Path, fixture_mirror: Path, files: dict[str, str | bytes]) -> Fetcher:
    """A fetcher whose first mirror holds only `files` (`<host>/<path>` -> content), then the fixtures."""
    root = tmp_path / "override"
    for relative, content in files.items():
        target = root / relative
        target.parent.mkdir(parents=True, exist_ok=True)
        target.write_bytes(content.encode() if isinstance(content, str) else content)
    return Fetcher(cache_dir=tmp_path / "cache", mirrors=[Mirror(base=str(root)), Mirror(base=str(fixture_mirror))])


@pytest.fixture
def fetcher(tmp_path, fixture_mirror) -> Fetcher:
    return Fetcher(cache_dir=tmp_path / "cache", mirrors=[Mirror(base=str(fixture_mirror))])


# -- catalog options and units -------------------------------------------------------------


def test_registered_under_its_kind():
    assert connector_class("gutenberg") is GutenbergConnector


def test_units_partition_fixture_books_by_thousand():
    units = _connector().units()
    assert [(unit.key, unit.extra["books"]) for unit in units] == [
        ("01000-01999", [1013]),
        ("02000-02999", [2701]),
        ("10000-10999", [10026, 10028, 10076, 10089, 10509]),
        ("33000-33999", [33956]),
        ("35000-35999", [35190, 35589]),
        ("36000-36999", [36261]),
        ("38000-38999", [38003, 38507]),
        ("39000-39999", [39397]),
        ("40000-40999", [40815]),
    ]
    assert [unit.key for unit in units] == sorted(unit.key for unit in units)
    books = (10026, 10028, 10076, 10089, 10509)
    assert units[2].urls == tuple(f"{PG}/cache/epub/{book}/pg{book}.txt" for book in books)


def test_units_with_small_batches_and_unsorted_ids():
    units = _connector(books=[38507, 5, 38003, 2701], batch_size=100, text_url="http://mirror.test/{id}.txt").units()
    assert [(unit.key, unit.extra["books"], unit.urls) for unit in units] == [
        ("00000-00099", [5], ("http://mirror.test/5.txt",)),
        ("02700-02799", [2701], ("http://mirror.test/2701.txt",)),
        ("38000-38099", [38003], ("http://mirror.test/38003.txt",)),
        ("38500-38599", [38507], ("http://mirror.test/38507.txt",)),
    ]


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"books": []}, "at least 1 item"),
        ({"books": [0]}, "greater than or equal to 1"),
        ({"books": [12, 7, 12]}, "book ids listed more than once: [12]"),
        ({"books": [1], "batch_size": 0}, "greater than or equal to 1"),
        ({"books": [1], "rdf_url": "https://example.org/catalog.rdf"}, "must contain '{id}'"),
        ({"books": [1], "batchsize": 10}, "Extra inputs are not permitted"),
        ({"books": ["moby"]}, "valid integer"),
    ],
)
def test_options_reject_bad_catalog_values(options, message):
    with pytest.raises(ValidationError, match=message.replace("[", r"\[").replace("]", r"\]")):
        GutenbergConnector.Options(**options)


# -- records --------------------------------------------------------------------------------


def test_moby_dick_record_from_text_and_rdf(fetcher, fixtures_dir):
    [record] = _read(_connector(), fetcher, "02000-02999")
    assert isinstance(record, RawRecord)
    assert record.source_record_id == "2701"
    assert record.upstream_uri == f"{PG}/cache/epub/2701/pg2701.txt"
    assert record.url == f"{PG}/ebooks/2701"
    assert record.payload_type is PayloadType.TEXT
    assert record.title == "Moby Dick; Or, The Whale"
    assert record.license == "Public domain in the USA."
    assert record.license_evidence == f"RDF dcterms:rights of ebook 2701 ({PG}/cache/epub/2701/pg2701.rdf)"
    assert record.attribution == (
        f"Moby Dick; Or, The Whale by Melville, Herman, Project Gutenberg eBook #2701, {PG}/ebooks/2701"
    )
    fixture = fixtures_dir / FIXTURE_TEXTS / "raw-texts" / "2701.txt.gz"
    assert record.metadata == {
        "authors": ["Melville, Herman"],
        "language": "en",
        "issued": "2001-07-01",
        "text_sha256": hashlib.sha256(fixture.read_bytes()).hexdigest(),
        "rdf_url": f"{PG}/cache/epub/2701/pg2701.rdf",
        "encoding": "utf-8",
        "body_lines": [26, 21748],
    }
    assert record.payload.startswith("MOBY DICK; OR THE WHALE\n\nBy Herman Melville\n")
    assert record.payload.endswith("only found another\norphan.")
    assert "*** START OF" not in record.payload
    assert "End of Project Gutenberg's" not in record.payload
    assert "Produced by Daniel Lazarus" not in record.payload
    assert (len(record.payload), record.payload.count("\n")) == (1_215_756, 21_711)


@pytest.fixture
def http_mirror(fixture_mirror):
    """The fixture mirror served over real HTTP on loopback (gzipped files under .txt names)."""
    handler = functools.partial(SimpleHTTPRequestHandler, directory=str(fixture_mirror))
    handler.log_message = lambda *args: None
    server = ThreadingHTTPServer(("127.0.0.1", 0), handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_port}"
    server.shutdown()
    server.server_close()
    thread.join()


def test_unit_read_over_http_mirror_matches_local_mirror(tmp_path, fetcher, http_mirror):
    over_http = Fetcher(cache_dir=tmp_path / "http-cache", mirrors=[Mirror(base=http_mirror)])
    connector = _connector()
    [remote] = _read(connector, over_http, "02000-02999")
    [local] = _read(connector, fetcher, "02000-02999")
    assert remote == local
    assert remote.license == "Public domain in the USA."


def test_book_without_rdf_gets_no_licence_and_header_title(fetcher):
    [record] = _read(_connector(), fetcher, "01000-01999")
    assert record.license is None
    assert record.license_evidence == f"no RDF catalog record for ebook 1013 at {PG}/cache/epub/1013/pg1013.rdf"
    assert record.title == "The First Men In The Moon"
    assert record.metadata["authors"] == ["H. G. Wells"]
    assert record.metadata["language"] is None
    assert record.attribution == (
        f"The First Men In The Moon by H. G. Wells, Project Gutenberg eBook #1013, {PG}/ebooks/1013"
    )


@pytest.mark.parametrize(
    ("key", "expected"),
    [
        # A title wrapped over two header lines; an editor is not an author.
        ("10000-10999", {
            10026: (
                "The Mirror of Literature, Amusement, and Instruction, Vol. 10, Issue 268, August 11, 1827",
                ["Various"],
            ),
            10028: ("Spalding's Official Baseball Guide - 1913", []),
            10076: ("Lister's Great Adventure", ["Harold Bindloss"]),
            10089: ("Elves and Heroes", ["Donald A. MacKenzie"]),
            10509: ("The Bars of Iron", ["Ethel May Dell"]),
        }),
        # An indented subtitle line joins the title.
        ("36000-36999", {
            36261: ("The Chain of Life in Geological Time A Sketch of the Origin and Succession of Animals and Plants",
                    ["Sir J. William Dawson"]),
        }),
    ],
)
def test_header_titles_and_authors_without_rdf(fetcher, key, expected):
    records = _read(_connector(), fetcher, key)
    assert {int(r.source_record_id): (r.title, r.metadata["authors"]) for r in records} == expected
    assert all(r.license is None for r in records)


def test_every_payload_is_the_stripped_text_without_edge_blank_lines(fetcher, fixtures_dir):
    connector = _connector()
    records = [record for unit in connector.units() for record in connector.read(unit, fetcher)]
    assert [int(record.source_record_id) for record in records] == sorted(GUTENBERG_BOOKS)
    for record in records:
        expected = strip_gutenberg_boilerplate(_raw_text(fixtures_dir, int(record.source_record_id))).strip("\n")
        assert record.payload == expected, record.source_record_id


# -- boilerplate stripping vs the c-w/gutenberg ground truth --------------------------------

# Measured with benchmarks/gutenberg_boilerplate.py: every fixture book matches exactly.
MIN_F1 = 1.0


@pytest.mark.parametrize("book", GUTENBERG_BOOKS)
def test_stripper_matches_ground_truth(fixtures_dir, book):
    raw = _raw_text(fixtures_dir, book)
    clean_file = fixtures_dir / FIXTURE_TEXTS / "clean-texts" / f"{book}.txt.gz"
    clean = gzip.decompress(clean_file.read_bytes()).decode("utf-8")
    score = line_closeness(strip_gutenberg_boilerplate(raw), clean)
    print(f"{book}: P={score.precision:.4f} R={score.recall:.4f} F1={score.f1:.4f} exact={score.exact}")
    assert score.f1 >= MIN_F1
    assert score.exact
    assert score.reference_lines == score.common_lines == score.output_lines


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        # 2020+ marker, no credits, no footer line: runs to the end.
        ("Title: X\n*** START OF THE PROJECT GUTENBERG EBOOK X ***\n\nBody.\nMore.", "\nBody.\nMore."),
        # 2003 style marker wrapped over two lines, no credit paragraph after it.
        (
            "***START OF THE PROJECT GUTENBERG EBOOK A LONG\nTITLE***\n\nBody.\n"
            "***END OF THE PROJECT GUTENBERG EBOOK A LONG\n",
            "\nBody.",
        ),
        # 1990s small print as the only header end; footer "End of The Project Gutenberg Etext".
        (
            "**The Project Gutenberg Etext of X**\nlegalese\n"
            "*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*\n"
            "\nThis etext was prepared by A. Volunteer.\n\nChapter 1\nEnd of The Project Gutenberg Etext of X\nlicence",
            "\nChapter 1",
        ),
        # CRLF and a BOM; a credit paragraph and an edition note with a URL are dropped.
        ("\ufeffhead\r\n*** START OF THIS PROJECT GUTENBERG EBOOK X ***\r\n\r\nProduced by A and B\r\n\r\n"
         "Note: page images at http://archive.org/details/x\r\n\r\nNote: the author's own note.\r\n"
         "*** END OF THIS PROJECT GUTENBERG EBOOK X ***\r\n",
         "\nNote: the author's own note."),
        # Both a START line and the small print after it: the later one ends the header.
        ("*** START OF THE PROJECT GUTENBERG EBOOK X ***\nsmall print\n*END THE SMALL PRINT\nBody\n"
         "*** END OF THE PROJECT GUTENBERG EBOOK X ***", "Body"),
    ],
)
def test_stripper_marker_variants(text, expected):
    assert strip_gutenberg_boilerplate(text) == expected


def test_stripper_reports_where_the_body_is(fixtures_dir):
    body = locate_gutenberg_body(_raw_text(fixtures_dir, 10026))
    assert (body.first_line, body.end_line) == (40, 1541)
    assert (body.start_marker_line, body.wrapped_marker_lines, body.preamble_paragraphs) == (25, 1, 2)
    assert body.footer_marker == "***END OF THE PROJECT GUTENBERG EBOOK THE MIRROR OF LITERATURE, AMUSEMENT,"


def test_stripper_without_start_marker_raises(fixtures_dir):
    text = _raw_text(fixtures_dir, 2701).replace("*** START OF THIS PROJECT GUTENBERG EBOOK", "START OF THE BOOK")
    with pytest.raises(NoStartMarker) as raised:
        strip_gutenberg_boilerplate(text)
    assert isinstance(raised.value, ValueError)


# -- bad input ------------------------------------------------------------------------------


def test_book_without_start_marker_is_quarantined_and_the_unit_goes_on(tmp_path, fixture_mirror, fixtures_dir):
    broken = _raw_text(fixtures_dir, 10076).replace("***START OF THE PROJECT GUTENBERG EBOOK", "START OF THE EBOOK")
    fetcher = _fetcher_with(tmp_path, fixture_mirror, {f"{EPUB_DIR}/10076/pg10076.txt": broken})
    records = _read(_connector(), fetcher, "10000-10999")
    assert [type(r).__name__ for r in records] == ["RawRecord", "RawRecord", "Decision", "RawRecord", "RawRecord"]
    decision = records[2]
    assert (decision.source_record_id, decision.upstream_uri) == ("10076", f"{PG}/cache/epub/10076/pg10076.txt")
    assert decision.outcome is Outcome.QUARANTINED
    assert (decision.stage, decision.reason) == ("raw", "gutenberg.no_start_marker")
    assert decision.detail.startswith(f"{PG}/cache/epub/10076/pg10076.txt: no '*** START OF")
    assert [r.source_record_id for r in records if isinstance(r, RawRecord)] == ["10026", "10028", "10089", "10509"]


def test_missing_text_file_is_quarantined(fetcher):
    connector = _connector(books=[2701, 2702])
    records = list(connector.read(connector.units()[0], fetcher))
    assert [r.source_record_id for r in records] == ["2701", "2702"]
    missing = records[1]
    assert isinstance(missing, Decision)
    assert (missing.outcome, missing.reason) == (Outcome.QUARANTINED, "gutenberg.missing_text")
    assert f"{PG}/cache/epub/2702/pg2702.txt" in missing.detail


@pytest.mark.parametrize(
    ("corrupt", "problem"),
    [
        (lambda data: data[: len(data) // 2], "cannot decompress"),  # truncated gzip
        (lambda data: b"PK\x03\x04" + b"\x00" * 64, "is not a text file (NUL bytes)"),  # a zip, not text
    ],
)
def test_unreadable_text_file_fails_the_unit_naming_it(tmp_path, fixture_mirror, fixtures_dir, corrupt, problem):
    data = corrupt((fixtures_dir / FIXTURE_TEXTS / "raw-texts" / "2701.txt.gz").read_bytes())
    fetcher = _fetcher_with(tmp_path, fixture_mirror, {f"{EPUB_DIR}/2701/pg2701.txt": data})
    with pytest.raises(UnreadableInput) as raised:
        _read(_connector(), fetcher, "02000-02999")
    assert raised.value.location == f"{PG}/cache/epub/2701/pg2701.txt"
    assert problem in raised.value.problem
    assert str(tmp_path / "override" / EPUB_DIR / "2701" / "pg2701.txt") in raised.value.problem


@pytest.mark.parametrize(
    ("charset_line", "encode_as", "expected_encoding"),
    [
        ("Character set encoding: UTF-8", "utf-8-sig", "utf-8"),  # with a BOM
        ("Character set encoding: ISO-8859-1", "latin-1", "iso8859-1"),
        ("Character set encoding: CP-1252", "cp1252", "cp1252"),
        ("Chatacter set encoding: windows-1252", "cp1252", "cp1252"),  # PG's 2003 typo
        ("Character set encoding: ASCII", "latin-1", "latin-1"),  # the header lies: fall back
        ("Language: French", "latin-1", "latin-1"),  # no charset line at all
    ],
)
def test_text_decoding_falls_back_on_declared_charset(
    tmp_path, fixture_mirror, charset_line, encode_as, expected_encoding
):
    dash = "-" if encode_as == "latin-1" else "\u2014"  # latin-1 has no em dash
    body = f"\u00c9t\u00e9 {dash} \u00ab d\u00e9j\u00e0 \u00bb"
    text = (
        f"The Project Gutenberg EBook of Cafe\r\n\r\nTitle: Caf\u00e9 cr\u00e8me\r\n\r\n{charset_line}\r\n\r\n"
        f"*** START OF THIS PROJECT GUTENBERG EBOOK CAFE ***\r\n\r\n{body}\r\n"
        "*** END OF THIS PROJECT GUTENBERG EBOOK CAFE ***\r\n"
    )
    fetcher = _fetcher_with(tmp_path, fixture_mirror, {f"{EPUB_DIR}/99999/pg99999.txt": text.encode(encode_as)})
    [record] = _read(_connector(books=[99999]), fetcher, "99000-99999")
    assert record.metadata["encoding"] == expected_encoding
    assert record.title == "Caf\u00e9 cr\u00e8me"
    assert record.payload == body


def test_rdf_entities_are_not_expanded(tmp_path, fixture_mirror, fixtures_dir):
    rdf = (fixtures_dir / FIXTURE_TEXTS / "rdf/cache/epub/2701/pg2701.rdf").read_text()
    rdf = rdf.replace(
        '<?xml version="1.0" encoding="utf-8"?>',
        '<?xml version="1.0" encoding="utf-8"?>\n<!DOCTYPE rdf:RDF [<!ENTITY leak SYSTEM "file:///etc/hostname">]>',
    ).replace("<dcterms:rights>Public domain in the USA.", "<dcterms:rights>Public domain&leak; in the USA.")
    fetcher = _fetcher_with(tmp_path, fixture_mirror, {f"{EPUB_DIR}/2701/pg2701.rdf": rdf.encode()})
    [record] = _read(_connector(), fetcher, "02000-02999")
    hostname = Path("/etc/hostname").read_text().strip() if Path("/etc/hostname").exists() else "\x00"
    assert record.license == "Public domain in the USA."
    assert hostname not in record.license


@pytest.mark.parametrize(
    ("rdf", "detail"),
    [
        (b"<rdf:RDF", "not a readable RDF/XML record"),
        (b'<rdf:RDF xmlns:rdf="http://www.w3.org/1999/02/22-rdf-syntax-ns#"/>', "no pgterms:ebook element"),
    ],
)
def test_unusable_rdf_quarantines_the_book(tmp_path, fixture_mirror, rdf, detail):
    fetcher = _fetcher_with(tmp_path, fixture_mirror, {f"{EPUB_DIR}/2701/pg2701.rdf": rdf})
    [decision] = _read(_connector(), fetcher, "02000-02999")
    assert (decision.outcome, decision.reason) == (Outcome.QUARANTINED, "gutenberg.bad_rdf")
    assert decision.detail.startswith(f"{PG}/cache/epub/2701/pg2701.rdf: {detail}")


def test_rdf_of_another_ebook_is_refused(tmp_path, fixture_mirror, fixtures_dir):
    other = (fixtures_dir / FIXTURE_TEXTS / "rdf/cache/epub/5/pg5.rdf").read_bytes()
    fetcher = _fetcher_with(tmp_path, fixture_mirror, {f"{EPUB_DIR}/2701/pg2701.rdf": other})
    [decision] = _read(_connector(), fetcher, "02000-02999")
    assert decision.reason == "gutenberg.bad_rdf"
    assert "record describes 'ebooks/5', not ebooks/2701" in decision.detail


# -- books without an END marker (issue 12) ---------------------------------------------------

_END_OF_MARKER = re.compile(r"^\s*\*{3}\s*END OF (?:THE|THIS) PROJECT GUTENBERG", re.IGNORECASE)


def _lines_without(fixtures_dir: Path, book: int, *, end_markers: bool = True, licence_lines: tuple[str, ...] = ()) -> str:
    """The real book with its footer marker lines deleted: from the first footer line ("End of the
    Project Gutenberg ..." or "*** END OF ...") through the `*** END OF` marker and its wrapped
    continuation; and every line starting with one of `licence_lines`."""
    lines = _raw_text(fixtures_dir, book).lstrip("\ufeff").splitlines()
    if end_markers:
        footer = locate_gutenberg_body("\n".join(lines)).end_line
        end = next(i for i in range(footer, footer + 6) if _END_OF_MARKER.match(lines[i]))
        while not lines[end].rstrip().endswith("***"):
            end += 1
        del lines[footer : end + 1]
    lines = [line for line in lines if not line.lstrip(" *").startswith(licence_lines)]
    return "\n".join(lines) + "\n"


def _normal_body(fixtures_dir: Path, book: int) -> str:
    return strip_gutenberg_boilerplate(_raw_text(fixtures_dir, book)).strip("\n")


@pytest.mark.parametrize("book", GUTENBERG_BOOKS)
def test_without_end_marker_the_licence_section_is_cut_where_it_starts(fixtures_dir, book):
    text = _lines_without(fixtures_dir, book)
    assert "END OF TH" not in text and "End of Project Gutenberg" not in text
    body = locate_gutenberg_body(text)
    assert body.body_end == "licence-section"
    # 2003-2020 files open the section with "*** This file should be named <id>.txt ***".
    assert body.footer_marker.strip("* ").startswith(f"This file should be named {book}.txt")
    assert strip_gutenberg_boilerplate(text).strip("\n") == _normal_body(fixtures_dir, book)


# Each row deletes more of 2701's footer; the body must still end where the normal one does, until
# no marker is left: then PG's licence text near the end makes the book unusable.
_LICENCE_STARTS = (
    "This file should be named",
    "This and all associated files",
    "Updated editions will replace",
    "START: FULL LICENSE",
    "THE FULL PROJECT GUTENBERG LICENSE",
    "Section 1. General Terms of Use",
)


@pytest.mark.parametrize(
    ("deleted", "expected_marker"),
    [
        (0, "***** This file should be named 2701.txt or 2701.zip *****"),
        (1, "This and all associated files of various formats will be found in:"),
        (2, "Updated editions will replace the previous one--the old editions"),
        (3, "*** START: FULL LICENSE ***"),
        (4, "THE FULL PROJECT GUTENBERG LICENSE"),
        (6, None),
    ],
)
def test_licence_section_markers_in_order(fixtures_dir, deleted, expected_marker):
    text = _lines_without(fixtures_dir, 2701, licence_lines=_LICENCE_STARTS[:deleted])
    if expected_marker is None:
        with pytest.raises(NoEndMarker) as raised:
            locate_gutenberg_body(text)
        assert "mentions Project Gutenberg" in str(raised.value)
        return
    body = locate_gutenberg_body(text)
    assert (body.body_end, body.footer_marker) == ("licence-section", expected_marker)
    kept = strip_gutenberg_boilerplate(text).strip("\n")
    if deleted == 0:
        assert kept == _normal_body(fixtures_dir, 2701)
    else:
        # The documented cut point: the body runs to the first licence-section line left, so the
        # lines before it (producers, the blurb) stay; the book itself is whole and ends the same.
        assert kept.startswith(_normal_body(fixtures_dir, 2701))
        assert kept.endswith(_licence_blurb_before(text, expected_marker))


def _licence_blurb_before(text: str, marker: str) -> str:
    lines = text.splitlines()
    at = lines.index(marker)
    last = max(i for i in range(at) if lines[i].strip())
    return lines[last]


def test_truncated_book_without_pg_text_is_kept_to_its_end(fixtures_dir):
    lines = _raw_text(fixtures_dir, 2701).lstrip("\ufeff").splitlines()
    footer = locate_gutenberg_body("\n".join(lines)).end_line
    text = "\n".join(lines[:footer])  # a mirror cut the file right after the book
    body = locate_gutenberg_body(text)
    assert (body.body_end, body.footer_marker, body.end_line) == ("end-of-file", None, len(text.splitlines()))
    assert strip_gutenberg_boilerplate(text).strip("\n") == _normal_body(fixtures_dir, 2701)


def test_connector_records_the_licence_section_cut(tmp_path, fixture_mirror, fixtures_dir):
    fetcher = _fetcher_with(
        tmp_path, fixture_mirror, {f"{EPUB_DIR}/2701/pg2701.txt": _lines_without(fixtures_dir, 2701)}
    )
    [record] = _read(_connector(), fetcher, "02000-02999")
    assert isinstance(record, RawRecord)
    assert record.payload == _normal_body(fixtures_dir, 2701)
    assert (len(record.payload), record.payload.splitlines()[-2:]) == (1_215_756, ["her retracing search after her missing children, only found another", "orphan."])
    assert record.metadata["body_end"] == "licence-section"
    assert record.metadata["body_end_marker"] == "***** This file should be named 2701.txt or 2701.zip *****"
    # the marker line: the normal end (21748) plus the blank line left after the 3 deleted footer lines
    assert record.metadata["body_lines"] == [26, 21749]
    [note] = record.notes
    assert (note.outcome, note.stage, note.reason, note.value) == (Outcome.KEPT, "raw", "gutenberg.licence_section_cut", "21749")


def test_the_licence_section_cut_is_a_decision_trace_shows(tmp_path, fixture_mirror, fixtures_dir):
    from opencorpus_dagster.catalog import load_source_file
    from opencorpus_dagster.lineage.store import LineageStore
    from opencorpus_dagster.lineage.trace import trace_doc
    from opencorpus_dagster.records import make_doc_id
    from opencorpus_dagster.stages.ingest import ingest_partition
    from opencorpus_dagster.state.home import data_home

    fetcher = _fetcher_with(
        tmp_path, fixture_mirror, {f"{EPUB_DIR}/2701/pg2701.txt": _lines_without(fixtures_dir, 2701)}
    )
    (tmp_path / "pg.yaml").write_text("name: pg\nkind: gutenberg\noptions: {books: [2701, 1013]}\n")
    source = load_source_file(tmp_path / "pg.yaml")
    home = data_home(tmp_path / "home")
    store = LineageStore.at(home.lineage_db)
    (unit,) = [unit for unit in source.connector.units() if unit.key == "02000-02999"]
    result = ingest_partition(source, unit, fetcher, home, store, "run-1")
    assert (result.records_in, result.raw_records, dict(result.counts)) == (1, 1, {})  # a note is no outcome
    [trace] = trace_doc(store, make_doc_id("pg", "2701"))
    assert [(d["stage"], d["outcome"], d["reason"], d["value"]) for d in trace["decisions"]] == [
        ("raw", "kept", "gutenberg.licence_section_cut", "21749")
    ]
    assert store.conservation()[0]["total"] == 1


def test_connector_quarantines_a_book_with_pg_text_and_no_marker(tmp_path, fixture_mirror, fixtures_dir):
    text = _lines_without(fixtures_dir, 2701, licence_lines=_LICENCE_STARTS)
    fetcher = _fetcher_with(tmp_path, fixture_mirror, {f"{EPUB_DIR}/2701/pg2701.txt": text})
    [decision] = _read(_connector(), fetcher, "02000-02999")
    assert isinstance(decision, Decision)
    assert (decision.outcome, decision.stage, decision.reason) == (Outcome.QUARANTINED, "raw", "gutenberg.no_end_marker")
    assert decision.detail.startswith(f"{PG}/cache/epub/2701/pg2701.txt: no '*** END OF THE PROJECT GUTENBERG EBOOK'")
    assert "mentions Project Gutenberg" in decision.detail


def test_usual_book_records_carry_no_body_end(fetcher):
    [record] = _read(_connector(), fetcher, "02000-02999")
    assert "body_end" not in record.metadata and record.notes == []
