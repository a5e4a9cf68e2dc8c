"""The dataset card, ATTRIBUTION and Croissant metadata of the fixture corpus.

The corpus is built once (the real `opencorpus build` on the default catalog against the fixture
mirror, as in tests/test_build.py); every figure the card prints is compared with a query the
test writes itself, over the lineage store and the shard files (tokens counted in Python with
`str.split()`, not with the card's SQL).
"""

from __future__ import annotations

import hashlib
import json
import os
import re
import shutil
import subprocess
import sys
from collections import Counter
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import current_manifest, release_folder
from lineage_edit import copy_lineage, edited_lineage

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.publish import write_attribution, write_card, write_croissant
from opencorpus_dagster.publish.attribution import license_url, requires_attribution
from opencorpus_dagster.publish.card import dataset_configs, hub_license_id, size_category
from opencorpus_dagster.publish.croissant import croissant_data_type
from opencorpus_dagster.publish.release import BASE_URL_ENV, base_url_from_environment, check_base_url
from opencorpus_dagster.stages.shards import SHARD_COLUMNS
from opencorpus_dagster.state.home import DataHome

REPO = Path(__file__).resolve().parent.parent
OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")
DESCRIPTIONS = {"enwiki": "English Wikipedia articles.", "gutenberg": "Project Gutenberg e-books | plain text."}
# `books` owns no source of the corpus: it must not be a creator.
OWNERS = {"enwiki": ["team:corpus"], "gutenberg": ["team:corpus", "books@example.org"], "books": ["team:books"]}


def publish(home: DataHome, base_url: str | None = None) -> dict[str, Path]:
    store = LineageStore.at(home.lineage_db, read_only=True)
    return {
        "card": write_card(home, store, DESCRIPTIONS, owners=OWNERS, base_url=base_url),
        "attribution": write_attribution(home, store),
        "croissant": write_croissant(home, store, owners=OWNERS, base_url=base_url),
    }


@pytest.fixture(scope="module")
def corpus(built_corpus, tmp_path_factory):
    root = tmp_path_factory.mktemp("card") / "home"
    shutil.copytree(built_corpus[0], root, symlinks=True)  # the card is rewritten with the test's descriptions
    home = DataHome(root)
    return home, publish(home)


@pytest.fixture(scope="module")
def card(corpus) -> tuple[dict, str]:
    _, files = corpus
    text = files["card"].read_text(encoding="utf-8")
    assert text.startswith("---\n")
    header, body = text[4:].split("\n---\n", 1)
    return yaml.safe_load(header), body


@pytest.fixture(scope="module")
def shard_rows(corpus) -> list[dict]:
    """Every shard row as Python dicts, read with pyarrow (independently of the card's DuckDB)."""
    home, _ = corpus
    manifest = current_manifest(home)
    rows = []
    for shard in manifest["shards"]:
        rows += pq.read_table(release_folder(home) / shard["path"]).to_pylist()
    return rows


def lineage(home: DataHome, query: str) -> list[tuple]:
    with LineageStore.at(home.lineage_dir, read_only=True).connection() as conn:
        return conn.execute(query).fetchall()


def section(body: str, heading: str) -> str:
    """The text of one `## heading` section (up to the next `## `)."""
    match = re.search(rf"^## {re.escape(heading)}\n(.*?)(?=^## |\Z)", body, re.M | re.S)
    assert match, f"no section {heading!r} in the card"
    return match.group(1)


def table(text: str, first_header_cell: str) -> list[list[str]]:
    """Rows (cells stripped) of the Markdown table whose header starts with `first_header_cell`."""
    lines = text.splitlines()
    start = next(i for i, line in enumerate(lines) if line.startswith(f"| {first_header_cell} |"))
    rows = []
    for line in lines[start + 2 :]:
        if not line.startswith("|"):
            break
        rows.append([cell.strip() for cell in re.split(r"(?<!\\)\|", line)[1:-1]])
    return rows


def number(cell: str) -> int:
    return int(cell.replace(",", ""))


# --- the YAML header ------------------------------------------------------------------------


