"""Words for the quality rules, in every script: whitespace tokens, or characters where there are no spaces.

Gopher defines a word as a whitespace-separated token, which is right for scripts that put
spaces between words (Latin, Cyrillic, Greek, Armenian, Devanagari, Arabic, ...) and wrong for
those that do not (Han, kana, Thai, Lao, Khmer, Myanmar, Tibetan): a whole Chinese sentence is
one "word" 40 characters long. Dictionary segmenters exist (jieba, MeCab, PyThaiNLP, ICU's
break iterator) but each covers one language or needs a native library and its dictionaries;
the rules here measure *repetition and length*, for which a character of those scripts is a
usable unit. So text in a no-space language is segmented into characters: every character of a
no-space script is one unit, and runs of other non-space characters (Latin words, numbers inside
a Chinese sentence) stay whitespace tokens. `unit` says which segmentation was used, so a rule
can declare that it has no meaning on characters (`gopher.mean_word_length` is 1 by
construction).

Which segmentation: the document's language when known (`no_space_languages`); for a document
of unknown language, its script (more than half of its letters in a no-space script).
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass
from typing import Literal

import regex

# Scripts written without spaces between words (Unicode script property values).
NO_SPACE_SCRIPTS = ("Han", "Hiragana", "Katakana", "Thai", "Lao", "Khmer", "Myanmar", "Tibetan")
_NO_SPACE_CLASS = "".join(rf"\p{{{script}}}" for script in NO_SPACE_SCRIPTS)
# One unit per no-space-script character; any other run of non-space characters is one token.
_CHARACTER_TOKENS = regex.compile(rf"[{_NO_SPACE_CLASS}]|[^\s{_NO_SPACE_CLASS}]+")
_NO_SPACE_LETTER = regex.compile(rf"[{_NO_SPACE_CLASS}]")
_LETTER = regex.compile(r"\p{L}")
_SCRIPT_SAMPLE = 4000  # characters looked at to decide by script

Unit = Literal["word", "character"]


@dataclass(frozen=True)
class Segmented:
    """`tokens`: every unit, symbols included; `unit`: "word" (whitespace) or "character"."""

    unit: Unit
    tokens: list[str]


def unit_for(text: str, language: str | None, no_space_languages: Collection[str]) -> Unit:
    """"character" for a no-space language, or for unknown language in a mostly no-space script."""
    if language is not None:
        return "character" if language in no_space_languages else "word"
    sample = text[:_SCRIPT_SAMPLE]
    letters = len(_LETTER.findall(sample))
    return "character" if letters and len(_NO_SPACE_LETTER.findall(sample)) * 2 > letters else "word"


def segment(text: str, language: str | None, no_space_languages: Collection[str]) -> Segmented:
    """The tokens the word-based rules count, in text order. Pure; never raises."""
    unit = unit_for(text, language, no_space_languages)
    tokens = _CHARACTER_TOKENS.findall(text) if unit == "character" else text.split()
    return Segmented(unit, tokens)


__all__ = ["NO_SPACE_SCRIPTS", "Segmented", "Unit", "segment", "unit_for"]
