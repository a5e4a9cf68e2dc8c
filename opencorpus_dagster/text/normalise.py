"""Text normalisation: repair encoding damage and canonicalise whitespace and Unicode form.

Runs first in the documents stage, so every later step (language id, quality rules, PII, and
exact dedup, which hashes `Document.text`) sees one canonical form of the same text.

What is changed, and why:

- mojibake is repaired with ftfy (UTF-8 read as cp1252/latin-1, `â€™` -> `’`). Only encoding
  damage is repaired: ftfy's options that change the author's typography are off (curly quotes
  stay curly, ligatures and full-width characters stay as written, `&amp;` in plain text stays),
  because the corpus keeps what the author wrote, not an ASCII-folded variant;
- Unicode NFC (composed form), so `e` + U+0301 and `é` hash the same;
- line breaks `\\r\\n`, `\\r`, U+2028/U+2029/U+0085 become `\\n`;
- control characters (category Cc) are removed except `\\n` and `\\t`; so are lone surrogates
  (which cannot be encoded as UTF-8) and stray byte-order marks. Format characters such as ZWJ /
  ZWNJ are kept: they carry meaning in Indic and Persian scripts and in emoji;
- runs of spaces/tabs *inside* a line become one space; leading indentation is kept, because it
  carries structure in code blocks and verse; trailing spaces are removed;
- at most two consecutive newlines (one blank line), and the text is stripped.
"""

from __future__ import annotations

import re
import unicodedata

import ftfy
from pydantic import BaseModel, ConfigDict

from opencorpus_dagster.records import Document, Drop, Outcome

# ftfy's mojibake repair without its typographic folding (see module docstring).
_FTFY_CONFIG = ftfy.TextFixerConfig(
    unescape_html=False,
    remove_terminal_escapes=True,
    fix_encoding=True,
    restore_byte_a0=True,
    replace_lossy_sequences=True,
    decode_inconsistent_utf8=True,
    fix_c1_controls=True,
    fix_latin_ligatures=False,
    fix_character_width=False,
    uncurl_quotes=False,
    fix_line_breaks=True,
    fix_surrogates=True,
    remove_control_chars=False,  # done below with an explicit, documented set
    normalization="NFC",
    explain=False,
)

# Cc except \t (0x09) and \n (0x0A); \r is already turned into \n by ftfy's fix_line_breaks.
_CONTROL = re.compile(r"[\x00-\x08\x0b-\x1f\x7f-\x9f\ud800-\udfff\ufeff]")
# ftfy is the slow part (about 1 µs per character) and is only needed on lines that can hold
# mojibake: UTF-8 decoded as latin-1/cp1252 always yields a character in U+0080-U+00FF; as
# cp1250 one in Latin Extended-A; as cp1251 Cyrillic; as MacRoman a math symbol such as √;
# plus lone surrogates and terminal escapes. ftfy works line by line anyway, so skipping the
# other lines changes nothing but the time.
_MOJIBAKE_HINT = re.compile(r"[\x1b\x80-\xff\u0100-\u017f\u0400-\u045f\u2200-\u22ff\ud800-\udfff]")
_CARRIAGE_RETURNS = re.compile(r"\r\n?")
# U+0085 (NEL) is also the byte 0x85 of UTF-8 mojibake ("è\x85¾" is "腾"), so these are turned
# into newlines only after ftfy has repaired the encoding.
_UNICODE_LINE_BREAKS = re.compile(r"[\u2028\u2029\x85]")
# A run of 2+ blanks, or a lone tab, between two non-blank characters of a line. The pattern
# starts by consuming a blank, and only then looks behind it: `re` then jumps from blank to
# blank instead of trying the lookbehind at every character (5x faster on prose).
_INNER_BLANKS = re.compile(r"[ \t](?<=[^ \t\n][ \t])(?:[ \t]+|(?<=\t))(?=[^ \t\n])")
_MANY_NEWLINES = re.compile(r"\n\n\n+")  # \n{3,} with a literal prefix, which re scans for


def normalise_text(text: str) -> str:
    """The canonical form of `text` (see the module docstring); idempotent, never raises."""
    text = _CARRIAGE_RETURNS.sub("\n", text)
    if _MOJIBAKE_HINT.search(text):
        text = "\n".join(
            ftfy.fix_text(line, _FTFY_CONFIG) if _MOJIBAKE_HINT.search(line) else line
            for line in text.split("\n")
        )
    if not text.isascii():  # the Unicode line breaks are not ASCII, nor is anything NFC changes
        text = _UNICODE_LINE_BREAKS.sub("\n", text)
        text = unicodedata.normalize("NFC", text)
    text = _CONTROL.sub("", text)
    # Each substitution below is skipped when a plain substring test shows it has nothing to do.
    if "  " in text or "\t" in text:
        text = _INNER_BLANKS.sub(" ", text)
    if " \n" in text or "\t\n" in text:
        text = "\n".join(line.rstrip(" \t") for line in text.split("\n"))
    if "\n\n\n" in text:
        text = _MANY_NEWLINES.sub("\n\n", text)
    return text.strip()


class NormaliseConfig(BaseModel):
    """`filters.normalise` in a source's catalog YAML."""

    model_config = ConfigDict(extra="forbid")

    # Off only for sources whose text is already canonical and must be byte-preserved.
    enabled: bool = True


class Normalise:
    """Step: replace `doc.text` with `normalise_text(doc.text)`.

    Never drops a document, except one whose text is empty after normalisation:
    `Drop(FILTERED, "normalise.empty", 0)`.
    """

    name = "normalise"  # the step name in decisions and run metadata

    def __init__(self, config: NormaliseConfig | None = None) -> None:
        self.config = config or NormaliseConfig()

    def __call__(self, doc: Document) -> Document | Drop:
        doc.text = normalise_text(doc.text)
        if not doc.text:
            return Drop(Outcome.FILTERED, "normalise.empty", 0)
        return doc
