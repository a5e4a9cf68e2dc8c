"""Quality rules on real fixture text: for each rule one text that fails it and one that passes.

Texts: Stack Exchange post bodies (`se:<site>:<post id>`), Mozilla Readability test pages'
expected article text (`read:<page>`), 5,000-character chunks of Gutenberg clean texts
(`gut:<book>:<offset>`), a line range of the Debian Reference (`debref:<first>:<last>`), all
normalised with `normalise_text` as the documents stage does before the quality step.
"""

from __future__ import annotations

import gzip
from functools import cache

import pytest
from conftest import require_fixture
from lxml import etree, html

from opencorpus_dagster.records import Document, Drop, Outcome
from opencorpus_dagster.text import quality as quality_module
from opencorpus_dagster.text.normalise import normalise_text
from opencorpus_dagster.text.quality import (
    RULES,
    QualityConfig,
    QualityFilter,
    line_ends_sentence,
    measure_quality,
)

SE_SITES = {
    "beer": "stackexchange/beer.stackexchange.com-2017-03/Posts.xml.gz",
    "coffee": "stackexchange/coffee.stackexchange.com-2015-03/Posts.xml.gz",
}


@cache
def se_posts(site: str) -> dict[str, str]:
    """Post id -> body as plain text (HTML tags dropped), parsed without entity expansion."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    with gzip.open(require_fixture(SE_SITES[site])) as f:
        root = etree.parse(f, parser).getroot()
    return {
        row.get("Id"): html.fromstring(row.get("Body")).text_content()
        for row in root.iter("row")
        if (row.get("Body") or "").strip()
    }


@cache
def gutenberg_clean(book: str) -> str:
    path = require_fixture(f"gutenberg/c-w-gutenberg/clean-texts/{book}.txt.gz")
    return normalise_text(gzip.open(path, "rt", encoding="utf-8").read())


@cache
def debian_reference_lines() -> list[str]:
    path = require_fixture("debian/debian-reference-en/debian-reference.en.txt.gz")
    return gzip.open(path, "rt", encoding="utf-8").read().split("\n")


def load_text(ref: str) -> str:
    kind, _, rest = ref.partition(":")
    if kind == "se":
        site, post_id = rest.split(":")
        return normalise_text(se_posts(site)[post_id])
    if kind == "read":
        page = require_fixture(f"html_extraction/mozilla-readability-test-pages/pages/{rest}")
        return normalise_text(html.fromstring(gzip.open(page / "expected.html.gz").read()).text_content())
    if kind == "gut":
        book, offset = rest.split(":")
        return gutenberg_clean(book)[int(offset) : int(offset) + 5000]
    if kind == "debref":
        first, last = map(int, rest.split(":"))
        return normalise_text("\n".join(debian_reference_lines()[first : last + 1]))
    raise ValueError(ref)


def make_doc(text: str, language: str | None = "en") -> Document:
    return Document(
        doc_id="d", source="fixture", source_record_id="r", upstream_uri="u", url=None,
        title=None, text=text, language=language, license=None, license_evidence=None,
        attribution=None,
    )


CASES = [
    # (rule, text, measured value, fails the rule)
    ("gopher.word_count", "se:beer:1011", 6, True),  # "You can try on BeerRate forum."
    ("gopher.word_count", "se:beer:4749", 50, False),  # exactly the minimum
    ("gopher.mean_word_length", "read:mathjax", 2.2134, True),  # TeX tokens
    ("gopher.mean_word_length", "read:qq", 32.5909, True),  # Chinese, measured as if English
    ("gopher.mean_word_length", "se:beer:380", 4.6538, False),
    ("gopher.symbol_word_ratio", "se:beer:884", 0.1111, True),  # "And the list goes on..."
    ("gopher.symbol_word_ratio", "se:beer:380", 0.0, False),
    ("gopher.bullet_lines", "debref:14910:14925", 1.0, True),  # a bare "* item" list
    ("gopher.bullet_lines", "debref:14907:14925", 0.8889, False),  # same list with its lead-in
    ("gopher.ellipsis_lines", "se:beer:5213", 1.0, True),
    ("gopher.ellipsis_lines", "se:beer:380", 0.0, False),
    ("gopher.alpha_words", "se:beer:848", 0.7143, True),  # "below 3.2% ABV"
    ("gopher.alpha_words", "se:beer:380", 1.0, False),
    ("gopher.stop_words", "se:beer:3248", 0, True),
    ("gopher.stop_words", "se:beer:380", 6, False),
    ("gopher.dup_line_fraction", "read:003-metadata-preferred", 0.3333, True),
    ("gopher.dup_line_fraction", "se:beer:384", 0.1538, False),
    ("gopher.dup_para_fraction", "read:dev418", 0.3846, True),
    ("gopher.dup_para_fraction", "se:beer:380", 0.0, False),
    ("gopher.dup_line_char_fraction", "read:basic-tags-cleaning", 0.2591, True),
    ("gopher.dup_line_char_fraction", "se:beer:384", 0.1504, False),
    ("gopher.dup_para_char_fraction", "read:dev418", 0.5486, True),
    ("gopher.dup_para_char_fraction", "se:beer:380", 0.0, False),
    ("gopher.top_2gram", "se:beer:6435", 0.3, True),  # "... with Brie." twice
    ("gopher.top_2gram", "se:beer:4749", 0.0664, False),
    ("gopher.top_3gram", "se:beer:6429", 0.3883, True),  # "Whiskey is distilled" twice
    ("gopher.top_3gram", "se:beer:380", 0.0, False),
    ("gopher.top_4gram", "se:beer:118", 0.3167, True),  # "draught beer with a" twice
    ("gopher.top_4gram", "se:beer:4749", 0.0, False),
    ("gopher.dup_5gram", "se:beer:384", 0.3033, True),  # two near-identical statute clauses
    ("gopher.dup_5gram", "se:beer:380", 0.0, False),
    ("gopher.dup_6gram", "se:beer:384", 0.3033, True),
    ("gopher.dup_6gram", "se:beer:380", 0.0, False),
    ("gopher.dup_7gram", "se:beer:384", 0.3033, True),
    ("gopher.dup_7gram", "se:beer:380", 0.0, False),
    ("gopher.dup_8gram", "se:beer:384", 0.3033, True),
    ("gopher.dup_8gram", "se:beer:380", 0.0, False),
    ("gopher.dup_9gram", "se:beer:384", 0.3033, True),
    ("gopher.dup_9gram", "se:beer:380", 0.0, False),
    ("gopher.dup_10gram", "se:beer:384", 0.3033, True),
    ("gopher.dup_10gram", "se:beer:380", 0.0, False),
    ("c4.lorem_ipsum", "read:invalid-attributes", 1, True),
    ("c4.lorem_ipsum", "se:beer:380", 0, False),
    ("c4.javascript", "read:mozilla-2", 0.1429, True),
    ("c4.javascript", "se:beer:380", 0.0, False),
    ("c4.curly_bracket", "se:beer:5193", 1, True),  # "(2) {since i don't have 10 reputation..."
    ("c4.curly_bracket", "gut:35190:285000", 1, True),  # an editor's {emendation} in verse
    ("c4.curly_bracket", "se:beer:380", 0, False),
    ("fineweb.line_punct_ratio", "se:beer:3255", 0.0, True),  # a list of beer names
    ("fineweb.line_punct_ratio", "se:beer:380", 1.0, False),
    ("fineweb.short_line_ratio", "se:beer:1011", 1.0, True),
    ("fineweb.short_line_ratio", "se:beer:380", 0.0, False),
    ("fineweb.char_dup_ratio", "se:beer:384", 0.1535, True),
    ("fineweb.char_dup_ratio", "se:beer:380", 0.0, False),
    ("fineweb.list_ratio", "se:beer:3255", 0.6, True),
    ("fineweb.list_ratio", "se:beer:380", 0.0385, False),
]


def test_every_rule_has_a_failing_and_a_passing_case():
    assert {rule for rule, _, _, fails in CASES if fails} == set(RULES)
    assert {rule for rule, _, _, fails in CASES if not fails} == set(RULES)


@pytest.mark.parametrize(("rule", "ref", "value", "fails"), CASES, ids=lambda x: str(x))
def test_rule_on_real_text(rule, ref, value, fails):
    text = load_text(ref)
    measured = measure_quality(text, "en", QualityConfig(), [rule])
    assert measured == {rule: value}
    # Only this rule enabled: the step drops exactly when the rule fails, with its value.
    result = QualityFilter(QualityConfig(enabled_rules=[rule]))(make_doc(text))
    if fails:
        assert isinstance(result, Drop)
        assert (result.outcome, result.reason, result.value) == (Outcome.FILTERED, rule, value)
    else:
        assert isinstance(result, Document)
        assert result.metadata["quality"] == {rule: value}


def test_long_book_fails_max_word_count():
    text = gutenberg_clean("2701")  # Moby Dick
    measured = measure_quality(text, "en", QualityConfig(), ["gopher.word_count"])
    assert measured == {"gopher.word_count": 212_100}
    assert measured["gopher.word_count"] > QualityConfig().gopher_max_words


def test_kept_doc_records_every_rule_value():
    doc = QualityFilter()(make_doc(load_text("se:beer:380")))
    assert isinstance(doc, Document)
    assert list(doc.metadata["quality"]) == list(RULES)
    assert doc.metadata["quality"]["gopher.word_count"] == 52
    assert doc.metadata["quality"]["gopher.stop_words"] == 6


def test_drop_names_first_failing_rule_and_the_others():
    result = QualityFilter()(make_doc(load_text("se:beer:848")))
    assert isinstance(result, Drop)
    assert (result.reason, result.value) == ("gopher.word_count", 6)
    assert result.detail == (
        "required >= 50; also failing: gopher.alpha_words=0.7143 (>= 0.8); "
        "gopher.stop_words=0 (>= 2); fineweb.line_punct_ratio=0.0 (> 0.12)"
    )


@pytest.mark.parametrize(
    "config",
    [
        QualityConfig(disabled_rules=["c4.curly_bracket"]),
        QualityConfig(c4_max_curly_brackets=None),
    ],
    ids=["disabled_rules", "null_threshold"],
)
def test_disabling_a_rule_keeps_the_doc_and_stops_measuring_it(config):
    doc = QualityFilter(config)(make_doc(load_text("se:beer:5193")))
    assert isinstance(doc, Document)
    assert "c4.curly_bracket" not in doc.metadata["quality"]


def test_unknown_rule_name_is_a_config_error():
    with pytest.raises(ValueError, match="unknown rule"):
        QualityConfig(disabled_rules=["gopher.word_cnt"])
    with pytest.raises(ValueError, match="Extra inputs"):
        QualityConfig(gopher_min_word=10)


def test_no_space_language_is_measured_in_characters():
    text = load_text("read:qq")  # a Chinese article: whitespace tokens are not words
    as_english = QualityFilter()(make_doc(text, language="en"))
    assert (as_english.reason, as_english.value) == ("gopher.word_count", 22)
    as_chinese = QualityFilter()(make_doc(text, language="zh"))
    # 560 characters are enough words; the duplicated "转播到腾讯微博" line is what drops it.
    assert (as_chinese.reason, as_chinese.value) == ("fineweb.char_dup_ratio", 0.0243)
    quality = measure_quality(text, "zh", QualityConfig())
    assert quality["gopher.word_count"] == 560
    assert "gopher.mean_word_length" not in quality  # declared word-only: 1 by construction
    assert "fineweb.list_ratio" not in quality
    assert quality["fineweb.line_punct_ratio"] == 0.5882  # lines ending in 。 count


def test_stop_words_only_for_english():
    text = load_text("se:beer:380")
    assert "gopher.stop_words" in measure_quality(text, "en", QualityConfig())
    assert "gopher.stop_words" not in measure_quality(text, "de", QualityConfig())
    assert "gopher.stop_words" not in measure_quality(text, None, QualityConfig())


def plain_line_and_token_measures(text: str, language: str | None) -> dict[str, float | int]:
    """The measures the quality step computes with map/compress, written as plain loops."""
    import re

    from opencorpus_dagster.text.segmentation import segment

    config = QualityConfig()
    tokens = segment(text, language, config.no_space_languages).tokens
    words = [w for w in (t.strip(quality_module._EDGE_PUNCT) for t in tokens) if w]
    lines = re.split(r"\n+", text)
    nonempty = [line for line in text.split("\n") if line.strip()]
    seen: set[str] = set()
    dup_lines = dup_chars = 0
    for line in lines:
        if line in seen:
            dup_lines, dup_chars = dup_lines + 1, dup_chars + len(line)
        seen.add(line)

    def ratio(a: float, b: float) -> float:
        return round(a / b, 4) if b else 0.0

    stop = set(config.gopher_stop_words)
    measures = {
        "gopher.word_count": len(words),
        "gopher.bullet_lines": ratio(
            sum(s.lstrip().startswith(quality_module._BULLETS) for s in nonempty), len(nonempty)
        ),
        "gopher.ellipsis_lines": ratio(sum(s.rstrip().endswith(("...", "…")) for s in nonempty), len(nonempty)),
        "gopher.alpha_words": ratio(sum(1 for t in tokens if re.search(r"[^\W\d_]", t)), len(tokens)),
        "gopher.dup_line_fraction": ratio(dup_lines, len(lines)),
        "gopher.dup_line_char_fraction": ratio(dup_chars, len(text)),
        "c4.javascript": ratio(sum("javascript" in s.lower() for s in nonempty), len(nonempty)),
        "fineweb.short_line_ratio": ratio(
            sum(len(s.strip()) <= config.fineweb_short_line_length for s in nonempty), len(nonempty)
        ),
    }
    if language == "en":
        measures["gopher.stop_words"] = sum(w.lower() in stop for w in words)
    return measures


def generated_texts(count: int) -> list[str]:
    """Lines of words, numbers, underscores, superscripts, edge punctuation, bullets, ellipses
    and CJK, with runs of newlines and blank lines at either end."""
    import random

    rng = random.Random(13)
    pieces = ["the", "The", "and", "of", "JavaScript", "well-known", "don't", "42", "3.5", "_",
              "__init__", "²", "½", "Ⅻ", "…", "...", "—", "«mot»", "(word)", "• item", "- item",
              "中文", "一二三", "Ünïcödé", "Привет,", "#", "", "x" * 40]
    texts = []
    for _ in range(count):
        lines = [" ".join(rng.choice(pieces) for _ in range(rng.randint(0, 8)))
                 for _ in range(rng.randint(1, 12))]
        texts.append("\n".join(line + "\n" * rng.randint(0, 2) for line in lines).lstrip(" ")
                     if rng.random() < 0.5 else "\n" * rng.randint(0, 2) + "\n".join(lines))
    return texts


def test_line_and_token_measures_match_their_plain_loops():
    texts = generated_texts(3000)
    texts += [load_text("gut:2701:20000"), load_text("gut:1013:50000")]
    for text in texts:
        for language in ("en", None, "zh"):
            plain = plain_line_and_token_measures(text, language)
            measured = measure_quality(text, language, QualityConfig(), rules=list(plain))
            assert {rule: measured.get(rule) for rule in plain} == plain, (text, language)


def test_line_ends_are_counted_as_line_ends_sentence_decides_them():
    """The last-character shortcut of the line-end count gives the pattern's answer: on lines
    ending in every ASCII character, terminals and closers of other scripts, runs of closers
    and trailing blanks, with and without a language's extra terminal (Greek `;`)."""
    import random

    rng = random.Random(7)
    ends = [chr(i) for i in range(33, 127)] + list("。։।؟!?…»«”“’‘」』)]}\u037e;")
    pieces = ["word", "mot", "слово", "词", "", " ", "\t", "\u00a0"] + ends
    lines = ["".join(rng.choice(pieces) for _ in range(rng.randint(1, 8))) for _ in range(20_000)]
    lines += [line for text in (load_text("gut:2701:20000"), load_text("gut:1013:50000")) for line in text.split("\n")]
    lines = [line for line in lines if line.strip()]
    for language in ("en", "el", None):
        extra = QualityConfig().extra_sentence_terminals.get(language or "", "")
        expected = [line_ends_sentence(line, language) for line in lines]
        assert len(lines) // 20 < sum(expected) < len(lines) - len(lines) // 20
        assert [quality_module._count_line_ends([line], extra) for line in lines] == expected
        assert quality_module._count_line_ends(lines, extra) == sum(expected)


