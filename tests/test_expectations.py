"""The Great Expectations suites in expectations/ run over the real fixture corpus.

The corpus is built once per module with the real `opencorpus build` console script (as in
test_build.py); the suites then run on its raw, documents and shard Parquet files, and on
tmp_path copies with one fault written in by pyarrow.
"""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import great_expectations as gx
import pyarrow as pa
import pyarrow.parquet as pq
import pytest

from opencorpus_dagster.connectors.base import UnreadableInput
from opencorpus_dagster.licensing.policy import LicensePolicy
from opencorpus_dagster.licensing.spdx import PUBLIC_DOMAIN, known_license_ids
from opencorpus_dagster.quality.expectations import (
    EXPECTATIONS_DIR,
    MissingSuiteParameter,
    SuiteError,
    run_suite,
    suite_parameter_names,
)

REPO = Path(__file__).resolve().parent.parent
OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")
ENWIKI_PARTITION = "enwiki-latest-pages-articles1.xml-p000000010p000030302"
# What the default policy allows, as the finite set GX's expect_column_values_to_be_in_set needs.
ALLOWED_LICENSES = sorted(i for i in known_license_ids() | {PUBLIC_DOMAIN} if LicensePolicy().judge(i).allowed)
PARAMETERS = {
    "allowed_licenses": ALLOWED_LICENSES,
    "allowed_languages": ["en"],
    "corpus_allowed_licenses": ALLOWED_LICENSES,
    "corpus_allowed_languages": ["en"],
    "language_identified": 1.0,
    "corpus_language_identified": 1.0,
}
DOCUMENTS = EXPECTATIONS_DIR / "documents.json"


@pytest.fixture(scope="module")
def home(built_corpus) -> Path:
    """The fixture corpus built by the real console script (shared, read-only)."""
    return built_corpus[0]


@pytest.fixture(scope="module")
def enwiki_documents(home) -> pa.Table:
    return pq.read_table(home / "documents" / "enwiki" / f"{ENWIKI_PARTITION}.parquet")


@pytest.mark.parametrize(
    ("suite", "expectations", "parameters"),
    [
        ("raw_records", 6, set()),
        ("documents", 10, {"allowed_licenses", "allowed_languages", "language_identified"}),
        ("shards", 10, {"corpus_allowed_licenses", "corpus_allowed_languages", "corpus_language_identified"}),
    ],
)
def test_suite_files_are_gx_suites(suite, expectations, parameters):
    spec = json.loads((EXPECTATIONS_DIR / f"{suite}.json").read_text())
    # GX logs and drops an expectation it cannot build, so the count proves every entry is valid.
    loaded = gx.ExpectationSuite(**spec)
    assert loaded.name == suite
    assert len(loaded.expectations) == len(spec["expectations"]) == expectations
    assert suite_parameter_names(EXPECTATIONS_DIR / f"{suite}.json") == parameters


@pytest.mark.parametrize(
    ("suite", "pattern", "rows", "files", "columns"),
    [
        # 206 enwiki pages less 100 redirects (skipped before raw), and 15 Gutenberg books.
        ("raw_records", "raw/*/*.parquet", 121, 10, ("doc_id", "payload", "payload_type", "source_record_id", "upstream_uri")),
        # 94 enwiki articles and one Gutenberg book pass the documents stage; no duplicates.
        ("documents", "documents/*/*.parquet", 95, 10, ("content_sha256", "doc_id", "language", "license", "text", "upstream_uri")),
        ("shards", "corpus/releases/r000001/shards/*/*/*.parquet", 95, 2, ("content_sha256", "doc_id", "language", "license", "text", "upstream_uri")),
    ],
)  # fmt: skip
def test_suites_pass_on_the_built_corpus(home, suite, pattern, rows, files, columns):
    paths = sorted(home.glob(pattern))
    result = run_suite(EXPECTATIONS_DIR / f"{suite}.json", paths, PARAMETERS)
    assert result.failed == []
    assert result.success is True
    assert (result.suite_name, result.rows, result.files) == (suite, rows, files)
    assert result.evaluated == len(json.loads((EXPECTATIONS_DIR / f"{suite}.json").read_text())["expectations"])
    # Only the columns the suite names are read: raw never loads title, metadata, ...
    assert result.columns == columns
    metadata = json.loads(json.dumps(result.to_metadata()))
    assert metadata["success"] is True and metadata["rows"] == rows and metadata["failed"] == []


