"""The WARC/WET/ARC connector on the real fixture archives, plus damaged copies of them."""

from __future__ import annotations

import gzip
import io
from collections import Counter

import pydantic
import pytest
from fixture_mirror import FIXTURE_HOST
from warcio.archiveiterator import ArchiveIterator

from opencorpus_dagster.connectors.base import UnreadableInput, connector_class
from opencorpus_dagster.connectors.warc import (
    WarcConnector,
    fetch_record,
    read_warc_file,
    record_location,
)
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

CC = "https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-22"
DOLMA_0 = f"https://{FIXTURE_HOST}/dolma/sample-0000.warc.gz"
DOLMA_1 = f"https://{FIXTURE_HOST}/dolma/sample-0001.warc.gz"
WHIRLWIND = f"{CC}/whirlwind/whirlwind.warc.gz"
WHIRLWIND_WET = f"{CC}/whirlwind/whirlwind.warc.wet.gz"
WARCIO = f"https://{FIXTURE_HOST}/warcio"
CC_NET = f"https://{FIXTURE_HOST}/cc_net/sample.warc.wet.txt"


@pytest.fixture
def fetcher(tmp_path, fixture_mirror) -> Fetcher:
    return Fetcher(cache_dir=tmp_path / "cache", mirrors=[Mirror(base=str(fixture_mirror))])


def read_all(url: str, fetcher: Fetcher) -> list[RawRecord | Decision]:
    connector = WarcConnector(WarcConnector.Options(warcs=[url]))
    (unit,) = connector.units()
    return list(connector.read(unit, fetcher))


def tally(results) -> Counter:
    return Counter(
        f"raw:{r.payload_type.value}" if isinstance(r, RawRecord) else f"{r.outcome.value}:{r.reason}" for r in results
    )


@pytest.mark.parametrize(
    ("url", "expected"),
    [
        # 22 + 15 = 37 HTML responses; each has its request record; wget's log/manifest are text/plain resources.
        (
            DOLMA_0,
            {
                "raw:text/html": 22,
                "skipped:warc.request": 22,
                "skipped:warc.non_html": 2,
                "skipped:warc.metadata": 1,
                "skipped:warc.warcinfo": 1,
            },
        ),
        (
            DOLMA_1,
            {
                "raw:text/html": 15,
                "skipped:warc.request": 15,
                "skipped:warc.non_html": 2,
                "skipped:warc.metadata": 1,
                "skipped:warc.warcinfo": 1,
            },
        ),
        (
            WHIRLWIND,
            {"raw:text/html": 1, "skipped:warc.request": 1, "skipped:warc.metadata": 1, "skipped:warc.warcinfo": 1},
        ),
        (WHIRLWIND_WET, {"raw:text/plain": 1, "skipped:warc.warcinfo": 1}),
        (
            f"{WARCIO}/example-iana.org-chunked.warc",
            {"raw:text/html": 1, "skipped:warc.request": 1, "skipped:warc.warcinfo": 1},
        ),
        (f"{WARCIO}/example-resource.warc.gz", {"raw:text/html": 1, "skipped:warc.warcinfo": 2}),
        (f"{WARCIO}/example.arc.gz", {"raw:text/html": 1, "skipped:warc.warcinfo": 1}),
        (
            f"{WARCIO}/example.warc.gz",
            {"raw:text/html": 1, "skipped:warc.request": 2, "skipped:warc.revisit": 1, "skipped:warc.warcinfo": 2},
        ),
        (f"{WARCIO}/post-test.warc.gz", {"skipped:warc.non_html": 3, "skipped:warc.request": 3}),
        # LF line endings, lenient parser; two records share a WARC-Record-ID in this test file.
        (CC_NET, {"raw:text/plain": 2, "skipped:warc.warcinfo": 1, "quarantined:warc.duplicate_record_id": 1}),
    ],
    ids=lambda v: v.rsplit("/", 1)[-1] if isinstance(v, str) else None,
)
def test_outcome_counts_per_file(url, expected, fetcher):
    assert tally(read_all(url, fetcher)) == Counter(expected)


def test_non_html_decisions_carry_the_content_type(fetcher):
    decisions = [r for r in read_all(f"{WARCIO}/post-test.warc.gz", fetcher) if r.reason == "warc.non_html"]
    assert [d.value for d in decisions] == ["application/json"] * 3
    assert all(d.stage == "raw" and d.source_record_id.startswith("<urn:uuid:") for d in decisions)