def test_header_is_hub_metadata_derived_from_the_shards(corpus, card, shard_rows):
    metadata, _ = card
    assert metadata["language"] == sorted({row["language"] for row in shard_rows}) == ["en"]
    assert {row["license"] for row in shard_rows} == {"CC-BY-SA-3.0", "LicenseRef-PublicDomain"}
    assert metadata["license"] == ["cc-by-sa-3.0", "other"]
    assert metadata["license_name"] == "public-domain"
    assert metadata["license_link"] == "https://creativecommons.org/publicdomain/mark/1.0/"
    assert len(shard_rows) < 1000 and metadata["size_categories"] == ["n<1K"]
    assert metadata["task_categories"] == ["text-generation"]
    assert metadata["pretty_name"] == "opencorpus"
    assert metadata["configs"] == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "shards/**/*.parquet"}], "default": True},
        {"config_name": "enwiki", "data_files": [{"split": "train", "path": "shards/enwiki/**/*.parquet"}]},
        {"config_name": "gutenberg", "data_files": [{"split": "train", "path": "shards/gutenberg/**/*.parquet"}]},
    ]


def test_load_dataset_on_the_corpus_folder_reads_each_config(corpus, card, shard_rows, tmp_path):
    """`load_dataset(<folder>, <config>)` as the card shows it: every config the header declares,
    read by the real `datasets` (offline, in a subprocess so its HF_* settings stay its own)."""
    home, _ = corpus
    metadata, body = card
    env = {**os.environ, "HF_DATASETS_OFFLINE": "1", "HF_HUB_OFFLINE": "1", "HF_HOME": str(tmp_path / "hf")}
    script = (
        "import json, sys, datasets\n"
        "folder, names = sys.argv[1], sys.argv[2:]\n"
        "print(json.dumps({'configs': datasets.get_dataset_config_names(folder)}))\n"
        "for name in [None, *names]:\n"
        "    d = datasets.load_dataset(folder, name, split='train')\n"
        "    print(json.dumps({'config': name, 'doc_ids': sorted(d['doc_id']), 'columns': d.column_names}))\n"
    )
    names = [config["config_name"] for config in metadata["configs"]]
    result = subprocess.run(
        [sys.executable, "-c", script, str(release_folder(home)), *names],
        capture_output=True, text=True, env=env, timeout=600,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    lines = [json.loads(line) for line in result.stdout.splitlines() if line.startswith("{")]
    assert lines[0] == {"configs": ["default", "enwiki", "gutenberg"]}
    loaded = {line["config"]: line for line in lines[1:]}
    every = sorted(row["doc_id"] for row in shard_rows)
    assert loaded[None]["doc_ids"] == loaded["default"]["doc_ids"] == every and len(every) == 95
    for source in ("enwiki", "gutenberg"):
        assert loaded[source]["doc_ids"] == sorted(row["doc_id"] for row in shard_rows if row["source"] == source)
    assert (len(loaded["enwiki"]["doc_ids"]), len(loaded["gutenberg"]["doc_ids"])) == (94, 1)
    assert all(line["columns"] == list(SHARD_COLUMNS) for line in loaded.values())
    summary = section(body, "Summary")
    assert 'load_dataset("path/to/this/folder", split="train")' in summary
    assert 'enwiki = load_dataset("path/to/this/folder", "enwiki", split="train")' in summary


# --- the body: every number against the shards and the lineage store ------------------------


def test_sources_table_counts_documents_and_whitespace_tokens(card, shard_rows):
    _, body = card
    documents = Counter(row["source"] for row in shard_rows)
    tokens = Counter()
    for row in shard_rows:
        tokens[row["source"]] += len(row["text"].split())
    total_documents, total_tokens = sum(documents.values()), sum(tokens.values())
    rows = table(section(body, "Sources"), "Source")
    expected = [
        [source, DESCRIPTIONS[source].replace("|", "\\|"), f"{documents[source]:,}",
         f"{100 * documents[source] / total_documents:.2f}%", f"{tokens[source]:,}",
         f"{100 * tokens[source] / total_tokens:.2f}%"]
        for source in sorted(documents)
    ]  # fmt: skip
    assert rows[:-1] == expected
    assert rows[-1] == ["**total**", "", f"{total_documents:,}", "100.00%", f"{total_tokens:,}", "100.00%"]
    assert documents == {"enwiki": 94, "gutenberg": 1}
    assert "whitespace-separated words" in section(body, "Summary")
    assert f"{total_documents} documents, {total_tokens:,} tokens, from 2 sources" in section(body, "Summary")


def test_licences_table_has_document_and_token_shares(card, shard_rows):
    _, body = card
    documents, tokens = Counter(), Counter()
    for row in shard_rows:
        documents[row["license"]] += 1
        tokens[row["license"]] += len(row["text"].split())
    rows = table(section(body, "Licences"), "Licence")
    got = {row[0]: (row[1], row[2], number(row[3]), row[4], number(row[5]), row[6]) for row in rows}
    total_documents, total_tokens = sum(documents.values()), sum(tokens.values())
    assert got == {
        license: (
            f"<{license_url(license)}>",
            "yes" if license.startswith("CC-BY") else "no",
            documents[license],
            f"{100 * documents[license] / total_documents:.2f}%",
            tokens[license],
            f"{100 * tokens[license] / total_tokens:.2f}%",
        )
        for license in documents
    }
    assert got["CC-BY-SA-3.0"][0] == "<https://creativecommons.org/licenses/by-sa/3.0/>"


def test_processing_table_equals_terminal_outcomes(corpus, card):
    home, _ = corpus
    _, body = card
    records_in = dict(lineage(home, "SELECT source, sum(records_in) FROM partitions WHERE stage = 'raw' GROUP BY 1"))
    outcomes: dict[str, Counter] = {}
    for source, outcome, n in lineage(home, "SELECT source, outcome, count(*) FROM outcomes GROUP BY 1, 2"):
        outcomes.setdefault(source, Counter())[outcome] = n
    text = section(body, "Processing")
    rows = table(text, "Source")
    columns = ["kept", "filtered", "duplicate", "quarantined", "removed", "skipped"]
    for row in rows[:-1]:
        source = row[0]
        assert number(row[1]) == records_in[source]
        assert [number(cell) for cell in row[2:]] == [outcomes[source][c] for c in columns]
        assert number(row[1]) == sum(number(cell) for cell in row[2:])  # conservation, as printed
    assert [r[0] for r in rows] == ["enwiki", "gutenberg", "**total**"]
    assert rows[-1][1:] == ["221", "95", "26", "0", "0", "0", "100"]

    filters = table(text, "Source | Stage")
    expected = lineage(
        home,
        "SELECT source, stage, reason, count(*) FROM outcomes WHERE outcome = 'filtered' GROUP BY 1, 2, 3",
    )
    assert sorted((s, st, r.strip("`"), number(n)) for s, st, r, n in filters) == sorted(expected)
    assert ["gutenberg", "documents", "`license.unknown`", "14"] in filters


def test_dedup_removal_and_set_aside_sections_equal_the_store(corpus, card):
    home, _ = corpus
    _, body = card
    considered = dict(lineage(home, "SELECT source, count(*) FROM decisions WHERE stage = 'dedup' GROUP BY 1"))
    duplicates = dict(
        lineage(home, "SELECT source, count(*) FROM decisions WHERE stage = 'dedup' AND outcome = 'duplicate' GROUP BY 1")
    )
    rows = table(section(body, "Deduplication"), "Source")
    for source, documents, found, rate in rows[:-1]:
        assert number(documents) == considered[source]
        assert number(found) == duplicates.get(source, 0)
        assert rate == f"{100 * duplicates.get(source, 0) / considered[source]:.2f}%"
    assert rows[-1] == ["**total**", "95", "0", "0.00%"]

    removed = lineage(home, "SELECT count(*) FROM outcomes WHERE outcome = 'removed'")[0][0]
    assert removed == 0
    assert "Opt-outs honoured: 0. Takedown requests applied: 0." in section(body, "Opt-outs and takedowns")

    set_aside = section(body, "Quarantined and skipped records")
    expected = lineage(
        home,
        "SELECT source, outcome, reason, count(*) FROM outcomes WHERE outcome IN ('quarantined', 'skipped') GROUP BY ALL",
    )
    got = [(s, o, r.strip("`"), number(n)) for s, o, r, n in table(set_aside, "Source")]
    assert sorted(got) == sorted(expected)
    assert ("enwiki", "skipped", "mediawiki.redirect", 99) in got
    assert "Quarantined (bad input, kept out with the error): 0." in set_aside


def test_limitations_name_the_licence_evidence_actually_used(card, shard_rows):
    _, body = card
    limitations = section(body, "Known limitations")
    gutenberg = sum("Gutenberg rights statement" in row["license_evidence"] for row in shard_rows)
    wikimedia = sum("Wikimedia terms of use" in row["license_evidence"] for row in shard_rows)
    assert (gutenberg, wikimedia) == (1, 94)
    assert 'Project Gutenberg books (1 document): included on Project Gutenberg\'s statement "Public domain in the USA"' in limitations
    assert "Wikimedia pages (94 documents): the licence follows the revision date" in limitations
    assert "Web pages (" not in limitations  # no web source in the default catalog
    assert "Token counts are whitespace-separated words, not model tokens" in limitations


def test_removals_duplicates_and_quarantine_are_counted_by_kind(corpus, tmp_path):
    """Decisions a takedown, an opt-out, the dedup stage and a bad record would leave, in a copy of the store."""
    home, _ = corpus
    copy = DataHome(tmp_path / "home")
    shutil.copytree(home.corpus_dir, copy.corpus_dir, symlinks=True)
    with edited_lineage(home, copy) as conn:
        kept = conn.execute(
            "SELECT source, partition, doc_id FROM outcomes WHERE outcome = 'kept' AND source = 'enwiki' "
            "ORDER BY doc_id LIMIT 6"
        ).fetchall()
        # As the stages record them: a takedown (reason `takedown:<kind>`, takedown.py) and the
        # documents stage (opt-out, quarantine) take records out before dedup, which never sees
        # them; dedup marks two others duplicate.
        doc_ids = [doc_id for _, _, doc_id in kept]
        conn.execute("DELETE FROM decisions WHERE stage = 'dedup' AND doc_id IN (?, ?, ?, ?)", doc_ids[:4])
        conn.execute(
            "UPDATE decisions SET outcome = 'duplicate', reason = 'dedup.exact' WHERE stage = 'dedup' AND doc_id IN (?, ?)",
            doc_ids[4:],
        )
        added = [
            (*kept[0], "takedown", "removed", "takedown:url"),
            (*kept[1], "takedown", "removed", "takedown:domain"),
            (*kept[2], "documents", "removed", "opt-out:tdm-reservation"),
            (*kept[3], "documents", "quarantined", "extract.malformed"),
        ]
        for row in added:
            conn.execute(
                "INSERT INTO decisions (source, partition, doc_id, stage, outcome, reason) VALUES (?, ?, ?, ?, ?, ?)", row
            )
    store = LineageStore.at(copy.lineage_db, read_only=True)
    body = write_card(copy, store).read_text().split("\n---\n", 1)[1]
    removals = section(body, "Opt-outs and takedowns")
    assert "Opt-outs honoured: 1. Takedown requests applied: 2.\n" in removals
    assert table(removals, "Kind") == [
        ["opt-out", "enwiki", "`opt-out:tdm-reservation`", "1"],
        ["takedown", "enwiki", "`takedown:domain`", "1"],
        ["takedown", "enwiki", "`takedown:url`", "1"],
    ]
    dedup = section(body, "Deduplication")
    assert table(dedup, "Source") == [
        ["enwiki", "90", "2", "2.22%"], ["gutenberg", "1", "0", "0.00%"], ["**total**", "91", "2", "2.20%"],
    ]  # fmt: skip
    assert table(dedup, "Reason") == [["`dedup.exact`", "2", "2.20%"]]
    set_aside = section(body, "Quarantined and skipped records")
    assert "Quarantined (bad input, kept out with the error): 1." in set_aside
    assert ["enwiki", "quarantined", "`extract.malformed`", "1"] in table(set_aside, "Source")
    processing = table(section(body, "Processing"), "Source")
    assert processing[0] == ["enwiki", "206", "88", "12", "2", "1", "3", "100"]


# --- ATTRIBUTION ------------------------------------------------------------------------------


def test_attribution_lists_each_cc_by_sa_record_once_and_no_public_domain_one(corpus, shard_rows):
    _, files = corpus
    text = files["attribution"].read_text(encoding="utf-8")
    assert text.startswith("ATTRIBUTION\n===========\n\nFormat: plain text (UTF-8).")
    urls = re.findall(r"^  URL: (.*)$", text, re.M)
    share_alike = sorted(row["url"] for row in shard_rows if row["license"].startswith("CC-BY-SA"))
    assert len(share_alike) == 94
    assert sorted(urls) == share_alike  # each exactly once, nothing else
    assert Counter(urls).most_common(1)[0][1] == 1
    public_domain = [row for row in shard_rows if row["license"] == "LicenseRef-PublicDomain"]
    assert [row["url"] for row in public_domain] == ["https://www.gutenberg.org/ebooks/2701"]
    for row in public_domain:
        assert row["url"] not in text and row["title"] not in text
    assert "  LicenseRef-PublicDomain: 1 document; https://creativecommons.org/publicdomain/mark/1.0/; no attribution required" in text
    assert "\nLicence: CC-BY-SA-3.0 <https://creativecommons.org/licenses/by-sa/3.0/> (94 records)\n" in text
    amphibian = next(row for row in shard_rows if row["title"] == "Amphibian")
    block = f"  Title: Amphibian\n  URL: {amphibian['url']}\n  Attribution: {amphibian['attribution']}\n"
    assert block in text
    assert "authors: https://en.wikipedia.org/w/index.php?title=Amphibian&action=history" in block
    titles = re.findall(r"^  Title: (.*)$", text, re.M)
    assert titles == sorted(titles)  # one source, one licence: sorted by title


# --- Croissant --------------------------------------------------------------------------------


def test_croissant_structure(corpus):
    home, files = corpus
    document = json.loads(files["croissant"].read_text())
    assert document["@type"] == "sc:Dataset"
    assert document["conformsTo"] == "http://mlcommons.org/croissant/1.0"
    assert document["@context"]["cr"] == "http://mlcommons.org/croissant/"
    assert document["license"] == [
        "https://creativecommons.org/licenses/by-sa/3.0/",
        "https://creativecommons.org/publicdomain/mark/1.0/",
    ]
    # No OPENCORPUS_BASE_URL: named relative to the release folder, where the file is.
    assert document["url"] == "README.md"
    manifest_object, shards = document["distribution"]
    assert manifest_object["@type"] == "cr:FileObject" and manifest_object["contentUrl"] == "manifest.json"
    assert manifest_object["sha256"] == hashlib.sha256((release_folder(home) / "manifest.json").read_bytes()).hexdigest()
    assert shards == {
        "@type": "cr:FileSet", "@id": "shards", "name": "shards",
        "description": "The corpus shards (sha256 of each in manifest.json).",
        "encodingFormat": "application/x-parquet", "includes": "shards/**/*.parquet",
    }  # fmt: skip
    (record_set,) = document["recordSet"]
    assert [(f["name"], f["dataType"]) for f in record_set["field"]] == [(c, "sc:Text") for c in SHARD_COLUMNS]
    assert record_set["field"][7]["source"] == {"fileSet": {"@id": "shards"}, "extract": {"column": "text"}}


def test_croissant_validates_and_reads_the_shards_with_mlcroissant(corpus, shard_rows):
    mlc = pytest.importorskip("mlcroissant")
    _, files = corpus
    dataset = mlc.Dataset(jsonld=files["croissant"])  # raises ValidationError on any error
    # Not even a warning: citeAs, datePublished, license and version are all there.
    assert dataset.metadata.ctx.issues.warnings == set()
    assert dataset.metadata.cite_as.startswith("@misc{opencorpus_")
    assert [c.name for c in dataset.metadata.creators] == ["team:corpus", "books@example.org"]
    records = list(dataset.records("documents"))
    assert len(records) == len(shard_rows) == 95
    by_id = {r["documents/doc_id"].decode(): r for r in records}
    for row in shard_rows[:5]:
        record = by_id[row["doc_id"]]
        assert record["documents/license"].decode() == row["license"]
        assert record["documents/text"].decode() == row["text"]


# --- release facts: version, date, creators, citation, base URL -------------------------------


def expected_release_date(home: DataHome) -> str:
    """The UTC date of the latest decided_at, computed here with DuckDB's own timestamp parsing."""
    query = "SELECT strftime(max(decided_at::TIMESTAMPTZ AT TIME ZONE 'UTC'), '%Y-%m-%d') FROM decisions"
    return lineage(home, query)[0][0]


def test_release_section_and_croissant_say_the_same_version_date_creators_and_citation(corpus, card):
    home, files = corpus
    _, body = card
    document = json.loads(files["croissant"].read_text())
    manifest = current_manifest(home)
    digest = hashlib.sha256("".join(f"{s['path']}:{s['sha256']}\n" for s in manifest["shards"]).encode())
    version = f"0.0.0+{digest.hexdigest()[:12]}"
    date = expected_release_date(home)
    assert re.fullmatch(r"\d{4}-\d{2}-\d{2}", date)
    assert document["version"] == version and document["datePublished"] == date
    assert document["creator"] == [
        {"@type": "sc:Organization", "name": "team:corpus"},
        {"@type": "sc:Person", "name": "books@example.org", "email": "books@example.org"},
    ]
    release = section(body, "Release and citation")
    assert f"- Version: `{version}`" in release
    assert f"- Release date: {date} (UTC;" in release
    assert "  - team:corpus (enwiki, gutenberg)\n  - books@example.org (gutenberg)\n" in release
    assert "team:books" not in body  # owns no source of this corpus
    assert f"Version `{version}`, released {date}" in section(body, "Summary")
    bibtex = re.search(r"```bibtex\n(.*?)```", release, re.S).group(1)
    assert bibtex == document["citeAs"]
    assert bibtex == (
        f"@misc{{opencorpus_{date[:4]}_{version[6:]},\n"
        "  title = {{opencorpus}: an openly licensed text corpus with record-level lineage},\n"
        "  author = {{team:corpus} and {books@example.org}},\n"
        f"  year = {{{date[:4]}}},\n"
        f"  version = {{{version}}},\n"
        f"  date = {{{date}}},\n"
        "  howpublished = {Dataset card (README.md) with Parquet shards}\n"
        "}\n"
    )
    assert "Published at" not in release  # no base URL


def test_release_date_is_the_latest_decision_in_utc_not_the_clock(corpus, tmp_path):
    """A later decision (recorded with a +02:00 offset) moves the date, by its UTC day (compared as
    instants, not as text; an unreadable stamp left out); rewriting does not; the version follows
    the shards only."""
    home, files = corpus
    copy = DataHome(tmp_path / "home")
    shutil.copytree(home.corpus_dir, copy.corpus_dir, symlinks=True)
    with edited_lineage(home, copy) as conn:
        conn.execute(
            "INSERT INTO decisions (source, partition, doc_id, stage, outcome, reason, decided_at) "
            "VALUES ('enwiki', 'p', 'x', 'takedown', 'removed', 'takedown:url', '2031-01-01T01:30:00+02:00'), "
            # Later as text, earlier as an instant (2030-12-31T22:00Z); and one no reader can parse.
            "('enwiki', 'p', 'y', 'takedown', 'removed', 'takedown:url', '2031-01-01T00:00:00+02:00'), "
            "('enwiki', 'p', 'z', 'takedown', 'removed', 'takedown:url', 'yesterday')"
        )
    store = LineageStore.at(copy.lineage_db, read_only=True)
    first = write_croissant(copy, store).read_bytes()
    assert json.loads(first)["datePublished"] == "2030-12-31"
    assert json.loads(first)["version"] == json.loads(files["croissant"].read_text())["version"]
    assert write_croissant(copy, store).read_bytes() == first
    card = write_card(copy, store).read_text()
    assert "- Release date: 2030-12-31 (UTC;" in card
    assert "- Creators: no catalog owners are declared" in card  # no owners given
    assert "author = " not in card


def test_base_url_makes_croissant_urls_absolute_and_still_validates(corpus, tmp_path, shard_rows):
    mlc = pytest.importorskip("mlcroissant")
    home, _ = corpus
    copy = DataHome(tmp_path / "home")
    shutil.copytree(home.corpus_dir, copy.corpus_dir, symlinks=True)
    copy_lineage(home, copy)
    files = publish(copy, base_url="https://data.example.org/corpora/open/")
    document = json.loads(files["croissant"].read_text())
    # The base URL is where the corpus folder is served; the release's files are in its folder.
    served = f"https://data.example.org/corpora/open/releases/{release_folder(copy).name}/"
    assert document["url"] == served + "README.md"
    manifest_object, shards = document["distribution"]
    assert manifest_object["contentUrl"] == served + "manifest.json"
    assert shards["includes"] == "shards/**/*.parquet"  # a glob: relative to this file, as Croissant reads it
    assert f"  url = {{{served}README.md}},\n" in document["citeAs"]
    card = files["card"].read_text()
    assert f"- Published at: <{served}README.md>\n" in card
    assert document["citeAs"] in card
    dataset = mlc.Dataset(jsonld=files["croissant"])
    assert dataset.metadata.ctx.issues.warnings == set()
    assert dataset.metadata.url == served + "README.md"
    assert len(list(dataset.records("documents"))) == len(shard_rows)


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("https://data.example.org/corpus", "https://data.example.org/corpus/"),
        ("https://data.example.org/corpus/", "https://data.example.org/corpus/"),
        ("HTTP://Data.Example.org/a/../corpus", "http://data.example.org/corpus/"),
        ("https://huggingface.co/datasets/org/open/resolve/main", "https://huggingface.co/datasets/org/open/resolve/main/"),
        ("README.md", "url.scheme"),
        ("ftp://data.example.org/corpus", "url.scheme"),
        ("https://user:secret@data.example.org/corpus", "url.userinfo"),
        ("https://data.example.org/corpus?token=1", "no query or fragment"),
        ("https://data.example.org/corpus#top", "no query or fragment"),
        ("https://data.example.org/../../etc", "url.climbs_above_root"),
    ],
)
def test_base_urls(given, expected):
    if expected.startswith("http"):
        assert check_base_url(given) == expected
    else:
        with pytest.raises(ValueError, match=re.escape(expected)):
            check_base_url(given)


