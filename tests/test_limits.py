"""Hostile upstream data against the input limits: bombs, huge records, newline-less files.

Each case runs the real connector in a subprocess whose address space is capped with
`RLIMIT_AS` (an idle interpreter with the connectors, lxml and pyarrow imported maps ~460 MB),
so a reader that tries to hold a bomb in memory dies with MemoryError instead of passing. The
child reports its peak resident memory (VmHWM), printed here and asserted under a bound.

Bombs are generated in the test from a stream: one compressed stream of a repeated line,
concatenated N times (gzip and bzip2 readers both read concatenated members/streams), so a
2 GiB bomb costs one 64 MiB compression.
"""

from __future__ import annotations

import bz2
import gzip
import json
import resource
import shutil
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import build

from opencorpus_dagster.upstream.limits import MIB

ADDRESS_SPACE = 1536 * MIB  # the cap on the child: far below what holding any bomb would take
PEAK_RSS = 600 * MIB  # what the child may reach (idle import: ~135 MB resident)
LINE = b"All work and no play makes Jack a dull boy.\n"

CHILD = r"""
import json, resource, sys
from pathlib import Path
from opencorpus_dagster.connectors.base import UnreadableInput, connector_class
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror
from opencorpus_dagster.upstream.limits import InputLimits
from opencorpus_dagster.records import Decision

args = json.loads(sys.argv[1])
cls = connector_class(args["kind"])
connector = cls(cls.Options(**args["options"]), limits=InputLimits(**args["limits"]))
fetcher = Fetcher(cache_dir=Path(args["cache"]), mirrors=[Mirror(base=args["mirror"])])
items, error = [], None
try:
    for unit in connector.units():
        for item in connector.read(unit, fetcher):
            if isinstance(item, Decision):
                items.append(["decision", item.source_record_id, item.outcome.value, item.reason, item.value, item.detail])
            else:
                items.append(["record", item.source_record_id, len(item.payload)])
except UnreadableInput as exc:
    error = str(exc)
# VmHWM, not ru_maxrss: the kernel keeps ru_maxrss across exec, so it would include the RSS of the
# forked copy of the parent (the test process, large after a whole suite); VmHWM belongs to the
# memory map exec made, so it is this reader's alone.
status = Path("/proc/self/status").read_text()
peak = int(next(line.split()[1] for line in status.splitlines() if line.startswith("VmHWM:"))) * 1024
print(json.dumps({"items": items, "error": error, "peak": peak}))
"""


def _cap_address_space() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (ADDRESS_SPACE, ADDRESS_SPACE))


def read_bounded(tmp_path: Path, kind: str, options: dict, limits: dict | None = None) -> dict:
    """Read every unit of a `kind` source (files under `tmp_path/mirror`) in a capped child."""
    args = {"kind": kind, "options": options, "limits": limits or {}, "mirror": str(tmp_path / "mirror"),
            "cache": str(tmp_path / "cache")}  # fmt: skip
    started = time.monotonic()
    result = subprocess.run(
        [sys.executable, "-c", CHILD, json.dumps(args)],
        capture_output=True,
        text=True,
        check=False,
        preexec_fn=_cap_address_space,
    )
    assert result.returncode == 0, result.stderr[-3000:]
    outcome = json.loads(result.stdout)
    outcome["seconds"] = time.monotonic() - started
    print(f"{kind} {limits or 'default limits'}: peak RSS {outcome['peak'] / MIB:.0f} MiB, {outcome['seconds']:.1f} s")
    assert outcome["peak"] < PEAK_RSS
    return outcome


def mirror_file(tmp_path: Path, url_path: str, data: bytes) -> Path:
    path = tmp_path / "mirror" / url_path
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return path


