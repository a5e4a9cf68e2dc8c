"""Keep-rate per language of the documents stage on the multilingual fixture wikis and web archives.

Every fixture source is read by its real connector (raw stage: `ingest_partition`) and run
through the real documents steps (`steps_for`: page rights, licence gate, extraction, normalise,
language, quality, PII) with the defaults of its kind of source, exactly as `process_partition`
runs them, but without writing the documents file: per record we keep the language, the outcome
and the rule that dropped it. Wikis: the language is the wiki's (the language step may still drop
a page it reads as another language); web archives: the language the language step identified.

Sources: the fixture wikis (encyclopedia), the fixture WARCs (web), the 130 Mozilla Readability
test pages written into a WARC here (web, in a dozen languages), the 15 Gutenberg books (book)
and the two Stack Exchange dumps (forum). Web pages and posts are declared CC BY 4.0 for the
benchmark, so that the licence gate does not hide what the quality rules do.

Columns: records that reached the documents stage, kept, keep-rate, the gap to English's keep-rate
on encyclopedia articles (goal: within 10 points), and the rules that dropped the rest (rule n).
Then the per-kind defaults table (text/quality_defaults.py).

Run: .venv/bin/python benchmarks/multilingual_quality.py
"""

from __future__ import annotations

import gzip
import io
import sys
import tempfile
import textwrap
from collections import Counter, defaultdict
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
sys.path.insert(0, str(ROOT / "tests"))

from fixture_mirror import build_fixture_mirror  # noqa: E402
from warcio.statusandheaders import StatusAndHeaders  # noqa: E402
from warcio.warcwriter import WARCWriter  # noqa: E402

from opencorpus_dagster.catalog import load_source_file  # noqa: E402
from opencorpus_dagster.lineage.store import LineageStore  # noqa: E402
from opencorpus_dagster.stages.documents import documents_from_raw, run_steps, steps_for  # noqa: E402
from opencorpus_dagster.stages.ingest import ingest_partition  # noqa: E402
from opencorpus_dagster.state.home import DataHome  # noqa: E402
from opencorpus_dagster.text.quality_defaults import defaults_table  # noqa: E402
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror  # noqa: E402

FIXTURES = ROOT.parent / "shared" / "fixtures"
READABILITY_URL = "https://readability.opencorpus.invalid/pages.warc.gz"
SE_SITES = ("coffee.stackexchange.com-2015-03", "beer.stackexchange.com-2017-03")

WIKIS = {
    "en": "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles1.xml-p000000010p000030302.bz2",
    "bg": "https://dumps.wikimedia.org/bgwiki/latest/bgwiki-latest-pages-articles.xml.bz2",
    **{
        lang: f"https://dumps.wikimedia.org/{lang}wiki/20230501/{lang}wiki-20230501-pages-articles.xml.bz2"
        for lang in ("hy", "mr", "uk", "vi")
    },
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


def table(rows: list[tuple[str, str, Counter]], english: float) -> list[str]:
    lines = [f"{'source':<9} {'lang':<6} {'docs':>5} {'kept':>5} {'keep%':>6} {'vs en':>6}  dropped by"]
    for source, lang, counts in rows:
        total = sum(counts.values())
        kept = counts["kept"]
        rate = 100 * kept / total if total else 0.0
        gap = f"{rate - english:+.0f}" if source == "wiki" else ""
        drops = ", ".join(f"{rule} {n}" for rule, n in counts.most_common() if rule != "kept")
        lines.append(f"{source:<9} {lang:<6} {total:>5} {kept:>5} {rate:>6.1f} {gap:>6}  {drops}")
    return lines


def readability_warc(path: Path) -> str:
    """The Mozilla Readability test pages as one WARC of HTML responses; returns its URL."""
    pages = sorted((FIXTURES / "html_extraction" / "mozilla-readability-test-pages" / "pages").iterdir())
    with open(path, "wb") as handle:
        writer = WARCWriter(handle, gzip=True)
        for page in pages:
            body = gzip.decompress((page / "source.html.gz").read_bytes())
            http = StatusAndHeaders("200 OK", [("Content-Type", "text/html; charset=utf-8")], protocol="HTTP/1.1")
            record = writer.create_warc_record(
                f"https://{page.name}.readability.opencorpus.invalid/", "response",
                payload=io.BytesIO(body), http_headers=http,
                warc_headers_dict={"WARC-Date": "2024-01-01T00:00:00Z"},
            )
            writer.write_record(record)
    return READABILITY_URL


def measure(work: Path, mirror: Path) -> list[str]:
    catalog = work / "catalog"
    catalog.mkdir()
    home = DataHome(work / "home")
    store = LineageStore.at(home.lineage_db)
    fetcher = Fetcher(home.downloads, [Mirror(base=str(mirror))])
    rows: list[tuple[str, str, Counter]] = []
    for lang, url in WIKIS.items():
        entry = catalog_entry(
            catalog, f"{lang}wiki",
            f"""
            kind: mediawiki
            options: {{dumps: [{url}]}}
            filters: {{language: {{allowed: [{lang}]}}}}
            """,
        )
        rows.append(("wiki", lang, run_source(entry, home, store, fetcher, language_of=lang)[lang]))
    declared = 'license: {spdx: CC-BY-4.0, evidence: "benchmark: quality only"}'
    web_dir = mirror / "readability.opencorpus.invalid"
    web_dir.mkdir()
    readability_warc(web_dir / "pages.warc.gz")
    for name, body in (
        ("web", f"kind: warc\noptions: {{warcs: [{', '.join(WARCS)}]}}\n{declared}\n"),
        ("readability", f"kind: warc\noptions: {{warcs: [{READABILITY_URL}]}}\n{declared}\n"),
    ):
        for lang, counts in sorted(run_source(catalog_entry(catalog, name, body), home, store, fetcher).items()):
            rows.append((name, lang, counts))
    gutenberg = (ROOT / "assets" / "gutenberg.yaml").read_text().replace("name: gutenberg\n", "")
    entry = catalog_entry(catalog, "gutenberg", gutenberg + "license: {spdx: LicenseRef-PublicDomain, evidence: PG}\n")
    rows += [("book", lang, c) for lang, c in sorted(run_source(entry, home, store, fetcher).items())]
    sites = ", ".join(
        f"{{posts: https://fixtures.opencorpus.invalid/stackexchange/{site}/Posts.xml, site_url: https://{site.split('-')[0]}}}"
        for site in SE_SITES
    )
    entry = catalog_entry(catalog, "forum", f"kind: stackexchange\noptions: {{sites: [{sites}]}}\n")
    rows += [("forum", lang, c) for lang, c in sorted(run_source(entry, home, store, fetcher).items())]
    english = next(100 * c["kept"] / sum(c.values()) for s, lang, c in rows if s == "wiki" and lang == "en")
    return table(rows, english)


def kind_defaults() -> list[str]:
    lines = ["", "Per-kind defaults (published value -> the kind's value; why):"]
    for row in defaults_table():
        for kind, (value, why) in sorted(row["kinds"].items()):
            lines.append(f"  {row['field']} = {row['published']} ({row['source']}) -> {kind}: {value}; {why}")
    return lines


def main() -> None:
    with tempfile.TemporaryDirectory() as tmp:
        work = Path(tmp)
        mirror = build_fixture_mirror(work / "mirror")
        print("Keep-rate per language, documents stage (defaults of each source's kind):")
        print("\n".join(measure(work, mirror)))
        print("\n".join(kind_defaults()))


if __name__ == "__main__":
    main()
