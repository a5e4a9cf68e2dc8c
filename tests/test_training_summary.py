"""The EU AI Act training-content summary of the fixture corpus (web, wiki, forum and book sources).

The corpus is built once by the real `opencorpus build` (conftest `built_rights_corpus`); the card
step writes the summary beside the card. Every number is checked against a query of its own on the
lineage store (or, for tokens, capture dates and PII counts, on the Parquet files with pyarrow),
never by calling the code under test; the top-10% domain list is checked on the WARC source.
"""

from __future__ import annotations

import json
import math
import subprocess
from collections import Counter

import pyarrow.parquet as pq
import pytest
from cli_runner import OPENCORPUS, clean_environment, run_opencorpus
from conftest import TAKEN_DOWN_URL, current_manifest, release_folder

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.publish.release import corpus_version
from opencorpus_dagster.rights.training_summary import (
    size_band,
    source_facts,
    summary_markdown,
    top_domain_count,
    training_summary,
)
from opencorpus_dagster.stages.shards import read_manifest
from opencorpus_dagster.stages.takedown import url_host
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

RELEASED = """
    WITH released AS (
        SELECT s.source, s.partition, r.doc_id FROM shard_rows r JOIN shards s ON s.shard = r.shard
    )
"""


def sql(home: DataHome, query: str, *params) -> list[tuple]:
    with LineageStore.at(home.lineage_db, read_only=True).connection() as conn:
        return conn.execute(query, list(params)).fetchall()


@pytest.fixture(scope="module")
def home(built_rights_corpus) -> DataHome:
    return DataHome(built_rights_corpus)


@pytest.fixture(scope="module")
def written(home) -> dict:
    """The summary the card step wrote beside the card during the build."""
    return json.loads((release_folder(home) / "training-content-summary.json").read_text())


@pytest.fixture(scope="module")
def shard_rows(home) -> list[dict]:
    rows = []
    for shard in read_manifest(home)["shards"]:
        rows += pq.read_table(release_folder(home) / shard["path"]).to_pylist()
    return rows


def test_the_card_step_writes_markdown_and_json_beside_the_card_equal_to_a_fresh_summary(
    home, written, rights_catalog, fixture_mirror
):
    catalog = load_catalog(rights_catalog)
    fresh = training_summary(
        LineageStore.at(home.lineage_db, read_only=True), home, read_manifest(home),
        sources=source_facts(catalog), settings=catalog.settings.summary,
        fetcher=Fetcher(home.downloads, [Mirror(base=str(fixture_mirror))]),
    )  # fmt: skip
    assert written == fresh
    markdown = (release_folder(home) / "training-content-summary.md").read_text()
    assert markdown == summary_markdown(written)
    assert (release_folder(home) / "README.md").is_file()


def test_provider_and_model_come_from_the_catalog(written):
    general = written["general_information"]
    assert general["provider"]["name"] == "Example Lab (contact rights@example.org)"
    assert general["provider"]["contact"] == "rights@example.org"
    assert general["model"] == {
        "versioned_names": ["example-lm-1.0"],
        "dependencies": None,
        "placed_on_market": "2026-09-01",
    }


def test_size_documents_tokens_and_band(home, written, shard_rows):
    (text,) = written["general_information"]["modalities"]
    ((documents, characters),) = sql(
        home,
        RELEASED
        + "SELECT count(*), sum(d.text_length) FROM released JOIN documents d USING (source, partition, doc_id)",
    )
    assert text["documents"] == documents == len(shard_rows) == 950
    assert text["characters"] == characters == sum(len(r["text"]) for r in shard_rows)
    tokens = sum(len(r["text"].split()) for r in shard_rows)
    assert text["tokens"] == tokens
    assert text["size_band"] == "Less than 1 billion tokens"
    assert text["types_of_content"] == {"book": 1, "encyclopedia": 94, "forum": 851, "web": 4}


