"""Heuristic quality rules from Gopher, C4 and FineWeb, measured on every document.

Sources of the rules and their default thresholds:

- Gopher: Rae et al. 2021, "Scaling Language Models: Methods, Analysis & Insights from Training
  Gopher", appendix A.1.1 (MassiveText quality filters) and Table A1 (repetition filters);
  values as in DataTrove's `gopher_quality_filter.py` / `gopher_repetition_filter.py`.
- C4: Raffel et al. 2020, "Exploring the Limits of Transfer Learning...", section 2.2; values as
  in DataTrove's `c4_filters.py`.
- FineWeb: Penedo et al. 2024, "The FineWeb Datasets", section 3.3 (custom filters); values as in
  DataTrove's `fineweb_quality_filter.py`.

How this module differs from DataTrove, on purpose:

- Words are whitespace-separated tokens (Gopher's own definition) rather than NLTK tokens, so
  there is no tokenizer model to download. A token made only of punctuation/symbols is a
  "symbol word": it counts for `gopher.symbol_word_ratio` and `gopher.alpha_words` but not for
  `gopher.word_count` / `gopher.mean_word_length`, and word length and n-grams use tokens with
  leading/trailing punctuation stripped (what NLTK would have split off).
- Line-ratio rules (`gopher.bullet_lines`, `gopher.ellipsis_lines`, `fineweb.*`) count non-empty
  lines: the normalised text keeps a blank line between paragraphs, which the web text those
  thresholds were tuned on (trafilatura output, one paragraph per line) did not have.
- `gopher.stop_words` counts occurrences case-insensitively (DataTrove is case-sensitive, which
  misses "The").
- The duplicate n-gram rules count the characters of words covered by any repeated occurrence of
  an n-gram (Gopher's "fraction of characters in duplicate n-grams", overlaps counted once);
  DataTrove approximates this with a greedy skip, so values differ slightly on heavy repetition.
  The top n-gram rules report 0 when no n-gram occurs twice (there is no repetition to measure).
- C4's `javascript` rule removes *lines* and its `{` rule drops the *document*. This step never
  edits text (exact dedup hashes the text, and the measured values must describe the text that
  is kept), so both are document rules here: `c4.javascript` is the fraction of non-empty lines
  mentioning "javascript" (threshold is ours, not published: 0.1), `c4.curly_bracket` the number
  of `{` (C4's published rule: any). The defaults of a kind of source (`quality_defaults.py`)
  switch it off for encyclopedias (TeX mathematics), forums (code) and books (editorial `{}`).

The defaults of `QualityConfig` are the published values (tuned on web pages); a catalog entry
starts from the defaults of its kind of source (book, encyclopedia, forum, web, ...: see
`opencorpus_dagster.text.quality_defaults`), then its own `filters.quality` settings.

Script and language awareness (each rule declares where it does not apply):

- Words come from `opencorpus_dagster.text.segmentation`: whitespace tokens, or, for languages
  written without spaces (`no_space_languages`: ja, zh, th, ...; for an unknown language, a
  text mostly in such a script), one unit per character of those scripts. Every language thus
  gets the word count and the repetition rules. On characters an n-gram rule looks at
  `character_ngram_factor` x n characters (a Chinese or Japanese word is one to two characters;
  the factor 2 is opencorpus's choice, not published). Rules with no meaning on characters are
  declared in `WORD_ONLY_RULES` and skipped there: `gopher.mean_word_length` (1 by
  construction), `gopher.stop_words`, `fineweb.list_ratio` (a line-per-word ratio tuned on
  words).
- `gopher.stop_words` applies only to `stop_words_languages` (English: the list is English).
- `fineweb.line_punct_ratio`: a line "ends in punctuation" when its last character, closing
  brackets and quotation marks aside, has the Unicode `Sentence_Terminal` property (`.`, `!`,
  `?`, and the Armenian `։`, Devanagari `।`, CJK `。`, Arabic `؟`, ... of every script), or is
  one of FineWeb's quotes `'` `"`. FineWeb's own list (`. ' " ! ?`) knows Latin punctuation only.
  `extra_sentence_terminals` adds characters per language where Unicode's property misses one:
  Greek ends questions with U+037E, which Unicode normalisation (NFC) turns into `;`.
- `metadata["segmentation"]` records the unit ("word" or "character") the values were measured in.
"""

