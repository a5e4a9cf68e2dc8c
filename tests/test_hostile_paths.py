"""Hostile data homes and catalog text: no path, URL or description is ever SQL or Markdown.

A real `opencorpus build` runs in a data home whose path holds an apostrophe, double quotes,
spaces, `%`, glob brackets and non-ASCII letters (every one of which broke or bent a query that
pasted the path into SQL), on a small catalog: three Project Gutenberg books (`textfiles`, whose
upstream URIs are plain URLs) and the coffee.stackexchange.com dump (whose URIs carry `#...`
fragments, which `trace --url` matches by prefix). The catalog's description of the books is
hostile Markdown/HTML; the dataset card must print it as inert text.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from pathlib import Path

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
import yaml
from cli_runner import build, run_opencorpus, shard_name
from conftest import current_manifest, release_folder, shard_path
from lineage_edit import copy_lineage

from opencorpus_dagster.cli import EXIT_NO_MATCH
from opencorpus_dagster.dedup.exact import find_exact_groups
from opencorpus_dagster.dedup.lsh_index import LshIndex
from opencorpus_dagster.dedup.minhash import MinHashConfig, compute_signatures
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.publish.card import write_card
from opencorpus_dagster.publish.markdown import markdown_code, markdown_text
from opencorpus_dagster.stages.audit import (
    conservation_problems,
    manifest_mismatches,
    repeated_doc_ids,
    rows_without_upstream,
)
from opencorpus_dagster.stages.takedown import match_takedowns, new_request
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import parquet_files

HOSTILE_NAME = "it's a \"home\" [1] 100% Ærø 数据"
HOSTILE_DESCRIPTION = "</details><script>alert(1)</script>\n# Fake heading\n| a | b |\n[click](javascript:alert(1))"
ESCAPED_DESCRIPTION = (
    r"\</details\>\<script\>alert(1)\</script\> \# Fake heading \| a \| b \| \[click\](javascript:alert(1))"
)
BOOKS = ("1013", "2701", "10026")
BOOK_URL = "https://fixtures.opencorpus.invalid/gutenberg-clean/{}.txt"
COFFEE_POSTS = "https://fixtures.opencorpus.invalid/stackexchange/coffee.stackexchange.com-2015-03/Posts.xml"
BOOKS_SHARD = "shards/books/clean/part-00000.parquet"


def write_catalog(folder: Path) -> Path:
    folder.mkdir(parents=True)
    books = {
        "name": "books",
        "kind": "textfiles",
        "description": HOSTILE_DESCRIPTION,
        "options": {"partitions": {"clean": [BOOK_URL.format(book) for book in BOOKS]}},
        "license": {"spdx": "LicenseRef-PublicDomain", "evidence": "the fixture books are public domain in the USA"},
        "filters": {"quality": {"enabled": False}, "pii": {"enabled": False}},
    }
    coffee = {
        "name": "coffee",
        "kind": "stackexchange",
        "description": "coffee.stackexchange.com (2015-03)",
        "options": {"sites": [{"posts": COFFEE_POSTS, "site_url": "https://coffee.stackexchange.com"}]},
        "filters": {"quality": {"c4_max_curly_brackets": None}},
    }
    (folder / "books.yaml").write_text(yaml.safe_dump(books, allow_unicode=True), encoding="utf-8")
    (folder / "coffee.yaml").write_text(yaml.safe_dump(coffee), encoding="utf-8")
    return folder


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    return write_catalog(tmp_path_factory.mktemp("catalog") / "catalog")


@pytest.fixture(scope="module")
def built(tmp_path_factory, fixture_mirror, catalog) -> tuple[Path, dict]:
    """The catalog built from scratch in a hostile home (shared: tests that change it copy it)."""
    home = tmp_path_factory.mktemp("hostile") / HOSTILE_NAME
    summary = json.loads(build(home, fixture_mirror, catalog).stdout)
    return home, summary


def shard_doc_ids(home: Path, shard: str) -> list[str]:
    return pq.read_table(release_folder(home) / shard, columns=["doc_id"]).column("doc_id").to_pylist()


def trace(home: Path, *args: str, check: bool = True):
    return run_opencorpus("trace", *args, "--json", home=home, check=check)


def test_build_in_a_hostile_home_publishes_every_kept_record(built):
    home, summary = built
    assert summary["failed"] == []
    assert summary["records_in"] == 268
    assert summary["outcomes"] == {"kept": 220, "filtered": 8, "skipped": 40}
    assert summary["manifest"] == str(release_folder(home) / "manifest.json")

    manifest = current_manifest(home)
    assert [(shard_name(s["path"]), s["rows"]) for s in manifest["shards"]] == [
        (BOOKS_SHARD, 3), ("shards/coffee/coffee.stackexchange.com-2015-03/part-00000.parquet", 217),
    ]  # fmt: skip
    for shard in manifest["shards"]:
        path = release_folder(home) / shard["path"]
        assert hashlib.sha256(path.read_bytes()).hexdigest() == shard["sha256"]
        assert pq.read_metadata(path).num_rows == shard["rows"]
    assert manifest["totals"]["rows"] == 220

    # The audits read every shard through DuckDB with the hostile path bound as a parameter.
    data = DataHome(home)
    assert manifest_mismatches(data) == []
    assert repeated_doc_ids(data) == []
    assert rows_without_upstream(data) == 0
    assert conservation_problems(LineageStore.at(data.lineage_db, read_only=True)) == []


def test_trace_a_shard_row_in_a_hostile_home(built):
    home, _ = built
    books = shard_path(home, "books", "clean")
    first = pq.read_table(release_folder(home) / books).slice(0, 1).to_pylist()[0]
    (found,) = json.loads(trace(home, "--shard", books, "--row", "0").stdout)
    assert (found["doc_id"], found["outcome"]) == (first["doc_id"], "kept")
    assert found["upstream_uri"] == first["upstream_uri"]
    assert found["shard_rows"][0]["shard"] == books and found["shard_rows"][0]["row"] == 0
    assert found["upstream_uri"] == BOOK_URL.format("1013")


@pytest.mark.parametrize(
    "url",
    [
        "%",  # LIKE '%#%' matched every record whose upstream URI has a fragment
        "_%",
        COFFEE_POSTS[:-1] + "_",  # `_` stood for the dump's last letter
        COFFEE_POSTS.replace("coffee.stackexchange.com", "%"),
    ],
)
def test_trace_url_takes_wildcards_literally(built, url):
    home, _ = built
    result = trace(home, "--url", url, check=False)
    assert result.returncode == EXIT_NO_MATCH
    assert json.loads(result.stdout) == []
    assert result.stderr == f"opencorpus: no record with URL or upstream URI {url!r}\n"


def test_trace_url_finds_a_record_by_url_and_a_dump_by_prefix(built):
    home, _ = built
    (book,) = json.loads(trace(home, "--url", BOOK_URL.format("2701")).stdout)
    assert (book["source"], book["source_record_id"], book["outcome"]) == ("books", "2701.txt", "kept")
    # Every coffee record's upstream URI is `<Posts.xml>#...`: the dump URL finds them all.
    coffee = json.loads(trace(home, "--url", COFFEE_POSTS).stdout)
    assert len(coffee) == 268 - 3
    assert all(t["upstream_uri"].startswith(COFFEE_POSTS + "#") for t in coffee)


def test_takedown_in_a_hostile_home_removes_the_record_on_rebuild(built, fixture_mirror, catalog, tmp_path):
    source_home, _ = built
    home = tmp_path / "take'down \"copy\" [2] 50% Ø"
    shutil.copytree(source_home, home)
    before = shard_doc_ids(home, shard_path(home, "books", "clean"))
    (target,) = json.loads(trace(home, "--url", BOOK_URL.format("2701")).stdout)
    assert target["doc_id"] in before

    added = run_opencorpus(
        "takedown", "add", "--url", BOOK_URL.format("2701"), "--reason", "rights holder's request \"A\" 100%", home=home
    )
    assert added.stdout.startswith("takedown ")
    summary = json.loads(build(home, fixture_mirror, catalog).stdout)
    assert summary["failed"] == []
    assert summary["outcomes"] == {"kept": 219, "filtered": 8, "skipped": 40, "removed": 1}

    after = shard_doc_ids(home, shard_path(home, "books", "clean"))
    assert len(after) == len(before) - 1 == 2
    assert after == [d for d in before if d != target["doc_id"]]
    manifest = current_manifest(home)
    assert manifest["totals"]["rows"] == 219
    (removed,) = json.loads(trace(home, "--url", BOOK_URL.format("2701")).stdout)
    assert removed["outcome"] == "removed"
    assert removed["decisions"][-1]["reason"] == "takedown:url"


def test_card_prints_the_hostile_description_as_text(built):
    home, _ = built
    text = (release_folder(home) / "README.md").read_text(encoding="utf-8")
    header, body = text.removeprefix("---\n").split("\n---\n", 1)
    assert yaml.safe_load(header)["pretty_name"] == "opencorpus"
    lines = body.splitlines()
    assert f"| books | {ESCAPED_DESCRIPTION} | 3 | 1.36% | 293,269 | 79.70% |" in lines
    assert not any(line.startswith(("# Fake", "| a |")) for line in lines)
    assert "<script>" not in body and "](javascript:" not in body.replace(r"\](javascript:", "")


def test_card_title_and_front_matter_survive_a_hostile_pretty_name(built, tmp_path):
    source_home, _ = built
    home = DataHome(tmp_path / HOSTILE_NAME)
    shutil.copytree(source_home / "corpus", home.corpus_dir)
    copy_lineage(DataHome(source_home), home)
    store = LineageStore.at(home.lineage_db, read_only=True)
    plain = write_card(home, store, {"books": HOSTILE_DESCRIPTION}).read_text(encoding="utf-8")
    name = "---\nevil: true\n---\n# Hi *there* <b>x</b> | [a](b) `c`"
    hostile = write_card(home, store, {"books": HOSTILE_DESCRIPTION}, pretty_name=name).read_text(encoding="utf-8")

    plain_header = yaml.safe_load(plain.removeprefix("---\n").split("\n---\n", 1)[0])
    header_text, body = hostile.removeprefix("---\n").split("\n---\n", 1)
    header = yaml.safe_load(header_text)
    assert header == {**plain_header, "pretty_name": name}
    assert "evil" not in header
    assert body.splitlines()[1] == r"# --- evil: true --- \# Hi \*there\* \<b\>x\</b\> \| \[a\](b) \`c\`"


# --- the escaping functions -------------------------------------------------------------------


@pytest.mark.parametrize(
    ("value", "escaped"),
    [
        (None, ""),
        ("English Wikipedia articles.", "English Wikipedia articles."),
        ("e-books | plain text", r"e-books \| plain text"),
        ("a\\b", r"a\\b"),
        ("*bold* _it_ `code` ![img](x) &amp; #tag", r"\*bold\* \_it\_ \`code\` \!\[img\](x) \&amp; \#tag"),
        ("line one\n\n# two\r\n- three\t| four", r"line one \# two - three \| four"),
        (HOSTILE_DESCRIPTION, ESCAPED_DESCRIPTION),
    ],
)
def test_markdown_text(value, escaped):
    assert markdown_text(value) == escaped


@pytest.mark.parametrize(
    ("value", "code"),
    [
        ("dedup.exact", "`dedup.exact`"),
        ("a|b", r"`a\|b`"),
        ("x `y` z", "``x `y` z``"),
        ("`edge", "`` `edge ``"),
        ("two\nlines", "`two lines`"),
    ],
)
def test_markdown_code(value, code):
    assert markdown_code(value) == code


# --- the plain layer in a folder DuckDB's glob would misread ------------------------------------

DOCUMENT_COLUMNS = (
    "source", "partition", "doc_id", "source_record_id", "upstream_uri", "url", "license", "content_sha256", "text",
)  # fmt: skip


def write_documents(home: DataHome, source: str, partition: str, rows: list[dict]) -> None:
    path = home.documents_path(source, partition)
    path.parent.mkdir(parents=True, exist_ok=True)
    table = pa.Table.from_pylist(
        [{"source": source, "partition": partition, **row} for row in rows],
        schema=pa.schema([(name, pa.string()) for name in DOCUMENT_COLUMNS]),
    )
    pq.write_table(table, path)


def test_exact_dedup_and_takedown_matching_in_a_glob_like_folder(tmp_path):
    home = DataHome(tmp_path / "o'brien [x] *?%")
    def doc(doc_id: str, record: str, uri: str, url: str, sha: str) -> dict:
        return {"doc_id": doc_id, "source_record_id": record, "upstream_uri": uri, "url": url, "content_sha256": sha,
                "license": "CC0-1.0", "text": "same text"}  # fmt: skip

    write_documents(home, "alpha", "p1", [
        doc("a1", "1", "https://ex.org/d#1", "https://ex.org/a", "h1"),
        doc("a2", "2", "https://ex.org/d#2", "https://ex.org/b", "h2"),
    ])  # fmt: skip
    write_documents(home, "beta", "p1", [doc("b1", "1", "https://ex.org/e#1", "https://ex.org/c", "h1")])
    files = parquet_files(home.root / "documents", "*/*.parquet")
    assert files == [str(home.documents_path("alpha", "p1")), str(home.documents_path("beta", "p1"))]

    superseded, groups = find_exact_groups(files)
    assert superseded == []
    assert [[m.key for m in group] for group in groups] == [["alpha|p1|a1", "beta|p1|b1"]]

    requests = [new_request("url", "https://ex.org/b", "asked"), new_request("doc_id", "b1", "asked")]
    matched = match_takedowns(home, requests)
    hits = sorted(zip(matched["source"].to_pylist(), matched["doc_id"].to_pylist(), strict=True))
    assert hits == [("alpha", "a2"), ("beta", "b1")]


def test_lsh_index_in_a_glob_like_folder_finds_its_candidates(tmp_path):
    config = MinHashConfig()
    index = LshIndex(tmp_path / "it's [an] index*", config)
    text = "the quick brown fox jumps over the lazy dog again and again in the sun"
    index.add_partition("s'1", "p[1]", ["x"], compute_signatures([text], config))
    index.add_partition("s'1", "p[2]", ["y"], compute_signatures([text], config))
    assert list(index.candidate_pairs([("s'1", "p[2]")])) == [("x", "y")]
    assert list(index.all_candidate_pairs()) == [("x", "y")]
    found = index.signatures_for(["x", "y", "z"])
    assert sorted(found) == ["x", "y"] and np.array_equal(found["x"], found["y"])
