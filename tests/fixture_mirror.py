"""Lay out ../shared/fixtures as an upstream mirror (`<host>/<path>`), with symlinks.

The default catalog names real upstream URLs; this table says which fixture file stands in for
each, so `opencorpus build --mirror DIR` runs the same catalog offline. Fixture files that have
no real upstream address (WARC samples from other projects' test suites) live under the
reserved host `fixtures.opencorpus.invalid` (RFC 2606: `.invalid` never resolves).

    python tests/fixture_mirror.py /tmp/opencorpus-mirror
"""

from __future__ import annotations

import sys
from pathlib import Path

FIXTURES = (Path(__file__).resolve().parent.parent / ".." / "shared" / "fixtures").resolve()

GUTENBERG_BOOKS = (1013, 2701, 10026, 10028, 10076, 10089, 10509, 33956, 35190, 35589, 36261, 38003, 38507, 39397, 40815)
GUTENBERG_RDF_BOOKS = (5, 2701, 14287, 23962, 30929, 50405)
WIKI_LANGUAGES = ("hy", "mr", "uk", "vi")

ENWIKI_DUMP = "dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles1.xml-p000000010p000030302.bz2"
ENWIKI_TABLES_DUMP = "dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles2.xml-p000030304p000088444.bz2"
FIXTURE_HOST = "fixtures.opencorpus.invalid"


def mirror_table() -> dict[str, str]:
    """Mirror path (`<host>/<path>`) -> fixture path relative to ../shared/fixtures."""
    table: dict[str, str] = {}
    for book in GUTENBERG_BOOKS:
        table[f"www.gutenberg.org/cache/epub/{book}/pg{book}.txt"] = f"gutenberg/c-w-gutenberg/raw-texts/{book}.txt.gz"
    for book in GUTENBERG_RDF_BOOKS:
        table[f"www.gutenberg.org/cache/epub/{book}/pg{book}.rdf"] = f"gutenberg/c-w-gutenberg/rdf/cache/epub/{book}/pg{book}.rdf"
    table["www.gutenberg.org/cache/epub/feeds/rdf-files.tar.bz2"] = "gutenberg/c-w-gutenberg/rdf/sample-rdf-files.tar.bz2"
    # The cleaned texts, as a second "source" of the same books (near-dup tests).
    for book in GUTENBERG_BOOKS:
        table[f"{FIXTURE_HOST}/gutenberg-clean/{book}.txt"] = f"gutenberg/c-w-gutenberg/clean-texts/{book}.txt.gz"

    table[ENWIKI_DUMP] = "mediawiki/gensim/enwiki-latest-pages-articles1.xml-p000000010p000030302-shortened.bz2"
    table[ENWIKI_TABLES_DUMP] = "mediawiki/gensim/enwiki-table-markup.xml.bz2"
    table["dumps.wikimedia.org/bgwiki/latest/bgwiki-latest-pages-articles.xml.bz2"] = (
        "mediawiki/gensim/bgwiki-latest-pages-articles-shortened.xml.bz2"
    )
    for lang in WIKI_LANGUAGES:
        table[f"dumps.wikimedia.org/{lang}wiki/20230501/{lang}wiki-20230501-pages-articles.xml.bz2"] = (
            f"mediawiki/wikipedia-multilingual-2023/{lang}wiki-20230501-sample.xml.bz2"
        )
    refinery = "mediawiki/history-samples-wikimedia-refinery"
    table[f"{FIXTURE_HOST}/wikimedia-refinery/simplewiki-pages-meta-history.xml"] = (
        f"{refinery}/MediawikiDumperOutputTest.Simplewiki.Sample.xml"
    )
    table[f"{FIXTURE_HOST}/wikimedia-refinery/commonswiki-pages-meta-history.xml"] = (
        f"{refinery}/MediawikiDumperOutputTest.Commonswiki.Sample.xml"
    )

    for site in ("coffee.stackexchange.com-2015-03", "beer.stackexchange.com-2017-03"):
        table[f"{FIXTURE_HOST}/stackexchange/{site}/Posts.xml"] = f"stackexchange/{site}/Posts.xml.gz"

    table["data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.gz"] = (
        "webarchive/commoncrawl-whirlwind/whirlwind.warc.gz"
    )
    table["data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.wet.gz"] = (
        "webarchive/commoncrawl-whirlwind/whirlwind.warc.wet.gz"
    )
    for name in ("sample-0000.warc.gz", "sample-0001.warc.gz"):
        table[f"{FIXTURE_HOST}/dolma/{name}"] = f"webarchive/dolma/{name}"
    for name in ("example.warc.gz", "example-iana.org-chunked.warc", "example-resource.warc.gz", "post-test.warc.gz", "example.arc.gz"):
        table[f"{FIXTURE_HOST}/warcio/{name}"] = f"webarchive/warcio/{name}"
    table[f"{FIXTURE_HOST}/cc_net/sample.warc.wet.txt"] = "webarchive/cc_net-semisynthetic/sample.warc.wet.txt"
    return table


# A Common Crawl style listing (`warc.paths`): one path per line, relative to the crawl host.
LISTINGS = {
    "data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths": [
        "crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.gz",
    ],
}


def build_fixture_mirror(destination: Path, fixtures: Path = FIXTURES) -> Path:
    """Create `destination/<host>/<path>` symlinks to the fixtures; returns `destination`.

    Raises FileNotFoundError naming the first fixture that is missing.
    """
    destination = Path(destination)
    for mirror_path, fixture_path in mirror_table().items():
        source = fixtures / fixture_path
        if not source.exists():
            raise FileNotFoundError(f"fixture {source} is missing (needed for mirror path {mirror_path})")
        link = destination / mirror_path
        link.parent.mkdir(parents=True, exist_ok=True)
        if link.is_symlink() or link.exists():
            link.unlink()
        link.symlink_to(source)
    for mirror_path, lines in LISTINGS.items():
        listing = destination / mirror_path
        listing.parent.mkdir(parents=True, exist_ok=True)
        listing.write_text("".join(line + "\n" for line in lines))
    return destination


if __name__ == "__main__":
    if len(sys.argv) != 2:
        sys.exit("usage: python tests/fixture_mirror.py DESTINATION")
    print(build_fixture_mirror(Path(sys.argv[1])))
