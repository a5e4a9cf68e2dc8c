"""MinHash signatures: identical to datasketch, and what they say about real near-duplicates."""

from __future__ import annotations

import csv
import gzip
import itertools
import re

import numpy as np
import pytest
from conftest import require_fixture
from datasketch import LeanMinHash, MinHash, MinHashLSH
from datasketch.lsh import _optimal_param
from lxml import etree
from pydantic import ValidationError

from opencorpus_dagster.dedup import minhash
from opencorpus_dagster.dedup.clusters import (
    estimated_jaccard,
    form_clusters,
    shingle_sets,
    verify_pairs,
)
from opencorpus_dagster.dedup.minhash import (
    EMPTY_SLOT,
    MinHashConfig,
    compute_signatures,
    is_empty_signature,
    optimal_lsh_params,
    shingle_hash,
    shingles,
    to_lean_minhash,
)

GUTENBERG = "gutenberg/c-w-gutenberg"
SIMPLEWIKI = "mediawiki/history-samples-wikimedia-refinery/MediawikiDumperOutputTest.Simplewiki.Sample.xml"
KOREAN_PAIRS = "dedup/songys-korean-question-pairs/kor_pair_train.csv"


def read_gz(path) -> str:
    with gzip.open(path, "rt", encoding="utf-8", errors="replace") as handle:
        return handle.read()


def gutenberg(kind: str, book: str) -> str:
    return read_gz(require_fixture(f"{GUTENBERG}/{kind}/{book}.txt.gz"))


def crude_cut(raw: str) -> str:
    """Everything between the '*** START OF' and '*** END OF' lines (a crude boilerplate strip)."""
    start = re.search(r"\*\*\* ?START OF.*?\*\*\*", raw)
    end = re.search(r"\*\*\* ?END OF", raw)
    return raw[start.end() if start else 0 : end.start() if end else len(raw)]