from __future__ import annotations

import re
from collections import Counter
from collections.abc import Iterable
from dataclasses import dataclass
from functools import cache
from itertools import compress, repeat
from operator import is_, itemgetter, methodcaller, not_

import numpy as np
import regex
from pydantic import BaseModel, ConfigDict, Field, model_validator

from opencorpus_dagster.records import Document, Drop, Outcome
from opencorpus_dagster.text.segmentation import Unit, segment

# Punctuation and symbols stripped from word edges (ASCII + the common Unicode ones).
_EDGE_PUNCT = (
    "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~"
    "“”‘’«»„‚‹›–—‐‑‒―…·•¡¿§¶†‡′″、。，；：！？（）【】《》「」『』〈〉〔〕"
)
_BULLETS = ("•", "-", "*", "‣", "◦", "▪", "●", "–", "·")
_ELLIPSES = ("...", "…")
# "Line ends in punctuation": a sentence terminal of any script, then any closing brackets or
# quotation marks; or FineWeb's own quote characters. Applied to the last characters of a line.
_CLOSER = r"[\p{Pe}\p{Pf}\p{Quotation_Mark}]"
_CLOSERS = _CLOSER + "*"
_LINE_END_TAIL = 12
# "\n{2,}", spelled with a literal prefix, which lets `re` jump to each newline (5x faster).
_PARAGRAPH_SPLIT = re.compile(r"\n\n+")
_HAS_LETTER = re.compile(r"[^\W\d_]")  # a letter: [^\W\d_] is "alphabetic"

RULES: tuple[str, ...] = (
    "gopher.word_count",
    "gopher.mean_word_length",
    "gopher.symbol_word_ratio",
    "gopher.bullet_lines",
    "gopher.ellipsis_lines",
    "gopher.alpha_words",
    "gopher.stop_words",
    "gopher.dup_line_fraction",
    "gopher.dup_para_fraction",
    "gopher.dup_line_char_fraction",
    "gopher.dup_para_char_fraction",
    "gopher.top_2gram",
    "gopher.top_3gram",
    "gopher.top_4gram",
    "gopher.dup_5gram",
    "gopher.dup_6gram",
    "gopher.dup_7gram",
    "gopher.dup_8gram",
    "gopher.dup_9gram",
    "gopher.dup_10gram",
    "c4.lorem_ipsum",
    "c4.javascript",
    "c4.curly_bracket",
    "fineweb.line_punct_ratio",
    "fineweb.short_line_ratio",
    "fineweb.char_dup_ratio",
    "fineweb.list_ratio",
)

# Rules measured on words (whitespace tokens or no-space-script characters, see segmentation).
WORD_RULES: frozenset[str] = frozenset(
    {
        "gopher.word_count",
        "gopher.mean_word_length",
        "gopher.symbol_word_ratio",
        "gopher.alpha_words",
        "gopher.stop_words",
        "gopher.top_2gram",
        "gopher.top_3gram",
        "gopher.top_4gram",
        "gopher.dup_5gram",
        "gopher.dup_6gram",
        "gopher.dup_7gram",
        "gopher.dup_8gram",
        "gopher.dup_9gram",
        "gopher.dup_10gram",
        "fineweb.list_ratio",
    }
)
# Word rules that do not apply when the units are characters (see the module docstring).
WORD_ONLY_RULES: frozenset[str] = frozenset(
    {"gopher.mean_word_length", "gopher.stop_words", "fineweb.list_ratio"}
)