def test_whirlwind_response_record_fields(fetcher):
    (record,) = [r for r in read_all(WHIRLWIND, fetcher) if isinstance(r, RawRecord)]
    assert record.source_record_id == "<urn:uuid:2aabeff2-67f5-4608-8466-e87c6296e2b6>"
    assert record.upstream_uri == f"{WHIRLWIND}#offset=1023&length=17351"
    assert record.url == "https://an.wikipedia.org/wiki/Escopete"
    assert record.payload_type is PayloadType.HTML
    assert record.license is None
    assert record.payload.startswith("<!DOCTYPE html>")
    assert "<title>Escopete - Biquipedia, a enciclopedia libre</title>" in record.payload
    meta = record.metadata
    assert meta["http_headers"]["content-type"] == "text/html; charset=UTF-8"
    assert (meta["charset"], meta["charset_source"], meta["http_status"]) == ("utf-8", "header", 200)
    assert (meta["warc_date"], meta["content_type"]) == ("2024-05-18T01:58:10Z", "text/html")
    assert (meta["warc_file"], meta["offset"], meta["length"], meta["decode_replacements"]) == (
        WHIRLWIND,
        1023,
        17351,
        0,
    )


def test_wet_conversion_record_points_back_to_its_response(fetcher):
    (record,) = [r for r in read_all(WHIRLWIND_WET, fetcher) if isinstance(r, RawRecord)]
    assert record.payload_type is PayloadType.TEXT
    assert record.url == "https://an.wikipedia.org/wiki/Escopete"
    assert record.payload.startswith("Escopete - Biquipedia, a enciclopedia libre\n")
    assert record.metadata["warc_refers_to"] == "<urn:uuid:2aabeff2-67f5-4608-8466-e87c6296e2b6>"
    assert record.metadata["charset_source"] == "format"


@pytest.mark.parametrize(
    ("url", "record_id", "url_in_record", "snippet", "charset_source"),
    [
        # Chunked transfer encoding: the payload is de-chunked (no hex chunk sizes left in the HTML).
        (
            f"{WARCIO}/example-iana.org-chunked.warc",
            "<urn:uuid:a96ae1a5-931d-4c45-96f3-98576d155f8b>",
            "http://www.iana.org/",
            "<title>Internet Assigned Numbers Authority</title>",
            "header",
        ),
        # Content-Encoding: gzip body, decoded by warcio.
        (
            f"{WARCIO}/example.warc.gz",
            "<urn:uuid:a9c51e3e-0221-11e7-bf66-0242ac120005>",
            "http://example.com/",
            "<title>Example Domain</title>",
            "meta",
        ),
        # resource record: no HTTP headers, content type and charset from the WARC headers.
        (
            f"{WARCIO}/example-resource.warc.gz",
            "<urn:uuid:6e7f60da-2c7b-11e7-aaf7-0242ac120007>",
            "http://example.com/",
            "<title>Example Domain</title>",
            "header",
        ),
        # ARC: no record ids in the format, so a stable one from the byte offset.
        (
            f"{WARCIO}/example.arc.gz",
            "<urn:offset:example.arc:171>",
            "http://example.com/",
            "<title>Example Domain</title>",
            "meta",
        ),
    ],
    ids=["chunked", "gzip-encoded", "resource", "arc"],
)
def test_edge_case_records(url, record_id, url_in_record, snippet, charset_source, fetcher):
    (record,) = [r for r in read_all(url, fetcher) if isinstance(r, RawRecord)]
    assert (record.source_record_id, record.url) == (record_id, url_in_record)
    assert record.payload.lstrip().lower().startswith("<!doctype html>")
    assert record.payload.rstrip().endswith("</html>")
    assert snippet in record.payload
    assert record.metadata["charset_source"] == charset_source


def test_chunked_record_keeps_transfer_encoding_header(fetcher):
    (record,) = [r for r in read_all(f"{WARCIO}/example-iana.org-chunked.warc", fetcher) if isinstance(r, RawRecord)]
    assert record.metadata["http_headers"]["transfer-encoding"] == "chunked"
    assert "\r\n1000\r\n" not in record.payload and not record.payload.startswith("1")


def test_arc_record_ids_are_stable_across_reads(fetcher):
    first = [r.source_record_id for r in read_all(f"{WARCIO}/example.arc.gz", fetcher)]
    assert first == [r.source_record_id for r in read_all(f"{WARCIO}/example.arc.gz", fetcher)]
    assert first == ["<urn:offset:example.arc:0>", "<urn:offset:example.arc:171>"]