def test_base_url_from_the_environment(monkeypatch):
    monkeypatch.delenv(BASE_URL_ENV, raising=False)
    assert base_url_from_environment() is None
    monkeypatch.setenv(BASE_URL_ENV, " ")
    assert base_url_from_environment() is None
    monkeypatch.setenv(BASE_URL_ENV, "https://data.example.org/c")
    assert base_url_from_environment() == "https://data.example.org/c/"
    monkeypatch.setenv(BASE_URL_ENV, "data.example.org/c")
    with pytest.raises(ValueError, match=r"^OPENCORPUS_BASE_URL: 'data.example.org/c' refused \(url.scheme\)"):
        base_url_from_environment()


def test_a_source_named_default_gets_its_own_config_name():
    assert dataset_configs({"default": (1, 1), "enwiki": (1, 1)}) == [
        {"config_name": "default", "data_files": [{"split": "train", "path": "shards/**/*.parquet"}], "default": True},
        {"config_name": "source_default", "data_files": [{"split": "train", "path": "shards/default/**/*.parquet"}]},
        {"config_name": "enwiki", "data_files": [{"split": "train", "path": "shards/enwiki/**/*.parquet"}]},
    ]


# --- the card asset in a real build --------------------------------------------------------------


def test_the_built_card_names_the_catalog_owners_and_links_its_charts(built_corpus):
    """What `opencorpus build` published (the corpus/card asset): owners from assets/*.yaml."""
    home = DataHome(built_corpus[0])
    card = (release_folder(home) / "README.md").read_text()
    assert "  - team:corpus (enwiki, gutenberg)\n" in card
    links = re.findall(r"!\[[^\]]+\]\((charts/[a-z]+\.png)\)", card)
    assert links == ["charts/sources.png", "charts/licences.png", "charts/outcomes.png"]
    for link in links:
        assert (release_folder(home) / link).read_bytes().startswith(b"\x89PNG\r\n\x1a\n")
    document = json.loads((release_folder(home) / "croissant.json").read_text())
    assert document["creator"] == [{"@type": "sc:Organization", "name": "team:corpus"}]
    assert document["url"] == "README.md"  # the build ran without OPENCORPUS_BASE_URL