class QualityConfig(BaseModel):
    """`filters.quality` in a source's catalog YAML.

    Every threshold is its own field; `null` disables that bound. `enabled_rules` (None = all)
    and `disabled_rules` select rules by name (see `RULES`); a disabled rule is neither
    measured nor applied.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    enabled_rules: list[str] | None = None
    disabled_rules: list[str] = Field(default_factory=list)

    # --- Gopher quality filters (Rae et al. 2021, A.1.1; DataTrove gopher_quality_filter.py) ---
    # "fewer than 50 or more than 100,000 words"
    gopher_min_words: int | None = 50
    gopher_max_words: int | None = 100_000
    # "mean word length outside the range of 3 to 10 characters"
    gopher_min_mean_word_length: float | None = 3
    gopher_max_mean_word_length: float | None = 10
    # "symbol-to-word ratio greater than 0.1 for either the hash symbol or the ellipsis"
    gopher_max_symbol_word_ratio: float | None = 0.1
    # "more than 90% of lines starting with a bullet point"
    gopher_max_bullet_lines_ratio: float | None = 0.9
    # "more than 30% ending with an ellipsis"
    gopher_max_ellipsis_lines_ratio: float | None = 0.3
    # "80% of words in a document contain at least one alphabetic character"
    gopher_min_alpha_words_ratio: float | None = 0.8
    # "apply a 'stop word' filter ... at least two of the following English words"
    gopher_min_stop_words: int | None = 2
    gopher_stop_words: list[str] = Field(
        default_factory=lambda: ["the", "be", "to", "of", "and", "that", "have", "with"]
    )
    stop_words_languages: list[str] = Field(default_factory=lambda: ["en"])

    # --- Gopher repetition filters (Rae et al. 2021, Table A1; gopher_repetition_filter.py) ---
    gopher_max_dup_line_fraction: float | None = 0.30
    gopher_max_dup_para_fraction: float | None = 0.30
    gopher_max_dup_line_char_fraction: float | None = 0.20
    gopher_max_dup_para_char_fraction: float | None = 0.20
    gopher_max_top_2gram_char_fraction: float | None = 0.20
    gopher_max_top_3gram_char_fraction: float | None = 0.18
    gopher_max_top_4gram_char_fraction: float | None = 0.16
    gopher_max_dup_5gram_char_fraction: float | None = 0.15
    gopher_max_dup_6gram_char_fraction: float | None = 0.14
    gopher_max_dup_7gram_char_fraction: float | None = 0.13
    gopher_max_dup_8gram_char_fraction: float | None = 0.12
    gopher_max_dup_9gram_char_fraction: float | None = 0.11
    gopher_max_dup_10gram_char_fraction: float | None = 0.10

    # --- C4 (Raffel et al. 2020, 2.2; DataTrove c4_filters.py) ---
    # "removed any page where the phrase 'lorem ipsum' appeared"
    c4_max_lorem_ipsum: int | None = 0
    # C4 removes every line mentioning "javascript"; as a document rule (see module docstring)
    # this threshold on the fraction of such lines is opencorpus's choice, not published.
    c4_max_javascript_line_ratio: float | None = 0.1
    # "removed any pages that contained a curly bracket"; null it for code-bearing sources.
    c4_max_curly_brackets: int | None = 0

    # --- FineWeb custom filters (Penedo et al. 2024, 3.3; fineweb_quality_filter.py) ---
    # drop when <= 12% of lines end in punctuation
    fineweb_min_line_punct_ratio: float | None = 0.12
    # drop when >= 67% of lines are at most 30 characters long
    fineweb_max_short_line_ratio: float | None = 0.67
    fineweb_short_line_length: int = 30
    # drop when >= 1% of characters are in duplicated lines
    fineweb_max_char_dup_ratio: float | None = 0.01
    # drop when line breaks / words > 0.3 (lists)
    fineweb_max_list_ratio: float | None = 0.3

    # Languages written without spaces between words: words are their characters (segmentation).
    no_space_languages: list[str] = Field(
        default_factory=lambda: ["ja", "zh", "yue", "wuu", "th", "lo", "km", "my", "bo", "dz"]
    )
    # On characters, an n-gram rule looks at factor x n characters (ours: a CJK word is 1-2).
    character_ngram_factor: int = Field(default=2, ge=1, le=5)
    # Line-end characters Unicode's Sentence_Terminal misses, per language (after NFC).
    extra_sentence_terminals: dict[str, str] = Field(default_factory=lambda: {"el": ";"})

    @model_validator(mode="after")
    def _known_rule_names(self) -> QualityConfig:
        for field_name in ("enabled_rules", "disabled_rules"):
            names = getattr(self, field_name) or []
            unknown = [name for name in names if name not in RULES]
            if unknown:
                raise ValueError(
                    f"{field_name}: unknown rule(s) {unknown}; known rules: {', '.join(RULES)}"
                )
        return self


@dataclass(frozen=True)
class _Bound:
    """One threshold of a rule: the config field, and how a value fails it."""

    field: str
    kind: str  # "min": fails below (or at, if inclusive); "max": fails above (or at)
    inclusive: bool = False  # FineWeb's rules fail at equality; Gopher's and C4's do not

    def fails(self, value: float, threshold: float) -> bool:
        if self.kind == "min":
            return value <= threshold if self.inclusive else value < threshold
        return value >= threshold if self.inclusive else value > threshold

    def describe(self, threshold: float) -> str:
        """The requirement a passing value meets, e.g. ">= 50"."""
        op = {("min", False): ">=", ("min", True): ">", ("max", False): "<=", ("max", True): "<"}
        return f"{op[(self.kind, self.inclusive)]} {threshold}"


_BOUNDS: dict[str, tuple[_Bound, ...]] = {
    "gopher.word_count": (_Bound("gopher_min_words", "min"), _Bound("gopher_max_words", "max")),
    "gopher.mean_word_length": (
        _Bound("gopher_min_mean_word_length", "min"),
        _Bound("gopher_max_mean_word_length", "max"),
    ),
    "gopher.symbol_word_ratio": (_Bound("gopher_max_symbol_word_ratio", "max"),),
    "gopher.bullet_lines": (_Bound("gopher_max_bullet_lines_ratio", "max"),),
    "gopher.ellipsis_lines": (_Bound("gopher_max_ellipsis_lines_ratio", "max"),),
    "gopher.alpha_words": (_Bound("gopher_min_alpha_words_ratio", "min"),),
    "gopher.stop_words": (_Bound("gopher_min_stop_words", "min"),),
    "gopher.dup_line_fraction": (_Bound("gopher_max_dup_line_fraction", "max"),),
    "gopher.dup_para_fraction": (_Bound("gopher_max_dup_para_fraction", "max"),),
    "gopher.dup_line_char_fraction": (_Bound("gopher_max_dup_line_char_fraction", "max"),),
    "gopher.dup_para_char_fraction": (_Bound("gopher_max_dup_para_char_fraction", "max"),),
    **{
        f"gopher.top_{n}gram": (_Bound(f"gopher_max_top_{n}gram_char_fraction", "max"),)
        for n in (2, 3, 4)
    },
    **{
        f"gopher.dup_{n}gram": (_Bound(f"gopher_max_dup_{n}gram_char_fraction", "max"),)
        for n in range(5, 11)
    },
    "c4.lorem_ipsum": (_Bound("c4_max_lorem_ipsum", "max"),),
    "c4.javascript": (_Bound("c4_max_javascript_line_ratio", "max"),),
    "c4.curly_bracket": (_Bound("c4_max_curly_brackets", "max"),),
    "fineweb.line_punct_ratio": (_Bound("fineweb_min_line_punct_ratio", "min", inclusive=True),),
    "fineweb.short_line_ratio": (_Bound("fineweb_max_short_line_ratio", "max", inclusive=True),),
    "fineweb.char_dup_ratio": (_Bound("fineweb_max_char_dup_ratio", "max", inclusive=True),),
    "fineweb.list_ratio": (_Bound("fineweb_max_list_ratio", "max"),),
}
assert tuple(_BOUNDS) == RULES
_DEFAULT_CONFIG = QualityConfig()


def _duplicates(items: Iterable[str]) -> tuple[int, int]:
    """(number of items seen before, total characters of those items)."""
    seen: set[str] = set()
    count = chars = 0
    for item in items:
        if item in seen:
            count += 1
            chars += len(item)
        else:
            seen.add(item)
    return count, chars


def _ngram_hashes(word_ids: np.ndarray, sizes: Iterable[int]) -> dict[int, np.ndarray]:
    """64-bit polynomial hashes of every n-gram, for each n in `sizes`, keyed by n.

    `word_ids` are random 64-bit values per distinct word, so collisions are negligible;
    uint64 arithmetic wraps, which is what a hash wants.
    """
    wanted = set(sizes)
    hashes: dict[int, np.ndarray] = {}
    prime = np.uint64(1_000_003)
    current = word_ids
    for n in range(2, max(wanted, default=1) + 1):
        if len(word_ids) < n:
            break
        current = current[:-1] * prime + word_ids[n - 1 :]
        if n in wanted:
            hashes[n] = current
    return hashes


@dataclass(frozen=True)
class _Repeated:
    """The occurrences of the n-grams of one size that occur at least twice (the only ones the
    n-gram rules look at), in text order."""

    positions: np.ndarray  # start of each such occurrence, ascending
    first: np.ndarray  # for each: start of the first occurrence of its n-gram
    counts: np.ndarray  # for each: occurrences of its n-gram in the document


def _repeated_ngrams(hashes: dict[int, np.ndarray]) -> dict[int, _Repeated]:
    """For each size in `hashes` (n-gram hashes by size), the occurrences of repeated n-grams.

    One pass over growing sizes: an n-gram can only repeat where the shorter n-gram it starts
    with repeats, so each size is counted among the previous size's repeated occurrences only
    (on prose a small share of the words past 3-grams) instead of over the whole document.
    """
    result: dict[int, _Repeated] = {}
    candidates: np.ndarray | None = None
    for size in sorted(hashes):
        values = hashes[size]
        candidates = np.arange(len(values)) if candidates is None else candidates[candidates < len(values)]
        if len(candidates) == 0:
            result[size] = _Repeated(candidates, candidates, candidates)
            continue
        group = _group_small if len(candidates) <= _SMALL_GROUP else _group
        first_position, occurrences = group(values[candidates], candidates)
        repeated = occurrences >= 2
        candidates = candidates[repeated]
        result[size] = _Repeated(candidates, first_position[repeated], occurrences[repeated])
    return result


# Below this many values a dict groups them faster than np.unique (whose fixed cost, about
# 30 µs, is most of its time on the few repeated occurrences left past the 3-grams).
_SMALL_GROUP = 200


def _group(values: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """For each value: the position of its value's first occurrence, and its value's count."""
    _, first, inverse, counts = np.unique(values, return_index=True, return_inverse=True, return_counts=True)
    inverse = inverse.reshape(-1)
    return positions[first[inverse]], counts[inverse]


def _group_small(values: np.ndarray, positions: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """`_group`, with dicts (`positions` ascending)."""
    keys, at = values.tolist(), positions.tolist()
    counts = Counter(keys)
    first = dict(zip(reversed(keys), reversed(at)))  # the earliest position is written last
    return (
        np.fromiter(map(first.__getitem__, keys), np.int64, len(keys)),
        np.fromiter(map(counts.__getitem__, keys), np.int64, len(keys)),
    )


def _top_ngram_chars(repeated: _Repeated, word_lengths: np.ndarray, n: int, gap: int = 1) -> int:
    """Characters covered by the most frequent n-gram (its length, with `gap` characters
    between units, x its count); 0 when no n-gram repeats (DataTrove would report the first
    n-gram's length, which on a short document fails the rule without any repetition)."""
    if len(repeated.counts) == 0:
        return 0
    top = int(repeated.counts.max())
    position = int(repeated.first[repeated.counts == top].min())  # ties: the n-gram that occurs first
    length = int(word_lengths[position : position + n].sum()) + gap * (n - 1)
    return length * top


def _dup_ngram_chars(repeated: _Repeated, word_lengths: np.ndarray, n: int) -> int:
    """Characters of the words covered by any repeated occurrence of an n-gram (every
    occurrence after its n-gram's first)."""
    starts = repeated.positions[repeated.first != repeated.positions]
    if len(starts) == 0:
        return 0
    cover = np.zeros(len(word_lengths) + 1, dtype=np.int64)
    np.add.at(cover, starts, 1)
    np.add.at(cover, starts + n, -1)
    covered = np.cumsum(cover[:-1]) > 0
    return int(word_lengths[covered].sum())


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else 0.0


def line_ends_sentence(line: str, language: str | None = None, config: QualityConfig | None = None) -> bool:
    """Whether `line` ends in sentence-final punctuation of any script (module docstring)."""
    extra = (config or _DEFAULT_CONFIG).extra_sentence_terminals.get(language or "", "")
    return bool(_line_end_pattern(extra).search(line.rstrip()[-_LINE_END_TAIL:]))


@cache
def _line_end_pattern(extra: str) -> regex.Pattern:
    terminals = r"\p{Sentence_Terminal}" + regex.escape(extra) if extra else r"\p{Sentence_Terminal}"
    return regex.compile(rf"(?:[{terminals}]{_CLOSERS}|['\"])$")


@cache
def _ascii_line_ends(extra: str) -> dict[str, bool]:
    """Whether a line ends in punctuation, by its last character, for the ASCII characters
    that decide it alone: all but the closing brackets, which may follow a terminal (a quote
    `'` `"` ends a line in punctuation whatever precedes it). Derived from the pattern itself."""
    ends, closer = _line_end_pattern(extra).search, regex.compile(_CLOSER).fullmatch
    return {
        char: True if char in "'\"" else bool(ends(char))
        for char in map(chr, range(128))
        if char in "'\"" or not closer(char)
    }


def _count_line_ends(lines: list[str], extra: str) -> int:
    """How many of `lines` (none blank) `line_ends_sentence`: by the last character when it
    is ASCII and not a closing bracket (on most texts nearly every line), else by the pattern
    (a `regex` search per line was a tenth of the quality step's time)."""
    trimmed = list(map(str.rstrip, lines))
    decided = list(map(_ascii_line_ends(extra).get, map(itemgetter(-1), trimmed)))
    count = decided.count(True)
    if count + decided.count(False) < len(decided):
        rest = compress(trimmed, map(is_, decided, repeat(None)))
        tails = map(methodcaller("__getitem__", slice(-_LINE_END_TAIL, None)), rest)
        count += sum(map(bool, map(_line_end_pattern(extra).search, tails)))
    return count


def applicable_rules(language: str | None, unit: Unit, config: QualityConfig) -> frozenset[str]:
    """The rules that apply to a document in `language` segmented into `unit`s, as each
    rule declares: `WORD_ONLY_RULES` not on characters, `gopher.stop_words` only for
    `stop_words_languages`."""
    rules = set(RULES)
    if unit == "character":
        rules -= WORD_ONLY_RULES
    if language not in config.stop_words_languages:
        rules.discard("gopher.stop_words")
    return frozenset(rules)


def measure_quality(
    text: str, language: str | None, config: QualityConfig, rules: Iterable[str] | None = None
) -> dict[str, float | int]:
    """Measured value of each rule in `rules` (default: all of `RULES`) that applies to
    `language` (`applicable_rules`); words are segmented as `segmentation.segment` does.
    Pure; never raises."""
    return _measure(text, language, config, rules)[0]


def _measure(
    text: str, language: str | None, config: QualityConfig, rules: Iterable[str] | None
) -> tuple[dict[str, float | int], Unit]:
    values: dict[str, float | int] = {}
    n_chars = len(text)
    wanted = set(RULES if rules is None else rules)
    if wanted & WORD_RULES:
        segmented = segment(text, language, config.no_space_languages)
        unit, tokens = segmented.unit, segmented.tokens
    else:
        unit, tokens = "word", []
    wanted &= applicable_rules(language, unit, config)

    # The per-token and per-line measures below go through map/compress rather than Python
    # loops: on ~5 KB documents they were half of this function's time.
    stripped = list(map(str.strip, tokens, repeat(_EDGE_PUNCT)))
    words = list(filter(None, stripped))
    raw_lines = text.split("\n")
    nonempty_lines = list(compress(raw_lines, map(str.strip, raw_lines)))

    if "gopher.word_count" in wanted:
        values["gopher.word_count"] = len(words)
    if "gopher.mean_word_length" in wanted:
        values["gopher.mean_word_length"] = _ratio(sum(map(len, words)), len(words))
    if "gopher.symbol_word_ratio" in wanted:
        hashes = text.count("#")
        ellipses = text.count("...") + text.count("…")
        values["gopher.symbol_word_ratio"] = _ratio(max(hashes, ellipses), len(tokens))
    if "gopher.bullet_lines" in wanted:
        bullets = sum(map(methodcaller("startswith", _BULLETS), map(str.lstrip, nonempty_lines)))
        values["gopher.bullet_lines"] = _ratio(bullets, len(nonempty_lines))
    if "gopher.ellipsis_lines" in wanted:
        ellipsis_lines = sum(map(methodcaller("endswith", _ELLIPSES), map(str.rstrip, nonempty_lines)))
        values["gopher.ellipsis_lines"] = _ratio(ellipsis_lines, len(nonempty_lines))
    if "gopher.alpha_words" in wanted:
        # A token whose stripped form is all letters has one (every str.isalpha character is
        # in [^\W\d_]); only the others are searched.
        alphabetic = list(map(str.isalpha, stripped))
        others = compress(tokens, map(not_, alphabetic))
        alpha = sum(alphabetic) + sum(map(bool, map(_HAS_LETTER.search, others)))
        values["gopher.alpha_words"] = _ratio(alpha, len(tokens))
    if "gopher.stop_words" in wanted:
        stop_words = set(config.gopher_stop_words)
        values["gopher.stop_words"] = sum(map(stop_words.__contains__, map(str.lower, words)))

    if wanted & {"gopher.dup_para_fraction", "gopher.dup_para_char_fraction"}:
        paragraphs = _PARAGRAPH_SPLIT.split(text.strip())
        dup_paras, dup_para_chars = _duplicates(paragraphs)
        values["gopher.dup_para_fraction"] = _ratio(dup_paras, len(paragraphs))
        values["gopher.dup_para_char_fraction"] = _ratio(dup_para_chars, n_chars)
    if wanted & {"gopher.dup_line_fraction", "gopher.dup_line_char_fraction"}:
        # re.split(r"\n+", text): the "\n"-separated pieces without the empty ones between
        # two newlines (an empty first or last piece stays, as re.split keeps it).
        last = len(raw_lines) - 1
        lines = [line for i, line in enumerate(raw_lines) if line or i == 0 or i == last]
        dup_lines, dup_line_chars = _duplicates(lines)
        values["gopher.dup_line_fraction"] = _ratio(dup_lines, len(lines))
        values["gopher.dup_line_char_fraction"] = _ratio(dup_line_chars, n_chars)

    ngram_rules = [r for r in wanted if r.startswith(("gopher.top_", "gopher.dup_")) and "gram" in r]
    if ngram_rules:
        # A word's id is its string hash (64-bit SipHash, computed in C): the values depend only
        # on which words are equal, so they are the same in every process although the hashes
        # are salted per process, as long as no two distinct words of a document collide
        # (probability about (distinct words)^2 / 2^65, as for the n-gram hashes themselves).
        word_ids = np.fromiter(map(hash, words), np.int64, len(words)).view(np.uint64)
        word_lengths = np.fromiter(map(len, words), np.int64, len(words))
        # On characters an n-gram rule looks at factor x n units, with no space between them.
        factor, gap = (config.character_ngram_factor, 0) if unit == "character" else (1, 1)
        sizes = {factor * int(rule.split("_")[1].removesuffix("gram")): rule for rule in ngram_rules}
        repeated = _repeated_ngrams(_ngram_hashes(word_ids, sizes))
        for n in (2, 3, 4):
            rule, size = f"gopher.top_{n}gram", factor * n
            if rule in wanted:
                chars = _top_ngram_chars(repeated[size], word_lengths, size, gap) if size in repeated else 0
                values[rule] = _ratio(chars, n_chars)
        for n in range(5, 11):
            rule, size = f"gopher.dup_{n}gram", factor * n
            if rule in wanted:
                chars = _dup_ngram_chars(repeated[size], word_lengths, size) if size in repeated else 0
                values[rule] = _ratio(chars, n_chars)

    if "c4.lorem_ipsum" in wanted:
        values["c4.lorem_ipsum"] = text.lower().count("lorem ipsum")
    if "c4.javascript" in wanted:
        js_lines = sum(map(methodcaller("__contains__", "javascript"), map(str.lower, nonempty_lines)))
        values["c4.javascript"] = _ratio(js_lines, len(nonempty_lines))
    if "c4.curly_bracket" in wanted:
        values["c4.curly_bracket"] = text.count("{")

    if "fineweb.line_punct_ratio" in wanted:
        punct = _count_line_ends(nonempty_lines, config.extra_sentence_terminals.get(language or "", ""))
        values["fineweb.line_punct_ratio"] = _ratio(punct, len(nonempty_lines))
    if "fineweb.short_line_ratio" in wanted:
        limit = config.fineweb_short_line_length
        short = sum(map(limit.__ge__, map(len, map(str.strip, nonempty_lines))))
        values["fineweb.short_line_ratio"] = _ratio(short, len(nonempty_lines))
    if "fineweb.char_dup_ratio" in wanted:
        _, dup_chars = _duplicates(nonempty_lines)
        values["fineweb.char_dup_ratio"] = _ratio(dup_chars, n_chars - text.count("\n"))
    if "fineweb.list_ratio" in wanted:
        values["fineweb.list_ratio"] = _ratio(max(len(nonempty_lines) - 1, 0), len(tokens))

    # Keep only what was asked (paragraph/line pairs are computed together), in RULES order.
    measured = {
        rule: (round(values[rule], 4) if isinstance(values[rule], float) else values[rule])
        for rule in RULES
        if rule in wanted and rule in values
    }
    return measured, unit


def _failed_bounds(rule: str, value: float, config: QualityConfig) -> list[str]:
    """The requirements `value` fails to meet, e.g. [">= 50"]; empty if it passes."""
    failed = []
    for bound in _BOUNDS[rule]:
        threshold = getattr(config, bound.field)
        if threshold is not None and bound.fails(value, threshold):
            failed.append(bound.describe(threshold))
    return failed


class QualityFilter:
    """Step: measure every enabled rule, record the values, drop on the first failing rule.

    All measured values go to `doc.metadata["quality"]` (rule -> value), for kept and dropped
    documents alike, so statistics can show the distributions on both sides. A failing
    document becomes `Drop(FILTERED, reason=<first failing rule in RULES order>,
    value=<its measured value>, detail=<its threshold; the other failing rules>)`.
    """

    name = "quality"  # the step name in decisions and run metadata

    def __init__(self, config: QualityConfig | None = None) -> None:
        self.config = config or QualityConfig()
        selected = RULES if self.config.enabled_rules is None else self.config.enabled_rules
        disabled = set(self.config.disabled_rules)
        # A rule whose every threshold is null is disabled too: nothing to measure it against.
        self.rules: tuple[str, ...] = tuple(
            rule
            for rule in RULES
            if rule in selected
            and rule not in disabled
            and any(getattr(self.config, b.field) is not None for b in _BOUNDS[rule])
        )

    def __call__(self, doc: Document) -> Document | Drop:
        values, unit = _measure(doc.text, doc.language, self.config, self.rules)
        doc.metadata["quality"] = values
        doc.metadata["segmentation"] = unit
        failures: list[tuple[str, float, list[str]]] = []
        for rule, value in values.items():
            failed = _failed_bounds(rule, value, self.config)
            if failed:
                failures.append((rule, value, failed))
        if not failures:
            return doc
        rule, value, failed = failures[0]
        detail = f"required {' and '.join(failed)}"
        if len(failures) > 1:
            others = "; ".join(f"{r}={v} ({' and '.join(f)})" for r, v, f in failures[1:])
            detail += f"; also failing: {others}"
        return Drop(Outcome.FILTERED, rule, value=value, detail=detail)

