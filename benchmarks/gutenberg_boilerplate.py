"""How close `strip_gutenberg_boilerplate` is to the c-w/gutenberg ground truth, vs a naive peer.

    .venv/bin/python benchmarks/gutenberg_boilerplate.py [FIXTURES_DIR]

For each of the 15 fixture books (`gutenberg/c-w-gutenberg/raw-texts/*.txt.gz`) it strips the
raw text and compares it with `clean-texts/` (the c-w/gutenberg library's `strip_headers`
output) at line level: precision (share of output lines that are in the clean text), recall
(share of clean lines kept), F1, and exact match. Only a leading BOM and trailing
whitespace/newlines are normalised before comparing. The peer, in the same run, is the naive
stripper that keeps only what lies between the first `*** START` line and the first `*** END`
line, so the gap between the two is what the extra rules (wrapped markers, credit paragraphs,
edition notes, the "End of the Project Gutenberg EBook" line) buy; the last columns say which
of those rules fired on each book. Strip time per stripper is printed too.
"""

from __future__ import annotations

import gzip
import re
import sys
import time
from collections.abc import Callable
from pathlib import Path

from opencorpus_dagster.text.gutenberg_boilerplate import (
    LineCloseness,
    line_closeness,
    locate_gutenberg_body,
    strip_gutenberg_boilerplate,
)

DEFAULT_FIXTURES = Path(__file__).resolve().parent.parent.parent / "shared" / "fixtures"

_NAIVE_START = re.compile(r"^\s*\*{3}\s*START")
_NAIVE_END = re.compile(r"^\s*\*{3}\s*END")


def naive_strip(text: str) -> str:
    """The peer: keep the lines strictly between the first `*** START` and first `*** END` lines."""
    lines = text.splitlines()
    start = next((i for i, line in enumerate(lines) if _NAIVE_START.match(line)), -1)
    end = next((i for i in range(start + 1, len(lines)) if _NAIVE_END.match(lines[i])), len(lines))
    return "\n".join(lines[start + 1 : end])


def _measure(strip: Callable[[str], str], raw: str, clean: str) -> tuple[LineCloseness, float]:
    began = time.perf_counter()
    output = strip(raw)
    return line_closeness(output, clean), time.perf_counter() - began


def main(fixtures: Path) -> None:
    root = fixtures / "gutenberg" / "c-w-gutenberg"
    books = sorted(root.glob("raw-texts/*.txt.gz"), key=lambda p: int(p.name.split(".")[0]))
    peers = {"ours": strip_gutenberg_boilerplate, "naive": naive_strip}
    totals = {name: [0, 0, 0, 0, 0.0] for name in peers}  # output, reference, common, exact, seconds
    fired = {"wrapped START marker": 0, "credit/note paragraphs": 0, "'End of the PG' footer line": 0}
    print(
        f"{'book':>6} | {'ours P':>7} {'R':>7} {'F1':>7} {'exact':>5} | {'naive P':>7} {'R':>7} {'F1':>7} {'exact':>5}"
        " | wrapped preamble footer"
    )
    for path in books:
        raw = gzip.decompress(path.read_bytes()).decode("utf-8-sig")
        clean = gzip.decompress((root / "clean-texts" / path.name).read_bytes()).decode("utf-8-sig")
        cells = []
        for name, strip in peers.items():
            score, seconds = _measure(strip, raw, clean)
            total = totals[name]
            total[0] += score.output_lines
            total[1] += score.reference_lines
            total[2] += score.common_lines
            total[3] += score.exact
            total[4] += seconds
            exact = "yes" if score.exact else "no"
            cells.append(f"{score.precision:7.4f} {score.recall:7.4f} {score.f1:7.4f} {exact:>5}")
        body = locate_gutenberg_body(raw)
        end_of_line = bool(body.footer_marker and not body.footer_marker.startswith("*"))
        fired["wrapped START marker"] += body.wrapped_marker_lines > 0
        fired["credit/note paragraphs"] += body.preamble_paragraphs > 0
        fired["'End of the PG' footer line"] += end_of_line
        footer = "End of" if end_of_line else "*** END"
        rules = f"{body.wrapped_marker_lines:>7} {body.preamble_paragraphs:>8} {footer:>7}"
        print(f"{path.name.split('.')[0]:>6} | " + " | ".join(cells) + " | " + rules)
    print()
    for name, (output, reference, common, exact, seconds) in totals.items():
        overall = LineCloseness(output, reference, common, exact == len(books))
        print(
            f"{name:>5}: micro P={overall.precision:.4f} R={overall.recall:.4f} F1={overall.f1:.4f}"
            f"  exact {exact}/{len(books)}  extra lines {output - common}  missing lines {reference - common}"
            f"  {seconds * 1000:.1f} ms total"
        )
    print("books each extra rule fired on: " + ", ".join(f"{rule} {n}/{len(books)}" for rule, n in fired.items()))
    ours, naive = totals["ours"], totals["naive"]
    print(
        f"ratio ours/naive: extra lines {(ours[0] - ours[2]) / max(naive[0] - naive[2], 1):.3f}, "
        f"exact matches {ours[3]}:{naive[3]}, time {ours[4] / naive[4]:.2f}x"
    )


if __name__ == "__main__":
    main(Path(sys.argv[1]) if len(sys.argv) > 1 else DEFAULT_FIXTURES)
