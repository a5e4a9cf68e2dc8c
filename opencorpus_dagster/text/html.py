"""HTML pages to text: decode the bytes to a string, then extract the main text with trafilatura.

Two steps, both pure functions:

- `decode_html(body, declared_charset)` turns the bytes of a page into `str`, choosing the
  charset the way a browser would (BOM, then the HTTP header, then `<meta charset>` /
  `http-equiv`), and falling back to detection with charset_normalizer when no declaration
  decodes the bytes cleanly. It reports where the charset came from and how many bytes had to
  be replaced, so a caller can record or refuse a badly decoded page.
- `extract_html(html, url, options)` returns the main text and page metadata
  (`ExtractedPage`), or None when trafilatura finds no main text.

The defaults of `ExtractionOptions` were chosen with `benchmarks/extraction_quality.py`
(precision first, as a corpus must not fill up with menus and cookie banners).
"""

from __future__ import annotations

import codecs
import logging
import re
from dataclasses import dataclass
from html import unescape

import charset_normalizer
import trafilatura
from htmldate import find_date
from trafilatura.metadata import examine_meta, extract_author, extract_meta_json, extract_title, extract_url
from trafilatura.settings import set_date_params
from trafilatura.utils import line_processing, load_html

from opencorpus_dagster.text.extraction_options import ExtractionOptions

# The HTML5 prescan looks at the first 1024 bytes; real pages put <meta charset> after long
# <script> blocks often enough that a wider window finds more declarations at no real cost.
_META_SCAN_BYTES = 8192
_META_CHARSET = re.compile(rb"""<meta[^>]+charset\s*=\s*["']?\s*([A-Za-z0-9_.:\-]+)""", re.IGNORECASE)

# WHATWG Encoding Standard: browsers decode these labels as windows-1252, and pages labelled
# latin-1 routinely contain cp1252 quotes and dashes (0x80-0x9F).
_HTML_LANG = re.compile(
    r"""<html\b[^>]*?\slang\s*=\s*["']?\s*([A-Za-z]{2,3}(?:[-_][A-Za-z0-9]{1,8})*)""", re.IGNORECASE
)

# Share of undecodable characters up to which a declared charset is kept (with U+FFFD).
_STRAY_BYTES_FRACTION = 0.001

_BROWSER_ALIASES = {"iso8859-1": "cp1252", "latin-1": "cp1252", "ascii": "cp1252"}

_BOMS = (
    (codecs.BOM_UTF8, "utf-8"),
    (codecs.BOM_UTF32_LE, "utf-32"),  # before UTF-16 LE: its BOM starts with UTF-16 LE's
    (codecs.BOM_UTF32_BE, "utf-32"),
    (codecs.BOM_UTF16_LE, "utf-16"),
    (codecs.BOM_UTF16_BE, "utf-16"),
)


@dataclass(frozen=True)
class DecodedHtml:
    """A page decoded to text: which charset, where it came from, how many bytes were replaced.

    `charset_source` is `bom`, `header` (the caller's declared charset, e.g. HTTP
    Content-Type), `meta` (`<meta charset>` or `http-equiv`), or `detected` (charset_normalizer).
    """

    text: str
    charset: str
    charset_source: str
    replaced: int  # U+FFFD characters introduced by decoding (0 when the bytes decoded cleanly)


def normalise_charset(label: str | None) -> str | None:
    """Python codec name for a charset label, or None when the label is empty or unknown."""
    if not label:
        return None
    try:
        name = codecs.lookup(label.strip().strip("\"'")).name
    except (LookupError, ValueError):
        return None
    return _BROWSER_ALIASES.get(name, name)


def meta_charset(body: bytes) -> str | None:
    """The charset declared by `<meta charset=...>` or `<meta http-equiv content="...charset=...">`."""
    match = _META_CHARSET.search(body[:_META_SCAN_BYTES])
    return normalise_charset(match.group(1).decode("ascii", "replace")) if match else None


def decode_html(body: bytes, declared_charset: str | None = None) -> DecodedHtml:
    """Decode page bytes to text; never raises.

    Order: BOM; `declared_charset` (the HTTP header's), then the `<meta>` declaration, the first
    that decodes the bytes without error, else the first that leaves at most 0.1 % of characters
    undecodable; then charset_normalizer's best guess; last resort the first declared charset
    (or UTF-8). Undecodable bytes become U+FFFD, counted in `replaced`.
    """
    for bom, charset in _BOMS:
        if body.startswith(bom):
            text = body.decode(charset, errors="replace")
            return DecodedHtml(text.lstrip("\ufeff"), charset, "bom", text.count("\ufffd"))
    header = normalise_charset(declared_charset)
    meta = meta_charset(body)
    declared = [(charset, source) for charset, source in ((header, "header"), (meta, "meta")) if charset]
    for charset, source in declared:
        try:
            return DecodedHtml(body.decode(charset), charset, source, 0)
        except UnicodeDecodeError:
            continue
    for charset, source in declared:
        # A few stray bytes in an otherwise correctly declared page (a cut multi-byte character, a
        # pasted cp1252 quote): keep the declaration, as browsers do, rather than let detection
        # pick a single-byte codepage that turns every accented letter into mojibake.
        text = body.decode(charset, errors="replace")
        replaced = text.count("\ufffd")
        if replaced <= max(1, len(text) * _STRAY_BYTES_FRACTION):
            return DecodedHtml(text, charset, source, replaced)
    best = charset_normalizer.from_bytes(body).best()
    if best is not None:
        charset = normalise_charset(best.encoding) or best.encoding
        text = body.decode(charset, errors="replace")
        return DecodedHtml(text, charset, "detected", text.count("\ufffd"))
    charset, source = next(((c, s) for c, s in ((header, "header"), (meta, "meta")) if c), ("utf-8", "detected"))
    text = body.decode(charset, errors="replace")
    return DecodedHtml(text, charset, source, text.count("\ufffd"))