def test_cc_net_lf_wet_is_read_leniently(fetcher):
    results = read_all(CC_NET, fetcher)
    english, russian = [r for r in results if isinstance(r, RawRecord)]
    assert english.url == "http://sample_english.com"
    assert english.payload.startswith("Famous Mark Twain Quotes\nDon't part with your illusions.")
    assert english.payload.endswith("Truth isn't.")
    assert english.metadata["lenient_parse"] is True
    assert russian.url == "http://sample_russian.ru"
    assert russian.payload.startswith("Цитаты знаменитого Марка Твена")
    (duplicate,) = [r for r in results if isinstance(r, Decision) and r.outcome is Outcome.QUARANTINED]
    assert duplicate.value == english.source_record_id
    assert duplicate.detail == f"WARC-Record-ID already used by the record at offset {english.metadata['offset']}"
    # warcio itself cannot read it: the Content-Lengths do not match the bytes.
    with (
        open(fetcher.fetch(CC_NET).path, "rb") as handle,
        pytest.raises(Exception, match="Invalid WARC record, first line: WARC-Type: conversion"),
    ):
        for record in ArchiveIterator(handle):
            record.content_stream().read()


@pytest.mark.parametrize("url", [DOLMA_0, f"{WARCIO}/example-iana.org-chunked.warc", f"{WARCIO}/example.arc.gz"])
def test_fetch_record_returns_exactly_the_record(url, fetcher, tmp_path):
    records = [r for r in read_all(url, fetcher) if isinstance(r, RawRecord)]
    assert records
    for record in records:
        raw = fetch_record(fetcher, record.upstream_uri)
        assert len(raw) == record.metadata["length"]
        (again,) = list(ArchiveIterator(io.BytesIO(raw), arc2warc=True))
        assert again.rec_headers.get_header("WARC-Target-URI") == record.url
        # The same bytes, read on their own by the connector, give the same payload.
        single = tmp_path / "single.warc"
        single.write_bytes(raw)
        (reread,) = [r for r in read_warc_file(url, single) if isinstance(r, RawRecord)]
        assert (reread.url, reread.payload) == (record.url, record.payload)


def test_fetch_record_of_lenient_wet(fetcher):
    english = next(r for r in read_all(CC_NET, fetcher) if isinstance(r, RawRecord))
    raw = fetch_record(fetcher, english.upstream_uri)
    assert raw.startswith(b"WARC/1.0\nWARC-Type: conversion\nWARC-Target-URI: http://sample_english.com\n")
    assert raw.endswith(b"Truth isn't.")


@pytest.mark.parametrize(
    "uri", ["https://x/a.warc.gz", "https://x/a.warc.gz#offset=10", "https://x/a.warc.gz#offset=-1&length=5"]
)
def test_record_location_rejects_other_uris(uri):
    with pytest.raises(ValueError, match="a.warc.gz"):
        record_location(uri)