def test_licence_outside_the_allowlist_fails_documents(home, enwiki_documents, tmp_path):
    licenses = enwiki_documents.column("license").to_pylist()
    assert licenses[7] == "CC-BY-SA-3.0"
    licenses[7] = "CC-BY-NC-4.0"
    changed = enwiki_documents.set_column(
        enwiki_documents.schema.get_field_index("license"), "license", pa.array(licenses, pa.string())
    )
    pq.write_table(changed, tmp_path / "enwiki.parquet")
    gutenberg = sorted((home / "documents" / "gutenberg").glob("*.parquet"))

    result = run_suite(DOCUMENTS, [tmp_path / "enwiki.parquet", *gutenberg], PARAMETERS)

    assert result.success is False
    assert result.rows == 95
    [failure] = result.failed
    assert (failure.type, failure.column) == ("expect_column_values_to_be_in_set", "license")
    assert failure.unexpected_count == 1
    assert failure.unexpected_examples == ["CC-BY-NC-4.0"]
    assert failure.kwargs["value_set"] == ALLOWED_LICENSES
    metadata = json.loads(json.dumps(result.to_metadata()))
    assert metadata["failed_count"] == 1
    assert metadata["failed"][0]["unexpected_examples"] == ["CC-BY-NC-4.0"]


@pytest.fixture
def overlapping_files(enwiki_documents, tmp_path) -> tuple[list[Path], list[str]]:
    """Rows 0-49 and 40-93 of the enwiki documents in two files: rows 40-49 are in both."""
    first, second = tmp_path / "a.parquet", tmp_path / "b.parquet"
    pq.write_table(enwiki_documents.slice(0, 50), first)
    pq.write_table(enwiki_documents.slice(40), second)
    return [first, second], enwiki_documents.column("doc_id").to_pylist()[40:50]


def test_duplicate_doc_id_across_files_is_caught_with_small_batches(overlapping_files):
    paths, repeated = overlapping_files
    # No batch of 10 rows holds a repeated doc_id: only the whole-table query can see them.
    result = run_suite(DOCUMENTS, paths, PARAMETERS, batch_rows=10)
    assert result.rows == 104
    [failure] = result.failed
    assert failure.type == "expect_compound_columns_to_be_unique"
    assert failure.unexpected_count == 20  # every row of each of the 10 repeated values
    assert sorted(example["doc_id"] for example in failure.unexpected_examples) == sorted(repeated)


def _cut_text(example) -> bool:
    return example.endswith(" chars)") and len(example) < 230


@pytest.mark.parametrize(
    ("expectation", "unexpected_count", "example_holds"),
    [
        # 20 of 104 rows repeat a doc_id: 80.8 % unique.
        ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "doc_id", "mostly": 0.75}}, None, None),
        ({"type": "expect_column_values_to_be_unique", "kwargs": {"column": "doc_id", "mostly": 0.9}}, 20, lambda e: len(e) == 24),
        ({"type": "expect_compound_columns_to_be_unique", "kwargs": {"column_list": ["source", "title"]}}, 20, lambda e: e["source"] == "enwiki" and set(e) == {"source", "title"}),
        ({"type": "expect_column_values_to_match_regex", "kwargs": {"column": "upstream_uri", "regex": "^https://dumps\\.wikimedia\\.org/"}}, None, None),
        # 92 of the 94 articles are longer than 1,000 characters, and rows 40-49 (all long) twice.
        ({"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "text", "max_value": 1000}}, 102, _cut_text),
    ],
)  # fmt: skip
def test_whole_table_and_per_row_verdicts(overlapping_files, tmp_path, expectation, unexpected_count, example_holds):
    paths, _ = overlapping_files
    suite = tmp_path / "suite.json"
    suite.write_text(json.dumps({"name": "case", "expectations": [expectation]}))
    result = run_suite(suite, paths, batch_rows=10)
    if unexpected_count is None:
        assert (result.success, result.failed) == (True, [])
        return
    [failure] = result.failed
    assert result.success is False
    assert failure.unexpected_count == unexpected_count
    assert len(failure.unexpected_examples) == 10
    assert all(example_holds(example) for example in failure.unexpected_examples)