def simplewiki_revisions() -> list[tuple[str, str, str]]:
    """(page title, revision id, text) of every revision in the sample, in file order."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    root = etree.parse(str(require_fixture(SIMPLEWIKI)), parser).getroot()
    ns = {"m": root.nsmap[None]}
    revisions = []
    for page in root.findall("m:page", ns):
        title = page.findtext("m:title", namespaces=ns)
        for revision in page.findall("m:revision", ns):
            text = revision.find("m:text", ns)
            revisions.append(
                (title, revision.findtext("m:id", namespaces=ns), (text.text or "") if text is not None else "")
            )
    return revisions


@pytest.fixture(scope="module")
def sample_texts() -> list[str]:
    """Real texts of every shape: book chunks, wikitext, Korean, and the edge cases."""
    book = gutenberg("clean-texts", "33956")
    chunks = [book[i : i + 5000] for i in range(0, 40000, 5000)]
    wiki = [text for _, _, text in simplewiki_revisions()]
    with open(require_fixture(KOREAN_PAIRS), encoding="utf-8-sig") as handle:
        korean = [row["question1"] for row in itertools.islice(csv.DictReader(handle), 20)]
    edge = ["", "   ", "...", "one", "Two words", "a b c d", "‘Curly’ — quotes… «guillemets» naïve café", "日本語のテキスト です", "x_y 3.14 ǅemal İstanbul"]
    return chunks + wiki + korean + edge


@pytest.mark.parametrize("scheme", ["affine32", "legacy"])
def test_signatures_identical_to_datasketch(sample_texts, scheme):
    config = MinHashConfig(scheme=scheme)
    signatures = compute_signatures(sample_texts, config)
    assert signatures.dtype == (np.uint32 if scheme == "affine32" else np.uint64)
    assert signatures.shape == (len(sample_texts), 128)
    for text, row in zip(sample_texts, signatures):
        reference = MinHash(config.num_perm, config.seed, hashfunc=shingle_hash, scheme=scheme)
        reference.update_batch(shingles(text, config.shingle_words))
        np.testing.assert_array_equal(row, reference.hashvalues, err_msg=repr(text[:60]))


def test_default_scheme_is_datasketch_default(sample_texts):
    # datasketch 2.0's MinHash without a scheme argument is "affine32": the brief's literal test.
    config = MinHashConfig()
    reference = MinHash(config.num_perm, config.seed, hashfunc=shingle_hash)
    reference.update_batch(shingles(sample_texts[0], 5))
    np.testing.assert_array_equal(compute_signatures(sample_texts[:1], config)[0], reference.hashvalues)


def test_chunking_does_not_change_signatures(sample_texts, monkeypatch):
    config = MinHashConfig()
    whole = compute_signatures(sample_texts, config)
    monkeypatch.setattr(minhash, "_TEXT_PIECE_CHARS", 3000)
    monkeypatch.setattr(minhash, "_SHINGLE_CHUNK", 100)
    np.testing.assert_array_equal(compute_signatures(sample_texts, config), whole)
    one_by_one = np.vstack([compute_signatures([text], config) for text in sample_texts])
    np.testing.assert_array_equal(one_by_one, whole)


def test_shingle_sets_are_each_texts_own_shingle_hashes(sample_texts, monkeypatch):
    """The sets dedup verifies pairs with, made a piece of texts at a time, are each text's own
    shingles hashed one by one (the definition datasketch's MinHash is fed), in any piece size."""
    expected = [np.unique(np.array([shingle_hash(s) for s in shingles(text, 5)], dtype=np.uint32)) for text in sample_texts]
    assert sum(len(e) for e in expected) > 5_000
    for piece_chars in (1 << 18, 3000, 1):
        monkeypatch.setattr(minhash, "_TEXT_PIECE_CHARS", piece_chars)
        got = shingle_sets(sample_texts, 5)
        assert len(got) == len(sample_texts)
        for text, want, row in zip(sample_texts, expected, got, strict=True):
            assert row.dtype == np.uint32
            np.testing.assert_array_equal(row, want, err_msg=repr(text[:60]))


@pytest.mark.parametrize(
    ("text", "expected"),
    [
        ("", []),
        ("  ...  ", []),
        ("Hello", [("hello",)]),
        ("The cat sat.", [("the", "cat", "sat")]),
        ("a b c d e f", [("a", "b", "c", "d", "e"), ("b", "c", "d", "e", "f")]),
        ("Don’t STOP—now!", [("don", "t", "stop", "now")]),
    ],
)
def test_shingles(text, expected):
    assert shingles(text, 5) == expected


def test_empty_text_gets_sentinel_that_never_verifies():
    config = MinHashConfig()
    signatures = compute_signatures(["", "?!", "real words here"], config)
    assert (signatures[:2] == EMPTY_SLOT).all()
    assert is_empty_signature(signatures).tolist() == [True, True, False]
    lookup = {"a": signatures[0], "b": signatures[1], "c": signatures[2]}
    assert verify_pairs([("a", "b"), ("a", "c")], lookup, 0.8) == []


def test_config_defaults_and_validation():
    config = MinHashConfig()
    assert (config.shingle_words, config.num_perm, config.seed, config.threshold) == (5, 128, 1, 0.8)
    assert (config.bands, config.rows) == (13, 7)
    assert minhash.candidate_probability(0.8, 13, 7) == pytest.approx(0.9531, abs=1e-4)
    assert (MinHashConfig(bands=9, rows=13).bands, MinHashConfig(threshold=0.9).rows) == (9, 12)
    with pytest.raises(ValidationError, match="extra_forbidden"):
        MinHashConfig(shingle_size=5)
    with pytest.raises(ValidationError, match="exceeds num_perm"):
        MinHashConfig(bands=20, rows=7)
    with pytest.raises(ValidationError, match="both"):
        MinHashConfig(bands=9)


@pytest.mark.parametrize("threshold", [0.7, 0.8, 0.9])
def test_equal_weight_banding_matches_datasketch(threshold):
    assert optimal_lsh_params(threshold, 128) == _optimal_param(threshold, 128, 0.5, 0.5)


def test_lean_minhash_works_in_datasketch_lsh():
    config = MinHashConfig()
    book = gutenberg("clean-texts", "10089")
    sentences = re.split(r"(?<=[.!?])\s+", book[20000:26000])
    original = " ".join(sentences)
    # A real edit: drop one sentence (488 characters) from the middle.
    edited = " ".join(sentences[:12] + sentences[13:])
    exact = len(set(shingles(original, 5)) & set(shingles(edited, 5))) / len(
        set(shingles(original, 5)) | set(shingles(edited, 5))
    )
    assert exact == pytest.approx(0.9103, abs=1e-4)
    others = [book[i : i + 6000] for i in (40000, 50000, 60000)]
    signatures = compute_signatures([original, edited, *others], config)
    lsh = MinHashLSH(num_perm=config.num_perm, params=(config.bands, config.rows))
    for key, row in zip(["original", "edited", "o1", "o2", "o3"], signatures):
        lean = to_lean_minhash(row, config)
        assert isinstance(lean, LeanMinHash)
        lsh.insert(key, lean)
    assert sorted(lsh.query(to_lean_minhash(signatures[0], config))) == ["edited", "original"]
    assert lsh.query(to_lean_minhash(signatures[3], config)) == ["o2"]
    assert estimated_jaccard(signatures[0], signatures[1]) == 113 / 128  # 0.883 vs exact 0.910


# Measured (estimated Jaccard, 128 perms): whole raw file vs clean text, crude cut vs clean text.
# The Gutenberg header/footer is ~20 KB, so short books fall under 0.8 until it is stripped.
GUTENBERG_BOOKS = [
    ("33956", 44922, 0.664, 0.984),
    ("10026", 76463, 0.766, 0.984),
    ("10089", 90235, 0.805, 1.0),
    ("10028", 250121, 0.906, 1.0),
    ("2701", 1215768, 0.984, 1.0),
]


@pytest.mark.parametrize(("book", "clean_chars", "raw_vs_clean", "cut_vs_clean"), GUTENBERG_BOOKS)
def test_gutenberg_raw_and_clean_are_near_duplicates(book, clean_chars, raw_vs_clean, cut_vs_clean):
    config = MinHashConfig()
    raw, clean = gutenberg("raw-texts", book), gutenberg("clean-texts", book)
    assert len(clean) == clean_chars
    signatures = compute_signatures([raw, clean, crude_cut(raw)], config)
    assert estimated_jaccard(signatures[0], signatures[1]) == pytest.approx(raw_vs_clean, abs=0.01)
    assert estimated_jaccard(signatures[2], signatures[1]) == pytest.approx(cut_vs_clean, abs=0.01)
    lookup = {"raw": signatures[0], "clean": signatures[1], "cut": signatures[2]}
    clusters = form_clusters(verify_pairs([("clean", "cut"), ("clean", "raw")], lookup, config.threshold))
    expected = ["clean", "cut", "raw"] if raw_vs_clean >= config.threshold else ["clean", "cut"]
    assert clusters == [expected]


def test_distinct_gutenberg_books_do_not_cluster():
    config = MinHashConfig()
    books = ["10026", "10028", "10089", "1013", "33956", "36261"]
    signatures = compute_signatures([gutenberg("clean-texts", b) for b in books], config)
    lookup = dict(zip(books, signatures))
    pairs = list(itertools.combinations(books, 2))
    assert max(estimated_jaccard(lookup[a], lookup[b]) for a, b in pairs) < 0.02
    assert verify_pairs(pairs, lookup, 0.5) == []


def test_wiki_revisions_cluster_within_their_page():
    config = MinHashConfig()
    revisions = simplewiki_revisions()
    assert len(revisions) == 33
    signatures = compute_signatures([text for _, _, text in revisions], config)
    lookup = {rev_id: row for (_, rev_id, _), row in zip(revisions, signatures)}
    page_of = {rev_id: title for title, rev_id, _ in revisions}
    pairs = [(a[1], b[1]) for a, b in itertools.combinations(revisions, 2)]
    clusters = form_clusters(verify_pairs(pairs, lookup, config.threshold))
    for cluster in clusters:
        assert len({page_of[rev_id] for rev_id in cluster}) == 1, cluster
    # The talk page's substantive history (6 revisions, 78-198 words) splits in two where a
    # large section was added (J 0.55 across the split): consecutive edits stay together.
    assert ["6187125", "6187126", "6187130"] in clusters
    assert ["7374525", "8458564", "8750749"] in clusters
    similarity = {(a, b): round(estimated_jaccard(lookup[a], lookup[b]), 2) for a, b in [
        ("6187125", "6187126"), ("6187126", "6187130"), ("6187130", "7374525"),
        ("7374525", "8458564"), ("8458564", "8750749")]}
    assert similarity == {
        ("6187125", "6187126"): 0.89, ("6187126", "6187130"): 0.94, ("6187130", "7374525"): 0.55,
        ("7374525", "8458564"): 0.81, ("8458564", "8750749"): 0.88,
    }
    # Reverted vandalism: the restored '{{babel|en}}' revisions are one cluster of 6.
    assert ["1128091", "1552889", "266092", "360840", "558766", "857621"] in clusters
    assert len(clusters) == 5


def test_korean_question_pairs_minhash_sees_surface_not_meaning():
    """Short questions (median 4 words) are one whole-text shingle each at n=5, so MinHash
    finds textual copies, not paraphrases: the paraphrase pairs (is_duplicate=1) score ~0."""
    with open(require_fixture(KOREAN_PAIRS), encoding="utf-8-sig") as handle:
        rows = list(csv.DictReader(handle))
    config = MinHashConfig()
    left = compute_signatures([r["question1"] for r in rows], config)
    right = compute_signatures([r["question2"] for r in rows], config)
    similarity = np.mean(left == right, axis=1)
    paraphrase = np.array([r["is_duplicate"] == "1" for r in rows])
    same_words = np.array([minhash.words(r["question1"]) == minhash.words(r["question2"]) for r in rows])
    assert (len(rows), int(paraphrase.sum())) == (6888, 2138)
    assert int((similarity[paraphrase] >= 0.8).sum()) == 2
    assert int((similarity[~paraphrase] >= 0.8).sum()) == 937
    # Every pair with the same words scores 1.0 (this dataset labels 935 such pairs "0").
    assert (similarity[same_words] == 1.0).all()
    assert int(same_words.sum()) == int((similarity == 1.0).sum())
