"""Fetching: mirrors (directory, base URL, per host), retries with backoff, sha256, byte ranges."""

from __future__ import annotations

import hashlib
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import ClassVar

import pytest

from opencorpus_dagster.upstream.fetch import Fetcher, FetchError, Mirror, NotFound, mirrors_from

BOOK = "https://www.gutenberg.org/cache/epub/2701/pg2701.txt"
FIXTURE = "gutenberg/c-w-gutenberg/raw-texts/2701.txt.gz"


def sha256(path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def test_http_mirror_download_is_hashed_and_cached(http_mirror, fixtures_dir, tmp_path):
    fetcher = Fetcher(tmp_path, [Mirror.parse(http_mirror)])
    first = fetcher.fetch(BOOK)
    assert first.sha256 == sha256(fixtures_dir / FIXTURE)
    assert first.size == (fixtures_dir / FIXTURE).stat().st_size
    assert first.fetched_from == f"{http_mirror}/www.gutenberg.org/cache/epub/2701/pg2701.txt"
    assert first.path == tmp_path / "www.gutenberg.org/cache/epub/2701/pg2701.txt"
    again = fetcher.fetch(BOOK)  # from the download cache, not the server
    assert (again.path, again.sha256, again.retrieved_at) == (first.path, first.sha256, first.retrieved_at)


def test_directory_mirror_is_read_in_place(fixture_mirror, fixtures_dir, tmp_path):
    fetched = Fetcher(tmp_path, mirrors_from(str(fixture_mirror))).fetch(BOOK)
    assert fetched.path == fixture_mirror / "www.gutenberg.org/cache/epub/2701/pg2701.txt"
    assert fetched.sha256 == sha256(fixtures_dir / FIXTURE)
    assert not any(tmp_path.iterdir())  # nothing copied


def test_host_mirror_replaces_scheme_and_host_only(http_mirror, fixtures_dir, tmp_path):
    mirror = Mirror.parse(f"www.gutenberg.org={http_mirror}/www.gutenberg.org")
    assert mirror.host == "www.gutenberg.org"
    fetched = Fetcher(tmp_path, [mirror]).fetch(BOOK)
    assert fetched.sha256 == sha256(fixtures_dir / FIXTURE)
    with pytest.raises(NotFound, match="no configured mirror covers this host"):
        Fetcher(tmp_path, [mirror]).fetch("https://dumps.wikimedia.org/enwiki/latest/x.bz2")


def test_missing_file_names_the_url_and_every_place_tried(http_mirror, fixture_mirror, tmp_path):
    url = "https://www.gutenberg.org/cache/epub/99999/pg99999.txt"
    with pytest.raises(NotFound) as error:
        Fetcher(tmp_path, [Mirror.parse(str(fixture_mirror)), Mirror.parse(http_mirror)], backoff_seconds=0).fetch(url)
    message = str(error.value)
    assert url in message and str(fixture_mirror) in message and http_mirror in message


class FlakyHandler(BaseHTTPRequestHandler):
    """Answers 503 to the first `failures` requests, then the payload."""

    failures = 2
    seen = 0
    payload = b"a real enough payload\n" * 100

    def log_message(self, *args):
        pass

    def do_GET(self):
        type(self).seen += 1
        if type(self).seen <= type(self).failures:
            self.send_response(503)
            self.send_header("Content-Length", "0")
            self.end_headers()
            return
        self.send_response(200)
        self.send_header("Content-Length", str(len(self.payload)))
        self.end_headers()
        self.wfile.write(self.payload)


@pytest.fixture
def flaky_server():
    FlakyHandler.seen = 0
    server = ThreadingHTTPServer(("127.0.0.1", 0), FlakyHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def test_transient_errors_are_retried_with_backoff(flaky_server, tmp_path):
    fetched = Fetcher(tmp_path, attempts=4, backoff_seconds=0.01).fetch(f"{flaky_server}/file.txt")
    assert FlakyHandler.seen == 3
    assert fetched.sha256 == hashlib.sha256(FlakyHandler.payload).hexdigest()
    assert not list(tmp_path.rglob("*.part-*"))  # no partial file left behind


def test_retries_run_out_with_a_message_naming_the_url(flaky_server, tmp_path):
    FlakyHandler.failures = 10
    try:
        with pytest.raises(FetchError, match=r"file\.txt: failed after 2 attempts"):
            Fetcher(tmp_path, attempts=2, backoff_seconds=0.01).fetch(f"{flaky_server}/file.txt")
    finally:
        FlakyHandler.failures = 2
    assert not list(tmp_path.rglob("file.txt*"))


def test_byte_range_over_http_and_from_a_directory(http_mirror, fixture_mirror, fixtures_dir, tmp_path):
    url = "https://fixtures.opencorpus.invalid/dolma/sample-0000.warc.gz"
    expected = (fixtures_dir / "webarchive/dolma/sample-0000.warc.gz").read_bytes()[1000:1500]
    assert Fetcher(tmp_path, [Mirror.parse(http_mirror)]).fetch_range(url, 1000, 500) == expected
    assert Fetcher(tmp_path, [Mirror.parse(str(fixture_mirror))]).fetch_range(url, 1000, 500) == expected


HYWIKI_INDEX = "https://dumps.wikimedia.org/hywiki/"
HYWIKI_DUMP = "https://dumps.wikimedia.org/hywiki/20230501/hywiki-20230501-pages-articles.xml.bz2"
HYWIKI_FIXTURE = "mediawiki/wikipedia-multilingual-2023/hywiki-20230501-sample.xml.bz2"


@pytest.mark.parametrize("spec", ["{mirror}", "dumps.wikimedia.org={mirror}/dumps.wikimedia.org"])
def test_a_directory_url_is_its_index_html_in_a_directory_mirror(tmp_path, spec):
    mirror = tmp_path / "mirror"
    index = mirror / "dumps.wikimedia.org/hywiki/index.html"  # where `wget --mirror` puts it
    index.parent.mkdir(parents=True)
    index.write_text('<a href="20230501/">20230501/</a>\n')
    fetched = Fetcher(tmp_path / "cache", [Mirror.parse(spec.format(mirror=mirror))]).fetch(HYWIKI_INDEX)
    assert (fetched.path, fetched.fetched_from) == (index, str(index))
    assert fetched.sha256 == sha256(index)


def test_a_downloaded_directory_index_is_cached_beside_the_files_it_lists(http_mirror, fixtures_dir, tmp_path):
    fetcher = Fetcher(tmp_path, [Mirror.parse(http_mirror)])
    index = fetcher.fetch(HYWIKI_INDEX)  # the server answers with its listing of the folder
    dump = fetcher.fetch(HYWIKI_DUMP)  # then a file inside that folder
    assert index.fetched_from == f"{http_mirror}/dumps.wikimedia.org/hywiki/"
    assert index.path == tmp_path / "dumps.wikimedia.org/hywiki/index.html"
    assert '<a href="20230501/">20230501/</a>' in index.path.read_text()
    assert dump.path == tmp_path / "dumps.wikimedia.org/hywiki/20230501/hywiki-20230501-pages-articles.xml.bz2"
    assert dump.sha256 == sha256(fixtures_dir / HYWIKI_FIXTURE)


class ConditionalHandler(BaseHTTPRequestHandler):
    """Serves one listing with an ETag and Last-Modified, answering 304 to a matching
    conditional request; records the status of every answer."""

    body = b"crawl-data/a.warc.gz\n"
    etag = '"v1"'
    last_modified = "Wed, 25 Nov 2026 10:00:00 GMT"
    statuses: ClassVar[list[int]] = []

    def do_GET(self):
        handler = type(self)
        if self.headers.get("If-None-Match") == handler.etag:
            handler.statuses.append(304)
            self.send_response(304)
            self.end_headers()
            return
        handler.statuses.append(200)
        self.send_response(200)  # send_response adds Date: now, well after Last-Modified
        self.send_header("ETag", handler.etag)
        self.send_header("Last-Modified", handler.last_modified)
        self.send_header("Content-Length", str(len(handler.body)))
        self.end_headers()
        self.wfile.write(handler.body)

    def log_message(self, *args):
        pass


def test_a_refresh_revalidates_the_cached_copy_and_downloads_only_a_changed_file(tmp_path):
    ConditionalHandler.statuses = []
    server = ThreadingHTTPServer(("127.0.0.1", 0), ConditionalHandler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths"
    fetcher = Fetcher(tmp_path, [Mirror.parse(f"http://127.0.0.1:{server.server_address[1]}")])
    try:
        first = fetcher.fetch(url, refresh=True)
        again = fetcher.fetch(url, refresh=True)  # unchanged upstream: 304, cached bytes kept
        assert ConditionalHandler.statuses == [200, 304]
        assert (again.path, again.sha256, again.retrieved_at) == (first.path, first.sha256, first.retrieved_at)
        assert again.path.read_bytes() == ConditionalHandler.body

        ConditionalHandler.body, ConditionalHandler.etag = b"crawl-data/a.warc.gz\ncrawl-data/b.warc.gz\n", '"v2"'
        changed = fetcher.fetch(url, refresh=True)
        assert ConditionalHandler.statuses == [200, 304, 200]
        assert changed.path.read_bytes() == ConditionalHandler.body
        assert changed.sha256 == hashlib.sha256(ConditionalHandler.body).hexdigest() != first.sha256
    finally:
        server.shutdown()
        server.server_close()


@pytest.mark.parametrize(
    ("date", "usable"),
    [
        ("Wed, 25 Nov 2026 10:00:01 GMT", True),  # served a second later: a change would move the date
        ("Wed, 25 Nov 2026 10:00:00 GMT", False),  # same second: a change now would keep the date
        (None, False),
    ],
)
def test_last_modified_validates_only_when_a_second_older_than_the_response(date, usable):
    from httpx import Headers

    from opencorpus_dagster.upstream.fetch import _strong_last_modified

    modified = "Wed, 25 Nov 2026 10:00:00 GMT"
    headers = Headers({"last-modified": modified, **({"date": date} if date else {})})
    assert _strong_last_modified(headers) == (modified if usable else "")