def test_small_groups_are_grouped_as_numpy_groups_them():
    import numpy as np

    rng = np.random.default_rng(3)
    for _ in range(500):
        size = int(rng.integers(1, 300))
        values = rng.integers(0, max(2, size // 3), size).astype(np.uint64) * np.uint64(0x9E3779B97F4A7C15)
        positions = np.sort(rng.choice(10_000, size, replace=False))
        small, plain = quality_module._group_small(values, positions), quality_module._group(values, positions)
        assert [a.tolist() for a in small] == [a.tolist() for a in plain]


def plain_ngram_measures(text: str, language: str | None) -> dict[str, float]:
    """The n-gram rules written with tuples and dicts: the most frequent n-gram's characters
    (ties: the n-gram that occurs first; 0 without repetition), and the characters of the words
    covered by every occurrence of an n-gram after its first."""
    from collections import Counter

    from opencorpus_dagster.text.segmentation import segment

    config = QualityConfig()
    segmented = segment(text, language, config.no_space_languages)
    words = [w for w in (t.strip(quality_module._EDGE_PUNCT) for t in segmented.tokens) if w]
    factor, gap = (config.character_ngram_factor, 0) if segmented.unit == "character" else (1, 1)
    measures = {}
    for n in range(2, 11):
        size = factor * n
        grams = [tuple(words[i : i + size]) for i in range(len(words) - size + 1)]
        counts = Counter(grams)
        if n <= 4:
            top = max(counts.values(), default=0)
            chars = 0
            if top >= 2:
                gram = next(g for g in grams if counts[g] == top)
                chars = (sum(map(len, gram)) + gap * (size - 1)) * top
            measures[f"gopher.top_{n}gram"] = round(chars / len(text), 4) if text else 0.0
        else:
            seen, covered = set(), [False] * len(words)
            for i, gram in enumerate(grams):
                if gram in seen:
                    covered[i : i + size] = [True] * size
                seen.add(gram)
            chars = sum(len(w) for w, c in zip(words, covered) if c)
            measures[f"gopher.dup_{n}gram"] = round(chars / len(text), 4) if text else 0.0
    return measures


def test_ngram_measures_match_their_plain_loops():
    """On texts drawn from a small vocabulary (every size repeats, with ties), on characters
    (zh) as on words, and on book chapters."""
    import random

    rng = random.Random(11)
    vocabulary = ["the", "cat", "sat", "on", "mat", "a", "dog", "ran", "to", "it", "中", "文", "字", "是"]
    texts = []
    for _ in range(600):
        words = rng.sample(vocabulary, rng.choice([2, 3, 4, 6, len(vocabulary)]))
        texts.append(" ".join(rng.choice(words) for _ in range(rng.randint(0, 400))))
    texts += [load_text("gut:2701:20000"), load_text("gut:1013:50000")]
    repeating = 0
    for text in texts:
        for language in ("en", "zh"):
            plain = plain_ngram_measures(text, language)
            measured = measure_quality(text, language, QualityConfig(), rules=list(plain))
            assert measured == plain, (text[:200], language)
            repeating += plain["gopher.dup_10gram"] > 0
    assert repeating > 100


