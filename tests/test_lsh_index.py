"""The persistent LSH index (Parquet + DuckDB) and the cluster / keeper step on real text."""

from __future__ import annotations

import gzip
import re
import shutil

import numpy as np
import pyarrow.parquet as pq
import pytest
from conftest import require_fixture

from opencorpus_dagster.dedup import lsh_index
from opencorpus_dagster.dedup.clusters import (
    DocInfo,
    choose_keeper,
    duplicates_of_keeper,
    form_clusters,
    promote_after_removal,
    verify_pairs,
    verify_pairs_exact,
)
from opencorpus_dagster.dedup.lsh_index import IndexConfigMismatch, LshIndex
from opencorpus_dagster.dedup.minhash import MinHashConfig, compute_signatures

CONFIG = MinHashConfig()


def book_chunks(book: str, count: int, size: int = 5000) -> list[str]:
    path = require_fixture(f"gutenberg/c-w-gutenberg/clean-texts/{book}.txt.gz")
    with gzip.open(path, "rt", encoding="utf-8") as handle:
        text = handle.read()
    return [text[10000 + i * size : 10000 + (i + 1) * size] for i in range(count)]


def drop_sentence(text: str, index: int) -> str:
    """A real near-duplicate: the same text without one sentence."""
    sentences = re.split(r"(?<=[.!?])\s+", text)
    return " ".join(sentences[:index] + sentences[index + 1 :])


@pytest.fixture(scope="module")
def corpus():
    """Two 'sources': 20 chunks of one book, and 8 chunks of another plus edited copies of
    chunks 0 and 5 of the first (a near-duplicate across sources) and an empty text."""
    first = book_chunks("1013", 20)
    second = book_chunks("36261", 8) + [drop_sentence(first[0], 3), drop_sentence(first[5], 6), ""]
    ids_first = [f"a{i:02}" for i in range(len(first))]
    ids_second = [f"b{i:02}" for i in range(len(second))]
    return {
        "a": (ids_first, compute_signatures(first, CONFIG)),
        "b": (ids_second, compute_signatures(second, CONFIG)),
    }


def test_index_survives_restart_and_finds_cross_partition_pairs(tmp_path, corpus, monkeypatch):
    index = LshIndex(tmp_path / "lsh", CONFIG)
    ids_a, sig_a = corpus["a"]
    ids_b, sig_b = corpus["b"]
    index.add_partition("books", "part-1", ids_a[:10], sig_a[:10])
    index.add_partition("books", "part/2 (late)", ids_a[10:], sig_a[10:])
    index.add_partition("other", "2024-01", ids_b, sig_b)

    reopened = LshIndex(tmp_path / "lsh", CONFIG)  # a restart: nothing but the files
    assert reopened.partitions() == [("books", "part-1"), ("books", "part/2 (late)"), ("other", "2024-01")]
    assert sorted(p.name for p in (tmp_path / "lsh" / "bands" / "books").iterdir()) == [
        "part%2F2%20%28late%29.parquet",
        "part-1.parquet",
    ]
    assert list(reopened.candidate_pairs([("other", "2024-01")])) == [("a00", "b08"), ("a05", "b09")]
    assert list(reopened.candidate_pairs([("books", "part-1")])) == [("a00", "b08"), ("a05", "b09")]
    assert list(reopened.candidate_pairs([("books", "part/2 (late)")])) == []
    assert list(reopened.all_candidate_pairs()) == [("a00", "b08"), ("a05", "b09")]
    # Several changed partitions in one query: each pair once, though both its partitions changed.
    assert list(reopened.candidate_pairs([("books", "part-1"), ("other", "2024-01"), ("gone", "p")])) == [
        ("a00", "b08"),
        ("a05", "b09"),
    ]
    assert list(reopened.candidate_pairs([("gone", "p")])) == []
    # One partition a query (a group): the same pairs, still each once.
    monkeypatch.setattr(lsh_index, "QUERY_BAND_ROWS", 1)
    every = [("books", "part-1"), ("books", "part/2 (late)"), ("other", "2024-01")]
    assert list(reopened.candidate_pairs(every)) == [("a00", "b08"), ("a05", "b09")]
    assert reopened.inconsistent_partitions() == []

    # The empty text is stored but has no band rows, so it can never be a candidate.
    bands = pq.read_table(tmp_path / "lsh" / "bands" / "other" / "2024-01.parquet")
    assert bands.num_rows == 10 * CONFIG.bands
    assert "b10" not in bands.column("doc_id").to_pylist()
    found = reopened.signatures_for(["a00", "b10", "missing"])
    assert sorted(found) == ["a00", "b10"]
    np.testing.assert_array_equal(found["a00"], sig_a[0])
    assert found["a00"].dtype == np.uint32