@pytest.mark.parametrize(("mostly", "holds"), [(0.75, True), (0.8, False)])
def test_mostly_counts_only_the_rows_that_are_not_missing_across_batches(tmp_path, mostly, holds):
    # 6 "a", 2 "b" and 4 nulls over two files and three batches: 6 of the 8 non-missing rows are
    # as expected (75 %). Were the nulls counted (GX's missing count not read), it would be 10 of 12.
    values = ["a", None, "a", "b", "a", None, "a", "b", None, "a", None, "a"]
    paths = [tmp_path / "a.parquet", tmp_path / "b.parquet"]
    pq.write_table(pa.table({"language": values[:7]}), paths[0])
    pq.write_table(pa.table({"language": values[7:]}), paths[1])
    suite = tmp_path / "suite.json"
    expectation = {"type": "expect_column_values_to_be_in_set", "kwargs": {"column": "language", "value_set": ["a"], "mostly": mostly}}
    suite.write_text(json.dumps({"name": "case", "expectations": [expectation]}))
    result = run_suite(suite, paths, batch_rows=5)
    assert result.success is holds
    if not holds:
        [failure] = result.failed
        assert (failure.unexpected_count, failure.unexpected_examples) == (2, ["b"])


def test_suite_parameters_must_be_given_and_none_skips(home):
    paths = sorted((home / "documents").glob("*/*.parquet"))
    with pytest.raises(MissingSuiteParameter, match="allowed_languages"):
        run_suite(DOCUMENTS, paths, {"allowed_licenses": ALLOWED_LICENSES})
    given = {"allowed_licenses": ALLOWED_LICENSES, "allowed_languages": None, "language_identified": 1.0}
    result = run_suite(DOCUMENTS, paths, given)
    assert result.success is True
    assert result.evaluated == 9
    assert result.skipped == ["expect_column_values_to_be_in_set on language (parameter allowed_languages is None)"]
    # Language identification off (filters.language.enabled: false): documents carry no language.
    result = run_suite(DOCUMENTS, paths, {**given, "language_identified": None})
    assert (result.success, result.evaluated) == (True, 8)
    assert result.skipped[0] == "expect_column_values_to_not_be_null on language (parameter language_identified is None)"


def test_a_source_without_language_identification_passes_its_documents_suite(home, tmp_path):
    """Its documents have a null language: the suite skips the not-null expectation for it
    (and only for it), where it used to fail every partition of such a source."""
    table = pq.read_table(home / "documents" / "enwiki" / f"{ENWIKI_PARTITION}.parquet")
    nulls = table.set_column(table.schema.get_field_index("language"), "language", pa.nulls(len(table), pa.string()))
    pq.write_table(nulls, tmp_path / "part.parquet")
    strict = run_suite(DOCUMENTS, [tmp_path / "part.parquet"], {**PARAMETERS, "allowed_languages": None})
    assert [(f.type, f.column, f.unexpected_count) for f in strict.failed] == [
        ("expect_column_values_to_not_be_null", "language", len(table))
    ]
    off = run_suite(DOCUMENTS, [tmp_path / "part.parquet"], {**PARAMETERS, "allowed_languages": None, "language_identified": None})
    assert (off.success, off.failed) == (True, [])


def test_a_column_missing_from_a_file_fails_its_expectations(home):
    raw = home / "raw" / "enwiki" / f"{ENWIKI_PARTITION}.parquet"
    result = run_suite(DOCUMENTS, [raw], PARAMETERS)
    failed = {(f.type, f.column): f for f in result.failed}
    # Raw records have no text, language or checksum yet; their licence is the dump's.
    assert sorted(failed) == [
        ("expect_column_value_lengths_to_be_between", "text"),
        ("expect_column_values_to_be_in_set", "language"),
        ("expect_column_values_to_match_regex", "content_sha256"),
        ("expect_column_values_to_not_be_null", "language"),
        ("expect_column_values_to_not_be_null", "text"),
    ]
    text = failed[("expect_column_values_to_not_be_null", "text")]
    assert text.unexpected_count is None
    assert text.detail == f"column 'text' not in 1 file(s), first {raw}"


