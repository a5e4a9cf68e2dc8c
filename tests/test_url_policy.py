"""The URL policy: what the catalog and upstream listings may name, tried as a hostile publisher would.

Listings are served over real loopback HTTP; nothing may be read or written outside the data
home, and every refusal is reported (a failed partition naming the listing, line and rule).
"""

from __future__ import annotations

import functools
import json
import subprocess
import sys
import threading
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pytest
from cli_runner import OPENCORPUS, build
from conftest import _MirrorHandler

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.connectors.base import refusal_message, refused_unit
from opencorpus_dagster.connectors.mediawiki import MediaWikiConnector
from opencorpus_dagster.connectors.textfiles import TextFilesConnector
from opencorpus_dagster.connectors.warc import unit_name
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.ingest import PartitionFailed, ingest_partition
from opencorpus_dagster.state.home import check_partition_key, data_home
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror, NotFound
from opencorpus_dagster.upstream.url_policy import UrlRefused, normalise_url, resolve_listed

SECRET = "TOP-SECRET-7f3a"
WHIRLWIND = "crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.gz"
LISTING = "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths"


# -- the rules ------------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        ("https://dumps.wikimedia.org/enwiki/latest/x.bz2", "https://dumps.wikimedia.org/enwiki/latest/x.bz2"),
        ("HTTPS://Dumps.Wikimedia.ORG/a/./b/../c.bz2#frag", "https://dumps.wikimedia.org/a/c.bz2"),
        ("https://h.example/a/%2e%2E/b", "https://h.example/b"),
        ("http://127.0.0.1:8000/x?q=/../../etc", "http://127.0.0.1:8000/x?q=/../../etc"),  # a query is no path
        ("https://bücher.example/x", "https://xn--bcher-kva.example/x"),
        ("https://[::1]:8443/x", "https://[::1]:8443/x"),
        ("file:///etc/passwd", "url.scheme"),
        ("ftp://dumps.wikimedia.org/x.bz2", "url.scheme"),
        ("/srv/mirror/x.bz2", "url.scheme"),
        ("javascript:alert(1)", "url.scheme"),
        ("https://user:pw@dumps.wikimedia.org/x", "url.userinfo"),
        ("https://dumps.wikimedia.org@evil.example/x", "url.userinfo"),
        ("https://dumps.wikimedia.org/../../etc/passwd", "url.climbs_above_root"),
        ("https://h.example/a/../../x", "url.climbs_above_root"),
        ("https://h.example/%2e%2e/x", "url.climbs_above_root"),
        ("https://h.example/a%2f..%2f..%2fx", "url.encoded_separator"),
        ("https://h.example/a%5cb", "url.encoded_separator"),
        ("https://h.example/a%00b", "url.encoded_separator"),
        ("https://h.example/a b", "url.control_chars"),
        ("https://h.example/a\nb", "url.control_chars"),
        ("https:///x", "url.host"),
        ("https://../x", "url.host"),
        ("https://h.example:99999/x", "url.malformed"),
        ("https://h.example/" + "a" * 10_000, "url.too_long"),
    ],
)
def test_normalise_url(url, expected):
    if expected.startswith("url."):
        with pytest.raises(UrlRefused) as refused:
            normalise_url(url)
        assert refused.value.rule == expected
        assert len(str(refused.value)) < 600  # the offending text is cut short
    else:
        assert normalise_url(url) == expected


@pytest.mark.parametrize(
    ("line", "expected"),
    [
        (WHIRLWIND, f"https://data.commoncrawl.org/{WHIRLWIND}"),
        (f"/{WHIRLWIND}", f"https://data.commoncrawl.org/{WHIRLWIND}"),
        ("crawl-data/x/../y.warc.gz", "https://data.commoncrawl.org/crawl-data/y.warc.gz"),
        ("../../etc/passwd", "url.climbs_above_root"),
        ("crawl-data/../../x", "url.climbs_above_root"),
        ("file:///etc/passwd", "url.scheme"),
    ],
)
def test_listing_lines_stay_under_their_base(line, expected):
    base = "https://data.commoncrawl.org/"
    if expected.startswith("url."):
        with pytest.raises(UrlRefused) as refused:
            resolve_listed(line, base)
        assert refused.value.rule == expected
    else:
        assert resolve_listed(line, base) == expected


