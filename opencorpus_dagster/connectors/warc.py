"""WARC / WET / ARC files (`kind: warc`): one file is one unit, each HTML page one raw record.

Reads with warcio's `ArchiveIterator`, which streams gzip members (one record per member, as
Common Crawl writes them), reads plain WARC and converts ARC. Every WARC record leaves as one
`RawRecord` or one `Decision`:

- `response` (HTTP 2xx, HTML content type) and `resource` (HTML) records -> `RawRecord` with the
  decoded HTML (`PayloadType.HTML`); WET `conversion` records -> `RawRecord` with the text
  (`PayloadType.TEXT`);
- a `response` whose target is a site's `/robots.txt` (HTTP 2xx, or 4xx: "no rules", RFC 9309
  2.3.1.3) -> `RawRecord` with the file's text and `metadata["robots_txt"]` (status, capture
  date, record id, file): the crawl-time robots.txt, which the documents stage applies to the
  pages of that host in the same file and then skips as not content (`warc.robots_txt`);
- `request`, `metadata`, `warcinfo`, `revisit`, ... -> skipped, reason `warc.<type>`;
  non-HTML content -> skipped `warc.non_html` (value: the content type); non-2xx status ->
  skipped `warc.http_status`; an empty body -> skipped `warc.empty_payload`;
- binary bytes labelled as HTML (more than 1 % control characters after decoding) -> skipped
  `warc.binary_payload`: the upstream mislabelled a non-text file, it is not content we failed
  to read, like `warc.non_html`;
- a response whose HTTP status line or status code cannot be parsed -> quarantined
  `warc.bad_http_header`; a body that does not decode (more than 1 % of characters replaced by
  U+FFFD even with the best detected charset) -> quarantined `warc.undecodable`; fewer
  replacements are kept and counted in `metadata["decode_replacements"]`; a WARC-Record-ID seen
  before in the same file -> quarantined `warc.duplicate_record_id` (the id must be unique for
  `doc_id` to be).

`upstream_uri` is `<file url>#offset=<o>&length=<n>`: the record's byte range in the file as
stored (the gzip member for `.warc.gz`), which `fetch_record` reads back.

A truncated file (the last gzip member or record cut short) yields every record before the
cut, then raises `UnreadableInput(url, "truncated gzip member at offset N")`.

WET files with LF line endings (cc_net's test data, hand-edited files): warcio parses the first
record, then trusts its Content-Length, which does not match the bytes (cc_net's file counts
characters rather than bytes), reads into the next record and fails with `ArchiveLoadFailed`
("Invalid WARC record, first line: WARC-Type: conversion"). Such files are not valid WARC (the
standard requires CRLF), but their structure is unambiguous, so an uncompressed file whose first
line ends in a bare LF is read by a lenient line-based parser instead: a record starts at a `WARC/1.x` line at the start
of the file or after a blank line, and Content-Length is ignored (as cc_net does).
"""

from __future__ import annotations

import hashlib
import re
import zlib
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import BinaryIO
from urllib.parse import parse_qs, unquote, urlsplit

from warcio.archiveiterator import ArchiveIterator
from warcio.bufferedreaders import DecompressingBufferedReader
from warcio.exceptions import ArchiveLoadFailed
from warcio.recordloader import ArcWarcRecord
from warcio.statusandheaders import (
    StatusAndHeadersParser,
    StatusAndHeadersParserException,
)

from opencorpus_dagster.connectors.base import (
    MAX_LISTING_BYTES,
    MAX_REFUSALS_SHOWN,
    Connector,
    ConnectorOptions,
    Unit,
    UnreadableInput,
    UpstreamUrl,
    refused_unit,
    register,
)
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.state.home import readable_key
from opencorpus_dagster.text.html import decode_html
from opencorpus_dagster.upstream.compression import compression_of, open_decompressed
from opencorpus_dagster.upstream.fetch import Fetcher
from opencorpus_dagster.upstream.limits import InputLimits, LimitExceeded, clip, limit_records, over_limit, read_at_most
from opencorpus_dagster.upstream.url_policy import UrlRefused, host_of, require_host, resolve_listed

