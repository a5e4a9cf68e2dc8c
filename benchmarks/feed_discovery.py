"""Discovery cost on a Project Gutenberg RDF feed of realistic size.

Run: .venv/bin/python benchmarks/feed_discovery.py [--records 75000]

Builds a feed laid out like PG's `rdf-files.tar.bz2` (`cache/epub/<id>/pg<id>.rdf`, bzip2) from
the six real RDF records of the fixtures, each copied under new ebook ids (the `rdf:about` and
member name rewritten), then measures, in one process, on one core:

1. first listing: `discover_and_record` of a `catalog_feed` source (stream, parse every record,
   batch, record the listing);
2. an unchanged tick: the same call again (revalidate the feed's sha256, reuse the record);
3. the peer, the floor any reader of this feed pays: bzip2-decompress the feed and walk its
   tar members (`tarfile` stream mode, each member read) without parsing anything.

Prints seconds, records/s, and ratios to the peer. Dagster's default sensor timeout is 60 s
(`DAGSTER_SENSOR_GRPC_TIMEOUT_SECONDS`); the real feed has about 75,000 records.
"""

from __future__ import annotations

import argparse
import bz2
import re
import sys
import tarfile
import tempfile
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))
FIXTURE_RDF = (ROOT / ".." / "shared" / "fixtures" / "gutenberg" / "c-w-gutenberg" / "rdf" / "cache" / "epub").resolve()
FEED_PATH = "www.gutenberg.org/cache/epub/feeds/rdf-files.tar.bz2"


def build_feed(records: int, destination: Path) -> int:
    """Write a feed of `records` members to `destination`; returns its size in bytes."""
    templates = []
    for path in sorted(FIXTURE_RDF.glob("*/pg*.rdf")):
        book = path.parent.name
        templates.append(re.sub(rf'"ebooks/{book}"', '"ebooks/{ID}"', path.read_text(encoding="utf-8")))
    destination.parent.mkdir(parents=True, exist_ok=True)
    with tarfile.open(destination, mode="w:bz2") as tar:
        for book in range(1, records + 1):
            data = templates[book % len(templates)].replace("{ID}", str(book)).encode()
            info = tarfile.TarInfo(f"cache/epub/{book}/pg{book}.rdf")
            info.size = len(data)
            tar.addfile(info, _Reader(data))
    return destination.stat().st_size


class _Reader:
    def __init__(self, data: bytes):
        self._data, self._offset = data, 0

    def read(self, size: int = -1) -> bytes:
        end = len(self._data) if size < 0 else self._offset + size
        chunk, self._offset = self._data[self._offset : end], min(end, len(self._data))
        return chunk


def walk_tar(path: Path) -> int:
    members = 0
    with bz2.open(path, "rb") as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
        for member in tar:
            if member.isfile():
                tar.extractfile(member).read()
                members += 1
    return members


def timed(function, *args):
    start_wall, start_cpu = time.perf_counter(), time.process_time()
    result = function(*args)
    return result, time.perf_counter() - start_wall, time.process_time() - start_cpu


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--records", type=int, default=75_000)
    args = parser.parse_args()
    if not FIXTURE_RDF.is_dir():
        sys.exit(f"fixtures not found at {FIXTURE_RDF}")

    from opencorpus_dagster.catalog import load_source_file
    from opencorpus_dagster.stages.discovery import discover_and_record
    from opencorpus_dagster.state.home import DataHome
    from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

    with tempfile.TemporaryDirectory(prefix="opencorpus-feed-") as folder:
        work = Path(folder)
        print(f"building a feed of {args.records:,} records ...", flush=True)
        size = build_feed(args.records, work / "mirror" / FEED_PATH)
        (work / "catalog").mkdir()
        (work / "catalog" / "books.yaml").write_text(
            f"name: books\nkind: gutenberg\noptions:\n  catalog_feed: https://{FEED_PATH}\n  languages: [en]\n"
        )
        source = load_source_file(work / "catalog" / "books.yaml")
        fetcher = Fetcher(work / "cache", [Mirror.parse(str(work / "mirror"))])
        home = DataHome(work / "home")

        members, peer_wall, peer_cpu = timed(walk_tar, work / "mirror" / FEED_PATH)
        units, first_wall, first_cpu = timed(discover_and_record, source, fetcher, home)
        again, tick_wall, tick_cpu = timed(discover_and_record, source, fetcher, home)
        assert again == units and members == args.records
        books = sum(len(unit.extra["books"]) for unit in units)

        print(f"feed: {members:,} records, {size / 1e6:.1f} MB bz2; listed {books:,} books in {len(units)} batches")
        print(f"{'':34}{'wall s':>9}{'cpu s':>9}{'records/s':>12}{'x peer cpu':>12}")
        for name, wall, cpu in (
            ("peer: bunzip2 + walk tar", peer_wall, peer_cpu),
            ("first listing (parse all)", first_wall, first_cpu),
            ("unchanged tick (revalidate)", tick_wall, tick_cpu),
        ):
            print(f"{name:34}{wall:9.2f}{cpu:9.2f}{members / wall:12,.0f}{cpu / peer_cpu:12.2f}")


if __name__ == "__main__":
    main()
