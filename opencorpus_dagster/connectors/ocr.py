"""Digitised print: ALTO (1.x-4.x) and hOCR pages, alone or through an issue METS (kind `ocr`).

One unit (partition) is an issue or a volume: an NDNP-style issue METS (its structMap gives the
page order and its `USE="ocr"` files the ALTO pages) or a list of page files in page order.
Records are pages by default; `record: block` makes one record per text block, `record: unit`
one record for the whole issue or volume. `upstream_uri` is `<file URL>#page=<n>` (and
`&block=<id>` for block records; a unit record names its METS or first page with
`#pages=<first>-<last>`). A page's number is the METS page number, else the `page-number` of the
page file's `.yml` sidecar (the ocr-fileformat-samples layout), else its position in the list.

The connector reports what the files state: text in reading order with hyphenation rejoined
(text/ocr.py), the engine, the mean word confidence, the kind of print (`print:`) and the
bibliographic metadata the catalog gives for the unit; the OCR quality rule and the licence
steps judge them.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Literal, Self
from urllib.parse import urljoin, urlsplit

import yaml
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, model_validator

from opencorpus_dagster.connectors.base import Connector, LocalRootOptions, Unit, UnreadableInput, register
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.state.home import check_partition_key
from opencorpus_dagster.text.ocr import (
    OcrFormatError,
    OcrPage,
    mean_confidence,
    page_text,
    read_ocr_page,
    refuse_entity_declarations,
)
from opencorpus_dagster.upstream.compression import read_decompressed_bytes
from opencorpus_dagster.upstream.fetch import Fetcher, NotFound
from opencorpus_dagster.upstream.limits import LimitExceeded, limit_records, over_limit
from opencorpus_dagster.upstream.url_policy import UrlRefused, is_local, local_path_text

_METS_NS = "http://www.loc.gov/METS/"
_XLINK = "{http://www.w3.org/1999/xlink}href"
_SIDECAR_BYTES = 64 * 1024


class Bibliographic(BaseModel):
    """What a catalogue knows of the printed work (used by the US renewal determination)."""

    model_config = ConfigDict(extra="forbid")

    title: str | None = None
    author: str | None = None
    year: int | None = None
    country: str | None = None  # ISO 3166 alpha-2 or a name; "US" for the United States
    registration: str | None = None  # a copyright registration number, e.g. A50980 or AF0-4873
    registered: str | None = None  # its date, YYYY-MM-DD
    registration_class: str | None = None  # CCE class: A (books), AA, AF, AI, B, DU, ...


class OcrUnit(BaseModel):
    """One issue or volume: `mets` (an issue METS naming its ALTO pages) or `pages` (files in
    page order), optional `bibliographic` metadata."""

    model_config = ConfigDict(extra="forbid")

    mets: str | None = None
    pages: list[str] | None = Field(default=None, min_length=1)
    bibliographic: Bibliographic | None = None

    @model_validator(mode="after")
    def _one_listing(self) -> Self:
        if (self.mets is None) == (self.pages is None):
            raise ValueError("give either `mets` (an issue METS file) or `pages` (ALTO/hOCR files in page order)")
        return self


@dataclass(frozen=True)
class _Page:
    number: int
    url: str
    label: str | None = None


@register
class OcrConnector(Connector):
    kind = "ocr"
    content_kind = "print"  # quality defaults (text/quality_defaults.py): laid out line by line as printed
    unit_listing_options = ("units",)

    class Options(LocalRootOptions):
        """`units`: partition key -> an issue or volume; `record`: page | block | unit;
        `print`: the kind of print (book, newspaper, periodical, typescript) that picks the OCR
        quality rule's default threshold; `root`: the absolute local folder local files are
        read from (as for `textfiles`)."""

        units: dict[str, OcrUnit] = Field(min_length=1)
        record: Literal["page", "block", "unit"] = "page"
        print: Literal["book", "newspaper", "periodical", "typescript"] = "book"

        @model_validator(mode="after")
        def _files_are_allowed(self) -> Self:
            for key, unit in self.units.items():
                check_partition_key(key)
                if unit.mets is not None:
                    unit.mets = self.checked_file(unit.mets)
                if unit.pages is not None:
                    unit.pages = [self.checked_file(page) for page in unit.pages]
            return self

    def units(self) -> list[Unit]:
        units = []
        for key, unit in sorted(self.options.units.items()):
            urls = (unit.mets,) if unit.mets else tuple(unit.pages or ())
            units.append(Unit(key, urls, extra={"unit": unit.model_dump(mode="json")}))
        return units

    def read(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        yield from limit_records(self._read_unit(unit, fetcher), self.limits.records_per_unit, f"ocr unit {unit.key}")

    # -- internals ---------------------------------------------------------------------------

    def _root(self) -> Path | None:
        return Path(self.options.root) if self.options.root else None

    def _bytes(self, url: str, fetcher: Fetcher) -> tuple[bytes, str]:
        fetched = fetcher.fetch(url, local_root=self._root())
        try:
            return read_decompressed_bytes(fetched.path, self.limits.record_bytes, "record_bytes"), fetched.sha256
        except (OSError, EOFError, zlib.error) as error:
            raise UnreadableInput(url, f"cannot be read: {error}") from error

    def _pages(self, unit: OcrUnit, fetcher: Fetcher) -> tuple[list[_Page], dict]:
        if unit.mets is None:
            return [_Page(self._sidecar_page(url, fetcher) or n, url) for n, url in enumerate(unit.pages or [], 1)], {}
        data, sha256 = self._bytes(unit.mets, fetcher)
        try:
            return _mets_pages(unit.mets, data), {
                "mets": unit.mets,
                "mets_sha256": sha256,
                "mets_label": _mets_label(data),
            }
        except (etree.XMLSyntaxError, ValueError) as error:
            raise UnreadableInput(unit.mets, f"not an issue METS file: {error}") from error

    def _sidecar_page(self, url: str, fetcher: Fetcher) -> int | None:
        """`page-number` from `<file>.yml` beside a single page, when there is one."""
        try:
            fetched = fetcher.fetch(url + ".yml", local_root=self._root())
            text = read_decompressed_bytes(fetched.path, _SIDECAR_BYTES, "record_bytes").decode("utf-8")
            data = yaml.safe_load(text)
        except (NotFound, UrlRefused, LimitExceeded, OSError, UnicodeDecodeError, yaml.YAMLError):
            return None
        number = data.get("page-number") if isinstance(data, dict) else None
        return number if isinstance(number, int) and number > 0 else None

    def _read_unit(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        spec = OcrUnit.model_validate(unit.extra["unit"])
        pages, issue = self._pages(spec, fetcher)
        bibliographic = spec.bibliographic.model_dump(exclude_none=True) if spec.bibliographic else None
        title = (spec.bibliographic.title if spec.bibliographic else None) or issue.get("mets_label") or unit.key
        whole: list[tuple[_Page, OcrPage, str, str]] = []
        for page in pages:
            record_id = f"{unit.key}/p{page.number:04d}"
            uri = f"{page.url}#page={page.number}"
            try:
                data, sha256 = self._bytes(page.url, fetcher)
            except NotFound as error:
                yield Decision(record_id, uri, Outcome.QUARANTINED, "raw", "ocr.missing_page", None, str(error))
                continue
            except UrlRefused as refusal:
                yield Decision(record_id, uri, Outcome.QUARANTINED, "raw", refusal.rule, None, str(refusal))
                continue
            except LimitExceeded as error:
                yield over_limit(record_id, uri, error, f"page {page.url}")
                continue
            try:
                layout = read_ocr_page(data)
            except OcrFormatError as error:
                raise UnreadableInput(page.url, str(error)) from error
            common = {
                "file_sha256": sha256,
                "ocr": {
                    "format": layout.format,
                    "engine": layout.engine,
                    "print": self.options.print,
                    "page": page.number,
                },
                **({"issue": issue} if issue else {}),
                **({"bibliographic": bibliographic} if bibliographic else {}),
            }
            if self.options.record == "unit":
                whole.append((page, layout, sha256, record_id))
                continue
            if self.options.record == "page":
                text = page_text(layout)
                if not text.strip():
                    yield Decision(
                        record_id, uri, Outcome.SKIPPED, "raw", "ocr.no_text", None, "the page has no recognised text"
                    )
                    continue
                yield self._record(record_id, uri, text, layout.words, f"{title}, p. {page.number}", common, page.url)
                continue
            for block in layout.blocks:
                text = page_text(layout, [block])
                if text.strip():
                    block_uri = f"{uri}&block={block.block_id}"
                    words = [w for line in block.lines for w in line]
                    yield self._record(
                        f"{record_id}/{block.block_id}",
                        block_uri,
                        text,
                        words,
                        f"{title}, p. {page.number}",
                        common,
                        page.url,
                    )
        if whole:
            yield self._unit_record(unit, spec, whole, issue, bibliographic, title)

    def _record(self, record_id, uri, text, words, title, metadata, url) -> RawRecord:
        metadata = {
            **metadata,
            "ocr": {**metadata["ocr"], "words": len(words), "word_confidence": _rounded(mean_confidence(words))},
        }
        return RawRecord(
            source_record_id=record_id,
            upstream_uri=uri,
            payload=text,
            payload_type=PayloadType.TEXT,
            url=url if urlsplit(url).scheme in ("http", "https") else None,
            title=title,
            attribution=url,
            metadata=metadata,
        )

    def _unit_record(self, unit, spec, whole, issue, bibliographic, title) -> RawRecord:
        first, last = whole[0][0], whole[-1][0]
        anchor = spec.mets or first.url
        text = "\n\n".join(t for t in (page_text(layout) for _, layout, _, _ in whole) if t.strip())
        words = [w for _, layout, _, _ in whole for w in layout.words]
        layout0 = whole[0][1]
        metadata = {
            "ocr": {
                "format": layout0.format,
                "engine": layout0.engine,
                "print": self.options.print,
                "pages": [{"page": p.number, "url": p.url, "sha256": sha} for p, _, sha, _ in whole],
            },
            **({"issue": issue} if issue else {}),
            **({"bibliographic": bibliographic} if bibliographic else {}),
        }
        return self._record(
            unit.key, f"{anchor}#pages={first.number}-{last.number}", text, words, title, metadata, anchor
        )


def _rounded(value: float | None) -> float | None:
    return None if value is None else round(value, 4)


def _mets_root(data: bytes) -> etree._Element:
    data = data.removeprefix(b"\xef\xbb\xbf")
    try:
        refuse_entity_declarations(data)  # hrefs are attributes: see text/ocr.py
    except OcrFormatError as error:
        raise ValueError(str(error)) from error
    parser = etree.XMLParser(resolve_entities=False, load_dtd=False, no_network=True)
    return etree.fromstring(data, parser)


def _mets_label(data: bytes) -> str | None:
    return _mets_root(data).get("LABEL")


def _mets_pages(mets_url: str, data: bytes) -> list[_Page]:
    """The ALTO pages of an NDNP issue METS in structMap order, numbered by MODS `start`."""
    root = _mets_root(data)
    if etree.QName(root).localname != "mets":
        raise ValueError(f"root element is <{etree.QName(root).localname}>, not <mets>")
    ns = {"m": _METS_NS, "mods": "http://www.loc.gov/mods/v3"}
    ocr_files: dict[str, str] = {}
    for file in root.iterfind(".//m:fileSec//m:file", ns):
        if (file.get("USE") or "").lower() == "ocr":
            locat = file.find("m:FLocat", ns)
            if locat is not None and locat.get(_XLINK):
                ocr_files[file.get("ID")] = locat.get(_XLINK)
    pages: list[_Page] = []
    for position, div in enumerate(root.iterfind(".//m:structMap//m:div[@TYPE='np:page']", ns), 1):
        number = position
        dmd = div.get("DMDID")
        if dmd:
            start = root.find(f".//m:dmdSec[@ID='{dmd}']//mods:extent[@unit='pages']/mods:start", ns)
            if start is not None and (start.text or "").strip().isdigit():
                number = int(start.text.strip())
        for pointer in div.iterfind("m:fptr", ns):
            href = ocr_files.get(pointer.get("FILEID"))
            if href:
                pages.append(_Page(number, _resolve(mets_url, href)))
    if not pages:
        raise ValueError("its structMap names no page with an OCR file")
    return pages


def _resolve(base: str, href: str) -> str:
    """A METS href relative to the METS file; an href may not climb out of the METS folder."""
    if urlsplit(href).scheme or href.startswith("/"):
        raise ValueError(f"OCR file {href!r} is not relative to the METS file")
    relative = PurePosixPath(href)
    if ".." in relative.parts:
        raise ValueError(f"OCR file {href!r} climbs out of the METS folder")
    if is_local(base):
        return str(PurePosixPath(local_path_text(base)).parent / relative)
    return urljoin(base, str(relative))