def test_within_partition_pairs_and_replacement(tmp_path, corpus):
    index = LshIndex(tmp_path, CONFIG)
    ids_a, sig_a = corpus["a"]
    ids_b, sig_b = corpus["b"]
    # One partition holding both an original and its edited copy: a pair within itself.
    index.add_partition("mixed", "p", [ids_a[0], ids_b[8]], np.vstack([sig_a[0], sig_b[8]]))
    assert list(index.candidate_pairs([("mixed", "p")])) == [("a00", "b08")]

    # A backfill replaces the partition: old signatures and bands are gone.
    index.add_partition("mixed", "p", ids_b[:3], sig_b[:3])
    assert sorted(index.signatures_for(["a00", "b08", "b00", "b01", "b02"])) == ["b00", "b01", "b02"]
    assert list(index.candidate_pairs([("mixed", "p")])) == []

    index.remove_partition("mixed", "p")
    assert index.partitions() == []
    assert index.signatures_for(["b00"]) == {}
    assert list(index.all_candidate_pairs()) == []
    assert list(index.candidate_pairs([("mixed", "p")])) == []


def test_half_replaced_partition_is_detected_and_repaired(tmp_path, corpus):
    index = LshIndex(tmp_path, CONFIG)
    ids_a, sig_a = corpus["a"]
    index.add_partition("books", "p", ids_a[:4], sig_a[:4])
    old_bands = tmp_path / "saved.parquet"
    shutil.copy(tmp_path / "bands" / "books" / "p.parquet", old_bands)
    index.add_partition("books", "p", ids_a[4:8], sig_a[4:8])
    # Simulate a crash after the signatures rename but before the bands rename.
    shutil.copy(old_bands, tmp_path / "bands" / "books" / "p.parquet")
    assert index.inconsistent_partitions() == [("books", "p")]
    index.add_partition("books", "p", ids_a[4:8], sig_a[4:8])
    assert index.inconsistent_partitions() == []


def test_index_refuses_other_config_and_bad_input(tmp_path, corpus):
    LshIndex(tmp_path, CONFIG)
    with pytest.raises(IndexConfigMismatch, match="legacy"):
        LshIndex(tmp_path, MinHashConfig(scheme="legacy"))
    ids_a, sig_a = corpus["a"]
    index = LshIndex(tmp_path, CONFIG)
    with pytest.raises(ValueError, match="shape"):
        index.add_partition("s", "p", ids_a[:3], sig_a[:2])
    with pytest.raises(ValueError, match="dtype"):
        index.add_partition("s", "p", ids_a[:2], sig_a[:2].astype(np.uint64))
    with pytest.raises(ValueError, match="duplicate"):
        index.add_partition("s", "p", ["x", "x"], sig_a[:2])


def test_candidates_verify_and_cluster_end_to_end(tmp_path, corpus):
    index = LshIndex(tmp_path, CONFIG)
    for source, (ids, signatures) in corpus.items():
        index.add_partition(source, "only", ids, signatures)
    pairs = list(index.all_candidate_pairs())
    lookup = index.signatures_for({doc for pair in pairs for doc in pair})
    verified = verify_pairs(pairs, lookup, CONFIG.threshold)
    assert [(a, b) for a, b, _ in verified] == [("a00", "b08"), ("a05", "b09")]
    assert [round(s, 3) for _, _, s in verified] == [0.945, 0.992]
    assert form_clusters(verified) == [["a00", "b08"], ["a05", "b09"]]