def bomb(compression: str, decompressed: int, unit: bytes = LINE) -> bytes:
    """A file of `compression` that decompresses to about `decompressed` bytes of `unit` lines."""
    block = unit * max(1, min(decompressed, 4 * MIB) // len(unit))
    compress = {"gzip": lambda data: gzip.compress(data, 9, mtime=0), "bz2": lambda data: bz2.compress(data, 9)}
    member = compress[compression](block)
    return member * max(1, decompressed // len(block))


# -- Gutenberg --------------------------------------------------------------------------------


GUTENBERG = "www.gutenberg.org/cache/epub/{id}/pg{id}.txt"


def test_bz2_bomb_book_on_default_limits_is_quarantined_without_reading_it_whole(tmp_path):
    # The measured case: ~117 KB of bz2 that decompresses to 2.2 GB.
    data = bomb("bz2", 2200 * 1000 * 1000)
    mirror_file(tmp_path, GUTENBERG.format(id=99999), data)
    outcome = read_bounded(tmp_path, "gutenberg", {"books": [99999]})
    assert outcome["error"] is None
    ((kind, record_id, outcome_name, reason, value, detail),) = outcome["items"]
    assert (kind, record_id, outcome_name, reason) == ("decision", "99999", "quarantined", "limits.record_bytes")
    assert value == str(32 * MIB + 1)  # read the limit plus one byte, then stopped
    assert "limits.record_bytes=33554432" in detail and f"({len(data)} bytes as fetched)" in detail
    assert outcome["seconds"] < 20


@pytest.mark.parametrize("compression", ["gzip", "bz2"])
def test_bomb_book_over_a_small_record_limit_is_quarantined_and_the_next_book_read(tmp_path, compression):
    mirror_file(tmp_path, GUTENBERG.format(id=99998), bomb(compression, 64 * MIB))
    book = b"*** START OF THE PROJECT GUTENBERG EBOOK X ***\n" + LINE * 100 + b"*** END OF THE PROJECT GUTENBERG EBOOK X ***\n"
    mirror_file(tmp_path, GUTENBERG.format(id=99999), gzip.compress(book))
    outcome = read_bounded(tmp_path, "gutenberg", {"books": [99998, 99999]}, {"record_bytes": "4MiB"})
    bombed, kept = outcome["items"]
    assert bombed[:5] == ["decision", "99998", "quarantined", "limits.record_bytes", str(4 * MIB + 1)]
    assert kept[:2] == ["record", "99999"] and kept[2] == len(LINE) * 100 - 1


def test_gutenberg_build_quarantines_a_bomb_book_and_publishes_the_rest(tmp_path, fixture_mirror):
    """The real `opencorpus build`: the bomb is one quarantined record, the partition publishes."""
    mirror = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, mirror, symlinks=True)
    mirror_file(tmp_path, GUTENBERG.format(id=99999), bomb("bz2", 256 * MIB))
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "gutenberg.yaml").write_text(
        "name: gutenberg\nkind: gutenberg\noptions:\n  books: [1013, 99999]\nlimits:\n  record_bytes: 8MiB\n"
        "filters:\n  quality:\n    gopher_max_words: null\n"
    )
    before = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    summary = json.loads(build(tmp_path / "home", mirror, catalog).stdout)
    peak = resource.getrusage(resource.RUSAGE_CHILDREN).ru_maxrss
    print(f"opencorpus build: children's peak RSS {peak / 1024:.0f} MiB (before: {before / 1024:.0f} MiB)")
    assert summary["processed"] == ["gutenberg/01000-01999", "gutenberg/99000-99999"]
    assert summary["outcomes"]["quarantined"] == 1
    assert not summary.get("failed")
    assert peak < 2048 * 1024  # KiB: the whole build, Dagster included


