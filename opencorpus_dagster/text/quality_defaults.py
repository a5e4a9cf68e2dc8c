"""Quality-rule defaults per kind of source (book, encyclopedia, forum, web, ...), with why.

The published thresholds (`QualityConfig`'s defaults, each citing its paper) were tuned on web
pages: Gopher's MassiveText web documents (Rae et al. 2021, A.1.1), C4's Common Crawl pages
(Raffel et al. 2020, 2.2), FineWeb's Common Crawl text extracted by trafilatura (Penedo et al.
2024, 3.3). On other kinds of text some of them measure the *form* of the kind rather than its
quality: a book is hard-wrapped at ~70 columns, a play repeats its speakers' names, an
encyclopedia writes its mathematics in TeX with `{}`. For those kinds the rule is switched off
(its threshold set to `null`); every other rule keeps its published value.

A catalog entry names its kind (`content_kind: book`) or inherits its connector's
(`Connector.content_kind`: gutenberg -> book, mediawiki -> encyclopedia, stackexchange -> forum,
warc -> web; a connector without one -> general). What the entry sets under `filters.quality`
wins over its kind's default, field by field. A new kind is one entry of `KIND_DEFAULTS`.

Changing a default here changes the resolved filters, hence every affected source's fingerprint:
its partitions are processed again on the next build.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from opencorpus_dagster.text.quality import _BOUNDS, QualityConfig


@dataclass(frozen=True)
class KindDefault:
    """One field of `QualityConfig` that a kind sets differently from the published value."""

    field: str
    value: Any
    why: str


_HARD_WRAPPED = KindDefault(
    "fineweb_min_line_punct_ratio",
    None,
    "lines are hard-wrapped (~70 columns): most lines end mid-sentence, whatever the quality",
)
_VERSE_AND_PLAYS = KindDefault(
    "fineweb_max_short_line_ratio",
    None,
    "verse and plays are short lines by form (speaker names, stage directions, metre)",
)
_SPEAKERS = KindDefault(
    "fineweb_max_char_dup_ratio",
    None,
    "a play repeats its speakers' names on lines of their own, verse its refrains, a reference "
    "book its headings; FineWeb's 1% targets web boilerplate repeated on a page (Gopher's "
    "duplicate-line rules, at 20-30%, still apply)",
)
_BOOK_LENGTH = KindDefault(
    "gopher_max_words",
    None,
    "a novel runs to 100,000-500,000 words; Gopher's upper bound is for web pages",
)
_BRACES_IN_EDITIONS = KindDefault(
    "c4_max_curly_brackets",
    None,
    "critical editions mark editorial notes with {}; C4's rule targets JavaScript/CSS in web pages",
)

KIND_DEFAULTS: dict[str, tuple[KindDefault, ...]] = {
    # The published values: what the rules were tuned on.
    "web": (),
    # Neither declared nor inherited: the published values, unchanged.
    "general": (),
    "book": (_HARD_WRAPPED, _VERSE_AND_PLAYS, _SPEAKERS, _BOOK_LENGTH, _BRACES_IN_EDITIONS),
    # Digitised print (OCR): laid out like a book, line by line as printed.
    "print": (_HARD_WRAPPED, _VERSE_AND_PLAYS, _SPEAKERS, _BOOK_LENGTH, _BRACES_IN_EDITIONS),
    "encyclopedia": (
        KindDefault(
            "c4_max_curly_brackets",
            None,
            "mathematics articles write formulas in TeX (\\frac{a}{b}) and computing articles "
            "quote code; C4's rule targets JavaScript/CSS in web pages",
        ),
    ),
    "forum": (
        KindDefault(
            "c4_max_curly_brackets",
            None,
            "questions and answers quote code; C4's rule targets JavaScript/CSS in web pages",
        ),
    ),
}

# The paper each rule's published threshold comes from (QualityConfig cites the section).
PUBLISHED_BY = {
    "gopher": "Gopher (Rae et al. 2021)",
    "c4": "C4 (Raffel et al. 2020)",
    "fineweb": "FineWeb (Penedo et al. 2024)",
}

for _kind, _defaults in KIND_DEFAULTS.items():
    for _default in _defaults:
        assert _default.field in QualityConfig.model_fields, (_kind, _default.field)


def known_kinds() -> list[str]:
    return sorted(KIND_DEFAULTS)


def quality_defaults(kind: str) -> dict[str, Any]:
    """The `filters.quality` fields `kind` sets (field -> value). KeyError for an unknown kind."""
    if kind not in KIND_DEFAULTS:
        raise KeyError(f"unknown content kind {kind!r}; known kinds: {', '.join(known_kinds())}")
    return {default.field: default.value for default in KIND_DEFAULTS[kind]}


def defaults_table() -> list[dict[str, Any]]:
    """One row per (rule, threshold field): the published value, its source, and each kind's
    value where it differs, with why. For documentation and the benchmark's note."""
    published = QualityConfig()
    rows = []
    for rule, bounds in _BOUNDS.items():
        for bound in bounds:
            row: dict[str, Any] = {
                "rule": rule,
                "field": bound.field,
                "published": getattr(published, bound.field),
                "source": PUBLISHED_BY[rule.split(".")[0]],
                "kinds": {},
            }
            for kind, defaults in KIND_DEFAULTS.items():
                for default in defaults:
                    if default.field == bound.field:
                        row["kinds"][kind] = (default.value, default.why)
            rows.append(row)
    return rows


__all__ = ["KIND_DEFAULTS", "KindDefault", "defaults_table", "known_kinds", "quality_defaults"]