def test_per_source_figures_equal_their_own_queries(home, written, shard_rows):
    sources = written["data_sources"]
    entries = {e["source"]: e for e in sources["publicly_available_datasets"] + sources["crawled_and_scraped"]}
    assert set(entries) == {"enwiki", "gutenberg", "stackexchange", "webarchive"}
    assert [e["source"] for e in sources["publicly_available_datasets"]] == ["enwiki", "gutenberg", "stackexchange"]
    assert [e["source"] for e in sources["crawled_and_scraped"]] == ["webarchive"]
    assert sources["other_sources"] == [] and sources["user_data"] == [] and sources["synthetic_data"] == []
    counts = dict(
        (s, (n, c)) for s, n, c in sql(
            home, RELEASED + "SELECT source, count(*), sum(d.text_length) FROM released JOIN documents d "
            "USING (source, partition, doc_id) GROUP BY 1"
        )
    )  # fmt: skip
    tokens = Counter()
    for row in shard_rows:
        tokens[row["source"]] += len(row["text"].split())
    for source, entry in entries.items():
        assert (entry["documents"], entry["characters"]) == counts[source]
        assert entry["tokens"] == tokens[source]
        # The files of the partitions that hold released records (gutenberg: one book of 15).
        links = [
            u for (u,) in sql(
                home, RELEASED + "SELECT DISTINCT f.url FROM fetches f WHERE f.source = ? "
                "AND f.partition IN (SELECT partition FROM released WHERE source = ?) ORDER BY 1", source, source,
            )
        ]  # fmt: skip
        assert entry["links"] == links
        licences = dict(
            sql(home, RELEASED + "SELECT d.license, count(*) FROM released "
                "JOIN documents d USING (source, partition, doc_id) "
                "WHERE source = ? GROUP BY 1", source)
        )  # fmt: skip
        assert entry["licenses"] == licences
    assert entries["enwiki"]["licenses"] == {"CC-BY-SA-3.0": 94}


def test_languages_and_latest_acquisition(home, written):
    general = written["general_information"]
    languages = sql(
        home, RELEASED + "SELECT d.language, count(*), sum(d.text_length) FROM released JOIN documents d "
        "USING (source, partition, doc_id) GROUP BY 1 ORDER BY 2 DESC"
    )  # fmt: skip
    assert [(x["language"], x["documents"], x["characters"]) for x in general["languages"]] == languages
    ((latest,),) = sql(
        home,
        RELEASED + "SELECT max(left(retrieved_at, 10)) FROM released "
        " JOIN raw_records USING (source, partition, doc_id)",
    )
    assert general["latest_acquisition"] == latest and len(latest) == len("2026-11-30")


def test_documents_without_a_language_are_named_as_the_card_names_them(written):
    """A source with language identification off has documents whose language is null."""
    summary = json.loads(json.dumps(written))
    summary["general_information"]["languages"].append({"language": None, "documents": 7, "characters": 1234})
    assert "| (not identified) | 7 | 1,234 |" in summary_markdown(summary).splitlines()


def test_top_ten_percent_of_domains_of_the_warc_source(home, written):
    (web,) = written["data_sources"]["crawled_and_scraped"]
    rows = sql(
        home, RELEASED + "SELECT r.url, d.text_length FROM released "
        "JOIN raw_records r USING (source, partition, doc_id) "
        "JOIN documents d USING (source, partition, doc_id) WHERE source = 'webarchive'"
    )  # fmt: skip
    sizes, docs = Counter(), Counter()
    for url, length in rows:
        sizes[url_host(url)] += length
        docs[url_host(url)] += 1
    ranked = sorted(sizes, key=lambda host: (-sizes[host], host))
    top = ranked[: math.ceil(len(ranked) * 0.10)]
    assert web["domains"] == len(ranked) == 2
    assert [d["domain"] for d in web["top_domains"]] == top == ["creativecommons.org"]
    (entry,) = web["top_domains"]
    assert (
        (entry["documents"], entry["characters"])
        == (docs["creativecommons.org"], sizes["creativecommons.org"])
        == (3, 6484)
    )
    assert entry["share_of_content"] == round(6484 / sum(sizes.values()), 6)
    assert "| creativecommons.org | 3 | 6,484 | 70.8% | 70.8% |" in summary_markdown(written)


def test_crawler_period_and_content_types_of_the_warc_source(home, written):
    (web,) = written["data_sources"]["crawled_and_scraped"]
    # The warcinfo record of the wget WARCs that hold the released pages.
    assert web["crawlers"] == [{"software": "Wget/1.21.4 (darwin23.0.0)", "robots": "classic"}]
    released = {
        (p, d) for p, d in sql(home, RELEASED + "SELECT partition, doc_id FROM released WHERE source = 'webarchive'")
    }
    dates, types = [], Counter()
    for path in sorted((home.root / "raw" / "webarchive").glob("*.parquet")):
        for row in pq.read_table(path, columns=["partition", "doc_id", "metadata"]).to_pylist():
            if (row["partition"], row["doc_id"]) in released:
                metadata = json.loads(row["metadata"])
                dates.append(metadata["warc_date"])
                types[metadata["content_type"]] += 1
    assert web["collection_period"] == {"first": min(dates), "last": max(dates), "content_types": dict(types)}
    assert web["content_types"] == {"text/html": 4}