STAGE = "raw"
HTML_CONTENT_TYPES = frozenset({"text/html", "application/xhtml+xml"})
# Above this share of control characters (NUL, ...) a decoded "HTML" body is a binary file.
BINARY_CONTROL_FRACTION = 0.01
# Above this share of U+FFFD replacements a body is not trustworthy text.
UNDECODABLE_FRACTION = 0.01
_SAMPLE_CHARS = 65536
_CONTROL = re.compile(r"[\x00-\x08\x0b\x0e-\x1f\x7f]")
_HTTP_PROTOCOLS = ["HTTP/1.0", "HTTP/1.1", "HTTP/2.0", "HTTP/2", "HTTP/3.0", "HTTP/3", "HTTP/0.9"]
_WARC_VERSION_LINE = re.compile(rb"^WARC/1\.[01]\r?\n$")
_COMPRESSION_SUFFIXES = (".gz", ".bz2")
MAX_LISTING_LINE = 64 * 1024  # a listing line is one URL (at most 8,192 characters by the URL policy)


class WarcOptions(ConnectorOptions):
    warcs: list[UpstreamUrl] = []  # explicit WARC / WET / ARC file URLs, one unit each
    listing: UpstreamUrl | None = None  # Common Crawl `warc.paths(.gz)`: one path per line, relative to listing_base
    listing_base: UpstreamUrl = "https://data.commoncrawl.org/"
    max_files: int | None = None  # read at most this many files of the listing (explicit files always count)
    # Hosts an absolute URL in the listing may name, besides the hosts of `listing` and `listing_base`.
    listed_hosts: list[str] = []