def test_exact_verification_on_real_edits():
    first = book_chunks("1013", 6)
    texts = {"a00": first[0], "b08": drop_sentence(first[0], 3), "a05": first[5], "a01": first[1], "e": ""}
    pairs = [("a00", "b08"), ("a00", "a05"), ("a01", "e")]
    verified = verify_pairs_exact(pairs, texts, 0.8, CONFIG.shingle_words)
    assert [(a, b, round(s, 3)) for a, b, s in verified] == [("a00", "b08", 0.962)]


def test_verify_pairs_threshold_and_missing_signature():
    sig = np.arange(128, dtype=np.uint32)
    near = sig.copy()
    near[:20] += 1000  # 108 / 128 = 0.84375 equal slots
    far = sig.copy()
    far[:40] += 1000  # 88 / 128 = 0.6875
    lookup = {"s": sig, "n": near, "f": far}
    assert verify_pairs([("s", "n"), ("s", "f")], lookup, 0.8) == [("s", "n", 0.84375)]
    assert verify_pairs([("s", "f")], lookup, 0.6875) == [("s", "f", 0.6875)]
    with pytest.raises(KeyError, match="'gone'"):
        verify_pairs([("s", "gone")], lookup, 0.8)


@pytest.mark.parametrize(
    "pairs",
    [
        [("c", "d", 0.9), ("a", "b", 0.9), ("b", "c", 0.85), ("x", "y", 0.8)],
        [("y", "x", 0.8), ("b", "c", 0.85), ("d", "c", 0.9), ("b", "a", 0.9)],
    ],
)
def test_form_clusters_is_order_independent(pairs):
    assert form_clusters(pairs) == [["a", "b", "c", "d"], ["x", "y"]]


MEMBERS = [
    DocInfo("d-cc-by", license_rank=2, upstream_order="2021-01-01 wiki/7", text_length=5000),
    DocInfo("d-pd-late", license_rank=0, upstream_order="2023-06-01 gutenberg/9", text_length=4000),
    DocInfo("d-pd-early-short", license_rank=0, upstream_order="2020-01-01 gutenberg/1", text_length=3000),
    DocInfo("d-pd-early-long", license_rank=0, upstream_order="2020-01-01 gutenberg/1", text_length=3500),
    DocInfo("d-pd-early-long-twin", license_rank=0, upstream_order="2020-01-01 gutenberg/1", text_length=3500),
]


@pytest.mark.parametrize(
    ("policy", "expected"),
    [
        (
            ("license_rank", "upstream_order", "text_length", "doc_id"),
            ["d-pd-early-long", "d-pd-early-long-twin", "d-pd-early-short", "d-pd-late", "d-cc-by"],
        ),
        (
            ("text_length",),
            ["d-cc-by", "d-pd-late", "d-pd-early-long", "d-pd-early-long-twin", "d-pd-early-short"],
        ),
        (
            ("upstream_order", "license_rank"),
            ["d-pd-early-long", "d-pd-early-long-twin", "d-pd-early-short", "d-cc-by", "d-pd-late"],
        ),
    ],
)
def test_choose_keeper_orders_by_policy(policy, expected):
    assert [d.doc_id for d in choose_keeper(MEMBERS, policy)] == expected
    assert [d.doc_id for d in choose_keeper(list(reversed(MEMBERS)), policy)] == expected


def test_choose_keeper_default_policy_and_unknown_criterion():
    assert choose_keeper(MEMBERS)[0].doc_id == "d-pd-early-long"
    with pytest.raises(ValueError, match="licence_rank"):
        choose_keeper(MEMBERS, ("licence_rank",))


def test_takedown_of_keeper_promotes_next_member(corpus):
    ids_a, sig_a = corpus["a"]
    ids_b, sig_b = corpus["b"]
    lookup = {"a00": sig_a[0], "b08": sig_b[8]}
    members = [
        DocInfo("a00", license_rank=1, upstream_order="books/1013", text_length=5000),
        DocInfo("b08", license_rank=0, upstream_order="other/36261", text_length=4900),
    ]
    ordered = choose_keeper(members)
    assert [d.doc_id for d in ordered] == ["b08", "a00"]
    assert duplicates_of_keeper(ordered, lookup) == [("a00", "b08", 121 / 128)]
    after = promote_after_removal(ordered, ["b08"])
    assert [d.doc_id for d in after] == ["a00"]
    assert duplicates_of_keeper(after, lookup) == []