def test_a_rebuild_with_a_base_url_changes_only_the_urls_and_a_bad_one_fails(built_corpus, fixture_mirror, tmp_path):
    """`OPENCORPUS_BASE_URL` reaches the card asset of a real build; nothing new was decided, so
    the release date, the version and the charts' bytes (drawn in another process) stay."""
    from cli_runner import build

    before = DataHome(built_corpus[0])
    root = tmp_path / "home"
    shutil.copytree(before.root, root, symlinks=True)
    build(root, fixture_mirror, env={BASE_URL_ENV: "https://data.example.org/open"})
    after = DataHome(root)
    # Only the card and Croissant changed: a new release, its shards the same files' links.
    assert (release_folder(before).name, release_folder(after).name) == ("r000001", "r000002")
    served = "https://data.example.org/open/releases/r000002/"
    for chart in ("licences.png", "outcomes.png", "sources.png"):
        assert (release_folder(after) / "charts" / chart).read_bytes() == (release_folder(before) / "charts" / chart).read_bytes()
    old, new = (json.loads((release_folder(home) / "croissant.json").read_text()) for home in (before, after))
    assert new["url"] == served + "README.md"
    assert new["distribution"][0]["contentUrl"] == served + "manifest.json"
    assert (new["version"], new["datePublished"]) == (old["version"], old["datePublished"])
    old_card, new_card = ((release_folder(home) / "README.md").read_text().splitlines() for home in (before, after))
    changed = [line for line in new_card if line not in old_card]
    assert changed == [
        f"- Published at: <{served}README.md>",
        f"  url = {{{served}README.md}},",
    ]
    assert len(new_card) == len(old_card) + 2

    # A base URL the URL policy refuses fails the build, naming the variable; the card stays as it was.
    published = {name: (release_folder(after) / name).read_bytes() for name in ("README.md", "croissant.json")}
    failed = build(root, fixture_mirror, check=False, env={BASE_URL_ENV: "ftp://data.example.org/open"})
    assert failed.returncode == 1
    assert [f.split(" (log: ")[0] for f in json.loads(failed.stdout)["failed"]] == [
        "corpus: ValueError: OPENCORPUS_BASE_URL: 'ftp://data.example.org/open' refused (url.scheme): "
        "scheme 'ftp'; only http and https URLs are read"
    ]
    assert {name: (release_folder(after) / name).read_bytes() for name in published} == published