@dataclass(frozen=True)
class ExtractedPage:
    """Main text of a page and the metadata trafilatura found in it.

    `language` is what the page declares in `<html lang>` (trafilatura itself only identifies
    the language when asked to filter on one); identifying the text's language is a later step.
    """

    text: str
    title: str | None
    author: str | None
    date: str | None  # ISO 8601 date (YYYY-MM-DD) as found by htmldate
    language: str | None


def extract_main_text(html: str, url: str | None = None, options: ExtractionOptions | None = None) -> str | None:
    """The main text of `html` without its metadata, or None when nothing is extracted.

    Metadata (title, author and above all the date, found by htmldate) costs about half again
    the text extraction, so the documents stage asks for it only for pages that pass every
    filter (`page_metadata`). trafilatura extracts the text the same way with or without
    metadata when the page's `url` is known; without one it falls back on the page's canonical
    URL, which only the metadata pass reads, so then the metadata is extracted here too.
    """
    if url is None:
        page = extract_html(html, url, options)
        return page.text if page is not None else None
    document = _bare_extraction(html, url, options or ExtractionOptions(), with_metadata=False)
    if document is None:
        return None
    return (document.text or "").strip() or None


def page_metadata(html: str, url: str | None = None) -> dict[str, str]:
    """Title, author and date (ISO 8601) trafilatura finds in `html`, as `bare_extraction` with
    metadata would: the keys found, none empty. Markup it cannot parse gives {}.

    trafilatura's `extract_metadata` also looks for the site name, categories, tags and a
    licence, after the date, and none of them changes the three fields kept here: its steps up
    to the date are run, in its order, then its final clean-up on those fields (a fifth of
    the cost of metadata on web pages was the steps after the date).
    """
    try:
        tree = load_html(html)
        if tree is None:
            return {}
        found = _title_author_date(tree, url, set_date_params(True))
    except ValueError:
        return {}
    return {key: value for key, value in found.items() if value}


def _title_author_date(tree, default_url: str | None, date_config: dict) -> dict[str, str | None]:
    """trafilatura 2.x's `extract_metadata` (no author blacklist) up to the date, then its
    `Document.clean_and_trim` on title, author and date."""
    metadata = examine_meta(tree)
    if metadata.author and " " not in metadata.author:
        metadata.author = None
    try:
        metadata = extract_meta_json(tree, metadata)
    except Exception as error:  # noqa: BLE001 (as extract_metadata: a bug in trafilatura's JSON-LD reader)
        logging.getLogger(__name__).debug("JSON-LD metadata not read: %s", error)
    if not metadata.title:
        metadata.title = extract_title(tree)
    if not metadata.author:
        metadata.author = extract_author(tree)
    if not metadata.url:
        metadata.url = extract_url(tree, default_url)
    metadata.date = find_date(tree, **{**date_config, "url": metadata.url})
    return {key: _cleaned(getattr(metadata, key)) for key in ("title", "author", "date")}


def _cleaned(value):
    """trafilatura's `Document.clean_and_trim` on one field."""
    if not isinstance(value, str):
        return value
    if len(value) > 10000:
        value = value[:9999] + "…"
    return line_processing(unescape(value))


def extract_html(html: str, url: str | None = None, options: ExtractionOptions | None = None) -> ExtractedPage | None:
    """Main text and metadata of `html`, or None when nothing (or only whitespace) is extracted.

    `url` helps trafilatura with metadata (site name, relative dates) and is not fetched.
    Markup trafilatura cannot parse at all yields None, not an exception.
    """
    options = options or ExtractionOptions()
    document = _bare_extraction(html, url, options, with_metadata=True)
    if document is None:
        return None
    text = (document.text or "").strip()
    if not text:
        return None
    return ExtractedPage(
        text=text,
        title=document.title or None,
        author=document.author or None,
        date=document.date or None,
        language=declared_language(html),
    )


def _bare_extraction(html: str, url: str | None, options: ExtractionOptions, with_metadata: bool):
    if not html or not html.strip():
        return None
    return trafilatura.bare_extraction(
        html,
        url=url,
        fast=options.fast,
        favor_precision=options.favor_precision,
        favor_recall=options.favor_recall,
        include_comments=options.include_comments,
        include_tables=options.include_tables,
        include_links=options.include_links,
        include_formatting=options.include_formatting,
        deduplicate=options.deduplicate,
        max_tree_size=options.max_tree_size,
        prune_xpath=options.prune_xpath,
        with_metadata=with_metadata,
    )


def preload() -> None:
    """Build dateparser's locale tables now, before a build forks its partition workers, so
    they share them. htmldate hands a date string none of its own patterns read to dateparser,
    with every language allowed; the first one makes dateparser compile every locale: 2-3 s of
    CPU, which each worker of a web build paid. The parser keeps no other state from a call
    (htmldate leaves `try_previous_locales` off), so what it returns later is unchanged."""
    from htmldate.extractors import external_date_parser

    external_date_parser("opencorpus preload", "%Y-%m-%d")


def declared_language(html: str) -> str | None:
    """The `<html lang="...">` value (a BCP 47 tag as written, e.g. `en-US`), or None."""
    match = _HTML_LANG.search(html[: _META_SCAN_BYTES * 4])
    return match.group(1) if match else None
