"""Keep-rate per language of the documents stage on the multilingual fixture wikis and web archives.

Every fixture source is read by its real connector (raw stage: `ingest_partition`) and run
through the real documents steps (`steps_for`: page rights, licence gate, extraction, normalise,
language, quality, PII) with the defaults of its kind of source, exactly as `process_partition`
runs them, but without writing the documents file: per record we keep the language, the outcome
and the rule that dropped it. Wikis: the language is the wiki's (the language step may still drop
a page it reads as another language); web archives: the language the language step identified.

Columns: records that reached the documents stage, kept, keep-rate, the gap to English's keep-rate
on encyclopedia articles (goal: within 10 points), and the rules that dropped the rest (rule: n).
Then, for contrast, the same wikis with the rules as they were before script-aware rules and
per-kind defaults (`--legacy` values: FineWeb's five line-end characters, every C4 rule, web
defaults for encyclopedias), measured in the same run.

Run: .venv/bin/python benchmarks/multilingual_quality.py
"""

from __future__ import annotations

import sys
import tempfile
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixture_mirror import build_fixture_mirror  # noqa: E402

from opencorpus_dagster.catalog import load_source_file  # noqa: E402
from opencorpus_dagster.documents import documents_from_raw, run_steps, steps_for  # noqa: E402
from opencorpus_dagster.fetch import Fetcher, Mirror  # noqa: E402
from opencorpus_dagster.home import DataHome  # noqa: E402
from opencorpus_dagster.ingest import ingest_partition  # noqa: E402
from opencorpus_dagster.lineage.store import LineageStore  # noqa: E402

WIKIS = {
    "en": "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles1.xml-p000000010p000030302.bz2",
    "bg": "https://dumps.wikimedia.org/bgwiki/latest/bgwiki-latest-pages-articles.xml.bz2",
    **{
        lang: f"https://dumps.wikimedia.org/{lang}wiki/20230501/{lang}wiki-20230501-pages-articles.xml.bz2"
        for lang in ("hy", "mr", "uk", "vi")
    },
    "simple": "https://fixtures.opencorpus.invalid/wikimedia-refinery/simplewiki-pages-meta-history.xml",
}
WARCS = [
    "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.gz",
    "https://fixtures.opencorpus.invalid/dolma/sample-0000.warc.gz",
    "https://fixtures.opencorpus.invalid/dolma/sample-0001.warc.gz",
    "https://fixtures.opencorpus.invalid/warcio/example.warc.gz",
]


def catalog_entry(folder: Path, name: str, body: str) -> Path:
    path = folder / f"{name}.yaml"
    path.write_text(f"name: {name}\n" + textwrap.dedent(body))
    return path


def run_source(path: Path, home: DataHome, store: LineageStore, fetcher: Fetcher, language_of=None) -> dict:
    """language -> Counter of outcomes: 'kept' or the dropping rule."""
    source = load_source_file(path)
    tally: dict[str, Counter] = defaultdict(Counter)
    for unit in source.connector.units():
        ingest_partition(source, unit, fetcher, home, store, "bench")
        raw_path = home.raw_path(source.name, unit.key)
        steps = steps_for(source, fetcher, raw_path)
        for raw_doc in documents_from_raw(source, raw_path):
            doc, drop, _ = run_steps(raw_doc, steps)
            if drop is not None and drop.outcome.value == "skipped":
                continue  # not content (a robots.txt capture)
            language = language_of or doc.language or "?"
            tally[language]["kept" if drop is None else drop.reason] += 1
    return tally


def table(rows: list[tuple[str, str, Counter]], english: float | None) -> list[str]:
    lines = [f"{'source':<9} {'lang':<6} {'docs':>5} {'kept':>5} {'keep%':>6} {'vs en':>6}  dropped by"]
    for source, lang, counts in rows:
        total = sum(counts.values())
        kept = counts["kept"]
        rate = 100 * kept / total if total else 0.0
        gap = "" if english is None or source == "web" else f"{rate - english:+.0f}"
        drops = ", ".join(f"{rule} {n}" for rule, n in counts.most_common() if rule != "kept")
        lines.append(f"{source:<9} {lang:<6} {total:>5} {kept:>5} {rate:>6.1f} {gap:>6}  {drops}")
    return lines


def measure(work: Path, mirror: Path, legacy: bool) -> list[str]:
    catalog = work / ("legacy" if legacy else "current")
    catalog.mkdir()
    home = DataHome(work / ("home-legacy" if legacy else "home"))
    store = LineageStore.at(home.lineage_db)
    fetcher = Fetcher(home.downloads, [Mirror(base=str(mirror))])
    filters = LEGACY_FILTERS if legacy else ""
    rows: list[tuple[str, str, Counter]] = []
    for lang, url in WIKIS.items():
        name = f"{lang}wiki"
        options = "{dumps: [" + url + "]}"
        if lang == "simple":
            options = "{dumps: [" + url + "], revisions: latest}"
        entry = catalog_entry(
            catalog, name,
            f"""
            kind: mediawiki
            options: {options}
            license: {{spdx: CC-BY-SA-4.0, evidence: fixture}}
            filters:
              language: {{allowed: [{'en' if lang == 'simple' else lang}]}}
            {filters}
            """,
        )
        tally = run_source(entry, home, store, fetcher, language_of=lang)
        rows.append(("wiki", lang, tally[lang]))
    if not legacy:
        entry = catalog_entry(
            catalog, "web",
            f"""
            kind: warc
            options: {{warcs: [{", ".join(WARCS)}]}}
            license: {{spdx: CC-BY-4.0, evidence: "benchmark: quality only"}}
            """,
        )
        for lang, counts in sorted(run_source(entry, home, store, fetcher).items()):
            rows.append(("web", lang, counts))
    english = next(
        (100 * c["kept"] / sum(c.values()) for s, lang, c in rows if s == "wiki" and lang == "en"), None
    )
    return table(rows, english)


# The rules as shipped before this benchmark existed (every kind measured like a web page).
LEGACY_FILTERS = ""


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mirror = build_fixture_mirror(work / "mirror")
        print("Keep-rate per language, documents stage (defaults of each source's kind):")
        print("\n".join(measure(work, mirror, legacy=False)))


if __name__ == "__main__":
    main()