def test_reservations_of_rights_and_pii_redactions(home, written):
    rights = written["data_processing"]["reservations_of_rights"]
    removed = dict(
        sql(
            home,
            "SELECT reason, count(DISTINCT (source, partition, doc_id)) FROM decisions "
            "WHERE outcome = 'removed' GROUP BY 1",
        )
    )
    assert {s["reason"]: s["records_removed"] for s in rights["signals"]} == {
        reason: removed.get(reason, 0) for reason in (s["reason"] for s in rights["signals"])
    }
    assert {s["reason"] for s in rights["signals"]} >= {
        "opt-out:robots-ai",
        "opt-out:tdmrep-json",
        "opt-out:noai",
        "takedown:url",
    }
    refused = dict(
        sql(
            home,
            "SELECT reason, count(*) FROM decisions WHERE stage = 'documents' AND reason LIKE 'license.%' GROUP BY 1",
        )
    )
    assert rights["license_refusals"] == refused == {"license.denied": 1, "license.unknown": 46}

    released = set(sql(home, RELEASED + "SELECT source, partition, doc_id FROM released"))
    redactions: dict[str, Counter] = {}
    for path in sorted((home.root / "documents").glob("*/*.parquet")):
        for row in pq.read_table(path, columns=["source", "partition", "doc_id", "metadata"]).to_pylist():
            if (row["source"], row["partition"], row["doc_id"]) in released:
                for kind, n in (json.loads(row["metadata"] or "{}").get("pii") or {}).items():
                    redactions.setdefault(row["source"], Counter())[kind] += n
    illegal = written["data_processing"]["illegal_content"]
    assert illegal["pii_redactions"] == {s: dict(c) for s, c in redactions.items()} == {"webarchive": {"email": 1}}
    assert illegal["pii_kinds_by_source"]["gutenberg"] is None  # `pii: {enabled: false}` in its catalog file
    assert "email" in illegal["pii_kinds_by_source"]["enwiki"]


def test_markdown_has_the_template_sections(written):
    markdown = summary_markdown(written)
    for heading in (
        "## 1. General information", "### 1.1 Provider identification", "### 1.2 Model identification",
        "### 1.3 Modalities, overall training data size and other characteristics", "## 2. List of data sources",
        "### 2.1 Publicly available datasets",
        "### 2.2 Private non-publicly available datasets obtained from third parties",
        "### 2.3 Data crawled and scraped from online sources", "### 2.4 User data", "### 2.5 Synthetic data",
        "### 2.6 Other sources of data", "## 3. Data processing aspects",
        "### 3.1 Respect of reservation of rights from text and data mining exception or limitation",
        "### 3.2 Removal of illegal content",
    ):  # fmt: skip
        assert f"\n{heading}\n" in markdown
    assert "| Text | Less than 1 billion tokens | 950 |" in markdown


def test_cli_summary_prints_markdown_and_json(built_rights_corpus, rights_catalog, written):
    as_json = run_opencorpus("summary", "--catalog", str(rights_catalog), "--json", home=built_rights_corpus)
    printed = json.loads(as_json.stdout)
    # Without --mirror upstream is not contacted, so the crawler is not named; the rest is the same.
    assert printed["data_sources"]["crawled_and_scraped"][0]["crawlers"] == []
    printed["data_sources"]["crawled_and_scraped"][0]["crawlers"] = written["data_sources"]["crawled_and_scraped"][0][
        "crawlers"
    ]
    assert printed == written
    markdown = run_opencorpus("summary", "--catalog", str(rights_catalog), home=built_rights_corpus).stdout
    version = corpus_version(current_manifest(built_rights_corpus))
    assert markdown.startswith(f"# Public Summary of Training Content: opencorpus release {version}\n")


