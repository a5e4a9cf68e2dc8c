"""Near-duplicate clusters on real fixtures: the same book from two sources, wiki revisions."""

from __future__ import annotations

import shutil

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO_ROOT
from plain_pipeline import run_plain

from opencorpus_dagster.dedup import near
from opencorpus_dagster.dedup.clusters import exact_jaccard
from opencorpus_dagster.dedup.exact import member_key
from opencorpus_dagster.dedup.minhash import MinHashConfig
from opencorpus_dagster.dedup.near import NearDuplicateIndex
from opencorpus_dagster.stages.corpus import (
    clusters_path,
    deduplicate_corpus,
    documents_files,
    duplicates_path,
    find_duplicates,
)
from opencorpus_dagster.state.home import DataHome

CATALOG = REPO_ROOT / "tests" / "catalogs" / "near_duplicates"


@pytest.fixture(scope="module")
def corpus(tmp_path_factory, fixture_mirror):
    home, store = run_plain(CATALOG, tmp_path_factory.mktemp("near"), fixture_mirror)
    return home, store


def clusters(home) -> list[list[tuple]]:
    with duckdb.connect() as conn:
        rows = conn.execute(
            """
            SELECT c.cluster, c.rank, c.source, c.doc_id, d.source_record_id
            FROM read_parquet($1) c
            JOIN read_parquet($2) d USING (source, partition, doc_id)
            ORDER BY 1, 2
            """,
            [str(clusters_path(home)), documents_files(home)],
        ).fetchall()
    grouped: dict[int, list[tuple]] = {}
    for cluster, _, source, doc_id, record_id in rows:
        grouped.setdefault(cluster, []).append((source, doc_id, record_id))
    return list(grouped.values())


def test_each_book_clusters_with_its_clean_copy_and_nothing_else(corpus):
    home, _ = corpus
    books = [c for c in clusters(home) if c[0][0].startswith("gutenberg")]
    assert len(books) == 15
    for cluster in books:
        assert [member[0] for member in cluster] == ["gutenberg", "gutenberg_clean"]  # keeper first
        book_id, clean_file = cluster[0][2], cluster[1][2]
        assert clean_file == f"{book_id}.txt"


def test_wiki_revisions_cluster_within_their_page_only(corpus):
    home, _ = corpus
    wiki = [c for c in clusters(home) if c[0][0] == "simplewiki_history"]
    assert len(wiki) == 2
    for cluster in wiki:
        pages = {record_id.split("@")[0] for _, _, record_id in cluster}
        assert len(pages) == 1, cluster
        assert len(cluster) == 3
    with duckdb.connect() as conn:
        near = conn.execute(
            f"SELECT reason, count(*), min(similarity) FROM '{duplicates_path(home)}' WHERE source = 'simplewiki_history' GROUP BY 1"
        ).fetchall()
    assert near[0][0] == "dedup.near" and near[0][1] == 4
    assert 0.6 < near[0][2] < 0.8  # a member joined through its neighbour, measured against the keeper


def test_every_duplicate_decision_names_its_keeper_and_similarity(corpus):
    home, store = corpus
    with store.connection() as conn:
        rows = conn.execute(
            "SELECT source, reason, value, detail FROM outcomes WHERE outcome = 'duplicate' ORDER BY ALL"
        ).fetchall()
        kept = {r[0] for r in conn.execute("SELECT doc_id FROM outcomes WHERE outcome = 'kept'").fetchall()}
    assert len(rows) == 19
    for source, reason, keeper, detail in rows:
        assert keeper in kept
        assert detail.startswith("similarity ") and keeper in detail
        assert reason == ("dedup.exact" if source.startswith("gutenberg") else "dedup.near")


def test_unchanged_partitions_are_not_signed_again(corpus):
    home, store = corpus
    before = clusters(home)
    report = deduplicate_corpus(home, store, "second-run")
    assert report.reindexed_partitions == 0
    assert clusters(home) == before
    assert len(NearDuplicateIndex(home).index.partitions()) == 11


def test_a_removed_keeper_promotes_the_next_member(corpus, tmp_path):
    home, store = corpus
    first = clusters(home)[0]
    keeper_source, keeper_doc, _ = first[0]
    with duckdb.connect() as conn:
        partition = conn.execute(
            "SELECT partition FROM read_parquet(?) WHERE doc_id = ?", [documents_files(home), keeper_doc]
        ).fetchone()[0]
    pq.write_table(pa.table({"source": [keeper_source], "partition": [partition], "doc_id": [keeper_doc]}), home.removed_records)
    try:
        deduplicate_corpus(home, store, "takedown-run")
        after = clusters(home)
        promoted = [c for c in after if c[0][1] == first[1][1]]
        assert promoted == [] or promoted[0][0][1] == first[1][1]
        with store.connection() as conn:
            outcome = conn.execute("SELECT outcome FROM outcomes WHERE doc_id = ? AND stage = 'dedup'", [first[1][1]]).fetchone()
        assert outcome == ("kept",)
    finally:
        home.removed_records.unlink()
        deduplicate_corpus(home, store, "restore")