@pytest.mark.parametrize(
    ("url", "key"),
    [
        ("https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/segments/1/warc/CC-MAIN-1-00000.warc.gz", "CC-MAIN-1-00000.warc"),
        ("https://h.example/a..b.warc.gz", "a.b.warc"),
        ("https://h.example/..warc", "warc"),
        ("https://h.example/%2e%2e%2ewarc.gz", "warc"),
        ("https://h.example/x%20y%3Bz.warc", "x_y_z.warc"),
        ("https://h.example/" + "w" * 300 + ".warc.gz", "w" * 103 + "-"),
    ],
)
def test_partition_keys_from_upstream_names_are_safe_file_names(url, key):
    made = unit_name(url)
    assert check_partition_key(made) == made
    if len(url) > 300:
        assert len(made) == 120 and made.startswith(key)
    else:
        assert made == key


# -- the catalog ----------------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("kind", "options", "field", "rule"),
    [
        ("mediawiki", {"dumps": ["file:///etc/passwd"]}, "options.dumps.0", "url.scheme"),
        ("mediawiki", {"dumps": ["ftp://dumps.wikimedia.org/x.xml.bz2"]}, "options.dumps.0", "url.scheme"),
        ("mediawiki", {"dumps": ["https://dumps.wikimedia.org/../../etc/passwd"]}, "options.dumps.0", "url.climbs_above_root"),
        ("mediawiki", {"dump_index": "https://u:p@dumps.wikimedia.org/hywiki/"}, "options.dump_index", "url.userinfo"),
        ("warc", {"listing": "file:///etc/passwd"}, "options.listing", "url.scheme"),
        ("warc", {"warcs": ["https://h.example/%2e%2e/x.warc.gz"]}, "options.warcs.0", "url.climbs_above_root"),
        ("gutenberg", {"books": [1], "text_url": "https://h.example/../{id}.txt"}, "options.text_url", "url.climbs_above_root"),
        ("gutenberg", {"books": [1], "text_url": "file:///srv/{id}.txt"}, "options.text_url", "url.scheme"),
        ("stackexchange", {"sites": [{"posts": "/etc/passwd", "site_url": "https://x.com"}]}, "options.sites.0.posts", "url.scheme"),
        ("textfiles", {"partitions": {"p": ["/etc/passwd"]}}, "options", "declare the folder it is in as `root`"),
        ("textfiles", {"root": "/srv/texts", "partitions": {"p": ["../../etc/passwd"]}}, "options", "url.outside_root"),
        ("textfiles", {"root": "/srv/texts", "partitions": {"p": ["file:///etc/passwd"]}}, "options", "url.outside_root"),
        ("textfiles", {"root": "/srv/texts", "partitions": {"p": ["ok/./a.txt", "a/b/../../../etc/passwd"]}}, "options", "url.outside_root"),
        ("textfiles", {"root": "/srv/texts", "partitions": {"p": ["./a.txt", "b//c.txt", "/srv/texts-other/x"]}}, "options", "url.outside_root"),
        ("textfiles", {"root": "srv", "partitions": {"p": ["a.txt"]}}, "options.root", "absolute folder"),
    ],
)  # fmt: skip
def test_catalog_urls_are_checked_by_validate(tmp_path, kind, options, field, rule):
    (tmp_path / "hostile.yaml").write_text(json.dumps({"name": "hostile", "kind": kind, "options": options}))
    (error,) = load_catalog(tmp_path).errors
    assert error.path == tmp_path / "hostile.yaml"
    assert error.message.startswith(f"{field}: ") and rule in error.message


def test_validate_command_refuses_a_file_url(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "leak.yaml").write_text("name: leak\nkind: warc\noptions:\n  warcs: ['file:///etc/hostname']\n")
    result = subprocess.run([OPENCORPUS, "validate", "--catalog", str(catalog)], capture_output=True, text=True, timeout=120)
    assert result.returncode == 1
    assert "leak.yaml: options.warcs.0: Value error, 'file:///etc/hostname' refused (url.scheme)" in result.stdout + result.stderr


# -- the fetcher ----------------------------------------------------------------------------------


def test_a_symlink_in_the_cache_cannot_send_a_download_elsewhere(tmp_path, http_mirror):
    outside = tmp_path / "outside"
    outside.mkdir()
    cache = tmp_path / "cache"
    cache.mkdir()
    (cache / "www.gutenberg.org").symlink_to(outside)
    with pytest.raises(UrlRefused) as refused:
        Fetcher(cache, [Mirror.parse(http_mirror)]).fetch("https://www.gutenberg.org/cache/epub/2701/pg2701.txt")
    assert refused.value.rule == "url.climbs_above_root"
    assert list(outside.iterdir()) == []