def test_takedowns_are_counted_as_reservations_honoured(taken_down_rights_corpus):
    home = DataHome(taken_down_rights_corpus)
    summary = json.loads((release_folder(home) / "training-content-summary.json").read_text())
    signals = {
        s["reason"]: s["records_removed"] for s in summary["data_processing"]["reservations_of_rights"]["signals"]
    }
    ((removed,),) = sql(
        home,
        "SELECT count(*) FROM decisions WHERE stage = 'takedown' AND outcome = 'removed' AND reason = 'takedown:url'",
    )
    ((by_url,),) = sql(home, "SELECT count(DISTINCT doc_id) FROM raw_records WHERE url = ?", TAKEN_DOWN_URL)
    assert signals["takedown:url"] == removed == by_url == 1
    (text,) = summary["general_information"]["modalities"]
    assert text["documents"] == 949


def test_summary_of_an_earlier_release_is_the_one_published_with_it(taken_down_rights_corpus, tmp_path):
    """Before the takedown the release held 950 documents, after it 949: each release answers
    with its own published summary, checked against its release.json."""
    import shutil

    home = tmp_path / "home"
    shutil.copytree(taken_down_rights_corpus, home, symlinks=True)
    data = DataHome(home)
    before, after = [r["release"] for r in releases.list_releases(data)][-2:]
    documents = {}
    for release in (before, after):
        printed = json.loads(run_opencorpus("summary", "--release", release, "--json", home=home).stdout)
        published = (releases.release_dir(data, release) / "training-content-summary.json").read_text()
        assert printed == json.loads(published)
        (text,) = printed["general_information"]["modalities"]
        documents[release] = text["documents"]
        markdown = run_opencorpus("summary", "--release", release, home=home).stdout
        assert markdown == (releases.release_dir(data, release) / "training-content-summary.md").read_text()
    assert documents == {before: 950, after: 949}

    unknown = run_opencorpus("summary", "--release", "r999999", home=home, check=False)
    assert unknown.returncode == 2 and "no complete release r999999" in unknown.stderr
    traversal = run_opencorpus("summary", "--release", "../../etc", home=home, check=False)
    assert traversal.returncode == 2 and "is not a release id" in traversal.stderr
    # A summary edited after publication is not passed off as the published one.
    edited = releases.release_dir(data, before) / "training-content-summary.md"
    edited.write_text(edited.read_text().replace("950", "951"))
    refused = run_opencorpus("summary", "--release", before, home=home, check=False)
    assert refused.returncode == 1 and refused.stdout == ""
    assert "sha256 differs from the one release" in refused.stderr


@pytest.mark.parametrize(
    ("body", "field", "message"),
    [
        ("summary:\n  placed_on_market: soon\n", "summary.placed_on_market", "valid date"),
        ("summary:\n  sme: maybe\n", "summary.sme", "valid boolean"),
        ("summary:\n  models: example-1\n", "summary.models", "valid list"),
        ("summary:\n  modle: [x]\n", "summary.modle", "did you mean 'models'"),
        ("sumary: {}\n", "sumary", "did you mean 'summary'"),
        ("- a list\n", "", "expected a mapping"),
    ],
)
def test_a_wrong_corpus_settings_file_names_the_field(tmp_path, body, field, message):
    (tmp_path / "_corpus.yaml").write_text(body)
    loaded = load_catalog(tmp_path)
    (error,) = loaded.errors
    assert error.path.name == "_corpus.yaml"
    assert any(p.field == field and message in p.message for p in error.problems), error.problems
    result = subprocess.run(
        [OPENCORPUS, "validate", "--catalog", str(tmp_path)],
        capture_output=True,
        text=True,
        env=clean_environment(tmp_path / "home"),
    )
    assert result.returncode == 1 and "_corpus.yaml" in result.stderr


@pytest.mark.parametrize(
    ("tokens", "band"),
    [(0, "Less than 1 billion tokens"), (10**9 - 1, "Less than 1 billion tokens"),
     (10**9, "1 billion to 10 trillion tokens"),
     (10**13 - 1, "1 billion to 10 trillion tokens"), (10**13, "More than 10 trillion tokens")],
)  # fmt: skip
def test_size_bands(tokens, band):
    assert size_band(tokens) == band


@pytest.mark.parametrize(
    ("domains", "sme", "count"),
    [
        (0, False, 0),
        (1, False, 1),
        (2, False, 1),
        (10, False, 1),
        (11, False, 2),
        (100, True, 5),
        (1_000_000, True, 1000),
    ],
)
def test_top_domain_counts(domains, sme, count):
    assert top_domain_count(domains, sme) == count