# --- determinism and atomicity ----------------------------------------------------------------


def test_rewriting_gives_byte_identical_files_and_leaves_no_temporaries(corpus):
    home, files = corpus
    before = {name: path.read_bytes() for name, path in files.items()}
    again = publish(home)
    assert {name: path.read_bytes() for name, path in again.items()} == before
    assert sorted(p.name for p in release_folder(home).iterdir()) == [
        "ATTRIBUTION", "README.md", "charts", "croissant.json", "manifest.json", "release.json", "shards",
        "training-content-summary.json", "training-content-summary.md",
    ]  # fmt: skip
    charts = sorted(p.name for p in (release_folder(home) / "charts").iterdir())
    assert charts == ["licences.png", "outcomes.png", "sources.png"]


def test_no_manifest_is_an_error_naming_it_and_writes_nothing(tmp_path):
    home = DataHome(tmp_path)
    store = LineageStore.at(tmp_path / "lineage")
    for write in (write_card, write_attribution, write_croissant):
        with pytest.raises(FileNotFoundError, match=re.escape(str(home.corpus_dir / "current.json"))):
            write(home, store)
    assert not home.corpus_dir.exists() or list(home.corpus_dir.iterdir()) == []


# --- the licence and type tables ---------------------------------------------------------------


@pytest.mark.parametrize(
    ("key", "url", "hub_id", "attribution"),
    [
        ("CC-BY-SA-4.0", "https://creativecommons.org/licenses/by-sa/4.0/", "cc-by-sa-4.0", True),
        ("CC-BY-SA-3.0", "https://creativecommons.org/licenses/by-sa/3.0/", "cc-by-sa-3.0", True),
        ("CC-BY-4.0", "https://creativecommons.org/licenses/by/4.0/", "cc-by-4.0", True),
        ("CC-BY-3.0-DE", "https://creativecommons.org/licenses/by/3.0/de/", "other", True),
        ("CC0-1.0", "https://creativecommons.org/publicdomain/zero/1.0/", "cc0-1.0", False),
        ("LicenseRef-PublicDomain", "https://creativecommons.org/publicdomain/mark/1.0/", "other", False),
        ("PDDL-1.0", "https://spdx.org/licenses/PDDL-1.0.html", "pddl", False),
        ("MIT", "https://spdx.org/licenses/MIT.html", "mit", True),
        ("GFDL-1.3-or-later", "https://spdx.org/licenses/GFDL-1.3-or-later.html", "gfdl", True),
        ("GPL-3.0-only", "https://spdx.org/licenses/GPL-3.0-only.html", "gpl-3.0", True),
        ("ODbL-1.0", "https://spdx.org/licenses/ODbL-1.0.html", "odbl", True),
        ("LicenseRef-Custom", None, "other", True),
    ],
)
def test_licence_facts(key, url, hub_id, attribution):
    assert license_url(key) == url
    assert hub_license_id(key) == hub_id
    assert requires_attribution(key) is attribution


