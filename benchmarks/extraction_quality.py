"""Extraction quality of `extract_html` vs trafilatura's defaults, on two annotated page sets.

    .venv/bin/python benchmarks/extraction_quality.py [--fixtures ../shared/fixtures]

(a) trafilatura-eval-subset: each page has `with` snippets (must be in the main text) and
    `without` snippets (boilerplate that must not be). Scored as trafilatura's own evaluation
    does (tests/eval_common.py there): whitespace-normalised substring match, counts summed
    over pages, then precision, recall, F1.
(b) mozilla-readability test pages: the expected article HTML is the gold main text. Scored
    as bag-of-words overlap (lower-cased `\\w+` tokens, multiset intersection), summed over pages
    (micro precision / recall / F1), plus the mean per-page F1.

Every configuration sees the same `str` (the page bytes decoded once by `decode_html`), so
the figures compare extraction, not charset handling. Throughput is pages per second on one
core (one process, extraction only). All configurations run in the same process and run.
"""

from __future__ import annotations

import argparse
import gzip
import json
import re
import sys
import time
from collections import Counter
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import lxml.html
import trafilatura

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from opencorpus_dagster.text.html import ExtractionOptions, decode_html, extract_html  # noqa: E402

Extractor = Callable[[str, "str | None"], "str | None"]


def ours(options: ExtractionOptions) -> Extractor:
    def run(html: str, url: str | None) -> str | None:
        page = extract_html(html, url, options)
        return page.text if page else None

    return run


def trafilatura_plain(html: str, url: str | None) -> str | None:
    return trafilatura.extract(html)


def trafilatura_eval_canonical(html: str, url: str | None) -> str | None:
    # The settings trafilatura's own evaluation scores (tests/eval_common.py EXTRACT_OPTS).
    return trafilatura.extract(html, include_comments=False, include_tables=True, include_formatting=False)


CONFIGS: dict[str, Extractor] = {
    "ours: ExtractionOptions() [defaults]": ours(ExtractionOptions()),
    "trafilatura.extract(html) [library defaults]": trafilatura_plain,
    "trafilatura eval settings (no comments, tables)": trafilatura_eval_canonical,
    "ours, include_tables=False": ours(ExtractionOptions(include_tables=False)),
    "ours, favor_precision=False (balanced)": ours(ExtractionOptions(favor_precision=False)),
    "ours, favor_recall=True": ours(ExtractionOptions(favor_precision=False, favor_recall=True)),
    "ours, fast=True (no fallback extractors)": ours(ExtractionOptions(fast=True)),
}


@dataclass
class SnippetPage:
    html: str
    url: str | None
    with_: list[str]
    without: list[str]


@dataclass
class GoldPage:
    html: str
    url: str | None
    gold_tokens: Counter


def norm(text: str) -> str:
    return re.sub(r"\s+", " ", text).strip()


def tokens(text: str) -> Counter:
    return Counter(re.findall(r"\w+", text.lower()))


def load_snippet_pages(root: Path) -> list[SnippetPage]:
    evaldata = json.loads((root / "evaldata-subset.json").read_text(encoding="utf-8"))
    pages = []
    for key, item in sorted(evaldata.items()):
        path = root / "html" / item["file"]
        if not path.is_file():
            continue
        url = key if key.startswith("http") else None
        html = decode_html(gzip.decompress(path.read_bytes())).text
        pages.append(SnippetPage(html, url, item["with"], item["without"]))
    return pages


def load_gold_pages(root: Path) -> list[GoldPage]:
    pages = []
    for folder in sorted((root / "pages").iterdir()):
        source, expected = folder / "source.html.gz", folder / "expected.html.gz"
        if not (source.is_file() and expected.is_file()):
            continue
        html = decode_html(gzip.decompress(source.read_bytes())).text
        gold_html = decode_html(gzip.decompress(expected.read_bytes())).text
        gold_text = lxml.html.fromstring(gold_html).text_content() if gold_html.strip() else ""
        metadata = folder / "expected-metadata.json"
        url = None
        if metadata.is_file():
            url = json.loads(metadata.read_text(encoding="utf-8")).get("url") or None
        pages.append(GoldPage(html, url, tokens(gold_text)))
    return pages


