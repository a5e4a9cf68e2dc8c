"""Quality rules on real text in many scripts: each row a fixture text, a rule, its measured value.

Texts: articles of the multilingual fixture wikis (`wiki:<lang>:<page id>`, read by the mediawiki
connector, wikitext to text, normalised as the documents stage does; `wiki:<lang>:<id>:<a>:<b>`
is non-empty lines a..b of it), and Mozilla Readability test pages (`read:<page>`, as in
test_quality.py). The legacy column is FineWeb's own line-end test (`. ' " ! ?`), which these
rules replaced: Armenian (`։`) and CJK (`。`) lines do not end in any of those.
"""

from __future__ import annotations

import pytest
from test_quality import load_text as load_other_text
from test_quality import make_doc

from opencorpus_dagster.connectors.mediawiki import MediaWikiConnector
from opencorpus_dagster.records import Document, Drop
from opencorpus_dagster.text.filters_config import FiltersConfig, with_kind_defaults
from opencorpus_dagster.text.normalise import normalise_text
from opencorpus_dagster.text.quality import (
    QualityConfig,
    QualityFilter,
    line_ends_sentence,
    measure_quality,
)
from opencorpus_dagster.text.wikitext import wikitext_to_text
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

WIKI_DUMPS = {
    "bg": "https://dumps.wikimedia.org/bgwiki/latest/bgwiki-latest-pages-articles.xml.bz2",
    **{
        lang: f"https://dumps.wikimedia.org/{lang}wiki/20230501/{lang}wiki-20230501-pages-articles.xml.bz2"
        for lang in ("hy", "mr", "uk", "vi")
    },
}


@pytest.fixture(scope="module")
def fetcher(tmp_path_factory, fixture_mirror) -> Fetcher:
    return Fetcher(tmp_path_factory.mktemp("cache"), [Mirror(base=str(fixture_mirror))])


_PAGES: dict[str, dict[str, str]] = {}


def wiki_pages(lang: str, fetcher: Fetcher) -> dict[str, str]:
    """Page id -> text of one fixture wiki, read by the mediawiki connector (cached per module run)."""
    if lang not in _PAGES:
        connector = MediaWikiConnector(MediaWikiConnector.Options(dumps=[WIKI_DUMPS[lang]]))
        (unit,) = connector.units()
        _PAGES[lang] = {
            record.source_record_id: normalise_text(wikitext_to_text(record.payload))
            for record in connector.read(unit, fetcher)
            if hasattr(record, "payload")
        }
    return _PAGES[lang]


def load_text(ref: str, fetcher: Fetcher) -> str:
    kind, _, rest = ref.partition(":")
    if kind != "wiki":
        return load_other_text(ref)
    lang, page, *span = rest.split(":")
    text = wiki_pages(lang, fetcher)[page]
    if span:
        lines = [line for line in text.split("\n") if line.strip()]
        text = "\n".join(lines[int(span[0]) : int(span[1])])
    return text


def fineweb_line_ends(text: str) -> float:
    """FineWeb's own measure: the share of non-empty lines ending in . ' " ! ?"""
    lines = [line for line in text.split("\n") if line.strip()]
    return round(sum(line.rstrip().endswith((".", "'", '"', "!", "?")) for line in lines) / len(lines), 4)


SCRIPT_CASES = [
    # (script, text, language, rule, measured value, fails the rule)
    # Armenian: sentences end in ։ (U+0589, Sentence_Terminal); FineWeb's list saw 0.0038.
    ("Armenian", "wiki:hy:800", "hy", "fineweb.line_punct_ratio", 0.6548, False),
    ("Armenian", "wiki:hy:1055", "hy", "gopher.word_count", 3911, False),
    ("Armenian", "wiki:hy:1027:10:13", "hy", "fineweb.line_punct_ratio", 0.0, True),  # "See also" list
    # Devanagari (Marathi writes "." and "।")
    ("Devanagari", "wiki:mr:816", "mr", "fineweb.line_punct_ratio", 0.57, False),
    ("Devanagari", "wiki:mr:829", "mr", "fineweb.line_punct_ratio", 0.0076, True),  # list of poem forms
    ("Devanagari", "wiki:mr:2", "mr", "gopher.word_count", 18, True),  # the main page: one sentence
    # Cyrillic
    ("Cyrillic", "wiki:uk:584", "uk", "fineweb.line_punct_ratio", 0.6316, False),
    ("Cyrillic", "wiki:uk:612", "uk", "gopher.alpha_words", 0.7959, True),  # a year: dates, numbers
    ("Cyrillic", "wiki:bg:558", "bg", "gopher.dup_5gram", 0.0072, False),
    ("Cyrillic", "wiki:uk:600", "uk", "c4.curly_bracket", 27, True),  # TeX: \begin{vmatrix}
    # Latin with diacritics
    ("Vietnamese", "wiki:vi:13", "vi", "fineweb.line_punct_ratio", 0.6562, False),
    ("Vietnamese", "wiki:vi:13", "vi", "gopher.mean_word_length", 3.4214, False),
    # Han: words are characters; n-gram rules on 2n characters
    ("Han", "read:gmw", "zh", "fineweb.line_punct_ratio", 0.8158, False),
    ("Han", "read:gmw", "zh", "gopher.word_count", 2889, False),
    ("Han", "read:gmw", "zh", "gopher.dup_5gram", 0.0053, False),
    ("Han", "read:qq", "zh", "fineweb.char_dup_ratio", 0.0243, True),  # "转播到腾讯微博" twice
    # Kana + Han
    ("Japanese", "read:hukumusume", "ja", "gopher.word_count", 767, False),
    ("Japanese", "read:hukumusume", "ja", "fineweb.line_punct_ratio", 0.0769, True),  # navigation lines
]


