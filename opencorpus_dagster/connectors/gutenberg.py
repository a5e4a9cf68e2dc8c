"""Project Gutenberg books: plain-text files plus their RDF catalog records (kind `gutenberg`).

One unit (partition) is a batch of book ids, `id // batch_size`. Per book the connector
fetches the plain text, strips the PG header and footer, and reads the book's RDF record for
title, authors, language, issue date and the rights statement. It reports the rights string as
PG states it; the licensing stage decides what it means.

The books are those listed in the catalog (`books`) and, with `catalog_feed`, those of PG's RDF
feed (`rdf-files.tar.bz2`: one `cache/epub/<id>/pg<id>.rdf` member per ebook, ~75,000 of them in
~100 MB), read one member at a time so memory does not grow with the feed.
"""

from __future__ import annotations

import codecs
import logging
import re
import tarfile
import zlib
from collections import Counter
from collections.abc import Iterable, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import Annotated, BinaryIO, Self

from lxml import etree
from pydantic import Field, field_validator, model_validator

from opencorpus_dagster.connectors.base import (
    Connector,
    ConnectorOptions,
    Unit,
    UnreadableInput,
    UpstreamUrl,
    UrlTemplate,
    register,
)
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.text.gutenberg_boilerplate import (
    BodyEnd,
    GutenbergBody,
    NoEndMarker,
    NoStartMarker,
    locate_gutenberg_body,
)
from opencorpus_dagster.upstream.compression import open_decompressed
from opencorpus_dagster.upstream.fetch import FetchedFile, Fetcher, NotFound
from opencorpus_dagster.upstream.limits import InputLimits, LimitExceeded, clip, limit_records, over_limit, read_at_most

# Unit keys are zero-padded to this width so they sort as numbers (PG ids are below 100000).
_KEY_WIDTH = 5

_NS = {
    "rdf": "http://www.w3.org/1999/02/22-rdf-syntax-ns#",
    "dcterms": "http://purl.org/dc/terms/",
    "pgterms": "http://www.gutenberg.org/2009/pgterms/",
}

# The header says how the file is encoded; PG's own typo "Chatacter set encoding" is in
# files of 2003 (e.g. ebook 10026), hence the loose "Cha...".
_CHARSET_LINE = re.compile(r"^Cha\w* set encoding:\s*(?P<charset>.+?)\s*$", re.MULTILINE | re.IGNORECASE)
_HEADER_FIELD = re.compile(r"^(?P<name>Title|Author):\s*(?P<value>.*)$", re.IGNORECASE)
# The header block (title, author, charset) sits in the first few dozen lines.
_HEADER_SCAN_CHARS = 8000
# A feed member is one ebook's record: `cache/epub/2701/pg2701.rdf`.
_FEED_MEMBER = re.compile(r"(?:^|/)pg(?P<id>\d+)\.rdf$")
# PG's records are tens of KB; a member far larger is not a record (and is not read into memory).
_MAX_FEED_RECORD_BYTES = 16 * 1024 * 1024
# The DCMI type of the ebooks the feed lists; PG also has Sound, StillImage, Dataset, ... ebooks.
_TEXT_TYPE = "Text"
_log = logging.getLogger(__name__)


@dataclass(frozen=True)
class _Catalog:
    """What one RDF record (or, without one, the text header) says about a book."""

    title: str | None
    authors: list[str]
    language: str | None
    rights: str | None
    issued: str | None


@dataclass(frozen=True)
class _FeedRecord:
    """What the listing needs from one record of the feed."""

    book: int
    types: frozenset[str]
    languages: frozenset[str]


@dataclass(frozen=True)
class _SkippedMember:
    """A feed member that is not a usable RDF record: skipped, counted, named in a warning."""

    name: str
    problem: str