@pytest.mark.parametrize(
    ("expression", "attribution"),
    [("CC0-1.0 OR CC-BY-4.0", False), ("CC-BY-SA-3.0 OR GFDL-1.3-or-later", True), ("CC0-1.0 AND MIT", True), (None, True)],
)
def test_expressions_need_attribution_unless_a_branch_is_public_domain(expression, attribution):
    assert requires_attribution(expression) is attribution


@pytest.mark.parametrize(
    ("documents", "category"),
    [(0, "n<1K"), (999, "n<1K"), (1_000, "1K<n<10K"), (123_456, "100K<n<1M"), (5 * 10**9, "1B<n<10B"), (10**13, "n>1T")],
)
def test_size_categories(documents, category):
    assert size_category(documents) == category


@pytest.mark.parametrize(
    ("arrow_type", "croissant"),
    [
        (pa.string(), "sc:Text"), (pa.large_string(), "sc:Text"), (pa.int64(), "sc:Integer"),
        (pa.float32(), "sc:Float"), (pa.bool_(), "sc:Boolean"), (pa.timestamp("s"), "sc:DateTime"),
        (pa.date32(), "sc:Date"), (pa.dictionary(pa.int32(), pa.string()), "sc:Text"),
    ],
)  # fmt: skip
def test_croissant_data_types(arrow_type, croissant):
    assert croissant_data_type(arrow_type) == croissant


def test_documents_without_a_language_have_a_row_of_their_own():
    """A source with language identification off has documents whose language is null: the
    languages table names them as the training-data summary does."""
    from opencorpus_dagster.publish.card import CorpusStatistics, _languages

    stats = CorpusStatistics(documents=4, tokens=100, by_language={"en": (3, 90), None: (1, 10)})
    rows = [line for line in _languages(stats).splitlines() if line.startswith("| ") and "---" not in line][1:]
    assert rows == ["| en | 3 | 75.00% | 90 | 90.00% |", "| (not identified) | 1 | 25.00% | 10 | 10.00% |"]