@pytest.mark.parametrize(("script", "ref", "language", "rule", "value", "fails"), SCRIPT_CASES, ids=str)
def test_rule_on_real_text_in_each_script(fetcher, script, ref, language, rule, value, fails):
    text = load_text(ref, fetcher)
    assert measure_quality(text, language, QualityConfig(), [rule]) == {rule: value}
    result = QualityFilter(QualityConfig(enabled_rules=[rule]))(make_doc(text, language=language))
    if fails:
        assert isinstance(result, Drop) and (result.reason, result.value) == (rule, value)
    else:
        assert isinstance(result, Document) and result.metadata["quality"] == {rule: value}


@pytest.mark.parametrize(
    ("ref", "language", "legacy", "now"),
    [
        ("wiki:hy:800", "hy", 0.0038, 0.6548),
        ("wiki:hy:1033", "hy", 0.0, 0.5846),
        ("read:gmw", "zh", 0.0, 0.8158),
        ("wiki:vi:13", "vi", 0.6562, 0.6562),  # Latin script: the same as FineWeb's
    ],
)
def test_sentence_terminals_of_every_script_replace_fineweb_list(fetcher, ref, language, legacy, now):
    text = load_text(ref, fetcher)
    assert fineweb_line_ends(text) == legacy
    assert measure_quality(text, language, QualityConfig(), ["fineweb.line_punct_ratio"]) == {
        "fineweb.line_punct_ratio": now
    }


@pytest.mark.parametrize(
    ("line", "language", "ends"),
    [
        ("Հայաստանը լեռնային երկիր է։", "hy", True),  # ARMENIAN FULL STOP
        ("कविता हा साहित्यातील एक महत्त्वाचा प्रकार आहे।", "mr", True),  # DEVANAGARI DANDA
        ("这款产品具有极其重要的意义。", "zh", True),
        ("「ウゥー、ワン！！」", "ja", True),  # ！ then a closing bracket
        ("كيف حالك؟", "ar", True),
        ("He said \"no.\"", "en", True),
        ("Πού είναι;", "el", True),  # Greek question mark, NFC-normalised to ";"
        ("Πού είναι;", "en", False),  # ";" ends a clause elsewhere
        ("Տես նաև", "hy", False),
        ("1 м = \\frac{c}{299792458}", "uk", False),
    ],
)
def test_line_ends_sentence(line, language, ends):
    assert line_ends_sentence(line, language) is ends


def test_no_space_text_of_unknown_language_is_measured_in_characters():
    text = load_other_text("read:gmw")
    assert measure_quality(text, None, QualityConfig(), ["gopher.word_count"]) == {"gopher.word_count": 2889}
    doc = QualityFilter()(make_doc(text, language=None))
    assert isinstance(doc, Document) and doc.metadata["segmentation"] == "character"
    assert "gopher.mean_word_length" not in doc.metadata["quality"]  # 1 by construction


ENCYCLOPEDIA = QualityConfig.model_validate(with_kind_defaults({}, "encyclopedia")["quality"])


@pytest.mark.parametrize(
    ("ref", "language", "web", "encyclopedia"),
    [
        # TeX mathematics: C4's curly-bracket rule drops it as a web page, not as an article.
        ("wiki:uk:600", "uk", ("c4.curly_bracket", 27), None),
        ("wiki:uk:591", "uk", ("c4.curly_bracket", 14), None),
        # Junk stays junk in an encyclopedia too.
        ("wiki:mr:829", "mr", ("fineweb.line_punct_ratio", 0.0076), ("fineweb.line_punct_ratio", 0.0076)),
        ("wiki:mr:2", "mr", ("gopher.word_count", 18), ("gopher.word_count", 18)),
        ("read:mathjax", "en", ("gopher.mean_word_length", 2.2134), ("gopher.mean_word_length", 2.2134)),
    ],
)
def test_encyclopedia_defaults_keep_mathematics_and_drop_junk(fetcher, ref, language, web, encyclopedia):
    text = load_text(ref, fetcher)
    for config, expected in ((QualityConfig(), web), (ENCYCLOPEDIA, encyclopedia)):
        result = QualityFilter(config)(make_doc(text, language=language))
        if expected is None:
            assert isinstance(result, Document)
        else:
            assert isinstance(result, Drop) and (result.reason, result.value) == expected


def test_filters_config_of_a_kind_is_overridden_field_by_field():
    data = with_kind_defaults({"quality": {"c4_max_curly_brackets": 3}}, "encyclopedia")
    assert FiltersConfig.model_validate(data).quality.c4_max_curly_brackets == 3
    assert with_kind_defaults({}, "web") == {}
