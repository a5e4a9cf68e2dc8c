"""Strip the Project Gutenberg header and footer from a plain-text ebook.

A PG text file wraps the book in boilerplate: a header (title block, licence blurb, then a
`*** START OF THE PROJECT GUTENBERG EBOOK ... ***` marker, then usually a production-credit
paragraph) and a footer (`End of the Project Gutenberg EBook of ...`, the `*** END OF ... ***`
marker, then the full licence). The markers changed over the years:

- 2006-2020: `*** START OF THIS PROJECT GUTENBERG EBOOK X ***` (one line);
- 2003-2005: `***START OF THE PROJECT GUTENBERG EBOOK X***`, often wrapped over two lines;
- 2020-:     `*** START OF THE PROJECT GUTENBERG EBOOK X ***`;
- 1990s:     no START marker; the header is the "small print" licence ending with
             `*END*THE SMALL PRINT! FOR PUBLIC DOMAIN ETEXTS*Ver.04.29.93*END*`.

Without a footer marker (a file cut by a mirror, or edited by hand), PG's licence section is found
by its own first lines (see `_LICENCE_SECTION`) and cut there; with neither, the file is kept to its
end only when its last part says nothing about Project Gutenberg, else `NoEndMarker` is raised: PG
licence text must not reach the corpus as if it were the book.

The rules here are measured against the c-w/gutenberg library's `strip_headers` output for the
15 fixture books (`benchmarks/gutenberg_boilerplate.py` prints the figures and a naive peer).
"""

from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass


class NoStartMarker(ValueError):
    """The text has no line that ends the PG header (`*** START OF ...` or the old small print)."""


class NoEndMarker(ValueError):
    """The text has no footer marker and no licence-section marker, yet its last part mentions
    Project Gutenberg: where the book ends and PG's text begins is unknown."""


class BodyEnd:
    """What ended the body (`GutenbergBody.body_end`, recorded by the connector)."""

    END_MARKER = "end-marker"  # `*** END OF ...` or `End of the Project Gutenberg ...`
    LICENCE_SECTION = "licence-section"  # no footer marker: cut where PG's licence section starts
    END_OF_FILE = "end-of-file"  # no marker at all and no PG text in the last part: the whole file


# One pattern for every marker line, so a line costs one anchored match (most lines fail on
# their first character). Header-ending markers: the `*** START OF` lines, and the old
# "*END*THE SMALL PRINT" line, which is the 1990s equivalent; "COPYRIGHTED" appears in the few
# texts PG distributes with permission. Footer-starting markers: `*** END OF`, and
# "End of [the|this] Project Gutenberg ...", which precedes `*** END` by one or two lines in
# 2004-2020 files (and is the only footer marker in some older ones), so whichever comes first
# cuts.
_MARKER = re.compile(
    r"^\s*(?:"
    r"(?P<start>\*{3}\s*START OF (?:THE|THIS) (?:COPYRIGHTED )?PROJECT GUTENBERG"
    r"|\*+\s*END\s*\*?\s*THE SMALL PRINT)"
    r"|(?P<end>\*{3}\s*END OF (?:THE|THIS) (?:COPYRIGHTED )?PROJECT GUTENBERG"
    r"|End of (?:the |this )?Project Gutenberg))",
    re.IGNORECASE,
)

# First lines of PG's licence section, for a file without a footer marker. In 2003-2020 files the
# section after `*** END` opens with "***** This file should be named 2701.txt or 2701.zip *****"
# (the asterisks vary), "This and all associated files of various formats will be found in:", the
# producers' names, "Updated editions will replace the previous one", then
# "*** START: FULL LICENSE ***", "THE FULL PROJECT GUTENBERG LICENSE" and "Section 1. General Terms
# of Use"; 2020- files drop the first. Whichever comes first cuts, so the blurb before the full
# licence goes too. Each line is PG's own wording, not something a book says.
_LICENCE_SECTION = re.compile(
    r"^\s*(?:\*+\s*This file should be named"
    r"|This and all associated files of various formats will be found in"
    r"|Updated editions will replace the previous one"
    r"|\**\s*START: FULL LICEN[CS]E"
    r"|THE FULL PROJECT GUTENBERG(?:-tm|\u2122)? LICEN[CS]E"
    r"|Section 1\. General Terms of Use)",
    re.IGNORECASE,
)
# PG's footer (blurb + full licence) is ~360 lines in 2006-2020 files; a licence-section marker or
# a PG mention is looked for in this many last lines of the body only, so a book that talks about
# Project Gutenberg in its first chapters is not cut or quarantined for it.
_TAIL_LINES = 1000
_PG_MENTION = re.compile(r"Project Gutenberg|gutenberg\.(?:org|net)", re.IGNORECASE)