def prf(tp: int, fp: int, fn: int) -> tuple[float, float, float]:
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    return precision, recall, f1


@dataclass
class Score:
    """Counts of one configuration over both page sets, and its extraction time."""

    tp: int = 0  # (a) snippet counts
    fp: int = 0
    fn: int = 0
    overlap: int = 0  # (b) token counts
    predicted: int = 0
    gold: int = 0
    page_f1: list[float] = field(default_factory=list)
    empty_a: int = 0
    empty_b: int = 0
    seconds: float = 0.0


def timed(extractor: Extractor, html: str, url: str | None, score: Score) -> str:
    started = time.perf_counter()
    result = extractor(html, url)
    score.seconds += time.perf_counter() - started
    return result or ""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--fixtures", type=Path, default=REPO / ".." / "shared" / "fixtures")
    args = parser.parse_args()
    root = args.fixtures.resolve() / "html_extraction"
    snippet_pages = load_snippet_pages(root / "trafilatura-eval-subset")
    gold_pages = load_gold_pages(root / "mozilla-readability-test-pages")
    print(
        f"trafilatura {trafilatura.__version__}; (a) trafilatura-eval-subset: {len(snippet_pages)} pages; "
        f"(b) mozilla-readability: {len(gold_pages)} pages"
    )
    for extractor in CONFIGS.values():  # warm up imports and caches so the first row is not penalised
        extractor(gold_pages[0].html, gold_pages[0].url)

    # Page-major: every configuration runs on a page before the next page, so a change of
    # machine load during the run weighs on all configurations alike (fair speed ratios).
    scores = {name: Score() for name in CONFIGS}
    for page in snippet_pages:
        for name, extractor in CONFIGS.items():
            score = scores[name]
            text = norm(timed(extractor, page.html, page.url, score))
            score.empty_a += not text
            hits = sum(1 for w in page.with_ if norm(w) in text)
            score.tp += hits
            score.fn += len(page.with_) - hits
            score.fp += sum(1 for w in page.without if norm(w) in text)
    for page in gold_pages:
        n_gold = sum(page.gold_tokens.values())
        for name, extractor in CONFIGS.items():
            score = scores[name]
            got = tokens(timed(extractor, page.html, page.url, score))
            score.empty_b += not got
            common = sum((got & page.gold_tokens).values())
            n_got = sum(got.values())
            score.overlap += common
            score.predicted += n_got
            score.gold += n_gold
            score.page_f1.append(prf(common, n_got - common, n_gold - common)[2])

    header = (
        f"{'configuration':48} | {'(a) P':>6} {'R':>6} {'F1':>6} {'empty':>5} | "
        f"{'(b) P':>6} {'R':>6} {'F1':>6} {'meanF1':>6} {'empty':>5} | {'pages/s':>7} {'speed':>6}"
    )
    print(header)
    print("-" * len(header))
    n_pages = len(snippet_pages) + len(gold_pages)
    baseline = None
    for name, score in scores.items():
        ap, ar, af = prf(score.tp, score.fp, score.fn)
        bp, br, bf = prf(score.overlap, score.predicted - score.overlap, score.gold - score.overlap)
        speed = n_pages / score.seconds
        baseline = baseline or speed
        print(
            f"{name:48} | {ap:6.3f} {ar:6.3f} {af:6.3f} {score.empty_a:5d} | {bp:6.3f} {br:6.3f} {bf:6.3f} "
            f"{sum(score.page_f1) / len(score.page_f1):6.3f} {score.empty_b:5d} | {speed:7.1f} {speed / baseline:5.2f}x"
        )
    print("pages/s: one core (single process), extraction only; speed: ratio to the first row, same run.")


if __name__ == "__main__":
    main()