def test_rdf_feed_bomb_fails_the_listing_naming_the_feed(tmp_path):
    import io
    import tarfile

    members = io.BytesIO()
    with tarfile.open(fileobj=members, mode="w") as tar:
        info = tarfile.TarInfo("cache/epub/1/pg1.rdf")
        payload = b"<rdf/>"
        info.size = len(payload)
        tar.addfile(info, io.BytesIO(payload))
    feed = tmp_path / "feed.tar.bz2"
    # A valid tar, then ~512 MiB of zeros (tar padding reads them as the end-of-archive blocks).
    feed.write_bytes(bz2.compress(members.getvalue()) + bomb("bz2", 512 * MIB, b"\0" * 512))
    from opencorpus_dagster.connectors.base import UnreadableInput
    from opencorpus_dagster.connectors.gutenberg import read_catalog_feed
    from opencorpus_dagster.upstream.limits import InputLimits

    with pytest.raises(UnreadableInput) as caught:
        list(read_catalog_feed("https://www.gutenberg.org/feed.tar.bz2", feed, InputLimits(file_bytes="16MiB")))
    assert str(caught.value) == (
        "https://www.gutenberg.org/feed.tar.bz2: catalog feed decompresses to more than limits.file_bytes=16777216 bytes"
    )


# -- MediaWiki ----------------------------------------------------------------------------------


WIKI_HEAD = (
    b'<mediawiki xmlns="http://www.mediawiki.org/xml/export-0.10/"><siteinfo><sitename>W</sitename>'
    b"<dbname>enwiki</dbname><base>https://en.wikipedia.org/wiki/Main_Page</base></siteinfo>\n"
)
WIKI_PAGE = (
    b"<page><title>{title}</title><ns>0</ns><id>{id}</id><revision><id>{rev}</id>"
    b"<timestamp>2020-01-01T00:00:00Z</timestamp><model>wikitext</model><text>{text}</text></revision></page>\n"
)
WIKI_DUMP = "dumps.wikimedia.org/enwiki/20240101/enwiki-20240101-pages-articles1.xml{suffix}"


def wiki_page(page_id: int, text: bytes) -> bytes:
    return WIKI_PAGE.replace(b"{title}", b"Page %d" % page_id).replace(b"{id}", b"%d" % page_id) \
        .replace(b"{rev}", b"%d" % (page_id * 10)).replace(b"{text}", text)  # fmt: skip


def test_one_line_wiki_page_over_the_record_limit_is_quarantined(tmp_path):
    # The measured case: a 50 MB one-line page (the build reached 2.65 GB on it), default limits.
    dump = WIKI_HEAD + wiki_page(1, b"word " * 10_000_000) + wiki_page(2, b"Small page.") + b"</mediawiki>"
    mirror_file(tmp_path, WIKI_DUMP.format(suffix=""), dump)
    url = "https://" + WIKI_DUMP.format(suffix="")
    outcome = read_bounded(tmp_path, "mediawiki", {"dumps": [url]})
    big, small = outcome["items"]
    assert big[:5] == ["decision", "1", "quarantined", "limits.record_bytes", "50000000"]
    assert big[5] == "revision 10 has 50000000 bytes of text, more than limits.record_bytes=33554432"
    assert small == ["record", "2", len("Small page.")]
    assert outcome["peak"] < 400 * MIB


@pytest.mark.parametrize("compression", ["gzip", "bz2"])
def test_wiki_dump_bomb_fails_the_partition_naming_the_file(tmp_path, compression):
    page = wiki_page(1, b"Text. " * 1000)
    suffix = ".gz" if compression == "gzip" else ".bz2"
    head = {"gzip": gzip.compress, "bz2": bz2.compress}[compression](WIKI_HEAD)
    mirror_file(tmp_path, WIKI_DUMP.format(suffix=suffix), head + bomb(compression, 256 * MIB, page))
    url = "https://" + WIKI_DUMP.format(suffix=suffix)
    outcome = read_bounded(tmp_path, "mediawiki", {"dumps": [url]}, {"file_bytes": "32MiB"})
    assert outcome["error"].startswith(f"{url}: decompresses to more than limits.file_bytes=33554432 bytes")


# -- WARC ---------------------------------------------------------------------------------------


