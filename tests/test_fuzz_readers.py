"""Fuzz every connector's reader with mutated real fixture files.

A reader may only answer with records and decisions, or its documented failure (`UnreadableInput`
naming the file; `ValueError` for a Gutenberg RDF record, `NoStartMarker` for a book without its
START marker, `LimitExceeded` for a book over its limit). Anything else (KeyError, IndexError,
UnicodeError, lxml, zlib, EOFError, struct.error, ...) is a bug in the reader.

Mutations: byte flips, truncation, insertion, duplicated chunks, applied to the decompressed
bytes (then written plain, gzip or bzip2) or to the compressed bytes themselves. Hypothesis runs
derandomized (the same examples on every run) with no example database (nothing is written into
the repository), a bounded number of examples per reader: the whole file takes well under a minute.
"""

from __future__ import annotations

import bz2
import functools
import gzip
import resource
import tarfile
from pathlib import Path

import pytest
from conftest import require_fixture
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from opencorpus_dagster.connectors.base import UnreadableInput
from opencorpus_dagster.connectors.gutenberg import _catalog_from_rdf, _decode_text, read_catalog_feed
from opencorpus_dagster.connectors.mediawiki import read_dump
from opencorpus_dagster.connectors.stackexchange import StackExchangeOptions, _assemble, _load_posts, _PostStore
from opencorpus_dagster.connectors.textfiles import TextFilesConnector
from opencorpus_dagster.connectors.warc import read_warc_file
from opencorpus_dagster.records import Decision, RawRecord
from opencorpus_dagster.text.gutenberg_boilerplate import NoStartMarker, locate_gutenberg_body
from opencorpus_dagster.upstream.compression import read_decompressed_bytes
from opencorpus_dagster.upstream.fetch import FetchedFile, Fetcher, Mirror
from opencorpus_dagster.upstream.limits import MIB, InputLimits, LimitExceeded