@register
class GutenbergConnector(Connector):
    kind = "gutenberg"
    content_kind = "book"  # quality defaults (text/quality_defaults.py)
    unit_listing_options = ("books", "catalog_feed", "languages")

    class Options(ConnectorOptions):
        """`books`: ebook numbers; `catalog_feed`: URL of PG's RDF feed, whose Text ebooks (in
        `languages`, when given) are listed too. Batches of `batch_size` consecutive ids form
        one unit."""

        books: list[Annotated[int, Field(ge=1)]] | None = Field(default=None, min_length=1)
        catalog_feed: UpstreamUrl | None = None
        languages: list[Annotated[str, Field(min_length=1)]] | None = Field(default=None, min_length=1)
        batch_size: int = Field(default=1000, ge=1)
        text_url: UrlTemplate = "https://www.gutenberg.org/cache/epub/{id}/pg{id}.txt"
        rdf_url: UrlTemplate = "https://www.gutenberg.org/cache/epub/{id}/pg{id}.rdf"
        page_url: UrlTemplate = "https://www.gutenberg.org/ebooks/{id}"

        @field_validator("books")
        @classmethod
        def _no_duplicates(cls, books: list[int]) -> list[int]:
            duplicates = sorted(book for book, count in Counter(books).items() if count > 1)
            if duplicates:
                raise ValueError(f"book ids listed more than once: {duplicates}")
            return books

        @field_validator("text_url", "rdf_url", "page_url")
        @classmethod
        def _has_id_placeholder(cls, template: str) -> str:
            if "{id}" not in template:
                raise ValueError(f"URL template {template!r} must contain '{{id}}' (the ebook number)")
            return template

        @model_validator(mode="after")
        def _lists_some_books(self) -> Self:
            if not self.books and not self.catalog_feed:
                raise ValueError(
                    "give `books` (ebook numbers), `catalog_feed` (the URL of PG's RDF feed, e.g. "
                    "https://www.gutenberg.org/cache/epub/feeds/rdf-files.tar.bz2), or both"
                )
            if self.languages and not self.catalog_feed:
                raise ValueError("`languages` filters the books of `catalog_feed`: set `catalog_feed` too")
            return self

    options: Options

    def units(self) -> list[Unit]:
        """The batches of the books listed in `books` (none without it); see `discover_units`."""
        return self._batches(self.options.books or [])

    def discovers(self) -> bool:
        return self.options.catalog_feed is not None

    def listing_is_slow(self) -> bool:
        # The real feed is ~1 GB of bzip2-compressed RDF: minutes to decompress and parse.
        return self.options.catalog_feed is not None

    def discover_units(self, fetcher: Fetcher) -> list[Unit]:
        """The batches of `books` plus the feed's Text ebooks (in `languages`, when given).

        The feed is fetched afresh (it grows upstream) and streamed one member at a time. Raises
        `UnreadableInput` naming the feed URL when it cannot be read (truncated, not a tar); a
        member that is not a usable RDF record is skipped and counted in a logged warning.
        """
        books = set(self.options.books or [])
        if self.options.catalog_feed:
            books.update(self._feed_books(fetcher, self.options.catalog_feed))
        return self._batches(books)

    def _feed_books(self, fetcher: Fetcher, feed_url: str) -> list[int]:
        """Ids of the feed's Text ebooks in `languages` (any language without it), in feed order."""
        wanted = {language.lower() for language in self.options.languages or ()}
        fetched = fetcher.fetch(feed_url, refresh=True)
        books: list[int] = []
        skipped, first_skipped = 0, None
        for entry in read_catalog_feed(feed_url, fetched.path, self.limits):
            if isinstance(entry, _SkippedMember):
                skipped, first_skipped = skipped + 1, first_skipped or entry
            elif _TEXT_TYPE in entry.types and (not wanted or wanted & entry.languages):
                books.append(entry.book)
        if first_skipped is not None:
            _log.warning(
                "%s: skipped %d unusable record(s); the first, %s: %s",
                feed_url,
                skipped,
                first_skipped.name,
                first_skipped.problem,
            )
        return books

    def _batches(self, books: Iterable[int]) -> list[Unit]:
        """One unit per `id // batch_size` batch, ascending; key `"02000-02999"`, urls in id order."""
        size = self.options.batch_size
        batches: dict[int, list[int]] = {}
        for book in sorted(books):
            batches.setdefault(book // size, []).append(book)
        return [
            Unit(
                key=f"{batch * size:0{_KEY_WIDTH}d}-{batch * size + size - 1:0{_KEY_WIDTH}d}",
                urls=tuple(self._url(self.options.text_url, book) for book in books),
                extra={"books": books},
            )
            for batch, books in sorted(batches.items())
        ]

    def read(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        """One `RawRecord` per book of the unit, in id order.

        The payload is `strip_gutenberg_boilerplate` of the decoded file without its leading
        and trailing blank lines; `metadata["body_lines"]` is the `[first, end)` line range of
        the decoded file it was cut from.

        Without an END marker, `metadata["body_end"]` says what ended the body instead
        (`licence-section`: cut where PG's licence section starts, at `body_end_marker`;
        `end-of-file`).

        A book whose text file is missing, has no START marker, or has no END marker and no
        licence-section marker yet mentions Project Gutenberg near its end becomes a quarantined
        `Decision` (`gutenberg.missing_text`, `gutenberg.no_start_marker`,
        `gutenberg.no_end_marker`; an unparseable RDF
        record: `gutenberg.bad_rdf`). A missing RDF record is not an error: the record is
        yielded with `license=None` and the title from the text header. Raises
        `UnreadableInput` naming the URL when a text file cannot be decompressed or is not text.

        A text file (or RDF record) that decompresses to more than `limits.record_bytes` is
        quarantined as `limits.record_bytes` after reading at most that many bytes plus one.
        """
        books = (self._read_book(book, fetcher) for book in unit.extra["books"])
        yield from limit_records(books, self.limits.records_per_unit, f"gutenberg unit {unit.key}")

    # -- one book ------------------------------------------------------------------------

    def _read_book(self, book: int, fetcher: Fetcher) -> RawRecord | Decision:
        text_url = self._url(self.options.text_url, book)
        rdf_url = self._url(self.options.rdf_url, book)
        page_url = self._url(self.options.page_url, book)

        def quarantine(reason: str, detail: str) -> Decision:
            return Decision(str(book), text_url, Outcome.QUARANTINED, stage="raw", reason=reason, detail=detail)

        try:
            fetched = fetcher.fetch(text_url)
        except NotFound as error:
            return quarantine("gutenberg.missing_text", str(error))
        try:
            text, encoding = _decode_text(fetched, self.limits)
        except LimitExceeded as error:
            return over_limit(str(book), text_url, error, f"text of ebook {book} ({fetched.size} bytes as fetched)")
        try:
            body = locate_gutenberg_body(text)
        except NoStartMarker as error:
            return quarantine("gutenberg.no_start_marker", f"{text_url}: {error}")
        except NoEndMarker as error:
            return quarantine("gutenberg.no_end_marker", f"{text_url}: {error}")
        lines = text.lstrip("\ufeff").splitlines()
        payload = "\n".join(lines[body.first_line : body.end_line]).strip("\n")

        try:
            rdf = fetcher.fetch(rdf_url)
        except NotFound:
            catalog = _catalog_from_header(text)
            license_evidence = f"no RDF catalog record for ebook {book} at {rdf_url}"
        else:
            try:
                catalog = _catalog_from_rdf(rdf, book, self.limits)
            except LimitExceeded as error:
                return over_limit(str(book), text_url, error, f"RDF record {rdf_url}")
            except ValueError as error:
                return quarantine("gutenberg.bad_rdf", f"{rdf_url}: {clip(error)}")
            license_evidence = f"RDF dcterms:rights of ebook {book} ({rdf_url})"

        return RawRecord(
            source_record_id=str(book),
            upstream_uri=text_url,
            payload=payload,
            payload_type=PayloadType.TEXT,
            url=page_url,
            title=catalog.title,
            license=catalog.rights,
            license_evidence=license_evidence,
            attribution=_attribution(catalog, book, page_url),
            metadata={
                "authors": catalog.authors,
                "language": catalog.language,
                "issued": catalog.issued,
                "text_sha256": fetched.sha256,
                "rdf_url": rdf_url,
                "encoding": encoding,
                # Lines of the decoded file kept as the book, [first, end): enough to cut the
                # same text again from the file at `upstream_uri`.
                "body_lines": [body.first_line, body.end_line],
                **_unusual_body_end(body),
            },
            notes=_body_end_notes(body, str(book), text_url),
        )

    @staticmethod
    def _url(template: str, book: int) -> str:
        return template.replace("{id}", str(book))


def _unusual_body_end(body: GutenbergBody) -> dict[str, str | None]:
    """`body_end` ("licence-section": no END marker, cut where PG's licence section starts, at
    `body_end_marker`; "end-of-file": neither, no PG text near the end) for a book whose body did
    not end at an END marker; nothing for the usual case, so those records stay as they were."""
    if body.body_end == BodyEnd.END_MARKER:
        return {}
    return {"body_end": body.body_end, "body_end_marker": body.footer_marker}


def _body_end_notes(body: GutenbergBody, record_id: str, text_url: str) -> list[Decision]:
    """The decision behind a body that did not end at an END marker, for the lineage (`trace`)."""
    if body.body_end == BodyEnd.LICENCE_SECTION:
        detail = f"no END marker: cut at line {body.end_line}, where PG's licence section starts ({body.footer_marker!r})"
        reason = "gutenberg.licence_section_cut"
    elif body.body_end == BodyEnd.END_OF_FILE:
        detail = "no END marker and no Project Gutenberg text near the end: kept to the end of the file"
        reason = "gutenberg.no_end_marker"
    else:
        return []
    return [Decision(record_id, text_url, Outcome.KEPT, "raw", reason, str(body.end_line), detail)]


# -- decoding ------------------------------------------------------------------------------


def _decode_text(fetched: FetchedFile, limits: InputLimits) -> tuple[str, str]:
    """The file's text and the encoding used: UTF-8 (BOM or not), else the header's declared
    charset, else latin-1. Raises `UnreadableInput` for a broken archive or a binary file, and
    `LimitExceeded` (having held at most `limits.record_bytes + 1` bytes) for a larger file."""
    try:
        with open_decompressed(fetched.path) as handle:
            data = read_at_most(handle, limits.record_bytes)
    except (EOFError, OSError, zlib.error) as error:
        raise UnreadableInput(fetched.url, f"cannot decompress {fetched.fetched_from}: {error}") from error
    if b"\x00" in data:
        # Latin-1 decodes any bytes, so NULs are how a zip, image or UTF-16 file shows up.
        raise UnreadableInput(fetched.url, f"{fetched.fetched_from} is not a text file (NUL bytes)")
    try:
        return data.decode("utf-8-sig"), "utf-8"
    except UnicodeDecodeError:
        pass
    declared = _declared_charset(data[:_HEADER_SCAN_CHARS].decode("latin-1"))
    if declared:
        try:
            return data.decode(declared), declared
        except UnicodeDecodeError:
            pass  # the header lies (an "ASCII" file with accented letters): fall through
    return data.decode("latin-1"), "latin-1"


def _declared_charset(header: str) -> str | None:
    """The Python codec named by `Character set encoding:`, e.g. "ISO-646-US (US-ASCII)" -> ascii."""
    match = _CHARSET_LINE.search(header)
    if not match:
        return None
    value = match.group("charset")
    # Whole value, then its parenthesised alias, then each word ("ISO Latin-1" -> "Latin-1"),
    # each also without hyphens ("CP-1252" -> "CP1252").
    candidates = [value, *re.findall(r"\(([^)]+)\)", value), *value.split()]
    for candidate in candidates:
        for name in (candidate.strip(), candidate.strip().replace("-", "")):
            try:
                return codecs.lookup(name).name
            except LookupError:
                continue
    return None


# -- catalog feed --------------------------------------------------------------------------


def read_catalog_feed(
    feed_url: str, path: Path, limits: InputLimits | None = None
) -> Iterator[_FeedRecord | _SkippedMember]:
    """The records of PG's RDF feed (a tar, usually bz2) at `path`, one member at a time.

    Members not named `pg<id>.rdf` (directories, ...) are passed over; one larger than
    `limits.record_bytes` (or 16 MiB) is skipped unread. Raises `UnreadableInput` naming
    `feed_url` when the archive cannot be read to its end (truncated, not a tar) or decompresses
    to more than `limits.file_bytes`.
    """
    limits = limits or InputLimits()
    parser = _rdf_parser()
    max_member = min(_MAX_FEED_RECORD_BYTES, limits.record_bytes)
    try:
        with open_decompressed(path, max_bytes=limits.file_bytes) as stream, tarfile.open(fileobj=stream, mode="r|") as tar:
            while (member := tar.next()) is not None:
                # Stream mode keeps every header it has read; on the real feed that list grows
                # with the ~150,000 members, and only the current one is needed.
                tar.members = []
                match = _FEED_MEMBER.search(member.name)
                if member.isfile() and match:
                    yield _feed_entry(tar, member, int(match["id"]), parser, max_member)
            _read_to_end(stream)
    except LimitExceeded as error:
        raise UnreadableInput(feed_url, f"catalog feed decompresses to more than limits.file_bytes={error.limit} bytes") from error
    except (tarfile.TarError, EOFError, OSError, zlib.error) as error:
        raise UnreadableInput(feed_url, f"catalog feed cannot be read: {clip(error)}") from error


def _read_to_end(stream: BinaryIO) -> None:
    # A feed cut at a member boundary looks like the end of the tar; only the decompressor,
    # read to its end, notices the missing end-of-stream marker (and raises EOFError).
    while stream.read(1 << 16):
        pass


def _feed_entry(
    tar: tarfile.TarFile, member: tarfile.TarInfo, book: int, parser: etree.XMLParser, max_bytes: int
) -> _FeedRecord | _SkippedMember:
    """The id, DCMI types and languages of one member's record, or why it is skipped."""
    if member.size > max_bytes:
        # The tar header states the size and extractfile reads exactly that: skip it unread.
        return _SkippedMember(clip(member.name), f"{member.size} bytes, not an RDF record (limit {max_bytes})")
    # Read before parsing: an I/O error here is the feed's (it propagates), not the record's.
    data = tar.extractfile(member).read()
    try:
        ebook = _ebook_element(etree.fromstring(data, parser), book)
    except (etree.XMLSyntaxError, ValueError) as error:
        return _SkippedMember(clip(member.name), clip(error))

    def values(path: str) -> frozenset[str]:
        return frozenset(text for text in map(_own_text, ebook.iterfind(path, _NS)) if text)

    languages = frozenset(language.lower() for language in values("dcterms:language//rdf:value"))
    return _FeedRecord(book, values("dcterms:type//rdf:value"), languages)


# -- catalog -------------------------------------------------------------------------------


def _rdf_parser() -> etree.XMLParser:
    # No entity expansion, no DTD, no network: records come from a mirror we do not control.
    return etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False, huge_tree=False)


def _ebook_element(root: etree._Element, book: int) -> etree._Element:
    """The record's `pgterms:ebook`, checked to describe `book`; ValueError otherwise."""
    ebook = root.find("pgterms:ebook", _NS)
    if ebook is None:
        raise ValueError("no pgterms:ebook element")
    about = ebook.get(f"{{{_NS['rdf']}}}about", "")
    if about.rsplit("/", 1)[-1] != str(book):
        raise ValueError(f"record describes {clip(repr(about))}, not ebooks/{book}")
    return ebook


def _catalog_from_rdf(rdf: FetchedFile, book: int, limits: InputLimits) -> _Catalog:
    """Title, creators, language, rights and issue date of the RDF record; ValueError if unusable,
    `LimitExceeded` if it decompresses to more than `limits.record_bytes`."""
    try:
        with open_decompressed(rdf.path, max_bytes=limits.record_bytes, what="record_bytes") as handle:
            root = etree.parse(handle, _rdf_parser()).getroot()
    except (etree.XMLSyntaxError, EOFError, OSError, zlib.error) as error:
        raise ValueError(f"not a readable RDF/XML record: {clip(error)}") from error
    ebook = _ebook_element(root, book)

    def first_text(path: str) -> str | None:
        element = ebook.find(path, _NS)
        return (_own_text(element) or None) if element is not None else None

    # Authors are the creators; translators, editors and illustrators are marcrel:* agents.
    names = ebook.iterfind("dcterms:creator/pgterms:agent/pgterms:name", _NS)
    authors = [text for text in map(_own_text, names) if text]
    return _Catalog(
        title=first_text("dcterms:title"),
        authors=authors,
        language=first_text("dcterms:language//rdf:value"),
        rights=first_text("dcterms:rights"),
        issued=first_text("dcterms:issued"),
    )


def _own_text(element: etree._Element) -> str:
    # Direct text nodes only: an unexpanded entity reference (`&x;`) is a node of its own and
    # must not leak into the value as text.
    return _clean("".join(element.xpath("text()")))


def _catalog_from_header(text: str) -> _Catalog:
    """Title and author from the text's own header, for a book without an RDF record."""
    fields: dict[str, list[str]] = {}
    current: list[str] | None = None
    for line in text[:_HEADER_SCAN_CHARS].splitlines():
        match = _HEADER_FIELD.match(line)
        if match:
            current = fields.setdefault(match.group("name").lower(), [match.group("value")])
        elif current is not None and line.strip() and not re.match(r"^\w[\w ]*:", line):
            current.append(line)  # a wrapped title or an indented subtitle
        else:
            current = None
    title = _clean(" ".join(fields["title"])) if "title" in fields else None
    author = _clean(" ".join(fields["author"])) if "author" in fields else None
    return _Catalog(title=title or None, authors=[author] if author else [], language=None, rights=None, issued=None)


def _attribution(catalog: _Catalog, book: int, page_url: str) -> str:
    title = catalog.title or f"Untitled ebook {book}"
    by = f" by {'; '.join(catalog.authors)}" if catalog.authors else ""
    return f"{title}{by}, Project Gutenberg eBook #{book}, {page_url}"


def _clean(value: str) -> str:
    # RDF titles put the subtitle on a new line; headers wrap long titles. One line, one space.
    return " ".join(value.split())