def test_newline_less_warc_fails_fast_with_a_short_message(tmp_path):
    path = mirror_file(tmp_path, "fixtures.opencorpus.invalid/crawl/nonl.warc", b"WARC/1.0\r\nWARC-Type: response\r\n")
    with open(path, "ab") as handle:
        handle.writelines(b"a" * MIB for _ in range(200))
    url = "https://fixtures.opencorpus.invalid/crawl/nonl.warc"
    outcome = read_bounded(tmp_path, "warc", {"warcs": [url]})
    assert outcome["items"] == []
    assert outcome["error"].startswith(f"{url}: record at offset 0: line_bytes (line starts b'aaaa")
    assert outcome["error"].endswith("read 1048577 bytes, more than limits.line_bytes=1048576")
    assert len(outcome["error"]) < 400
    assert outcome["seconds"] < 10


def _warc_response(body: bytes, record_id: str, content_encoding: str | None = None) -> bytes:
    headers = b"HTTP/1.1 200 OK\r\nContent-Type: text/html; charset=utf-8\r\n"
    if content_encoding:
        headers += b"Content-Encoding: " + content_encoding.encode() + b"\r\n"
    http = headers + b"Content-Length: %d\r\n\r\n" % len(body) + body
    warc = (
        b"WARC/1.0\r\nWARC-Type: response\r\nWARC-Record-ID: <urn:uuid:" + record_id.encode() + b">\r\n"
        b"WARC-Target-URI: https://example.org/" + record_id.encode() + b"\r\nWARC-Date: 2024-01-01T00:00:00Z\r\n"
        b"Content-Type: application/http; msgtype=response\r\nContent-Length: %d\r\n\r\n" % len(http)
    )
    return gzip.compress(warc + http + b"\r\n\r\n", mtime=0)