@register
class WarcConnector(Connector):
    """Web archive files; see the module docstring for the outcome of every record type."""

    kind = "warc"
    content_kind = "web"  # quality defaults (text/quality_defaults.py)
    unit_listing_options = ("warcs", "listing", "max_files", "listed_hosts")
    Options = WarcOptions

    def units(self) -> list[Unit]:
        """The explicitly listed files (`warcs`), one unit each; see `discover_units` for listings."""
        return units_for(list(self.options.warcs))

    def discovers(self) -> bool:
        return self.options.listing is not None

    def discover_units(self, fetcher: Fetcher) -> list[Unit]:
        """Explicit files, then the files of `listing` (first `max_files` of them), one unit each.

        Raises `UnreadableInput` when the listing cannot be decompressed; fetch errors propagate.
        """
        urls = list(self.options.warcs)
        refused: list[str] = []
        if self.options.listing:
            hosts = {host_of(self.options.listing), host_of(self.options.listing_base), *self.options.listed_hosts}
            listed, refused, refused_count = read_listing(fetcher, self.options.listing, self.options.listing_base, hosts)
            if self.options.max_files is not None:
                listed = listed[: self.options.max_files]
            urls += listed
        units = units_for(urls)
        if refused:
            key = f"refused-{unit_name(self.options.listing)}"
            units.append(refused_unit(key, self.options.listing, refused, refused_count))
        return units

    def read(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        for url in unit.urls:
            fetched = fetcher.fetch(url)
            yield from limit_records(read_warc_file(url, fetched.path, self.limits), self.limits.records_per_unit, url)


# -- units -----------------------------------------------------------------------------------


def units_for(urls: list[str]) -> list[Unit]:
    """One unit per distinct URL, keyed by its file name (compression suffix dropped).

    File names are unique within a Common Crawl crawl; when two URLs share one, both keys get
    the first 8 hex digits of the URL's sha256, so keys stay readable and unique.
    """
    urls = list(dict.fromkeys(urls))
    names = [unit_name(url) for url in urls]
    counts: dict[str, int] = {}
    for name in names:
        counts[name] = counts.get(name, 0) + 1
    units = []
    for url, name in zip(urls, names, strict=True):
        key = name if counts[name] == 1 else f"{name}-{hashlib.sha256(url.encode()).hexdigest()[:8]}"
        units.append(Unit(key=key, urls=(url,)))
    return units


def unit_name(url: str) -> str:
    name = unquote(urlsplit(url).path.rstrip("/").rsplit("/", 1)[-1]) or "warc"
    for suffix in _COMPRESSION_SUFFIXES:
        if name.endswith(suffix):
            name = name[: -len(suffix)]
            break
    return readable_key(name, "warc")


def read_listing(fetcher: Fetcher, listing: str, base: str, hosts: set[str]) -> tuple[list[str], list[str], int]:
    """(file URLs, refusals, number of refusals) of a `warc.paths`-style listing (gzip or plain),
    in listing order.

    A relative line is resolved against `base` and must stay inside it; an absolute one must be
    on one of `hosts`. A line the URL policy refuses is left out and described in the refusals
    (line number, rule, the line cut short; the first `MAX_REFUSALS_SHOWN` are kept). Raises
    `UnreadableInput` naming the listing when it cannot be decompressed, has a line over
    `MAX_LISTING_LINE` or decompresses to more than `MAX_LISTING_BYTES`.
    """
    fetched = fetcher.fetch(listing, refresh=True)  # a listing grows upstream: never the cached copy
    urls, refusals, refused = [], [], 0

    def refuse(message: str) -> None:
        nonlocal refused
        refused += 1
        if len(refusals) < MAX_REFUSALS_SHOWN:
            refusals.append(message)

    try:
        with open_decompressed(fetched.path, MAX_LISTING_BYTES) as handle:
            for number, raw in enumerate(iter(lambda: handle.readline(MAX_LISTING_LINE + 1), b""), start=1):
                if len(raw) > MAX_LISTING_LINE:
                    raise UnreadableInput(listing, f"line {number} is longer than {MAX_LISTING_LINE:,} bytes")
                try:
                    line = raw.decode("utf-8").strip()
                except UnicodeDecodeError as error:
                    refuse(f"line {number}: {clip(repr(raw))} is not UTF-8 ({error.reason})")
                    continue
                if not line or line.startswith("#"):
                    continue
                try:
                    urls.append(require_host(resolve_listed(line, base), hosts))
                except UrlRefused as refusal:
                    refuse(str(refusal.at(f"line {number}")))
    except (OSError, EOFError, zlib.error, LimitExceeded) as error:
        raise UnreadableInput(listing, f"listing cannot be read: {error}") from error
    return urls, refusals, refused


# -- re-fetching one record --------------------------------------------------------------------


def record_location(upstream_uri: str) -> tuple[str, int, int]:
    """(file url, offset, length) of an `upstream_uri` made by this connector; ValueError otherwise."""
    url, sep, fragment = upstream_uri.partition("#")
    query = parse_qs(fragment)
    if not sep or "offset" not in query or "length" not in query:
        raise ValueError(f"{upstream_uri!r} is not a WARC record URI (<file url>#offset=<o>&length=<n>)")
    offset, length = int(query["offset"][0]), int(query["length"][0])
    if offset < 0 or length <= 0:
        raise ValueError(f"{upstream_uri!r}: offset must be >= 0 and length > 0")
    return url, offset, length


def fetch_record(fetcher: Fetcher, upstream_uri: str) -> bytes:
    """The raw bytes of one record (a whole gzip member for `.warc.gz`), as stored in its file."""
    url, offset, length = record_location(upstream_uri)
    return fetcher.fetch_range(url, offset, length)


# -- reading one file --------------------------------------------------------------------------


@dataclass
class _Record:
    """One record as either parser saw it, before it is judged."""

    rec_type: str
    headers: dict[str, str]  # WARC headers, names as written
    offset: int
    length: int
    http_status: str | None = None
    http_headers: dict[str, str] = field(default_factory=dict)  # lowercased names
    http_error: str | None = None
    body: bytes | None = None  # payload (after HTTP headers, de-chunked, content-decoded)
    body_error: str | None = None
    # The payload is over limits.record_bytes, or an HTTP header line over limits.line_bytes.
    limit_error: LimitExceeded | None = None
    head_over_limit: bool = False  # limit_error was raised in the HTTP head, not the body


def read_warc_file(url: str, path: Path, limits: InputLimits | None = None) -> Iterator[RawRecord | Decision]:
    """Records of one local WARC / WET / ARC file downloaded from `url`.

    Raises `UnreadableInput(url, ...)` when the file is truncated or not a web archive, when a
    WARC/ARC header line is longer than `limits.line_bytes` (read no further than that: a file
    without newlines fails fast), or when the file decompresses to more than `limits.file_bytes`;
    the records before the damage have been yielded by then. A payload over `limits.record_bytes`
    (decoded) or an HTTP header line over `limits.line_bytes` is quarantined as
    `limits.record_bytes` / `limits.line_bytes`, unless the record is skipped anyway (not HTML).
    """
    limits = limits or InputLimits()
    try:
        with open_decompressed(path) as handle:
            first_line = handle.readline(4096)
    except (OSError, EOFError, zlib.error) as error:
        raise UnreadableInput(url, f"cannot be decompressed: {error}") from error
    is_arc = first_line.startswith(b"filedesc://")
    lenient = bool(_WARC_VERSION_LINE.match(first_line)) and not first_line.endswith(b"\r\n")
    if lenient and compression_of(path) is not None:
        # Line-based offsets would be offsets into the decompressed stream, which
        # `fetch_record` cannot read back; no such files are known to exist.
        raise UnreadableInput(url, "compressed WARC with LF line endings (not CRLF) is not supported")
    records = _lenient_records(url, path, limits) if lenient else _warcio_records(url, path, limits)
    seen: dict[str, int] = {}
    for record in records:
        yield _judge(url, record, is_arc, lenient, seen)


class _BoundedReader(DecompressingBufferedReader):
    """warcio's reader with limits: lines of at most `line_bytes` (warcio's own readline joins
    a long line block by block, in quadratic time, and quotes it whole in its error), a WARC
    header block of at most `header_bytes` while `in_header`, `file_bytes` in all."""

    def __init__(self, stream, limits: InputLimits, **kwargs):
        super().__init__(stream, **kwargs)
        self.limits = limits
        self.seen = 0
        self.in_header = False
        self.header_seen = 0

    def _count(self, data: bytes) -> bytes:
        self.seen += len(data)
        if self.seen > self.limits.file_bytes:
            raise LimitExceeded("file_bytes", self.limits.file_bytes, self.seen)
        return data

    def read(self, length=None):
        return self._count(super().read(length))

    def readline(self, length=None):
        cap = self.limits.line_bytes + 1
        want = cap if length is None or length < 0 or length > cap else length
        # warcio's readline(n) can return early without a newline (it miscounts what is left):
        # ask again until the line ends, `want` bytes are read, or the stream ends.
        parts, size = [], 0
        while size < want and (piece := super().readline(want - size)):
            parts.append(piece)
            size += len(piece)
            if piece.endswith(b"\n"):
                break
        line = self._count(b"".join(parts))
        if len(line) >= cap:
            raise LimitExceeded("line_bytes", self.limits.line_bytes, len(line), f"(line starts {clip(repr(line[:80]))})")
        if self.in_header:
            self.header_seen += len(line)
            if self.header_seen > self.limits.record_bytes:
                raise LimitExceeded("record_bytes", self.limits.record_bytes, self.header_seen, "(WARC header block)")
        return line


class _BoundedArchiveIterator(ArchiveIterator):
    """ArchiveIterator reading through `_BoundedReader`, the WARC header block bounded."""

    def __init__(self, fileobj, limits: InputLimits, **kwargs):
        super().__init__(fileobj, **kwargs)
        # Nothing has been read yet (the record generator starts on the first next()).
        self.reader = _BoundedReader(self.fh, limits, block_size=self.reader.block_size)

    def _next_record(self, next_line):
        self.reader.in_header, self.reader.header_seen = True, 0
        try:
            return super()._next_record(next_line)
        finally:
            self.reader.in_header = False


class _LineBoundedStream:
    """readline() over a record's stream that stops at `line_bytes` and a `block_bytes` header block.

    Asks the stream for at most `line_bytes + 1` bytes, so the record stream's own accounting
    stays right and warcio can still skip to the next record after the exception."""

    def __init__(self, stream, limits: InputLimits):
        self.stream = stream
        self.limits = limits
        self.seen = 0

    def readline(self, size=None):
        cap = self.limits.line_bytes + 1
        line = self.stream.readline(cap if size is None or size < 0 or size > cap else size)
        self.seen += len(line)
        if len(line) >= cap:
            raise LimitExceeded("line_bytes", self.limits.line_bytes, len(line), "(HTTP header line)")
        if self.seen > self.limits.record_bytes:
            raise LimitExceeded("record_bytes", self.limits.record_bytes, self.seen, "(HTTP header block)")
        return line


def _warcio_records(url: str, path: Path, limits: InputLimits) -> Iterator[_Record]:
    compressed = compression_of(path) == "gzip"
    with open(path, "rb") as handle:
        # no_record_parse: HTTP headers are parsed here, per record, so one broken header is one
        # quarantined record, not an exception that ends the iterator (and the file).
        iterator = _BoundedArchiveIterator(handle, limits, arc2warc=True, no_record_parse=True)
        records = iter(iterator)
        end = 0  # where the last complete record ended
        while True:
            start = iterator.offset
            try:
                warc = next(records)
            except StopIteration:
                _check_tail(url, handle, end, compressed)
                return
            except LimitExceeded as error:
                raise UnreadableInput(url, f"record at offset {start}: {error}") from error
            except (ArchiveLoadFailed, EOFError, zlib.error, ValueError) as error:
                raise UnreadableInput(url, f"not a readable WARC/ARC record at offset {start}: {clip(error)}") from error
            record = _Record(rec_type=warc.rec_type or "", headers=dict(warc.rec_headers.headers), offset=0, length=0)
            if record.rec_type in ("response", "resource", "conversion"):
                try:
                    _read_payload(warc, record, limits)
                except LimitExceeded as error:  # file_bytes: the file's problem, not the record's
                    raise UnreadableInput(url, f"record at offset {start}: {error}") from error
            record.offset = iterator.get_record_offset()
            record.length = iterator.get_record_length()
            missing = getattr(warc.raw_stream, "limit", 0)
            decompressor = iterator.reader.decompressor if iterator.reader else None
            if missing or (compressed and decompressor is not None and not decompressor.eof):
                what = "gzip member" if compressed else "record"
                raise UnreadableInput(url, f"truncated {what} at offset {record.offset}")
            end = record.offset + record.length
            yield record


def _check_tail(url: str, handle: BinaryIO, end: int, compressed: bool) -> None:
    """Raise if bytes other than blank lines follow the last record warcio returned.

    warcio ends the iteration quietly when a gzip member is cut before its first deflate
    block (nothing decompresses, which looks like the end of the file).
    """
    handle.seek(end)
    tail = handle.read(65536)
    if tail.strip(b"\r\n"):
        what = "truncated gzip member" if compressed else "unparseable bytes"
        raise UnreadableInput(url, f"{what} at offset {end}")


def _read_payload(warc: ArcWarcRecord, record: _Record, limits: InputLimits) -> None:
    """Parse the HTTP head (response records with an http(s) URI) and read the decoded body,
    at most `limits.record_bytes` of it. Raises `LimitExceeded` only for `file_bytes`."""
    target = warc.rec_headers.get_header("WARC-Target-URI") or ""
    if record.rec_type == "response" and target.lower().startswith(("http:", "https:")):
        try:
            head = StatusAndHeadersParser(_HTTP_PROTOCOLS, verify=True).parse(_LineBoundedStream(warc.raw_stream, limits))
            status = head.get_statuscode()
            if not (status and len(status) == 3 and status.isdigit()):
                raise StatusAndHeadersParserException(f"no status code in status line {clip(repr(head.statusline))}", "")
        except LimitExceeded as error:
            if error.what == "file_bytes":
                raise
            record.limit_error, record.head_over_limit = error, True
            return
        except (StatusAndHeadersParserException, EOFError, ValueError, UnicodeDecodeError) as error:
            record.http_error = clip(str(error) or type(error).__name__)
            return
        record.http_status = status
        record.http_headers = {name.lower(): value for name, value in head.headers}
        warc.http_headers = head  # lets warcio de-chunk and content-decode the body
    try:
        # Bounded after content decoding: a gzip- or brotli-encoded body can be a bomb too.
        record.body = read_at_most(warc.content_stream(), limits.record_bytes)
    except LimitExceeded as error:
        if error.what == "file_bytes":
            raise
        record.limit_error = error
    except Exception as error:  # noqa: BLE001 - any decoder failure is this record's problem, not the file's
        record.body_error = clip(f"{type(error).__name__}: {error}")


_LF_VERSION_LINE = re.compile(rb"WARC/1\.[01]\n")


@dataclass
class _LenientRecord:
    """A record being collected by `_lenient_records`."""

    start: int
    head: list[bytes] = field(default_factory=list)
    head_bytes: int = 0
    in_head: bool = True
    body: list[bytes] = field(default_factory=list)
    body_bytes: int = 0


def _lenient_records(url: str, path: Path, limits: InputLimits) -> Iterator[_Record]:
    """Records of an uncompressed WARC/WET file with LF line endings; Content-Length is ignored.

    Streams the file line by line (a line is read in pieces of at most `limits.line_bytes`), so
    memory holds one record: a body over `limits.record_bytes` is counted, not kept; a header
    line over `limits.line_bytes` fails the file.
    """
    cap = limits.line_bytes + 1
    current: _LenientRecord | None = None
    position = 0
    at_line_start = True
    after_blank = False  # the previous line was empty and not the first line of the file
    with open(path, "rb") as handle:
        while piece := handle.readline(cap):
            starts_line, at_line_start = at_line_start, piece.endswith(b"\n")
            if starts_line and (position == 0 or after_blank) and _LF_VERSION_LINE.fullmatch(piece):
                if current is not None:
                    yield _lenient_record(url, current, limits.record_bytes)
                current = _LenientRecord(start=position)
            if current is None:
                raise UnreadableInput(url, "no WARC record found")
            if current.in_head:
                if starts_line and piece == b"\n" and current.head:
                    current.in_head = False
                elif not at_line_start and len(piece) >= cap:
                    problem = f"WARC header line at offset {position} is longer than limits.line_bytes={limits.line_bytes}"
                    raise UnreadableInput(url, f"{problem} (starts {clip(repr(piece[:80]))})")
                else:
                    current.head.append(piece)
                    current.head_bytes += len(piece)
                    if current.head_bytes > limits.record_bytes:
                        raise UnreadableInput(url, f"WARC header block at offset {current.start} is larger than "
                                                   f"limits.record_bytes={limits.record_bytes}")  # fmt: skip
            else:
                current.body_bytes += len(piece)
                if current.body_bytes <= limits.record_bytes + 1:
                    current.body.append(piece)
            after_blank = starts_line and piece == b"\n" and position > 0
            position += len(piece)
    if current is None:
        raise UnreadableInput(url, "no WARC record found")
    yield _lenient_record(url, current, limits.record_bytes)


def _lenient_record(url: str, current: _LenientRecord, record_bytes: int) -> _Record:
    if current.in_head:
        raise UnreadableInput(url, f"truncated record at offset {current.start}: no end of WARC headers")
    head = b"".join(current.head)[:-1]  # without the newline that ends its last line
    headers = {}
    for line in head.decode("utf-8", "replace").split("\n")[1:]:
        name, colon, value = line.partition(":")
        if colon:
            headers[name.strip()] = value.strip()
    record = _Record(rec_type=headers.get("WARC-Type", ""), headers=headers, offset=current.start, length=0)
    body = b"".join(current.body).rstrip(b"\n")  # the blank separator lines belong to no record
    if current.body_bytes > sum(map(len, current.body)) or len(body) > record_bytes:
        # Not all kept: its size (with any separator lines) is what was counted.
        size = max(current.body_bytes, len(body))
        record.limit_error = LimitExceeded("record_bytes", record_bytes, size)
        record.length = len(head) + 2 + current.body_bytes
    else:
        record.body = body
        record.length = len(head) + 2 + len(body)
    return record


# -- robots.txt captured by the crawl ------------------------------------------------------------

# RFC 9309 2.5: a crawler must parse at least the first 500 KiB of a robots.txt.
MAX_ROBOTS_BYTES = 500 * 1024


def is_robots_txt_capture(target: str | None, http_status: str | None) -> bool:
    """A response for `<origin>/robots.txt` with a status that says what the rules were:
    2xx (the file) or 4xx (no file: no rules). 3xx/5xx say nothing definite: not a capture."""
    if not target or http_status is None:
        return False
    parts = urlsplit(target)
    return (
        parts.scheme.lower() in ("http", "https")
        and parts.path == "/robots.txt"
        and not parts.query
        and (http_status.startswith("2") or http_status.startswith("4"))
    )


def _robots_capture(url: str, record: _Record, record_id: str, upstream_uri: str, target: str) -> RawRecord:
    ok = record.http_status.startswith("2")
    body = (record.body or b"")[:MAX_ROBOTS_BYTES] if ok else b""
    text = body.decode("utf-8", errors="replace").lstrip("\ufeff")  # RFC 9309 2.3: UTF-8
    capture = {
        "status": int(record.http_status),
        "warc_date": _header(record.headers, "WARC-Date"),
        "record_id": record_id,
        "warc_file": url,
        "offset": record.offset,
    }
    metadata = {
        "robots_txt": capture,
        "http_status": capture["status"],
        "warc_type": record.rec_type,
        "warc_date": capture["warc_date"],
        "warc_file": url,
        "offset": record.offset,
        "length": record.length,
    }
    return RawRecord(
        source_record_id=record_id,
        upstream_uri=upstream_uri,
        payload=text,
        payload_type=PayloadType.TEXT,
        url=target,
        license=None,
        metadata=metadata,
    )


# -- judging one record ------------------------------------------------------------------------


def _header(headers: dict[str, str], name: str) -> str | None:
    lowered = name.lower()
    return next((value for key, value in headers.items() if key.lower() == lowered), None)


def _media_type(content_type: str | None) -> tuple[str, str | None]:
    """('text/html', 'utf-8') from 'text/html; charset=UTF-8'."""
    if not content_type:
        return "", None
    parts = content_type.split(";")
    charset = None
    for param in parts[1:]:
        name, _, value = param.partition("=")
        if name.strip().lower() == "charset":
            charset = value.strip().strip("\"'") or None
    return parts[0].strip().lower(), charset


def _judge(url: str, record: _Record, is_arc: bool, lenient: bool, seen: dict[str, int]) -> RawRecord | Decision:
    upstream_uri = f"{url}#offset={record.offset}&length={record.length}"
    record_id = _header(record.headers, "WARC-Record-ID")
    if is_arc or not record_id:
        # ARC has no record ids (warcio invents random ones when converting); the byte offset in
        # the file is stable, so the id is too.
        record_id = f"<urn:offset:{unit_name(url)}:{record.offset}>"

    def decision(outcome: Outcome, reason: str, value: str | None = None, detail: str | None = None) -> Decision:
        return Decision(record_id, upstream_uri, outcome, STAGE, reason, value, detail)

    if record_id in seen:
        return decision(
            Outcome.QUARANTINED,
            "warc.duplicate_record_id",
            record_id,
            f"WARC-Record-ID already used by the record at offset {seen[record_id]}",
        )
    seen[record_id] = record.offset

    rec_type = record.rec_type
    if rec_type not in ("response", "resource", "conversion"):
        return decision(Outcome.SKIPPED, f"warc.{rec_type or 'unknown_type'}")
    limit_error = record.limit_error
    if limit_error is not None and record.head_over_limit:
        # The HTTP head could not be read: there is no status or content type to skip it by.
        return over_limit(record_id, upstream_uri, limit_error, f"HTTP head of the record at offset {record.offset}")
    if record.http_error is not None:
        return decision(Outcome.QUARANTINED, "warc.bad_http_header", detail=record.http_error)
    if limit_error is None and (record.body_error is not None or record.body is None):
        return decision(Outcome.QUARANTINED, "warc.bad_payload", detail=record.body_error or "no payload")
    target = _header(record.headers, "WARC-Target-URI")
    if rec_type == "response" and limit_error is None and is_robots_txt_capture(target, record.http_status):
        return _robots_capture(url, record, record_id, upstream_uri, target)
    if record.http_status is not None and not ("200" <= record.http_status < "300"):
        return decision(Outcome.SKIPPED, "warc.http_status", record.http_status)

    if record.http_status is not None:
        content_type_header = record.http_headers.get("content-type")
    else:
        content_type_header = _header(record.headers, "Content-Type")
    media_type, declared_charset = _media_type(content_type_header)
    if rec_type == "conversion":
        if media_type not in ("text/plain", ""):
            return decision(Outcome.SKIPPED, "warc.non_html", media_type)
        payload_type = PayloadType.TEXT
    elif media_type in HTML_CONTENT_TYPES:
        payload_type = PayloadType.HTML
    else:
        return decision(Outcome.SKIPPED, "warc.non_html", media_type or "(none)")
    if limit_error is not None:
        return over_limit(record_id, upstream_uri, limit_error, f"payload of the {rec_type} record at offset {record.offset}")
    if not record.body.strip():
        return decision(Outcome.SKIPPED, "warc.empty_payload", "0")

    if payload_type is PayloadType.TEXT:
        # WET is UTF-8 by definition of the format (Common Crawl writes it so).
        text = record.body.decode(declared_charset or "utf-8", errors="replace")
        charset, charset_source, replaced = declared_charset or "utf-8", "format", text.count("\ufffd")
    else:
        decoded = decode_html(record.body, declared_charset)
        text, charset, charset_source, replaced = (
            decoded.text,
            decoded.charset,
            decoded.charset_source,
            decoded.replaced,
        )

    sample = text[:_SAMPLE_CHARS]
    controls = len(_CONTROL.findall(sample)) / max(len(sample), 1)
    if controls > BINARY_CONTROL_FRACTION:
        return decision(
            Outcome.SKIPPED, "warc.binary_payload", f"{controls:.3f}", f"{controls:.1%} control characters as {charset}"
        )
    if replaced / max(len(text), 1) > UNDECODABLE_FRACTION:
        return decision(
            Outcome.QUARANTINED,
            "warc.undecodable",
            f"{replaced / len(text):.3f}",
            f"{replaced} of {len(text)} characters undecodable as {charset} ({charset_source})",
        )

    metadata = {
        "http_headers": record.http_headers,
        "http_status": int(record.http_status) if record.http_status else None,
        "warc_type": rec_type,
        "warc_date": _header(record.headers, "WARC-Date"),
        "content_type": media_type,
        "charset": charset,
        "charset_source": charset_source,
        "decode_replacements": replaced,
        "warc_file": url,
        "offset": record.offset,
        "length": record.length,
    }
    for name, key in (("WARC-Truncated", "warc_truncated"), ("WARC-Refers-To", "warc_refers_to")):
        if (value := _header(record.headers, name)) is not None:
            metadata[key] = value
    if lenient:
        metadata["lenient_parse"] = True
    return RawRecord(
        source_record_id=record_id,
        upstream_uri=upstream_uri,
        payload=text,
        payload_type=payload_type,
        url=_header(record.headers, "WARC-Target-URI"),
        license=None,
        metadata=metadata,
    )