# First line of a production-credit paragraph right after the START marker.
_CREDIT = re.compile(
    r"^\s*(?:Produced by"
    r"|E-?text prepared by"
    r"|This (?:Project Gutenberg )?e-?text was (?:prepared|produced) by"
    r"|This e-?book was (?:prepared|produced) by"
    r"|Credit for e-?text:"
    r"|Transcribed from .* by)",
    re.IGNORECASE,
)

# A short note right after the credits about this PG edition (other formats, page images,
# how the transcription was done), e.g. "Note: Project Gutenberg also has an HTML version".
_EDITION_NOTE_START = re.compile(r"^\s*(?:Editorial )?Note:", re.IGNORECASE)
_EDITION_NOTE_TOPIC = re.compile(r"Project Gutenberg|https?://|www\.", re.IGNORECASE)

# Credits and edition notes come in the first few paragraphs; never eat more than this.
_MAX_PREAMBLE_PARAGRAPHS = 6
# A START marker wraps over at most this many extra lines.
_MAX_MARKER_CONTINUATION = 3


@dataclass(frozen=True)
class GutenbergBody:
    """Where the book is inside the lines of a PG text (`text.splitlines()`, BOM removed).

    `first_line` / `end_line` delimit the body (`lines[first_line:end_line]`); the other fields
    say which rules cut what, for lineage and for the benchmark.
    """

    first_line: int
    end_line: int
    start_marker_line: int  # the header-ending marker (its first line if wrapped)
    wrapped_marker_lines: int  # continuation lines of a START marker wrapped over several lines
    preamble_paragraphs: int  # credit / edition-note paragraphs dropped after the marker
    footer_marker: str | None  # the line that started the footer (or licence section), None if none
    body_end: str = BodyEnd.END_MARKER  # what ended the body: a `BodyEnd` value


def locate_gutenberg_body(text: str) -> GutenbergBody:
    """Find the book body: see `strip_gutenberg_boilerplate`. Raises `NoStartMarker`, `NoEndMarker`."""
    lines = text.lstrip("\ufeff").splitlines()
    return _locate(lines)


def strip_gutenberg_boilerplate(text: str) -> str:
    """The book text of a PG plain-text file, without header, preamble credits and footer.

    Drops everything up to and including the last header-ending marker (`*** START OF ...`,
    possibly wrapped over several lines, or the old `*END*THE SMALL PRINT` line) that precedes
    the footer, then any production-credit / edition-note paragraphs right after it, and
    everything from the first footer line (`*** END OF ...`, `End of the Project Gutenberg ...`)
    on. Blank lines between the dropped header and the book are kept; lines are joined with
    `\\n` (CRLF and a leading BOM are normalised away).

    Without a footer marker, the body ends at the first licence-section line (`This file should
    be named`, `This and all associated files`, `Updated editions will replace`, `START: FULL
    LICENSE`, `THE FULL PROJECT GUTENBERG LICENSE`, `Section 1. General Terms of Use`) among its
    last 1000 lines; without that either, it
    runs to the end of the file, provided those last 1000 lines of the body never mention Project
    Gutenberg (`Project Gutenberg`, `gutenberg.org`/`.net`).

    Raises `NoStartMarker` when the text has no header-ending marker at all, `NoEndMarker` when it
    has no footer or licence-section marker but mentions Project Gutenberg near its end.
    """
    lines = text.lstrip("\ufeff").splitlines()
    body = _locate(lines)
    return "\n".join(lines[body.first_line : body.end_line])


def _locate(lines: list[str]) -> GutenbergBody:
    header_end = None
    end = len(lines)
    footer_marker = None
    for i, line in enumerate(lines):
        match = _MARKER.match(line)
        if match is None:
            continue
        if match.group("start"):
            # The last header-ending marker before the footer wins: 1990s-2000s files may
            # carry both a START line and the small print after it.
            header_end = i
        elif header_end is not None:
            end, footer_marker = i, line.strip()
            break
    if header_end is None:
        raise NoStartMarker("no '*** START OF THE PROJECT GUTENBERG EBOOK' (or old small-print) marker line")
    marker_last = _skip_marker_continuation(lines, header_end, end)
    body_end = BodyEnd.END_MARKER
    if footer_marker is None:
        end, footer_marker, body_end = _end_without_footer_marker(lines, marker_last + 1)
    first_line, paragraphs = _skip_preamble(lines, marker_last + 1, end)
    if body_end == BodyEnd.END_OF_FILE:
        _refuse_unmarked_pg_text(lines, max(first_line, end - _TAIL_LINES), end)
    return GutenbergBody(first_line, end, header_end, marker_last - header_end, paragraphs, footer_marker, body_end)


