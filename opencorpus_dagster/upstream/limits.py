"""How much one upstream file, record or line may hold before the reader stops reading it.

Upstream data is not ours: a 117 KB bz2 served as a book decompresses to 2.2 GB, a wiki page can
be one 50 MB line, a file without newlines can be served as a WARC. Every reader streams its input
and checks these limits as it goes, so hostile input costs a bounded amount of memory and time:

- over `record_bytes`, the record is quarantined (`Decision`, reason `limits.record_bytes`, value:
  the bytes seen when reading stopped) and the partition goes on;
- over `file_bytes` (decompressed bytes of one input file), `records_per_unit` (records and
  decisions one unit yields) or `line_bytes` (one line of a line-oriented header: WARC, WET, ARC,
  HTTP), the partition fails with `UnreadableInput` naming the file and the limit.

A source overrides any of them in its catalog entry (`limits: {record_bytes: 256MiB}`). They are
part of the source's fingerprint: a record over the limit is quarantined, so the limits change
the output.

Plain Python: no dagster import.
"""

from __future__ import annotations

from collections.abc import Iterator
from typing import TypeVar

from pydantic import BaseModel, ByteSize, ConfigDict, Field

from opencorpus_dagster.records import Decision, Outcome

KIB, MIB, GIB = 1 << 10, 1 << 20, 1 << 30

# Upstream text quoted in an error message or a decision's detail is cut to this many characters:
# a message that carries a 5-million-character line is itself a memory and log problem.
QUOTE_CHARS = 200

T = TypeVar("T")


class LimitExceeded(ValueError):
    """More than `limit` of `what` (a field name of `InputLimits`) was read; `seen` is how much."""

    def __init__(self, what: str, limit: int, seen: int, where: str = ""):
        place = f" {where}" if where else ""
        super().__init__(f"{what}{place}: read {seen} bytes, more than limits.{what}={limit}")
        self.what = what
        self.limit = limit
        self.seen = seen


class InputLimits(BaseModel):
    """The `limits:` block of a catalog entry; sizes are bytes, as ints or "64MiB"-style text."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    # Decompressed bytes of one input file. The largest single files a catalog may name are the
    # un-split dumps: enwiki `pages-articles-multistream.xml.bz2` (~22 GB bz2, ~100 GB of XML)
    # and stackoverflow.com `Posts.xml` (~100 GB). 256 GiB passes them with room for growth;
    # a bomb is stopped after at most this much CPU and scratch disk (Stack Exchange copies its
    # rows into a SQLite file), never memory, since every reader streams.
    file_bytes: ByteSize = Field(default=ByteSize(256 * GIB), gt=0)
    # Decompressed bytes of one record (a book, a page revision, a post row, a WARC payload). The
    # largest real ones are Gutenberg's dictionaries (Webster's Unabridged, ebook 29765: ~28 MB);
    # MediaWiki caps a revision at 2 MiB of wikitext ($wgMaxArticleSize on Wikimedia wikis), Stack
    # Exchange a post body at 30,000 characters, Common Crawl truncates WARC payloads at 1 MiB.
    # A record is held whole in memory by the reader and again by the text steps after it (a
    # 50 MB page took a build to 2.65 GB), so the default stays at the smallest size every real
    # text passes: 32 MiB.
    record_bytes: ByteSize = Field(default=ByteSize(32 * MIB), gt=0)
    # One header line of a line-oriented format (WARC/WET/ARC record headers, HTTP headers). Real
    # lines are a URL or a cookie: kilobytes at most. 1 MiB keeps an absurd one readable.
    line_bytes: ByteSize = Field(default=ByteSize(1 * MIB), gt=0)
    # Records plus decisions one unit (partition) may yield. The raw stage keeps a row per
    # decision and per record's lineage in memory until the partition is written, so this bounds
    # that. Real units: a Common Crawl WARC holds ~100,000 records (request, response, metadata
    # per page), an enwiki pages-articles part file a few million pages, the largest Stack
    # Exchange site but one (math) ~4 million posts. A source reading the un-split enwiki dump
    # (~24 million pages) or stackoverflow.com's Posts.xml (~60 million rows) raises it.
    records_per_unit: int = Field(default=10_000_000, gt=0)


def clip(text: object, limit: int = QUOTE_CHARS) -> str:
    """`text` as a string of at most about `limit` characters, saying how much was cut."""
    value = text if isinstance(text, str) else str(text)
    if len(value) <= limit:
        return value
    return f"{value[:limit]}... [{len(value) - limit} more characters]"


def limit_records(items: Iterator[T], limit: int, location: str) -> Iterator[T]:
    """`items`, raising `UnreadableInput(location, ...)` when more than `limit` come out.

    Failing the partition is chosen over quarantining the rest: past the limit every further
    item would still cost a decision row, which is what the limit exists to bound.
    """
    from opencorpus_dagster.connectors.base import UnreadableInput  # base imports fetch; keep this module light

    for count, item in enumerate(items, start=1):
        if count > limit:
            raise UnreadableInput(location, f"yields more than limits.records_per_unit={limit} records")
        yield item


def read_at_most(stream, limit: int, what: str = "record_bytes") -> bytes:
    """Up to `limit` bytes of `stream`; raises `LimitExceeded(what, ...)` if there are more.

    Reads at most `limit + 1` bytes, looping because some readers return short reads before EOF.
    """
    parts: list[bytes] = []
    size = 0
    while size <= limit:
        chunk = stream.read(min(limit + 1 - size, 1 << 20))
        if not chunk:
            break
        parts.append(chunk)
        size += len(chunk)
    if size > limit:
        raise LimitExceeded(what, limit, size)
    return b"".join(parts)


def over_limit(record_id: str, upstream_uri: str, error: LimitExceeded, what: str = "record") -> Decision:
    """The quarantine decision for a record that `error` stopped: reason `limits.<field>`, value
    the bytes seen when reading stopped, detail naming the limit."""
    return Decision(
        record_id,
        upstream_uri,
        Outcome.QUARANTINED,
        stage="raw",
        reason=f"limits.{error.what}",
        value=str(error.seen),
        detail=f"{what} is larger than limits.{error.what}={error.limit} bytes (read {error.seen} bytes, then stopped)",
    )
