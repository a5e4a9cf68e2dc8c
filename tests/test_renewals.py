"""US public domain by non-renewal: renewal records, the determination, the licence step and trace."""

from __future__ import annotations

import csv
import json
import xml.etree.ElementTree as ET

import pytest
from cli_runner import REPO, build, run_opencorpus
from conftest import require_fixture

from opencorpus_dagster.connectors.base import UnreadableInput
from opencorpus_dagster.licensing.policy import LicensePolicy
from opencorpus_dagster.licensing.renewal_records import (
    RenewalIndex,
    RenewalRow,
    load_renewal_index,
    normalise_registration,
    normalise_renewal,
    parse_cce_date,
)
from opencorpus_dagster.licensing.renewals import (
    NOT_RENEWED,
    RENEWED,
    RenewalDetermination,
    RenewalsConfig,
    author_names,
    determine,
    renewal_step,
    search_candidates,
    title_numbers,
)
from opencorpus_dagster.records import Document, make_doc_id
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror, NotFound


@pytest.fixture(scope="module")
def index():
    folder = require_fixture("digitised/renewals")
    return load_renewal_index((p.name, p.read_text(encoding="utf-8")) for p in sorted(folder.glob("*.tsv")))


def _example_entries():
    root = ET.parse(require_fixture("digitised/registrations/351_page20.example.xml")).getroot()
    for entry in root.iter("copyrightEntry"):
        yield {
            "title": " ".join("".join(entry.find("title").itertext()).split()),
            "author": " ".join("".join(entry.find("author/authorName").itertext()).split()),
            "registration": entry.get("regnum"),
            "registered": entry.find("regDate").get("date"),
        }


@pytest.mark.parametrize(
    ("raw", "expected"),
    [
        ("AFO-4873", "AF04873"),
        ("AF0-4873", "AF04873"),
        ("AIO-1529", "AI01529"),
        ("AI-3191", "AI3191"),
        ("a 39770", "A39770"),
    ],
)
def test_registration_ids_are_normalised(raw, expected):
    assert normalise_registration(raw) == expected


@pytest.mark.parametrize(
    ("raw", "expected"), [("6Jun51", "1951-06-06"), ("16Jan50", "1950-01-16"), ("29Dec51", "1951-12-29"), ("51", None)]
)
def test_cce_dates_are_parsed(raw, expected):
    assert parse_cce_date(raw) == expected


def test_renewal_ids_compare_in_r_form():
    assert normalise_renewal("RE26938") == "R26938" and normalise_renewal("R651568") == "R651568"


def test_index_covers_1950_and_1951_from_the_whole_year_files(index):
    assert index.renewal_years() == [1977, 1978, 1979]
    assert index.covered_registration_years() == [1950, 1951]
    assert index.rows == 34949


def test_unparsed_rows_are_read_from_full_text(index):
    (row,) = index.by_key[("A40610", "1950-01-16")]
    assert row.from_full_text and row.renewal_id == "R651764" and row.renewed == "1977-01-17"
    assert row.titles == ("Tales of the sea and other poems.",) and row.author == "Wallace Worth Ackley."


def test_unrolled_renewal_indexes_both_registrations(index):
    interim = index.by_key[("AI2456", "1949-10-03")]
    final = index.by_key[("A39770", "1950-01-06")]
    assert {r.renewal_id for r in interim} == {r.renewal_id for r in final} == {"R651568"}


def test_misread_dates_are_suspect(index):
    (row,) = index.by_key[("A779451", "1951-02-14")]
    assert row.renewal_id == "R87813" and row.suspect
    assert "dates outside the 27-28 year renewal window" in row.flags


def test_nypl_example_agrees_with_its_links_file(index):
    links = {
        row["regnum"]: row
        for row in csv.DictReader(
            open(require_fixture("digitised/registrations/example-links.tsv"), encoding="utf-8"), delimiter="\t"
        )
    }
    statuses = {}
    for entry in _example_entries():
        result = determine(index, entry)
        statuses[entry["registration"]] = result.status
        link = links[entry["registration"]]
        if link["renewed"] == "yes":
            assert result.status == "renewed" and result.license == RENEWED
            assert result.renewal_ids == link["renewal_ids"].split(";")
        elif entry["registration"].startswith("AF"):
            assert result.status == "undetermined" and result.license is None
            assert "URAA" in result.reason
        else:
            assert result.status == "not_renewed" and result.license == NOT_RENEWED
    assert statuses == {
        "A50966": "not_renewed",
        "A50980": "renewed",
        "AF0-4873": "undetermined",
        "A53625": "renewed",
        "A53040": "renewed",
        "A55750": "renewed",
        "A54859": "not_renewed",
    }