def test_a_query_cannot_climb_out_of_a_directory_mirror(tmp_path, fixture_mirror):
    fetcher = Fetcher(tmp_path, [Mirror(str(fixture_mirror))])
    location = fetcher.mirrors[0].locate("https://www.gutenberg.org/x?a=/../../../../../../etc/hostname")
    assert Path(location).parent == fixture_mirror / "www.gutenberg.org"
    with pytest.raises(NotFound):
        fetcher.fetch("https://www.gutenberg.org/x?a=/../../../../../../etc/hostname")


class _Redirecting(BaseHTTPRequestHandler):
    def log_message(self, *args):
        pass

    def do_GET(self):
        targets = {"/h.example/to-file": "file:///etc/hostname", "/h.example/to-creds": "http://u:p@127.0.0.1:9/x"}
        self.send_response(302)
        self.send_header("Location", targets.get(self.path, "/"))
        self.send_header("Content-Length", "0")
        self.end_headers()


@pytest.mark.parametrize(("path", "rule"), [("to-file", "url.scheme"), ("to-creds", "url.userinfo")])
def test_redirects_are_held_to_the_policy(tmp_path, path, rule):
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Redirecting)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        fetcher = Fetcher(tmp_path, [Mirror.parse(f"http://127.0.0.1:{server.server_address[1]}")], attempts=1)
        with pytest.raises(UrlRefused) as refused:
            fetcher.fetch(f"https://h.example/{path}")
    finally:
        server.shutdown()
        server.server_close()
    assert refused.value.rule == rule
    assert str(refused.value).startswith(f"redirect from http://127.0.0.1:{server.server_address[1]}/h.example/{path}: ")
    assert not list(tmp_path.rglob(f"{path}*"))


def test_local_files_need_a_root_and_stay_in_it(tmp_path):
    root = tmp_path / "texts"
    root.mkdir()
    (root / "a.txt").write_text("kept")
    (tmp_path / "secret.txt").write_text(SECRET)
    (root / "link.txt").symlink_to(tmp_path / "secret.txt")
    fetcher = Fetcher(tmp_path / "cache")
    with pytest.raises(UrlRefused, match=r"url\.scheme"):
        fetcher.fetch(str(root / "a.txt"))
    assert fetcher.fetch(str(root / "a.txt"), local_root=root).path == root / "a.txt"
    with pytest.raises(UrlRefused, match=r"url\.outside_root"):
        fetcher.fetch((root / "link.txt").as_uri(), local_root=root)

    options = TextFilesConnector.Options(root=str(root), partitions={"p": ["a.txt", "link.txt"]})
    (unit,) = TextFilesConnector(options).units()
    items = list(TextFilesConnector(options).read(unit, fetcher))
    assert [(type(i).__name__, getattr(i, "reason", None)) for i in items] == [("RawRecord", None), ("Decision", "url.outside_root")]
    assert items[0].payload == "kept" and SECRET not in repr(items)


def test_stale_partial_downloads_are_removed_and_live_ones_kept(tmp_path, http_mirror):
    target = tmp_path / "www.gutenberg.org/cache/epub/2701/pg2701.txt"
    target.parent.mkdir(parents=True)
    live = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        dead_pid = _a_dead_pid()
        (target.parent / f"pg2701.txt.part-{dead_pid}").write_bytes(b"half a book")
        (target.parent / f"pg2701.txt.part-{live.pid}").write_bytes(b"another download")
        Fetcher(tmp_path, [Mirror.parse(http_mirror)]).fetch("https://www.gutenberg.org/cache/epub/2701/pg2701.txt")
        assert sorted(p.name for p in target.parent.iterdir()) == [
            "pg2701.txt",
            f"pg2701.txt.part-{live.pid}",
            "pg2701.txt.sha256",
        ]
    finally:
        live.kill()
        live.wait()


def _a_dead_pid() -> int:
    process = subprocess.Popen([sys.executable, "-c", "pass"])
    process.wait()
    return process.pid


# -- a hostile warc.paths, served over loopback HTTP, through `opencorpus build` ------------------