@pytest.mark.parametrize(
    ("cut", "yielded", "offset"),
    [
        ("half", 28, 100317),  # in the middle of a deflate stream
        (870, 2, 865),  # 5 bytes into a gzip header: warcio alone would end quietly here
        ("minus5", 47, 212955),  # the last member loses its gzip trailer
    ],
)
def test_truncated_gzip_yields_records_before_the_cut(cut, yielded, offset, fixtures_dir, tmp_path):
    data = (fixtures_dir / "webarchive/dolma/sample-0000.warc.gz").read_bytes()
    size = {"half": len(data) // 2, "minus5": len(data) - 5}.get(cut, cut)
    damaged = tmp_path / "sample-0000.warc.gz"
    damaged.write_bytes(data[:size])
    seen = []
    with pytest.raises(UnreadableInput) as error:
        for result in read_warc_file(DOLMA_0, damaged):
            seen.append(result)
    assert len(seen) == yielded
    assert error.value.location == DOLMA_0
    assert error.value.problem == f"truncated gzip member at offset {offset}"
    last = seen[-1]
    assert (
        int(last.upstream_uri.rsplit("length=", 1)[1]) + int(last.upstream_uri.split("offset=")[1].split("&")[0])
        == offset
    )


def test_truncated_plain_warc(fixtures_dir, tmp_path):
    raw = gzip.decompress((fixtures_dir / "webarchive/dolma/sample-0000.warc.gz").read_bytes())
    damaged = tmp_path / "sample.warc"
    damaged.write_bytes(raw[: len(raw) // 2])
    seen = []
    with pytest.raises(UnreadableInput, match=r"sample\.warc: truncated record at offset \d+"):
        for result in read_warc_file("https://x/sample.warc", damaged):
            seen.append(result)
    assert len(seen) == 30


def test_not_a_warc_file(tmp_path):
    bogus = tmp_path / "bogus.warc.gz"
    bogus.write_bytes(gzip.compress(b"<html>not an archive</html>\n"))
    with pytest.raises(
        UnreadableInput, match=r"^https://x/bogus\.warc\.gz: not a readable WARC/ARC record at offset 0"
    ):
        list(read_warc_file("https://x/bogus.warc.gz", bogus))


# -- hand-made records for the bad-input cases ---------------------------------------------------


def warc_member(record_id: str, block: bytes, rec_type: str = "response", uri: str = "https://example.org/p") -> bytes:
    content_type = "application/http; msgtype=response" if rec_type == "response" else "text/html"
    head = (
        f"WARC/1.0\r\nWARC-Type: {rec_type}\r\nWARC-Record-ID: <urn:uuid:{record_id}>\r\n"
        f"WARC-Date: 2024-01-01T00:00:00Z\r\nWARC-Target-URI: {uri}\r\nContent-Type: {content_type}\r\n"
        f"Content-Length: {len(block)}\r\n\r\n"
    ).encode()
    return gzip.compress(head + block + b"\r\n\r\n")


def http(body: bytes, status: str = "200 OK", content_type: str = "text/html; charset=utf-8") -> bytes:
    return f"HTTP/1.1 {status}\r\nContent-Type: {content_type}\r\nContent-Length: {len(body)}\r\n\r\n".encode() + body


PAGE = "<html><head><title>Café</title></head><body><p>Crème brûlée à la française.</p></body></html>"
PNG = bytes.fromhex("89504e470d0a1a0a0000000d49484452") + bytes(range(256)) * 8

BAD_INPUT_CASES = [
    ("good", http(PAGE.encode()), "raw", None, None),
    (
        "status line not HTTP",
        b"HTP/1.1 200 OK\r\nContent-Type: text/html\r\n\r\n" + PAGE.encode(),
        "quarantined",
        "warc.bad_http_header",
        None,
    ),
    (
        "no status code",
        b"HTTP/1.1 OK\r\nContent-Type: text/html\r\n\r\n" + PAGE.encode(),
        "quarantined",
        "warc.bad_http_header",
        None,
    ),
    ("binary labelled as HTML", http(PNG), "skipped", "warc.binary_payload", "0.114"),
    ("NUL-filled labelled as HTML", http(b"\x00" * 4000 + b"<html></html>"), "skipped", "warc.binary_payload", "0.997"),
    ("redirect", http(b"", "301 Moved Permanently"), "skipped", "warc.http_status", "301"),
    ("not found", http(b"<html>gone</html>", "404 Not Found"), "skipped", "warc.http_status", "404"),
    ("image", http(PNG, content_type="image/png"), "skipped", "warc.non_html", "image/png"),
    ("empty body", http(b"  \r\n"), "skipped", "warc.empty_payload", "0"),
]


@pytest.mark.parametrize(
    ("name", "block", "outcome", "reason", "value"), BAD_INPUT_CASES, ids=[c[0] for c in BAD_INPUT_CASES]
)
def test_bad_records_are_decisions_and_reading_goes_on(name, block, outcome, reason, value, tmp_path):
    # Each bad record sits between two good ones: the file is still read to the end.
    good = http(PAGE.encode())
    path = tmp_path / "made.warc.gz"
    path.write_bytes(
        warc_member("00000000-0000-0000-0000-000000000001", good)
        + warc_member("00000000-0000-0000-0000-000000000002", block)
        + warc_member("00000000-0000-0000-0000-000000000003", good)
    )
    first, middle, last = read_warc_file("https://x/made.warc.gz", path)
    assert isinstance(first, RawRecord) and isinstance(last, RawRecord)
    assert first.payload == PAGE and last.payload == PAGE
    if outcome == "raw":
        assert isinstance(middle, RawRecord) and middle.payload == PAGE
        return
    assert (middle.outcome.value, middle.reason, middle.value) == (outcome, reason, value)
    assert middle.source_record_id == "<urn:uuid:00000000-0000-0000-0000-000000000002>"
    if reason == "warc.bad_http_header":
        assert "Expected Status Line" in middle.detail or "no status code" in middle.detail


@pytest.mark.parametrize(
    ("body", "content_type", "charset", "source", "text"),
    [
        (PAGE.encode("utf-8"), "text/html; charset=utf-8", "utf-8", "header", "Crème brûlée"),
        # Declared UTF-8 but written in cp1252: the declaration does not decode, <meta> does.
        (
            PAGE.replace("<head>", '<head><meta charset="windows-1252">').encode("cp1252"),
            "text/html; charset=utf-8",
            "cp1252",
            "meta",
            "Crème brûlée",
        ),
        # latin-1 labels mean windows-1252 to browsers (the curly quote is 0x93 in cp1252).
        (
            "<html><body><p>“Quoted” text here.</p></body></html>".encode("cp1252"),
            "text/html; charset=ISO-8859-1",
            "cp1252",
            "header",
            "“Quoted”",
        ),
        (b"\xef\xbb\xbf" + PAGE.encode(), "text/html", "utf-8", "bom", "Crème brûlée"),
        (
            "<html><body><p>Привет, мир! Это проверка кодировки страницы без объявления. Москва - столица России, "
            "крупнейший по численности населения город страны.</p></body></html>".encode("cp1251"),
            "text/html",
            "cp1251",
            "detected",
            "Привет, мир!",
        ),
    ],
    ids=["header", "meta-overrides-wrong-header", "latin1-is-cp1252", "bom", "detected"],
)
def test_charset_choice(body, content_type, charset, source, text, tmp_path):
    path = tmp_path / "charset.warc.gz"
    path.write_bytes(warc_member("00000000-0000-0000-0000-00000000000a", http(body, content_type=content_type)))
    (record,) = read_warc_file("https://x/charset.warc.gz", path)
    assert isinstance(record, RawRecord)
    assert record.metadata["charset_source"] == source
    if charset:
        assert record.metadata["charset"] == charset
    assert text in record.payload
    assert record.metadata["decode_replacements"] == 0


def test_resource_and_conversion_records(tmp_path):
    path = tmp_path / "mixed.warc.gz"
    path.write_bytes(
        warc_member("00000000-0000-0000-0000-0000000000b1", PAGE.encode(), rec_type="resource")
        + warc_member("00000000-0000-0000-0000-0000000000b2", b"", rec_type="metadata")
    )
    resource, metadata = read_warc_file("https://x/mixed.warc.gz", path)
    assert isinstance(resource, RawRecord) and resource.payload == PAGE and resource.metadata["http_headers"] == {}
    assert (metadata.outcome, metadata.reason) == (Outcome.SKIPPED, "warc.metadata")


# -- units and listings --------------------------------------------------------------------------


def test_units_are_keyed_by_file_name():
    connector = WarcConnector(WarcConnector.Options(warcs=[WHIRLWIND, WHIRLWIND_WET, DOLMA_0, DOLMA_0]))
    assert [(u.key, u.urls) for u in connector.units()] == [
        ("whirlwind.warc", (WHIRLWIND,)),
        ("whirlwind.warc.wet", (WHIRLWIND_WET,)),
        ("sample-0000.warc", (DOLMA_0,)),
    ]


def test_colliding_file_names_get_a_url_hash():
    other = "https://mirror.example/other/sample-0000.warc.gz"
    keys = [u.key for u in WarcConnector(WarcConnector.Options(warcs=[DOLMA_0, other])).units()]
    assert len(set(keys)) == 2 and all(
        k.startswith("sample-0000.warc-") and len(k) == len("sample-0000.warc-") + 8 for k in keys
    )


def test_discover_units_reads_the_listing(fetcher):
    options = WarcConnector.Options(warcs=[DOLMA_0], listing=f"{CC}/warc.paths")
    connector = connector_class("warc")(options)
    assert [u.key for u in connector.units()] == ["sample-0000.warc"]
    units = connector.discover_units(fetcher)
    assert [(u.key, u.urls) for u in units] == [("sample-0000.warc", (DOLMA_0,)), ("whirlwind.warc", (WHIRLWIND,))]
    # A listed unit reads like an explicit one.
    assert tally(connector.read(units[1], fetcher))["raw:text/html"] == 1
    capped = WarcConnector(WarcConnector.Options(warcs=[DOLMA_0], listing=f"{CC}/warc.paths", max_files=0))
    assert [u.key for u in capped.discover_units(fetcher)] == ["sample-0000.warc"]


def test_options_reject_unknown_keys():
    with pytest.raises(pydantic.ValidationError, match="warc_files"):
        WarcConnector.Options(warc_files=[WHIRLWIND])
