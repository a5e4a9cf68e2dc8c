"""`opencorpus lookup` on the fixture corpus: is this work in the release, where, and how close?

Built once by the real `opencorpus build` (conftest `built_rights_corpus`); the queries are
written from the corpus's own shard rows and the raw WARC payload, and every expected doc_id,
shard and row comes from a query of the test's own on the lineage store.
"""

from __future__ import annotations

import json
import re

import pyarrow.parquet as pq
import pytest
from cli_runner import run_opencorpus
from conftest import TAKEN_DOWN_URL, current_manifest, release_folder

from opencorpus_dagster.dedup.clusters import exact_jaccard
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.rights.lookup import QueryError, parse_queries
from opencorpus_dagster.stages.takedown import load_takedowns, match_takedowns
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.text.normalise import normalise_text

ABSENT = (
    "Seven lighthouse keepers on an island that appears on no chart kept a ledger of every gull that landed on "
    "the north rail, and in the spring of the wettest year they counted four hundred and twelve of them."
)


def sql(home, query: str, *params) -> list[tuple]:
    with LineageStore.at(DataHome(home).lineage_db, read_only=True).connection() as conn:
        return conn.execute(query, list(params)).fetchall()


@pytest.fixture(scope="module")
def enwiki_row(built_rights_corpus) -> dict:
    """A long kept Wikipedia article, read from its shard with pyarrow, with its shard and row."""
    home = DataHome(built_rights_corpus)
    manifest = current_manifest(home)
    (shard,) = [s["path"] for s in manifest["shards"] if s["source"] == "enwiki"]
    rows = pq.read_table(release_folder(home) / shard).to_pylist()
    row = max(range(len(rows)), key=lambda i: len(rows[i]["text"]))
    return {**rows[row], "shard": shard, "row": row}


def lookup_json(home, *items: str, check: bool = True) -> tuple[list[dict], int]:
    result = run_opencorpus("lookup", *items, "--json", home=home, check=check)
    return json.loads(result.stdout), result.returncode


def only_match(result: dict) -> dict:
    (match,) = result["matches"]
    return match


def test_an_exact_copy_is_found_with_release_shard_row_and_trace(built_rights_corpus, enwiki_row, tmp_path):
    query = tmp_path / "copy.txt"
    query.write_text(enwiki_row["text"])
    (result,), code = lookup_json(built_rights_corpus, str(query))
    assert code == 0
    match = only_match(result)
    ((shard, row),) = sql(
        built_rights_corpus, "SELECT shard, row FROM shard_rows WHERE doc_id = ?", enwiki_row["doc_id"]
    )
    assert (match["match"], match["similarity"], match["doc_id"]) == ("exact", 1.0, enwiki_row["doc_id"])
    assert match["status"] == "in release"
    assert match["in_release"] == [{"release": "r000001", "shard": shard, "row": row}]
    assert (shard, row) == (enwiki_row["shard"], enwiki_row["row"])
    assert match["trace"]["doc_id"] == enwiki_row["doc_id"]
    assert match["trace"]["upstream_uri"] == enwiki_row["upstream_uri"]
    assert match["decision"]["outcome"] == "kept"


def test_a_copy_with_sentences_changed_is_a_near_duplicate(built_rights_corpus, enwiki_row, tmp_path):
    sentences = re.split(r"(?<=\.) ", enwiki_row["text"])
    changed = " ".join(
        s + " Nobody had written this sentence before." if i % 6 == 0 else s for i, s in enumerate(sentences)
    )
    query = tmp_path / "changed.txt"
    query.write_text(changed)
    (result,), _ = lookup_json(built_rights_corpus, str(query))
    match = only_match(result)
    expected = exact_jaccard(normalise_text(changed), enwiki_row["text"], 5)
    assert match["match"] == "near" and match["doc_id"] == enwiki_row["doc_id"]
    assert 0.5 <= match["similarity"] < 1.0
    assert match["similarity"] == pytest.approx(expected, abs=1e-6)


def test_a_paragraph_is_found_as_a_passage(built_rights_corpus, enwiki_row, tmp_path):
    paragraph = max(enwiki_row["text"].split("\n\n")[1:], key=len)
    assert len(paragraph.split()) >= 40
    query = tmp_path / "paragraph.txt"
    query.write_text(paragraph)
    (result,), _ = lookup_json(built_rights_corpus, str(query))
    match = only_match(result)
    assert (match["match"], match["doc_id"], match["containment"]) == ("passage", enwiki_row["doc_id"], 1.0)
    assert match["in_release"][0]["row"] == enwiki_row["row"]


def test_a_url_and_a_domain_are_found_with_their_doc_ids(built_rights_corpus):
    (page, domain), code = lookup_json(built_rights_corpus, "https://creativecommons.org/mission/", "soldaini.net")
    assert code == 0
    (expected,) = sql(
        built_rights_corpus, "SELECT doc_id FROM raw_records WHERE url = ?", "https://creativecommons.org/mission/"
    )
    assert [m["doc_id"] for m in page["matches"]] == [expected[0]]
    assert page["matches"][0]["status"] == "in release"
    kept = sql(
        built_rights_corpus,
        "SELECT r.doc_id FROM raw_records r JOIN shard_rows s USING (doc_id) WHERE r.url LIKE 'https://soldaini.net/%'",
    )
    assert [m["doc_id"] for m in domain["matches"] if m["status"] == "in release"] == [d for (d,) in kept]
    assert len(kept) == 1
    # The site's other pages were captured but refused (no licence): found, with the decision.
    every = sql(built_rights_corpus, "SELECT doc_id FROM raw_records WHERE url LIKE 'https://soldaini.net/%'")
    assert sorted(m["doc_id"] for m in domain["matches"]) == sorted(d for (d,) in every) and len(every) == 3
    refused = [m for m in domain["matches"] if m["status"] != "in release"]
    assert {(m["status"], m["decision"]["reason"]) for m in refused} == {("filtered", "license.unknown")}
    assert {m["match"] for m in domain["matches"]} == {"domain"}