@pytest.fixture
def hostile_listing_server(tmp_path, fixtures_dir):
    """A mirror with a hostile `warc.paths` and one real WARC, served over HTTP; yields (base URL,
    the paths the server was asked for, the folder outside the home a line aims at, the secret file)."""
    outside = tmp_path / "outside"
    outside.mkdir()
    secret = tmp_path / "secret.txt"
    secret.write_text(f"{SECRET}\nsecond line\n")
    mirror = tmp_path / "mirror"
    warc = mirror / "data.commoncrawl.org" / WHIRLWIND
    warc.parent.mkdir(parents=True)
    warc.symlink_to(fixtures_dir / "webarchive/commoncrawl-whirlwind/whirlwind.warc.gz")
    climb = "../" * (len(tmp_path.parts) + 4)
    lines = [
        WHIRLWIND,
        f"{climb}{outside.relative_to('/')}/pwned.warc.gz",
        "crawl-data/%2e%2e/%2e%2e/%2e%2e/pwned.warc.gz",
        secret.as_uri(),
        "https://evil.example/crawl-data/x.warc.gz",
        "https://user:pw@data.commoncrawl.org/crawl-data/x.warc.gz",
        "ftp://data.commoncrawl.org/crawl-data/x.warc.gz",
        "https://data.commoncrawl.org/" + "a" * 20_000,
    ]
    (mirror / "data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths").write_text("\n".join(lines) + "\n")
    (mirror / "data.commoncrawl.org/crawl-data/long").mkdir()
    (mirror / "data.commoncrawl.org/crawl-data/long/warc.paths").write_text("x" * 100_000 + "\n")
    requested: list[str] = []

    class Recording(_MirrorHandler):
        def send_head(self):
            requested.append(self.path)
            return super().send_head()

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(Recording, directory=str(mirror)))
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", requested, outside, secret
    finally:
        server.shutdown()
        server.server_close()


def test_hostile_listing_lines_are_refused_and_reported(tmp_path, hostile_listing_server):
    base, requested, outside, secret = hostile_listing_server  # requested: also the page host's robots.txt
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "crawl.yaml").write_text(
        f"name: crawl\nkind: warc\noptions:\n  listing: {LISTING}\n"
        "license: {spdx: CC-BY-SA-4.0, evidence: test}\n"
    )
    # A second source whose listing is a line of 100,000 bytes: its listing fails, the first goes on.
    (catalog / "broken.yaml").write_text(
        "name: broken\nkind: warc\noptions:\n  listing: https://data.commoncrawl.org/crawl-data/long/warc.paths\n"
    )
    home = tmp_path / "home"
    result = build(home, base, catalog, check=False)
    summary = json.loads(result.stdout)

    assert result.returncode == 1  # a failed partition fails the build, after the rest was done
    assert summary["processed"] == ["crawl/whirlwind.warc"]  # the good line is read as usual
    assert summary["records_in"] > 0
    broken, failure = summary["failed"]
    assert broken == (
        "broken (listing units upstream): https://data.commoncrawl.org/crawl-data/long/warc.paths: "
        "line 1 is longer than 65,536 bytes"
    )
    assert failure.startswith("crawl/refused-warc.paths: PartitionFailed: ")
    assert f"source 'crawl', partition 'refused-warc.paths': {LISTING}: 7 URL(s) refused by the URL policy" in failure
    for line, rule in [
        (2, "url.climbs_above_root"),
        (3, "url.climbs_above_root"),
        (4, "url.scheme"),
        (5, "url.undeclared_host"),
        (6, "url.userinfo"),
        (7, "url.scheme"),
        (8, "url.too_long"),
    ]:
        assert f"line {line}: " in failure and rule in failure.split(f"line {line}: ", 1)[1].split("; line", 1)[0]
    assert len(failure) < 4000  # a 20,000-character line is quoted cut short

    # Nothing read or written outside the home; the server was asked for the listing and the WARC only.
    assert list(outside.iterdir()) == []
    assert SECRET not in result.stdout + result.stderr
    assert all(SECRET not in p.read_text(errors="replace") for p in home.rglob("*") if p.is_file() and p.suffix in (".jsonl", ".json", ".md"))
    crawl_host = sorted({path for path in requested if path.startswith("/data.commoncrawl.org/")})
    assert crawl_host == [
        "/data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/warc.paths",
        f"/data.commoncrawl.org/{WHIRLWIND}",
        "/data.commoncrawl.org/crawl-data/long/warc.paths",
    ]
    assert not [path for path in requested if "pwned" in path or "evil" in path or ".." in path]
    assert secret.read_text().startswith(SECRET)  # and the secret is untouched