def test_not_renewed_evidence_names_keys_coverage_and_candidates(index):
    entry = next(e for e in _example_entries() if e["registration"] == "A54859")
    evidence = determine(index, entry).evidence()
    assert "searched registration A54859/1951-04-06" in evidence
    assert "author 'james warner bellah'" in evidence
    assert "renewals of 1977-1979 loaded (registrations of 1950-1951 covered)" in evidence
    # A book is renewed under a book registration: the periodical "The Apache Kid" (B323765) is not a candidate.
    assert (
        "closest: RE25776 A53624/1951-03-16 'The Apache Indians.  Text: Sonia Bleeker' (title 71, author -)" in evidence
    )
    assert "B323765" not in evidence


@pytest.mark.parametrize(
    ("bibliographic", "status", "reason_part"),
    [
        # Without a number, the cataloguer's title and author (with OCR noise) find the renewal.
        (
            {"title": "Mathernatics, queen and servant of science", "author": "BELL, ERIC T", "year": 1951},
            "renewed",
            "close title and author",
        ),
        ({"title": "The Land of Pretend", "author": "BELL, EDITH VIOLA", "year": 1950}, "not_renewed", "no renewal"),
        # Renewed by the author's estate in 1980, 29 years on: outside the window, so not a match.
        ({"title": "I can't stop running", "author": "AARONS, EDWARD S", "year": 1951}, "not_renewed", "no renewal"),
        (
            {"title": "Grammar for today", "author": "BELLAFIORE, JOSEPH", "year": 1951, "country": "GB"},
            "undetermined",
            "outside the US",
        ),
        (
            {"title": "Some 1930 book", "author": "DOE, JOHN", "year": 1930},
            "undetermined",
            "renewals of 1930 registrations are not loaded",
        ),
        ({"title": "A 1970 book", "author": "DOE, JOHN", "year": 1970}, "not_applicable", "outside 1929-1963"),
        (
            {"title": "A book", "registration": "A23471", "registered": "1950-03-01", "year": 1950},
            "undetermined",
            "outside the renewal window",
        ),
    ],
)
def test_determination_cases(index, bibliographic, status, reason_part):
    result = determine(index, bibliographic)
    assert result.status == status, result.evidence()
    assert reason_part in result.reason


@pytest.mark.parametrize(
    ("title", "numbers"),
    [
        ("Paterson. Book 3", {"3"}),
        ("Vol. II: Toward educational independence", {"2"}),
        ("Texas jurisprudence. Vol. 3B", {"3"}),
        ("The Use of books and libraries, 6th ed", {"6"}),
        ("A Documentary history of education in the South before 1860", set()),
    ],
)
def test_title_numbers(title, numbers):
    assert title_numbers(title) == numbers


@pytest.mark.parametrize(
    ("record", "renewal", "same"),
    [
        ("Born of those years", "Born of those years.", True),
        ("Bon of those yearf", "Born of those years.", True),  # a dropped letter, long s read as f
        ("The RNan of Independence", "The Man of Independence.", True),  # rn read for m
        ("The Killer tches the manhunt", "The Killer watches the manhunt.", True),
        ("The Big book of real trains", "The Big book of real trucks.", False),
        ("Joan Foster, Junior", "Joan Foster, senior.", False),
        ("Audubon bird guide", "Audubon water bird guide: water, game and large land birds", False),
        ("Paterson. Book 3", "Paterson.  Book 4.", False),
        ("Cancer", "Cancer.  Vol. 4, no. 1, Jan. 1951.", False),  # a periodical: not a book's renewal
    ],
)
def test_close_titles_that_are_other_works_do_not_match(record, renewal, same):
    number = "B1" if "Vol. 4" in renewal else "A1"
    row = RenewalRow("RE1", number, "1951-01-01", "1979-01-01", (renewal,), "Jane Doe.", "", "e", "f")
    candidates = search_candidates(_one_row_index(row), record, "DOE, JANE", [1951], registration_class="A")
    matched = bool(candidates) and candidates[0].matches
    assert matched == same


def _one_row_index(row):
    index = RenewalIndex()
    index.add([row])
    return index


def test_pseudonyms_name_both_people():
    assert author_names("Edward Ronns, pseud. of Edward S. Aarons.") == ["edward ronns", "edward s aarons"]
    assert author_names("BELL, ERIC TEMPLE") == ["eric temple bell"]


def test_default_policy_refuses_renewed_and_accepts_not_renewed():
    policy = LicensePolicy()
    assert policy.judge(NOT_RENEWED).allowed
    verdict = policy.judge(RENEWED)
    assert not verdict.allowed and verdict.reason == "license.denied"