def test_an_html_page_is_reduced_to_its_main_text_and_found(built_rights_corpus, tmp_path):
    """The raw WARC payload of a kept page, saved as .html: extracted as the web sources are."""
    home = DataHome(built_rights_corpus)
    ((doc_id, partition),) = sql(
        built_rights_corpus,
        "SELECT doc_id, partition FROM raw_records WHERE url = ?",
        "https://creativecommons.org/mission/",
    )
    (payload,) = [
        r["payload"]
        for r in pq.read_table(
            home.root / "raw" / "webarchive" / f"{partition}.parquet", columns=["doc_id", "payload"]
        ).to_pylist()
        if r["doc_id"] == doc_id
    ]
    page = tmp_path / "mission.html"
    page.write_text(payload)
    (result,), _ = lookup_json(built_rights_corpus, str(page))
    assert [m["doc_id"] for m in result["matches"]] == [doc_id]
    assert result["matches"][0]["match"] in ("exact", "near")


def test_a_text_not_in_the_corpus_is_found_nowhere(built_rights_corpus, tmp_path):
    query = tmp_path / "absent.txt"
    query.write_text(ABSENT)
    (result,), code = lookup_json(built_rights_corpus, str(query), check=False)
    assert result["matches"] == [] and code == 6
    plain = run_opencorpus("lookup", str(query), home=built_rights_corpus, check=False)
    assert plain.returncode == 6 and "not found in any release" in plain.stderr


def test_a_taken_down_record_is_reported_removed_with_its_decision(taken_down_rights_corpus):
    (result,), code = lookup_json(taken_down_rights_corpus, TAKEN_DOWN_URL)
    assert code == 0
    match = only_match(result)
    ((doc_id, reason, value),) = sql(
        taken_down_rights_corpus,
        "SELECT doc_id, reason, value FROM decisions WHERE stage = 'takedown' AND outcome = 'removed'",
    )
    (request,) = load_takedowns(taken_down_rights_corpus)
    # Removed from the current release (r000002); the release it was published in still holds it.
    assert match["doc_id"] == doc_id and match["status"] == "removed"
    ((release, shard),) = [(w["release"], w["shard"]) for w in match["in_release"]]
    assert release == "r000001" and shard.startswith("shards/")
    old_rows = pq.read_table(taken_down_rights_corpus / "corpus" / "releases" / "r000001" / shard).column("doc_id").to_pylist()
    assert old_rows[match["in_release"][0]["row"]] == doc_id
    assert (match["decision"]["reason"], match["decision"]["value"]) == (reason, value) == ("takedown:url", request.id)
    assert "publisher request #7" in match["decision"]["detail"]


def test_takedown_requests_written_for_what_was_found_would_remove_it(built_rights_corpus, enwiki_row, tmp_path):
    query = tmp_path / "copy.txt"
    query.write_text(enwiki_row["text"])
    requests_file = tmp_path / "requests.jsonl"
    run_opencorpus(
        "lookup",
        str(query),
        "soldaini.net",
        "--takedown-request",
        str(requests_file),
        "--reason",
        "author X",
        home=built_rights_corpus,
    )
    home = tmp_path / "home"
    home.mkdir()
    (home / "takedowns.jsonl").write_text(requests_file.read_text())
    requests = load_takedowns(home)  # the file is in the takedown list's format
    assert sorted((r.kind, r.reason) for r in requests) == [("domain", "author X"), ("sha256", "author X")]
    matched = match_takedowns(DataHome(built_rights_corpus), requests).to_pylist()
    soldaini = sql(
        built_rights_corpus,
        "SELECT r.doc_id FROM raw_records r JOIN shard_rows USING (doc_id) WHERE r.url LIKE 'https://soldaini.net/%'",
    )
    assert sorted(m["doc_id"] for m in matched) == sorted([enwiki_row["doc_id"], *(d for (d,) in soldaini)])


@pytest.mark.parametrize("item", ["not a domain", "localhost", "ftp://example.org/x", "/no/such/file.txt"])
def test_an_item_that_is_no_file_url_or_domain_is_refused(item):
    with pytest.raises(QueryError, match="not a file, an http"):
        parse_queries([item])


def test_a_listing_file_gives_one_query_per_line(tmp_path):
    text = tmp_path / "a.txt"
    text.write_text("Some  text\r\nwith lines  ")
    listing = tmp_path / "items.txt"
    listing.write_text(f"# works of X\n{text}\nhttps://example.org/a\n\nexample.org\n")
    queries = parse_queries([], [listing])
    assert [(q.kind, q.value, q.text) for q in queries] == [
        ("text", str(text), "Some text\nwith lines"),
        ("url", "https://example.org/a", None),
        ("domain", "example.org", None),
    ]