# -- a hostile dumpstatus.json ----------------------------------------------------------------------


def test_hostile_dumpstatus_urls_are_refused(tmp_path, fixtures_dir):
    wiki = tmp_path / "mirror" / "dumps.wikimedia.org" / "hywiki"
    run = wiki / "20230501"
    run.mkdir(parents=True)
    (wiki / "index.html").write_text('<html><body><a href="20230501/">20230501/</a></body></html>')
    good = "hywiki-20230501-pages-articles.xml.bz2"
    (run / good).symlink_to(fixtures_dir / "mediawiki/wikipedia-multilingual-2023/hywiki-20230501-sample.xml.bz2")
    files = {
        good: {"url": f"/hywiki/20230501/{good}"},
        "a.xml.bz2": {"url": "/hywiki/../../../etc/passwd.xml"},
        "b.xml.bz2": {"url": "/enwiki/20230501/b.xml.bz2"},
        "c.xml.bz2": {"url": "https://evil.example/hywiki/20230501/c.xml.bz2"},
        "d.xml.bz2": {"url": "file:///etc/passwd.xml"},
    }
    (run / "dumpstatus.json").write_text(json.dumps({"jobs": {"articlesdump": {"status": "done", "files": files}}}))
    connector = MediaWikiConnector(MediaWikiConnector.Options(dump_index="https://dumps.wikimedia.org/hywiki/"))

    units = connector.discover_units(Fetcher(tmp_path / "cache", [Mirror(str(tmp_path / "mirror"))]))

    assert [unit.key for unit in units] == ["hywiki-20230501-pages-articles", "refused-dumpstatus"]
    message = refusal_message(units[1])
    assert message.startswith("https://dumps.wikimedia.org/hywiki/: 4 URL(s) refused by the URL policy: ")
    status = "https://dumps.wikimedia.org/hywiki/20230501/dumpstatus.json"
    for name, rule in [("a", "climbs_above_root"), ("b", "climbs_above_root"), ("c", "climbs_above_root"), ("d", "scheme")]:
        refusal = message.split(f"{status}, file '{name}.xml.bz2': ", 1)[1].split("; ", 1)[0]
        assert f"(url.{rule})" in refusal
    listed = MediaWikiConnector(MediaWikiConnector.Options(dump_index="https://dumps.wikimedia.org/hywiki/", listed_hosts=["evil.example"]))
    keys = [unit.key for unit in listed.discover_units(Fetcher(tmp_path / "cache2", [Mirror(str(tmp_path / "mirror"))]))]
    assert keys == ["c", "hywiki-20230501-pages-articles", "refused-dumpstatus"]  # a declared host is allowed


def test_a_refused_unit_fails_its_partition_without_reading(tmp_path):
    (tmp_path / "crawl.yaml").write_text(f"name: crawl\nkind: warc\noptions:\n  listing: {LISTING}\n")
    (source,) = load_catalog(tmp_path).sources
    home = data_home(tmp_path / "home")
    refusals = [f"line {n}: 'x' refused (url.scheme): no scheme" for n in range(30)]
    unit = refused_unit("refused-warc.paths", LISTING, refusals)
    with pytest.raises(PartitionFailed) as failed:
        ingest_partition(source, unit, Fetcher(home.downloads), home, LineageStore.at(home.lineage_db), "run-1")
    message = str(failed.value)
    assert message.startswith(f"source 'crawl', partition 'refused-warc.paths': {LISTING}: 30 URL(s) refused")
    assert message.count("refused (url.scheme)") == 20 and message.endswith("; and 10 more")
    assert not home.raw_path("crawl", "refused-warc.paths").exists()


def test_relative_files_under_root_are_kept_as_written(tmp_path):
    """The listed files a catalog names under `root` pass unchanged (a large catalog lists
    100,000 of them); the same names with a climb out of root are refused."""
    files = ["a.txt", "./b.txt", "sub//c.txt", "sub/./d.txt", "e..txt", "sub/deeper/f"]
    (tmp_path / "ok.yaml").write_text(json.dumps({"name": "ok", "kind": "textfiles", "options": {"root": "/srv/texts", "partitions": {"p": files}}}))
    catalog = load_catalog(tmp_path)
    assert not catalog.errors
    (source,) = catalog.sources
    assert source.connector.options.partitions == {"p": files}
