"""Accuracy of `identify_language` on the multilingual Wikipedia fixture dumps.

The wiki's language is the label. Pages: main namespace, not redirects, wikitext stripped with
mwparserfromhell's `strip_code`, normalised, at least 200 characters. Prints per-language and
overall accuracy for py3langid (our `identify_language`, bounded sample) and, when installed,
lingua-language-detector as the peer, with docs/s for each.

Run: .venv/bin/python benchmarks/language_accuracy.py
"""

from __future__ import annotations

import bz2
import re
import sys
import time
from collections import Counter
from pathlib import Path

import mwparserfromhell
from lxml import etree

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from opencorpus_dagster.text.language import identify_language, language_sample  # noqa: E402
from opencorpus_dagster.text.normalise import normalise_text  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures" / "mediawiki"
DUMPS = {
    "en": FIXTURES / "gensim" / "enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2",
    "bg": FIXTURES / "gensim" / "bgwiki-latest-pages-articles-shortened.xml.bz2",
    "hy": FIXTURES / "wikipedia-multilingual-2023" / "hywiki-20230501-sample.xml.bz2",
    "mr": FIXTURES / "wikipedia-multilingual-2023" / "mrwiki-20230501-sample.xml.bz2",
    "uk": FIXTURES / "wikipedia-multilingual-2023" / "ukwiki-20230501-sample.xml.bz2",
    "vi": FIXTURES / "wikipedia-multilingual-2023" / "viwiki-20230501-sample.xml.bz2",
}
MIN_CHARS = 200
_LEFTOVER_MARKUP = re.compile(r"\[\[|\]\]|\{\{|\}\}|'''?|<[^>]+>")


def wiki_pages(path: Path) -> list[str]:
    """Plain text of the main-namespace, non-redirect pages of one dump (no entity expansion)."""
    parser = etree.XMLParser(
        resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True, recover=False
    )
    with bz2.open(path) as f:
        root = etree.parse(f, parser).getroot()
    texts = []
    for page in root.iter("{*}page"):
        if page.findtext("{*}ns") not in (None, "0") or page.find("{*}redirect") is not None:
            continue
        wikitext = page.findtext("{*}revision/{*}text") or ""
        if wikitext.lstrip().lower().startswith("#redirect"):
            continue
        text = mwparserfromhell.parse(wikitext).strip_code(normalize=True, collapse=True)
        text = normalise_text(_LEFTOVER_MARKUP.sub(" ", text))
        if len(text) >= MIN_CHARS:
            texts.append(text)
    return texts


def lingua_identifier():
    """(name, classify(text) -> iso 639-1) for lingua, or None when it is not installed."""
    try:
        from lingua import LanguageDetectorBuilder
    except ImportError:
        return None
    detector = LanguageDetectorBuilder.from_all_languages().with_preloaded_language_models().build()

    def classify(text: str) -> str:
        # The same bounded sample as ours, so speed and accuracy compare like with like.
        language = detector.detect_language_of(language_sample(text))
        return language.iso_code_639_1.name.lower() if language else "zxx"

    return "lingua", classify


def evaluate(name, classify, corpus: dict[str, list[str]]) -> None:
    total = correct = 0
    start = time.perf_counter()
    lines = []
    for label, texts in corpus.items():
        predictions = [classify(text) for text in texts]
        hits = sum(p == label for p in predictions)
        total += len(texts)
        correct += hits
        wrong = Counter(p for p in predictions if p != label).most_common(3)
        lines.append(f"  {label}: {hits}/{len(texts)} = {hits / len(texts):.3f}  errors: {wrong}")
    elapsed = time.perf_counter() - start
    print(f"{name}: overall {correct}/{total} = {correct / total:.3f}  ({total / elapsed:.0f} docs/s)")
    print("\n".join(lines))


def main() -> None:
    t0 = time.perf_counter()
    corpus = {label: wiki_pages(path) for label, path in DUMPS.items()}
    print(f"pages per language: { {k: len(v) for k, v in corpus.items()} } "
          f"(parsed in {time.perf_counter() - t0:.1f}s)")
    identify_language("warm up: load the model before timing")
    evaluate("py3langid (identify_language)", lambda t: identify_language(t)[0], corpus)
    # Short texts: the first 100 characters, where identifiers differ most.
    short = {k: [t[:100] for t in v] for k, v in corpus.items()}
    evaluate("py3langid, first 100 chars", lambda t: identify_language(t)[0], short)
    peer = lingua_identifier()
    if peer is None:
        print("lingua-language-detector not installed: no peer measured")
        return
    name, classify = peer
    evaluate(name, classify, corpus)
    evaluate(f"{name}, first 100 chars", classify, short)


if __name__ == "__main__":
    main()