@pytest.fixture(scope="module")
def digitised_build(tmp_path_factory):
    fixtures = require_fixture("digitised")
    mirror = tmp_path_factory.mktemp("mirror")
    (mirror / "fixtures.opencorpus.invalid").mkdir()
    (mirror / "fixtures.opencorpus.invalid" / "digitised").symlink_to(fixtures)
    home = tmp_path_factory.mktemp("home")
    summary = json.loads(build(home, mirror, REPO / "tests" / "catalogs" / "digitised").stdout)
    return home, summary


def _trace(home, record_id):
    doc_id = make_doc_id("digitised_books", record_id)
    return run_opencorpus("trace", "--doc-id", doc_id, home=home).stdout


def test_build_keeps_the_unrenewed_book_and_trace_shows_the_evidence(digitised_build):
    home, _ = digitised_build
    out = _trace(home, "land-of-pretend/p0021")
    assert f"licence: {NOT_RENEWED}" in out
    assert "US renewal search: not_renewed (no renewal names this registration number and date)" in out
    assert "searched registration A50966/1950-11-01" in out
    assert "renewals of 1977-1979 loaded (registrations of 1950-1951 covered)" in out
    assert "closest: RE11235 A49153/1950-10-24" in out
    assert "wetzel_reisebegleiter_1901_0021.alto#page=21" in out


def test_build_refuses_the_renewed_book_naming_the_renewal(digitised_build):
    home, _ = digitised_build
    out = _trace(home, "mathematics-queen/p0012")
    assert "license.denied" in out and RENEWED in out
    assert "US renewal search: renewed" in out and "renewal RE26938" in out


def test_build_leaves_the_foreign_book_undetermined(digitised_build):
    home, _ = digitised_build
    out = _trace(home, "zehn-gebote/p0021")
    assert "license.unknown" in out
    assert "US renewal search: undetermined (foreign or ad interim registration" in out


def test_renewal_files_are_read_through_the_fetcher_and_a_bad_one_names_itself(tmp_path):
    fixtures = require_fixture("digitised/renewals")
    mirror = tmp_path / "mirror" / "fixtures.opencorpus.invalid"
    mirror.mkdir(parents=True)
    (mirror / "1979-from-db.tsv").symlink_to(fixtures / "1979-from-db.tsv")
    (mirror / "notes.tsv").write_text("a\tb\n1\t2\n", encoding="utf-8")
    fetcher = Fetcher(tmp_path / "cache", [Mirror.parse(str(tmp_path / "mirror"))])
    base = "https://fixtures.opencorpus.invalid"
    step = renewal_step(RenewalsConfig(files=[f"{base}/1979-from-db.tsv"]), fetcher)
    assert step.index.rows == 18088 and step.index.renewal_years() == [1979]
    with pytest.raises(UnreadableInput, match=r"notes.tsv: not a readable cce-renewals TSV"):
        renewal_step(RenewalsConfig(files=[f"{base}/notes.tsv"]), fetcher)
    with pytest.raises(NotFound, match="missing.tsv"):
        renewal_step(RenewalsConfig(files=[f"{base}/missing.tsv"]), fetcher)


@pytest.mark.parametrize(
    ("bibliographic", "stated", "license"),
    [
        # A blanket public-domain claim does not survive an undetermined search...
        (
            {"title": "Die zehn Gebote", "registration": "AF0-4873", "registered": "1951-01-05"},
            "LicenseRef-PublicDomain",
            None,
        ),
        ({"title": "Some 1930 book", "year": 1930}, "Public domain in the USA.", None),
        # ...a licence given by the rights holder does, and a confirmed search replaces the claim.
        (
            {"title": "Die zehn Gebote", "registration": "AF0-4873", "registered": "1951-01-05"},
            "CC-BY-4.0",
            "CC-BY-4.0",
        ),
        (
            {"title": "The Land of Pretend.", "registration": "A50966", "registered": "1950-11-01"},
            "LicenseRef-PublicDomain",
            NOT_RENEWED,
        ),
        (
            {"title": "Grammar for today.", "registration": "A55750", "registered": "1951-05-01"},
            "LicenseRef-PublicDomain",
            RENEWED,
        ),
        (
            {"title": "A 1900 book", "year": 1900},
            "LicenseRef-PublicDomain",
            "LicenseRef-PublicDomain",
        ),  # not applicable
    ],
)
def test_licence_step_on_documents(index, bibliographic, stated, license):
    step = RenewalDetermination(index)
    doc = Document(
        "d", "s", "r", "u", None, None, "text", None, stated, "declared", None, {"bibliographic": bibliographic}
    )
    result = step(doc)
    assert result.license == license
    assert result.license_evidence.startswith("declared; US renewal search: ")
    assert result.metadata["us_renewals"]["status"] in ("renewed", "not_renewed", "undetermined", "not_applicable")