@pytest.mark.parametrize(
    ("content", "message"),
    [
        ('{"name": "bad", "expectations": [', "cannot read suite"),
        ('{"name": "bad", "expectation": []}', "a suite is an object with 'name'"),
        ('{"name": "bad", "expectations": [], "expectaions": []}', "unknown key(s) ['expectaions']"),
        ('{"name": "bad", "expectations": [{"type": "expect_column_values_to_be_nul", "kwargs": {"column": "a"}}]}', "expect_column_values_to_be_nul not found"),
        ('{"name": "bad", "expectations": [{"type": "expect_column_values_to_not_be_null", "kwargs": {"colum": "a"}}]}', "colum\n  extra fields not permitted"),
        ('{"name": "bad", "expectations": [{"type": "expect_column_mean_to_be_between", "kwargs": {"column": "a", "min_value": 1}}]}', "not supported"),
        ('{"name": "bad", "expectations": [{"type": "expect_column_values_to_be_increasing", "kwargs": {"column": "a"}}]}', "not supported"),
        ('{"name": "bad", "expectations": [{"type": "expect_column_values_to_be_unique", "kwargs": {"column": "a", "row_condition": {"column": {"name": "a"}, "operator": ">", "parameter": 1, "type": "comparison"}}}]}', "row_condition is not supported"),
    ],
)  # fmt: skip
def test_bad_suites_are_refused_naming_the_file(tmp_path, content, message):
    suite = tmp_path / "bad.json"
    suite.write_text(content)
    with pytest.raises(SuiteError) as raised:
        run_suite(suite, [])
    assert str(raised.value).startswith(str(suite))
    assert message in str(raised.value)


def test_a_file_that_is_not_parquet_is_unreadable_input(tmp_path):
    bogus = tmp_path / "part.parquet"
    bogus.write_bytes(b"not parquet at all")
    with pytest.raises(UnreadableInput) as raised:
        run_suite(EXPECTATIONS_DIR / "raw_records.json", [bogus])
    assert raised.value.location == str(bogus)


_VALIDATE_IN_A_FRESH_PROCESS = """
import json, sys
from pathlib import Path
from opencorpus_dagster.quality.expectations import run_suite
result = run_suite(Path(sys.argv[1]), [Path(p) for p in sys.argv[2:]], batch_rows=10)
loaded = sorted(m for m in ("scipy.stats._stats_py", "altair.vegalite") if m in sys.modules)
import scipy.stats  # deferred, not stubbed: the first use loads it
print(json.dumps({"failed": [(f.type, f.unexpected_count) for f in result.failed], "loaded": loaded,
                  "norm_cdf_0": float(scipy.stats.norm.cdf(0.0))}))
"""


def test_great_expectations_validates_without_loading_scipy_stats_or_altair(overlapping_files, tmp_path):
    # The per-row case above, in a process that imports GX the way a build does.
    paths, _ = overlapping_files
    suite = tmp_path / "suite.json"
    expectation = {"type": "expect_column_value_lengths_to_be_between", "kwargs": {"column": "text", "max_value": 1000}}
    suite.write_text(json.dumps({"name": "case", "expectations": [expectation]}))
    done = subprocess.run(
        [sys.executable, "-c", _VALIDATE_IN_A_FRESH_PROCESS, str(suite), *map(str, paths)],
        capture_output=True, text=True, check=True, cwd=tmp_path,
    )  # fmt: skip
    report = json.loads(done.stdout.strip().splitlines()[-1])
    assert report == {
        "failed": [["expect_column_value_lengths_to_be_between", 102]],
        "loaded": [],  # the import of GX named them; nothing executed them
        "norm_cdf_0": 0.5,
    }


def test_nothing_is_written_to_the_cwd_or_the_repository(home, tmp_path, monkeypatch):
    cwd = tmp_path / "cwd"
    cwd.mkdir()
    monkeypatch.chdir(cwd)
    for suite, pattern in [("raw_records", "raw/*/*.parquet"), ("shards", "corpus/releases/r000001/shards/*/*/*.parquet")]:
        assert run_suite(EXPECTATIONS_DIR / f"{suite}.json", sorted(home.glob(pattern)), PARAMETERS).success
    assert list(cwd.iterdir()) == []
    for folder in (REPO, REPO / "expectations", REPO / "tests"):
        assert not (folder / "gx").exists() and not (folder / "great_expectations").exists()
    assert sorted(p.name for p in EXPECTATIONS_DIR.iterdir()) == ["documents.json", "raw_records.json", "shards.json"]