def _member_texts(home) -> dict[str, tuple[str, str]]:
    """member key -> (text, documents file) of every document."""
    with duckdb.connect() as conn:
        rows = conn.execute(
            "SELECT source, partition, doc_id, text, filename FROM read_parquet(?, filename = true)", [documents_files(home)]
        ).fetchall()
    return {member_key(s, p, d): (text, file) for s, p, d, text, file in rows}


def test_kept_members_and_measures_are_what_the_documents_files_say(corpus):
    home, _ = corpus
    texts = _member_texts(home)
    kept = pq.read_table(home.dedup_dir / "members.parquet").to_pylist()
    in_clusters = pq.read_table(clusters_path(home)).to_pylist()
    # Every member of the 17 clusters (15 books and their clean copies, 2 wiki pages of 3), no other document.
    assert sorted(member_key(r["source"], r["partition"], r["doc_id"]) for r in kept) == sorted(
        member_key(r["source"], r["partition"], r["doc_id"]) for r in in_clusters
    )
    assert len(kept) == 36
    for row in kept:
        text, _ = texts[member_key(row["source"], row["partition"], row["doc_id"])]
        assert row["text_length"] == len(text)
    measured = pq.read_table(home.dedup_dir / "minhash" / "measured.parquet").to_pylist()
    assert len(measured) == 2  # one member of each wiki page's cluster is joined through its neighbour
    for row in measured:
        assert row["similarity"] == exact_jaccard(texts[row["a"]][0], texts[row["b"]][0], MinHashConfig().shingle_words)
        assert 0.6 < row["similarity"] < 0.8


def test_a_rewritten_documents_file_is_read_again_and_an_unreadable_cache_ignored(corpus, tmp_path):
    """The members and measures kept by the last run are used only while their documents files
    are unchanged: the joined wiki member's text edited, its length and its similarity to the
    keeper are the new text's. Damaged cache files count as no cache."""
    home, _ = corpus
    copy = DataHome(tmp_path / "home")
    shutil.copytree(home.root, copy.root)  # copies keep their modification times: the caches hold
    before = {d.member.key: d for d in find_duplicates(copy)[0]}
    assert before == {d.member.key: d for d in find_duplicates(home)[0]}
    (a, b), *_ = [(r["a"], r["b"]) for r in pq.read_table(copy.dedup_dir / "minhash" / "measured.parquet").to_pylist()]
    joined = a if before.get(a) is not None and before[a].reason == "dedup.near" and before[a].keeper.key == b else b
    keeper = b if joined == a else a
    texts = _member_texts(copy)
    text, file = texts[joined]
    edited = text + " An added closing sentence about something else entirely, to change the text."
    table = pq.read_table(file)
    doc_ids = table["doc_id"].to_pylist()
    at = doc_ids.index(joined.split("|", 2)[2])
    column = table["text"].to_pylist()
    column[at] = edited
    pq.write_table(table.set_column(table.schema.get_field_index("text"), "text", pa.array(column, table.schema.field("text").type)), file)

    after = {d.member.key: d for d in find_duplicates(copy)[0]}
    assert after[joined].member.text_length == len(edited) != before[joined].member.text_length
    expected = exact_jaccard(edited, texts[keeper][0], MinHashConfig().shingle_words)
    assert after[joined].similarity == expected != before[joined].similarity

    for cache in (copy.dedup_dir / "members.parquet", copy.dedup_dir / "minhash" / "measured.parquet"):
        cache.write_bytes(b"not parquet")
    again = {d.member.key: d for d in find_duplicates(copy)[0]}
    assert again == after


def test_every_partition_changed_at_once_is_verified_in_bounded_batches(corpus, tmp_path, monkeypatch):
    """A full build's dedup: every partition changed, their candidates from one query over the
    index, verified in batches naming at most 4 documents each. The pairs are exactly the
    index's candidates whose exact shingle Jaccard reaches the threshold, each once."""
    home, _ = corpus
    copy = DataHome(tmp_path / "home")
    shutil.copytree(home.root, copy.root)
    for state in ("indexed.json", "pairs.parquet"):
        (copy.dedup_dir / "minhash" / state).unlink()
    batches: list[set[str]] = []
    verify = NearDuplicateIndex._verify

    def counted(self, candidates):
        batches.append({key for pair in candidates for key in pair})
        return verify(self, candidates)

    monkeypatch.setattr(near, "VERIFY_KEYS", 4)
    monkeypatch.setattr(NearDuplicateIndex, "_verify", counted)
    index = NearDuplicateIndex(copy)
    pairs, changed = index.update()

    assert len(changed) == 11
    assert len(batches) > 5 and all(len(keys) <= 4 for keys in batches)
    texts, config = _member_texts(copy), MinHashConfig()
    expected = []
    for a, b in index.index.all_candidate_pairs():
        similarity = exact_jaccard(texts[a][0], texts[b][0], config.shingle_words)
        if similarity >= config.threshold:
            expected.append((a, b, round(similarity, 6)))
    assert len(expected) >= 15
    assert pairs == expected
    assert pairs == NearDuplicateIndex(home)._stored_pairs()  # as the unbatched first run found them