def _end_without_footer_marker(lines: list[str], start: int) -> tuple[int, str | None, str]:
    """(end, marker line, BodyEnd) of a body that has no footer marker: the first licence-section
    line in the last `_TAIL_LINES` lines, else the end of the file."""
    for i in range(max(start, len(lines) - _TAIL_LINES), len(lines)):
        if _LICENCE_SECTION.match(lines[i]):
            return i, lines[i].strip(), BodyEnd.LICENCE_SECTION
    return len(lines), None, BodyEnd.END_OF_FILE


def _refuse_unmarked_pg_text(lines: list[str], start: int, end: int) -> None:
    for i in range(start, end):
        if _PG_MENTION.search(lines[i]):
            raise NoEndMarker(
                f"no '*** END OF THE PROJECT GUTENBERG EBOOK' or licence-section marker line, "
                f"yet line {i + 1} mentions Project Gutenberg: {lines[i].strip()[:80]!r}"
            )


def _skip_marker_continuation(lines: list[str], marker: int, end: int) -> int:
    """Index of the last line of a START marker wrapped over several lines, e.g.
    `***START OF THE PROJECT GUTENBERG EBOOK THE MIRROR OF LITERATURE,` / `AMUSEMENT, ... 1827***`."""
    if "START" not in lines[marker].upper() or lines[marker].rstrip().endswith("***"):
        return marker
    for i in range(marker + 1, min(marker + 1 + _MAX_MARKER_CONTINUATION, end)):
        if not lines[i].strip():
            break
        if lines[i].rstrip().endswith("***"):
            return i
    return marker  # not a wrapped marker after all: keep the following lines


def _skip_preamble(lines: list[str], start: int, end: int) -> tuple[int, int]:
    """First line after the credit / edition-note paragraphs that follow the START marker,
    and how many such paragraphs there were. Blank lines after the last one are kept."""
    body_start = position = start
    dropped = 0
    while dropped < _MAX_PREAMBLE_PARAGRAPHS:
        while position < end and not lines[position].strip():
            position += 1
        paragraph_end = position
        while paragraph_end < end and lines[paragraph_end].strip():
            paragraph_end += 1
        paragraph = lines[position:paragraph_end]
        if not paragraph or not _is_preamble(paragraph):
            break
        body_start = position = paragraph_end
        dropped += 1
    return body_start, dropped


def _is_preamble(paragraph: list[str]) -> bool:
    if _CREDIT.match(paragraph[0]):
        return True
    return bool(_EDITION_NOTE_START.match(paragraph[0]) and _EDITION_NOTE_TOPIC.search(" ".join(paragraph)))


@dataclass(frozen=True)
class LineCloseness:
    """How close a stripped text is to a reference, over lines (a multiset: order is not scored).

    Both texts are compared after removing a leading BOM and trailing whitespace/newlines and
    splitting on any line break; nothing else is normalised.
    """

    output_lines: int
    reference_lines: int
    common_lines: int
    exact: bool

    @property
    def precision(self) -> float:
        return self.common_lines / self.output_lines if self.output_lines else float(self.reference_lines == 0)

    @property
    def recall(self) -> float:
        return self.common_lines / self.reference_lines if self.reference_lines else float(self.output_lines == 0)

    @property
    def f1(self) -> float:
        total = self.precision + self.recall
        return 2 * self.precision * self.recall / total if total else 0.0


def line_closeness(output: str, reference: str) -> LineCloseness:
    """Line-level precision / recall / F1 and exact match of `output` against `reference`."""
    out_lines = _comparable(output).splitlines()
    ref_lines = _comparable(reference).splitlines()
    common = sum((Counter(out_lines) & Counter(ref_lines)).values())
    return LineCloseness(len(out_lines), len(ref_lines), common, out_lines == ref_lines)


def _comparable(text: str) -> str:
    return text.lstrip("\ufeff").rstrip()