FUZZ = settings(
    max_examples=120,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
# Small limits, so a mutation that makes a record or file "huge" meets them too.
LIMITS = InputLimits(record_bytes="2MiB", line_bytes="64KiB", file_bytes="64MiB")
# The whole fuzz run must stay far below what an unbounded reader would take on a duplicated chunk.
PEAK_RSS = 1024 * MIB


def _decompressed(relative: str, cut: int | None = None) -> bytes:
    data = read_decompressed_bytes(require_fixture(relative))
    return data[:cut] if cut else data


@st.composite
def mutated(draw, original: bytes) -> tuple[bytes, str]:
    """(file bytes, how they were made): the original with 1-4 mutations, compressed or not."""
    data = bytearray(original)
    layer = draw(st.sampled_from(["plain", "gzip", "bz2", "compressed-then-mutated"]))
    if layer == "compressed-then-mutated":
        data = bytearray(gzip.compress(bytes(data), mtime=0) if draw(st.booleans()) else bz2.compress(bytes(data)))
    for _ in range(draw(st.integers(1, 4))):
        size = len(data)
        position = draw(st.integers(0, max(size - 1, 0)))
        kind = draw(st.sampled_from(["flip", "truncate", "insert", "duplicate"]))
        if kind == "flip" and size:
            data[position] ^= draw(st.integers(1, 255))
        elif kind == "truncate":
            del data[position:]
        elif kind == "insert":
            data[position:position] = draw(
                st.one_of(st.binary(min_size=1, max_size=64), st.sampled_from([b"<", b"&", b"\r\n", b"\x00", b"\xff\xfe"]))
            )
        elif kind == "duplicate" and size:
            length = draw(st.integers(1, min(size, 4096)))
            start = draw(st.integers(0, max(size - length, 0)))
            data[position:position] = data[start : start + length] * draw(st.integers(1, 64))
    data = bytes(data)
    if layer == "gzip":
        data = gzip.compress(data, mtime=0)
    elif layer == "bz2":
        data = bz2.compress(data)
    return data, layer


def _write(tmp_path_factory, data: bytes, name: str) -> Path:
    path = tmp_path_factory.mktemp("fuzz") / name
    path.write_bytes(data)
    return path


def _fetched(path: Path, url: str) -> FetchedFile:
    return FetchedFile(url, path, "0" * 64, path.stat().st_size, str(path), "2024-01-01T00:00:00Z")


def _drain(items) -> int:
    count = 0
    for item in items:
        assert isinstance(item, RawRecord | Decision), type(item)
        count += 1
    return count


@pytest.fixture(scope="module", autouse=True)
def _memory_stays_bounded():
    # Peak RSS only grows: in a whole-suite run, tests before these may have set a higher peak,
    # which then bounds the fuzzing instead (it must not raise it).
    before = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    yield
    peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(f"fuzz: peak RSS of the test process {peak / MIB:.0f} MiB (before the fuzzing: {before / MIB:.0f} MiB)")
    assert peak <= max(before, PEAK_RSS)


@functools.cache
def gutenberg_book():
    return _decompressed("gutenberg/c-w-gutenberg/raw-texts/10026.txt.gz")


@FUZZ
@given(data=st.data())
def test_gutenberg_text(tmp_path_factory, data):
    content, _ = data.draw(mutated(gutenberg_book()))
    path = _write(tmp_path_factory, content, "pg10026.txt")
    try:
        text, _ = _decode_text(_fetched(path, "https://www.gutenberg.org/cache/epub/10026/pg10026.txt"), LIMITS)
        locate_gutenberg_body(text)
    except (UnreadableInput, LimitExceeded, NoStartMarker):
        pass


@functools.cache
def gutenberg_rdf():
    return require_fixture("gutenberg/c-w-gutenberg/rdf/cache/epub/2701/pg2701.rdf").read_bytes()


@FUZZ
@given(data=st.data())
def test_gutenberg_rdf(tmp_path_factory, data):
    content, _ = data.draw(mutated(gutenberg_rdf()))
    path = _write(tmp_path_factory, content, "pg2701.rdf")
    try:
        _catalog_from_rdf(_fetched(path, "https://www.gutenberg.org/cache/epub/2701/pg2701.rdf"), 2701, LIMITS)
    except ValueError:  # documented: the book is quarantined as gutenberg.bad_rdf (or limits.*)
        pass


@functools.cache
def gutenberg_feed():
    return _decompressed("gutenberg/c-w-gutenberg/rdf/sample-rdf-files.tar.bz2")


@FUZZ
@given(data=st.data())
def test_gutenberg_feed(tmp_path_factory, data):
    content, _ = data.draw(mutated(gutenberg_feed()))
    path = _write(tmp_path_factory, content, "rdf-files.tar")
    try:
        for entry in read_catalog_feed("https://www.gutenberg.org/cache/epub/feeds/rdf-files.tar.bz2", path, LIMITS):
            assert type(entry).__name__ in ("_FeedRecord", "_SkippedMember")
    except UnreadableInput:
        pass


@functools.cache
def wiki_dump():
    return _decompressed("mediawiki/gensim/enwiki-table-markup.xml.bz2")


@FUZZ
@given(data=st.data())
def test_mediawiki(tmp_path_factory, data):
    content, _ = data.draw(mutated(wiki_dump()))
    path = _write(tmp_path_factory, content, "enwiki-20240101-pages-articles.xml")
    try:
        _drain(read_dump(path, "https://dumps.wikimedia.org/enwiki/20240101/enwiki-20240101-pages-articles.xml", limits=LIMITS))
    except UnreadableInput:
        pass


@functools.cache
def warcs():
    return {
        name: require_fixture(f"webarchive/{name}").read_bytes()
        for name in ("warcio/example.warc.gz", "warcio/example-iana.org-chunked.warc", "warcio/example.arc.gz",
                     "cc_net-semisynthetic/sample.warc.wet.txt")
    }  # fmt: skip


@FUZZ
@given(data=st.data())
def test_warc(tmp_path_factory, data):
    name = data.draw(st.sampled_from(sorted(warcs())))
    raw = warcs()[name]
    original = gzip.decompress(raw) if name.endswith(".gz") else raw
    content, _ = data.draw(mutated(original))
    path = _write(tmp_path_factory, content, Path(name).name)
    try:
        _drain(read_warc_file(f"https://fixtures.opencorpus.invalid/{name}", path, LIMITS))
    except UnreadableInput:
        pass


def _posts_prefix(rows: int) -> bytes:
    data = _decompressed("stackexchange/coffee.stackexchange.com-2015-03/Posts.xml.gz")
    cut = 0
    for _ in range(rows):
        cut = data.index(b"<row ", cut + 1)
    return data[:cut] + b"</posts>\n"


@functools.cache
def posts():
    return _posts_prefix(40)


@FUZZ
@given(data=st.data())
def test_stackexchange(tmp_path_factory, data):
    content, _ = data.draw(mutated(posts()))
    path = _write(tmp_path_factory, content, "Posts.xml")
    url, site = "https://archive.org/coffee.stackexchange.com/Posts.xml", "https://coffee.stackexchange.com"
    store = _PostStore(path.parent / "posts.sqlite")
    try:
        _load_posts(path, url, site, store, LIMITS)
        _drain(store.pending_decisions())
        options = StackExchangeOptions(sites=[{"posts": url, "site_url": site}])
        _drain(_assemble(store, url, site, "coffee", options, LIMITS.record_bytes))
    except UnreadableInput:
        pass
    finally:
        store.close()


@functools.cache
def text():
    return _decompressed("gutenberg/c-w-gutenberg/clean-texts/10026.txt.gz")


@FUZZ
@given(data=st.data())
def test_textfiles(tmp_path_factory, data):
    content, _ = data.draw(mutated(text()))
    root = tmp_path_factory.mktemp("mirror")
    (root / "example.org").mkdir()
    (root / "example.org" / "book.txt").write_bytes(content)
    connector = TextFilesConnector(TextFilesConnector.Options(partitions={"p": ["https://example.org/book.txt"]}), LIMITS)
    fetcher = Fetcher(cache_dir=root / "cache", mirrors=[Mirror(base=str(root))])
    try:
        for unit in connector.units():
            _drain(connector.read(unit, fetcher))
    except UnreadableInput:
        pass


def test_the_fuzzed_fixtures_are_read_cleanly_unmutated(tmp_path):
    """The originals give records: the fuzzing starts from valid input, not from noise."""
    path = tmp_path / "dump.xml"
    path.write_bytes(wiki_dump())
    assert _drain(read_dump(path, "https://dumps.wikimedia.org/enwiki/x/enwiki-x.xml", limits=LIMITS)) > 0
    assert tarfile.is_tarfile(_write_bytes(tmp_path / "feed.tar", gutenberg_feed()))
    assert posts().count(b"<row ") == 39


def _write_bytes(path: Path, data: bytes) -> Path:
    path.write_bytes(data)
    return path