def test_warc_payload_bomb_is_quarantined_and_the_next_record_read(tmp_path):
    # An HTML body sent gzip-encoded over HTTP that decodes to 64 MiB, in a .warc.gz.
    html = b"<html><body>" + b"<p>hello</p>" * (64 * MIB // 12) + b"</body></html>"
    page = b"<html><body><p>A small page with some text.</p></body></html>"
    data = _warc_response(gzip.compress(html), "bomb", "gzip") + _warc_response(page, "small")
    mirror_file(tmp_path, "fixtures.opencorpus.invalid/crawl/bomb.warc.gz", data)
    url = "https://fixtures.opencorpus.invalid/crawl/bomb.warc.gz"
    outcome = read_bounded(tmp_path, "warc", {"warcs": [url]}, {"record_bytes": "4MiB"})
    assert outcome["error"] is None
    bombed, small = outcome["items"]
    assert bombed[:5] == ["decision", "<urn:uuid:bomb>", "quarantined", "limits.record_bytes", str(4 * MIB + 1)]
    assert small[:2] == ["record", "<urn:uuid:small>"]


# -- Stack Exchange, textfiles ----------------------------------------------------------------------


def _posts(rows: list[bytes]) -> bytes:
    return b'<?xml version="1.0" encoding="utf-8"?>\n<posts>\n' + b"".join(rows) + b"</posts>\n"


def _row(post_id: int, body: bytes, post_type: int = 1, parent: int | None = None) -> bytes:
    extra = b' ParentId="%d"' % parent if parent else b' Title="Question %d"' % post_id
    return (
        b'  <row Id="%d" PostTypeId="%d" CreationDate="2015-01-27T20:09:32.720" Score="1"' % (post_id, post_type)
        + extra + b' Body="' + body + b'" />\n'
    )  # fmt: skip


def test_oversized_stack_exchange_row_is_quarantined(tmp_path):
    rows = [_row(1, b"&lt;p&gt;" + b"x" * (12 * MIB) + b"&lt;/p&gt;"), _row(2, b"&lt;p&gt;Fine.&lt;/p&gt;")]
    mirror_file(tmp_path, "archive.org/coffee.stackexchange.com/Posts.xml", _posts(rows))
    site = {"posts": "https://archive.org/coffee.stackexchange.com/Posts.xml", "site_url": "https://coffee.stackexchange.com"}
    outcome = read_bounded(tmp_path, "stackexchange", {"sites": [site]}, {"record_bytes": "8MiB"})
    big, small = outcome["items"]
    assert big[:4] == ["decision", "coffee.stackexchange.com/1", "quarantined", "limits.record_bytes"]
    assert int(big[4]) > 12 * MIB
    assert small[:2] == ["record", "coffee.stackexchange.com/2"]


def test_question_whose_answers_add_up_over_the_limit_is_quarantined(tmp_path):
    answer = b"&lt;p&gt;" + b"y" * MIB + b"&lt;/p&gt;"
    rows = [_row(1, b"Q"), *(_row(10 + n, answer, 2, 1) for n in range(6))]
    mirror_file(tmp_path, "archive.org/coffee.stackexchange.com/Posts.xml", _posts(rows))
    site = {"posts": "https://archive.org/coffee.stackexchange.com/Posts.xml", "site_url": "https://coffee.stackexchange.com"}
    outcome = read_bounded(tmp_path, "stackexchange", {"sites": [site]}, {"record_bytes": "4MiB"})
    ((kind, record_id, name, reason, value, detail),) = outcome["items"]
    assert (kind, record_id, name, reason) == ("decision", "coffee.stackexchange.com/1", "quarantined", "limits.record_bytes")
    assert "question 1 with 6 answers" in detail and int(value) > 6 * MIB


@pytest.mark.parametrize("compression", ["gzip", "bz2"])
def test_stack_exchange_bomb_fails_the_partition_naming_the_file(tmp_path, compression):
    head = {"gzip": gzip.compress, "bz2": bz2.compress}[compression](b"<posts>\n")
    mirror_file(tmp_path, "archive.org/coffee.stackexchange.com/Posts.xml", head + bomb(compression, 256 * MIB, _row(1, b"Q")))
    site = {"posts": "https://archive.org/coffee.stackexchange.com/Posts.xml", "site_url": "https://coffee.stackexchange.com"}
    outcome = read_bounded(tmp_path, "stackexchange", {"sites": [site]}, {"file_bytes": "2MiB"})
    assert outcome["error"].startswith("https://archive.org/coffee.stackexchange.com/Posts.xml (read from ")
    assert outcome["error"].endswith("decompresses to more than limits.file_bytes=2097152 bytes")


@pytest.mark.parametrize("compression", ["gzip", "bz2"])
def test_textfiles_bomb_is_quarantined(tmp_path, compression):
    mirror_file(tmp_path, "example.org/texts/bomb.txt", bomb(compression, 128 * MIB))
    mirror_file(tmp_path, "example.org/texts/fine.txt", LINE)
    options = {"partitions": {"texts": ["https://example.org/texts/bomb.txt", "https://example.org/texts/fine.txt"]}}
    outcome = read_bounded(tmp_path, "textfiles", options, {"record_bytes": "4MiB"})
    bombed, fine = outcome["items"]
    assert bombed[:5] == ["decision", "bomb.txt", "quarantined", "limits.record_bytes", str(4 * MIB + 1)]
    assert fine == ["record", "fine.txt", len(LINE)]


def test_records_per_unit_fails_the_partition_naming_the_file(tmp_path):
    dump = WIKI_HEAD + b"".join(wiki_page(n, b"Text.") for n in range(1, 8)) + b"</mediawiki>"
    mirror_file(tmp_path, WIKI_DUMP.format(suffix=""), dump)
    url = "https://" + WIKI_DUMP.format(suffix="")
    outcome = read_bounded(tmp_path, "mediawiki", {"dumps": [url]}, {"records_per_unit": 5})
    assert len(outcome["items"]) == 5
    assert outcome["error"] == f"{url}: yields more than limits.records_per_unit=5 records"
