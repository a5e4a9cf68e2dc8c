"""Stack Exchange data dumps (`Posts.xml`): one document per question, with its answers.

Catalog entry::

    kind: stackexchange
    options:
      sites:
        - posts: https://fixtures.opencorpus.invalid/stackexchange/coffee.stackexchange.com-2015-03/Posts.xml
          site_url: https://coffee.stackexchange.com
      include_unanswered: true
      min_answer_score: null

One site dump is one unit (partition). Its key is `key` when given, else the site host plus the
dump date when the posts URL names one (`.../coffee.stackexchange.com-2015-03/Posts.xml` ->
`coffee.stackexchange.com-2015-03`), else the host.

How rows map to outcomes (every `<row>` of Posts.xml has exactly one):

- a question (PostTypeId 1) -> one `RawRecord` that also *accounts for* every answer folded into
  it (its `metadata["post_ids"]` lists them); or `skipped stackexchange.unanswered` when
  `include_unanswered` is false and no answer is left;
- an answer (PostTypeId 2) -> folded into its question's record; or `skipped
  stackexchange.answer_below_min_score` (value: its score) when `min_answer_score` drops it; or
  `skipped stackexchange.orphan_answer` when its question is not in the dump (or was quarantined);
- any other post type (3-8: orphaned tag wikis, tag wiki excerpts and bodies, moderator
  nominations, wiki placeholders, privilege wikis) -> `skipped stackexchange.post_type`;
- a row missing its Id, with a bad PostTypeId / ParentId / Score / duplicate Id, an unparseable
  date, or referencing an entity declared in the file's DOCTYPE -> `quarantined
  stackexchange.malformed_row` with the problem as detail.

`min_answer_score` applies to the accepted answer too. Every `source_record_id` (records and
decisions) is `<site host>/<post id>` (`coffee.stackexchange.com/1`): post ids are unique only
within a site, and one source may list several sites.

So for the conservation check the raw count of a partition is `records + decisions`, not the
number of rows: answers folded into a question document are not separate raw records.

Grouping without holding the dump in memory: the dump is ordered by Id, so an answer can come
long after its question. Pass one streams the XML into a scratch SQLite database (one row per
post, indexed by parent) under the fetcher's cache directory; pass two walks the questions in Id
order and fetches each one's answers by index. Memory is bounded by one question's answers plus
SQLite's page cache; disk use is about the size of the decompressed dump. Nothing is yielded
until the whole file has parsed, so an unreadable file (truncated archive, broken XML) raises
`UnreadableInput` before any record of it leaves the connector.

Entity safety: lxml substitutes internal entities inside *attribute* values even with
`resolve_entities=False` (and Posts.xml keeps everything in attributes), so the DOCTYPE is cut
out of the stream before lxml sees it, and every `&name;` that is not one of XML's five
predefined references or a character reference is re-escaped to `&amp;name;`. A reference
therefore reaches us as literal text, never expanded and never fetched; a row that references an
entity the DOCTYPE declared is quarantined. Real dumps declare no entities, so nothing legitimate
changes.

Licences: see `post_license`. A document combines several posts: when they share one licence it
is that licence, else the SPDX `AND` of the distinct ones in sorted order
(`CC-BY-SA-3.0 AND CC-BY-SA-4.0`), since using the document means using every post in it.
"""

from __future__ import annotations

import json
import re
import sqlite3
import tempfile
import zlib
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import BinaryIO
from urllib.parse import unquote, urlsplit

import lxml.html
from lxml import etree
from pydantic import BaseModel, ConfigDict, Field, field_validator, model_validator

from opencorpus_dagster.connectors.base import (
    Connector,
    ConnectorOptions,
    Unit,
    UnreadableInput,
    UpstreamUrl,
    register,
)
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.upstream.compression import open_decompressed
from opencorpus_dagster.upstream.fetch import Fetcher
from opencorpus_dagster.upstream.limits import InputLimits, LimitExceeded, clip, limit_records, over_limit

STAGE = "raw"
QUESTION, ANSWER = 1, 2
KNOWN_POST_TYPES = range(1, 9)  # 1 question .. 8 privilege wiki (Stack Exchange data dump schema)

# Stack Exchange's licence cut-over dates, from "Creative Commons Licensing UI and Data Updates"
# (https://meta.stackexchange.com/q/347758): content contributed before 2011-04-08 (UTC) is under
# CC BY-SA 2.5, from 2011-04-08 up to but not including 2018-05-02 under CC BY-SA 3.0, on or after
# 2018-05-02 under CC BY-SA 4.0; an edit republishes the post under the licence of its date.
LICENSE_CUTOVERS = (
    (datetime(2018, 5, 2), "CC-BY-SA-4.0"),
    (datetime(2011, 4, 8), "CC-BY-SA-3.0"),
    (datetime.min, "CC-BY-SA-2.5"),
)
LICENSE_RULES_URL = "https://meta.stackexchange.com/q/347758"

_CONTENT_LICENSE = re.compile(r"^\s*CC[ -]BY-SA[ -](\d\.\d)\s*$", re.IGNORECASE)
_SEVEN_ZIP_MAGIC = b"7z\xbc\xaf\x27\x1c"
_PROLOG_LIMIT = 1 << 20  # the prolog of a real dump is ~40 bytes; a huge one is not a dump


class SiteDump(BaseModel):
    """One site's Posts.xml (plain, gzip or bzip2) and the site it came from."""

    model_config = ConfigDict(extra="forbid")

    posts: UpstreamUrl
    site_url: UpstreamUrl
    key: str | None = None

    @field_validator("site_url")
    @classmethod
    def _site_url_is_the_site(cls, value: str) -> str:
        """The site's origin (the URL policy has checked scheme and host): record URLs add paths."""
        parts = urlsplit(value)
        return f"{parts.scheme}://{parts.netloc}"

    @property
    def host(self) -> str:
        return urlsplit(self.site_url).hostname or ""

    @property
    def unit_key(self) -> str:
        if self.key:
            return self.key
        path = unquote(urlsplit(self.posts).path)
        dated = re.search(rf"{re.escape(self.host)}[-_](\d{{4}}-\d{{2}}(?:-\d{{2}})?)(?![\d])", path)
        return f"{self.host}-{dated.group(1)}" if dated else self.host


class StackExchangeOptions(ConnectorOptions):
    sites: list[SiteDump] = Field(min_length=1)
    include_unanswered: bool = True
    min_answer_score: int | None = None

    @model_validator(mode="after")
    def _unit_keys_unique(self) -> StackExchangeOptions:
        seen: dict[str, str] = {}
        for site in self.sites:
            if site.unit_key in seen:
                raise ValueError(
                    f"sites {seen[site.unit_key]!r} and {site.posts!r} both get the unit key {site.unit_key!r}; set `key:` on one"
                )
            seen[site.unit_key] = site.posts
        return self


@register
class StackExchangeConnector(Connector):
    """Reads Stack Exchange `Posts.xml` dumps; one unit per site dump, one record per question."""

    kind = "stackexchange"
    content_kind = "forum"  # quality defaults (text/quality_defaults.py)
    unit_listing_options = ("sites",)
    Options = StackExchangeOptions
    options: StackExchangeOptions

    def units(self) -> list[Unit]:
        return [
            Unit(key=site.unit_key, urls=(site.posts,), extra={"site_url": site.site_url})
            for site in self.options.sites
        ]

    def read(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        """Records and decisions of one site dump (see the module docstring for the mapping).

        Raises `UnreadableInput` naming the posts URL and local file when the file is not a
        readable Posts.xml (truncated archive, broken XML, wrong root element, 7z archive) or
        decompresses to more than `limits.file_bytes`. A row, or a question with the answers
        folded into it, over `limits.record_bytes` (UTF-8 bytes of its attribute values) is
        quarantined as `limits.record_bytes`.
        """
        yield from limit_records(self._read_site(unit, fetcher), self.limits.records_per_unit, unit.urls[0])

    def _read_site(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        (posts_url,) = unit.urls
        site_url = unit.extra.get("site_url") or next(s.site_url for s in self.options.sites if s.posts == posts_url)
        fetched = fetcher.fetch(posts_url)
        fetcher.cache_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryDirectory(dir=fetcher.cache_dir, prefix="stackexchange-") as scratch:
            store = _PostStore(Path(scratch) / "posts.sqlite")
            try:
                _load_posts(fetched.path, posts_url, site_url, store, self.limits)
                yield from store.pending_decisions()
                yield from _assemble(store, posts_url, site_url, unit.key, self.options, self.limits.record_bytes)
            finally:
                store.close()


# -- pass one: stream rows into the scratch store ---------------------------------------------


class _PostStore:
    """Scratch SQLite database of one dump's posts and of the decisions pass one made."""

    def __init__(self, path: Path):
        self.db = sqlite3.connect(path)
        self.db.executescript(
            """
            PRAGMA journal_mode = OFF;
            PRAGMA synchronous = OFF;
            CREATE TABLE posts (id INTEGER PRIMARY KEY, type INTEGER, parent INTEGER, score INTEGER, size INTEGER,
                                row TEXT);
            CREATE TABLE decisions (seq INTEGER PRIMARY KEY, record_id TEXT, uri TEXT, outcome TEXT, reason TEXT,
                                    value TEXT, detail TEXT);
            """
        )

    def add_post(
        self, post_id: int, post_type: int, parent: int | None, score: int, row: dict[str, str], size: int = 0
    ) -> bool:
        """False when a post with this Id is already stored. `size`: UTF-8 bytes of the row's values."""
        try:
            self.db.execute(
                "INSERT INTO posts VALUES (?, ?, ?, ?, ?, ?)", (post_id, post_type, parent, score, size, json.dumps(row))
            )
        except sqlite3.IntegrityError:
            return False
        return True

    def add_decision(self, decision: Decision) -> None:
        self.db.execute(
            "INSERT INTO decisions (record_id, uri, outcome, reason, value, detail) VALUES (?, ?, ?, ?, ?, ?)",
            (decision.source_record_id, decision.upstream_uri, decision.outcome.value, decision.reason, decision.value, decision.detail),
        )

    def finish_loading(self) -> None:
        self.db.execute("CREATE INDEX posts_by_parent ON posts (parent, type)")
        self.db.commit()

    def pending_decisions(self) -> Iterator[Decision]:
        for record_id, uri, outcome, reason, value, detail in self.db.execute(
            "SELECT record_id, uri, outcome, reason, value, detail FROM decisions ORDER BY seq"
        ):
            yield Decision(record_id, uri, Outcome(outcome), STAGE, reason, value, detail)

    def questions(self) -> Iterator[tuple[dict[str, str], int]]:
        """Each question's row and its size, in Id order."""
        for row, size in self.db.execute("SELECT row, size FROM posts WHERE type = ? ORDER BY id", (QUESTION,)):
            yield json.loads(row), size

    def answer_bytes(self, question_id: int, min_score: int | None) -> tuple[int, int]:
        """(count, total size) of a question's answers scoring at least `min_score`, read without the rows."""
        count, total = self.db.execute(
            "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM posts WHERE parent = ? AND type = ? AND score >= ?",
            (question_id, ANSWER, -(1 << 62) if min_score is None else min_score),
        ).fetchone()
        return count, total

    def answers_of(self, question_id: int) -> list[dict[str, str]]:
        rows = self.db.execute(
            "SELECT row FROM posts WHERE parent = ? AND type = ? ORDER BY score DESC, id", (question_id, ANSWER)
        ).fetchall()
        return [json.loads(row) for (row,) in rows]

    def orphan_answers(self) -> Iterator[dict[str, str]]:
        for (row,) in self.db.execute(
            """SELECT a.row FROM posts a WHERE a.type = ? AND NOT EXISTS
                 (SELECT 1 FROM posts q WHERE q.id = a.parent AND q.type = ?) ORDER BY a.id""",
            (ANSWER, QUESTION),
        ):
            yield json.loads(row)

    def close(self) -> None:
        self.db.close()


def _load_posts(path: Path, posts_url: str, site_url: str, store: _PostStore, limits: InputLimits | None = None) -> None:
    """Pass one: parse every `<row>` of `path` into `store` (posts, or decisions for the rest)."""
    limits = limits or InputLimits()
    location = f"{posts_url} (read from {path})"
    with open(path, "rb") as raw:
        if raw.read(len(_SEVEN_ZIP_MAGIC)) == _SEVEN_ZIP_MAGIC:
            raise UnreadableInput(location, "is a 7z archive; extract Posts.xml from it and point `posts:` at that file")
    try:
        with open_decompressed(path, max_bytes=limits.file_bytes) as stream:
            safe = _EntityNeutralisingStream(stream)
            ordinal = 0
            depth = 0
            # huge_tree: libxml2 otherwise fails the whole file on an attribute over 10 MB; the row
            # is judged by `limits.record_bytes` instead (entities stay unresolved either way).
            for event, element in etree.iterparse(
                safe, events=("start", "end"), resolve_entities=False, no_network=True, load_dtd=False, huge_tree=True
            ):
                if event == "start":
                    if depth == 0 and element.tag != "posts":
                        raise UnreadableInput(location, f"root element is <{element.tag}>, expected <posts> (is this Posts.xml?)")
                    depth += 1
                    continue
                depth -= 1
                if depth != 1 or element.tag != "row":
                    continue
                ordinal += 1
                _load_row(
                    dict(element.attrib), ordinal, posts_url, site_url, store, safe.declared_entities, limits.record_bytes
                )
                # iterparse keeps every parsed element under the root; drop them as we go.
                element.clear()
                parent = element.getparent()
                while element.getprevious() is not None:
                    del parent[0]
    except LimitExceeded as error:
        raise UnreadableInput(location, f"decompresses to more than limits.file_bytes={error.limit} bytes") from error
    except (EOFError, OSError, zlib.error, UnicodeDecodeError) as error:
        raise UnreadableInput(location, f"cannot decompress or read: {clip(error)}") from error
    except etree.XMLSyntaxError as error:
        raise UnreadableInput(location, f"not well-formed XML: {clip(error)}") from error
    except _PrologError as error:
        raise UnreadableInput(location, str(error)) from error
    store.finish_loading()


def _load_row(
    row: dict[str, str],
    ordinal: int,
    posts_url: str,
    site_url: str,
    store: _PostStore,
    declared_entities: frozenset[str],
    record_bytes: int = InputLimits().record_bytes,
) -> None:
    raw_id = row.get("Id")
    if raw_id is not None and not _is_int(raw_id):
        raw_id = clip(raw_id, 40)  # it names the record: an unbounded one must not
    record_id = post_record_id(site_url, raw_id if raw_id else f"row-{ordinal}")
    uri = f"{posts_url}#post={raw_id}" if raw_id else f"{posts_url}#row={ordinal}"
    size = sum(_utf8_size(value) for value in row.values())
    if size > record_bytes:
        store.add_decision(over_limit(record_id, uri, LimitExceeded("record_bytes", record_bytes, size), "row"))
        return

    def quarantine(problem: str) -> None:
        store.add_decision(Decision(record_id, uri, Outcome.QUARANTINED, STAGE, "stackexchange.malformed_row", None, problem))

    problem = _row_problem(row, declared_entities)
    if problem:
        quarantine(problem)
        return
    post_type = int(row["PostTypeId"])
    if post_type not in (QUESTION, ANSWER):
        store.add_decision(Decision(record_id, uri, Outcome.SKIPPED, STAGE, "stackexchange.post_type", str(post_type)))
        return
    parent = int(row["ParentId"]) if post_type == ANSWER else None
    if not store.add_post(int(row["Id"]), post_type, parent, int(row.get("Score") or 0), row, size):
        quarantine(f"duplicate Id {row['Id']}: an earlier row has the same Id")


def _row_problem(row: dict[str, str], declared_entities: frozenset[str]) -> str | None:
    """What is wrong with a row, or None; checks only what this connector relies on."""
    for name in declared_entities:
        for attribute, value in row.items():
            if f"&{name};" in value:
                return (
                    f"attribute {clip(attribute)} references the entity &{clip(name)}; declared in the file's DOCTYPE; "
                    "entity expansion is refused"
                )
    if not _is_int(row.get("Id")):
        return f"missing or non-integer Id: {clip(repr(row.get('Id')))}"
    if not _is_int(row.get("PostTypeId")) or int(row["PostTypeId"]) not in KNOWN_POST_TYPES:
        return f"bad PostTypeId: {clip(repr(row.get('PostTypeId')))}"
    if row.get("Score") is not None and not _is_int(row["Score"], signed=True):
        return f"non-integer Score: {clip(repr(row['Score']))}"
    if row["PostTypeId"] == str(ANSWER) and not _is_int(row.get("ParentId")):
        return f"answer with missing or non-integer ParentId: {clip(repr(row.get('ParentId')))}"
    for attribute in ("CreationDate", "LastEditDate"):
        if attribute == "CreationDate" or row.get(attribute):
            try:
                _parse_date(row.get(attribute))
            except ValueError as error:
                return f"unparseable {attribute}: {error}"
    return None


def _utf8_size(text: str) -> int:
    return len(text) if text.isascii() else len(text.encode("utf-8"))


def _is_int(value: str | None, signed: bool = False) -> bool:
    if value is None:
        return False
    digits = value[1:] if signed and value.startswith("-") else value
    return digits.isdigit() and digits.isascii()


def _parse_date(value: str | None) -> datetime:
    """A dump timestamp (`2015-01-27T20:09:32.720`, UTC without offset) as a naive UTC datetime."""
    if not value:
        raise ValueError("missing")
    try:
        parsed = datetime.fromisoformat(value)
    except ValueError:
        raise ValueError(clip(repr(value))) from None
    if parsed.tzinfo is not None:
        parsed = parsed.astimezone(UTC).replace(tzinfo=None)
    return parsed


class _PrologError(Exception):
    pass


# Any `&` that does not start a predefined or character reference.
_UNSAFE_AMPERSAND = re.compile(rb"&(?!(?:amp|lt|gt|quot|apos|#[0-9]+|#x[0-9A-Fa-f]+);)")
_LONGEST_SAFE_REFERENCE = len(b"&#x0010FFFF;")
_ENTITY_DECLARATION = re.compile(rb"<!ENTITY\s+([^\s%]+)")


class _EntityNeutralisingStream:
    """A read()-able view of an XML byte stream with its DOCTYPE removed and entity refs escaped.

    `declared_entities` holds the general entity names the removed DOCTYPE declared. Assumes an
    ASCII-compatible encoding (Stack Exchange dumps are UTF-8).
    """

    def __init__(self, stream: BinaryIO, chunk_size: int = 1 << 20):
        self._stream = stream
        self._chunk_size = chunk_size
        self._carry = b""
        self._out = bytearray()
        self._done = False
        self.declared_entities: frozenset[str] = frozenset()
        self._out += self._read_prolog()

    def read(self, size: int = -1) -> bytes:
        while not self._done and (size < 0 or len(self._out) < size):
            self._fill()
        if size < 0:
            size = len(self._out)
        data = bytes(self._out[:size])
        del self._out[:size]
        return data

    def _fill(self) -> None:
        chunk = self._stream.read(self._chunk_size)
        data = self._carry + chunk
        self._carry = b""
        if chunk:
            # Hold back a trailing `&...` that a later chunk may complete into a safe reference.
            cut = data.rfind(b"&", max(0, len(data) - _LONGEST_SAFE_REFERENCE))
            if cut != -1:
                data, self._carry = data[:cut], data[cut:]
        else:
            self._done = True
        self._out += _UNSAFE_AMPERSAND.sub(b"&amp;", data)

    def _read_prolog(self) -> bytes:
        """Everything before the root element, minus any DOCTYPE; leaves the rest in `_carry`."""
        buffer = b""
        while True:
            root = _root_start(buffer)
            if root is not None:
                break
            if len(buffer) > _PROLOG_LIMIT:
                raise _PrologError(f"no root element in the first {_PROLOG_LIMIT} bytes")
            chunk = self._stream.read(self._chunk_size)
            if not chunk:
                root = len(buffer)
                break
            buffer += chunk
        prolog, self._carry = buffer[:root], buffer[root:]
        doctype = re.search(rb"<!DOCTYPE", prolog)
        if doctype is None:
            return prolog
        end = _doctype_end(prolog, doctype.start())
        if end is None:
            raise _PrologError("unterminated DOCTYPE declaration")
        self.declared_entities = frozenset(
            name.decode("utf-8", "replace") for name in _ENTITY_DECLARATION.findall(prolog[doctype.start() : end])
        )
        return prolog[: doctype.start()] + prolog[end:]


def _root_start(buffer: bytes) -> int | None:
    """Offset of the root element's `<` in a prolog buffer, or None if not reached yet."""
    position = 0
    while True:
        position = buffer.find(b"<", position)
        if position == -1 or position + 1 >= len(buffer):
            return None
        following = buffer[position + 1 : position + 2]
        if following == b"?":
            end = buffer.find(b"?>", position)
        elif buffer.startswith(b"<!--", position):
            end = buffer.find(b"-->", position)
        elif following == b"!":
            end = _doctype_end(buffer, position)
        else:
            return position
        if end is None or end == -1:
            return None
        position = end + 1


def _doctype_end(buffer: bytes, start: int) -> int | None:
    """Offset just past the `>` closing the declaration at `start` (quotes and `[...]` aware)."""
    depth = 0
    quote = None
    for index in range(start + 2, len(buffer)):
        char = buffer[index : index + 1]
        if quote:
            if char == quote:
                quote = None
        elif char in (b'"', b"'"):
            quote = char
        elif char == b"[":
            depth += 1
        elif char == b"]":
            depth -= 1
        elif char == b">" and depth <= 0:
            return index + 1
    return None


# -- pass two: one document per question -------------------------------------------------------


def _assemble(
    store: _PostStore,
    posts_url: str,
    site_url: str,
    dump: str,
    options: StackExchangeOptions,
    record_bytes: int = InputLimits().record_bytes,
) -> Iterator[RawRecord | Decision]:
    for question, size in store.questions():
        question_id = int(question["Id"])
        # A question is one record with its answers: over the limit, it is quarantined before
        # its answers are loaded (a question can have thousands).
        count, answer_size = store.answer_bytes(question_id, options.min_answer_score)
        if size + answer_size > record_bytes:
            error = LimitExceeded("record_bytes", record_bytes, size + answer_size)
            uri = f"{posts_url}#question={question_id}"
            yield over_limit(post_record_id(site_url, question_id), uri, error, f"question {question_id} with {count} answers")
            continue
        answers = store.answers_of(question_id)
        if options.min_answer_score is not None:
            kept = []
            for answer in answers:
                if int(answer.get("Score") or 0) >= options.min_answer_score:
                    kept.append(answer)
                else:
                    yield Decision(
                        post_record_id(site_url, answer["Id"]), f"{posts_url}#post={answer['Id']}", Outcome.SKIPPED, STAGE,
                        "stackexchange.answer_below_min_score", answer.get("Score") or "0",
                        f"answer to question {question_id}; min_answer_score is {options.min_answer_score}",
                    )
            answers = kept
        if not answers and not options.include_unanswered:
            yield Decision(
                post_record_id(site_url, question_id), f"{posts_url}#question={question_id}", Outcome.SKIPPED, STAGE,
                "stackexchange.unanswered",
            )
            continue
        yield question_record(question, answers, posts_url, site_url, dump)
    for answer in store.orphan_answers():
        yield Decision(
            post_record_id(site_url, answer["Id"]), f"{posts_url}#post={answer['Id']}", Outcome.SKIPPED, STAGE,
            "stackexchange.orphan_answer",
            answer["ParentId"], f"question {answer['ParentId']} is not a question in this dump",
        )


def question_record(question: dict[str, str], answers: list[dict[str, str]], posts_url: str, site_url: str, dump: str) -> RawRecord:
    """The record of one question and its answers (dump rows as attribute dicts).

    `answers` in any order: the accepted one (the question's AcceptedAnswerId) goes first, the
    others by score descending, then id.
    """
    question_id = int(question["Id"])
    accepted = question.get("AcceptedAnswerId")
    answers = sorted(answers, key=lambda a: (a["Id"] != accepted, -int(a.get("Score") or 0), int(a["Id"])))
    posts = [question, *answers]
    post_ids = [int(post["Id"]) for post in posts]

    parts = [question.get("Title", "").strip(), *(html_to_text(post.get("Body", "")) for post in posts)]
    text = "\n\n".join(part for part in parts if part)

    licenses = [post_license(post) for post in posts]
    distinct = sorted({license for license, _ in licenses})
    evidence = "; ".join(
        f"{'question' if post is question else 'answer'} {post['Id']}: {rule}" for post, (_, rule) in zip(posts, licenses)
    )
    if any(rule.startswith("date cut-over") for _, rule in licenses):
        evidence += f" (cut-over dates: {LICENSE_RULES_URL})"

    authors = [_author(post) for post in posts]
    links = [f"{site_url}/q/{question_id}", *(f"{site_url}/a/{a['Id']}" for a in answers)]
    attribution = "; ".join(f"{link} ({author})" for link, author in zip(links, authors))

    return RawRecord(
        source_record_id=post_record_id(site_url, question_id),
        upstream_uri=f"{posts_url}#question={question_id}&posts={','.join(map(str, post_ids))}",
        payload=text,
        payload_type=PayloadType.TEXT,
        url=f"{site_url}/questions/{question_id}",
        title=question.get("Title"),
        license=" AND ".join(distinct),
        license_evidence=evidence,
        attribution=attribution,
        metadata={
            "site": urlsplit(site_url).hostname,
            "dump": dump,
            "post_ids": post_ids,
            "scores": [int(post.get("Score") or 0) for post in posts],
            "post_licenses": [license for license, _ in licenses],
            "authors": authors,
            "tags": _tags(question.get("Tags", "")),
            "creation_date": question["CreationDate"],
            "answer_count": len(answers),
            "accepted_answer_id": int(accepted) if accepted and accepted.isdigit() else None,
        },
    )


def post_record_id(site_url: str, post_id: int | str) -> str:
    """`<site host>/<post id>`: post ids are unique only within one site, and one source may
    hold several sites; the host (not the dump date) keeps the id stable across dumps."""
    return f"{urlsplit(site_url).hostname}/{post_id}"


def post_license(post: dict[str, str]) -> tuple[str, str]:
    """(licence, the rule that decided it) for one post row.

    The row's `ContentLicense` attribute (dumps since 2020) wins: `CC BY-SA x.y` becomes the SPDX
    id `CC-BY-SA-x.y`, anything else is kept raw for the licensing stage. Older dumps have no such
    attribute: the licence in force on the date of the post's current revision (LastEditDate,
    else CreationDate) decides, by Stack Exchange's cut-over dates (`LICENSE_CUTOVERS`).
    """
    stated = post.get("ContentLicense")
    if stated:
        match = _CONTENT_LICENSE.match(stated)
        license = f"CC-BY-SA-{match.group(1)}" if match else stated.strip()
        return license, f"ContentLicense attribute {stated!r} -> {license}"
    field = "LastEditDate" if post.get("LastEditDate") else "CreationDate"
    when = _parse_date(post[field])
    license = next(license for since, license in LICENSE_CUTOVERS if when >= since)
    return license, f"date cut-over, {field} {when.date().isoformat()} -> {license}"


def _author(post: dict[str, str]) -> str:
    # Deleted users keep only their display name on the post.
    if post.get("OwnerUserId"):
        return f"user {post['OwnerUserId']}"
    if post.get("OwnerDisplayName"):
        return f"user {post['OwnerDisplayName']!r} (deleted account)"
    return "unknown user"


def _tags(value: str) -> list[str]:
    # Older dumps write `<a><b>`, newer ones `|a|b|`.
    if value.startswith("|"):
        return [tag for tag in value.split("|") if tag]
    return re.findall(r"<([^<>]+)>", value)


# -- HTML bodies to text --------------------------------------------------------------------------

_BLOCK_TAGS = frozenset(
    "address article aside blockquote dd div dl dt figcaption figure footer h1 h2 h3 h4 h5 h6 header hr "
    "li ol p section table tbody thead tfoot tr ul".split()
)
_SKIPPED_TAGS = frozenset(("img", "script", "style"))


def html_to_text(html: str) -> str:
    """Text of a post body: one line per paragraph, heading, list item (`- `) or table row;
    code blocks (`<pre>`) kept verbatim, line by line; inline whitespace collapsed."""
    if not html or not html.strip():
        return ""
    root = lxml.html.fragment_fromstring(html, create_parent="div")
    lines: list[str] = []
    pending: list[str] = []
    prefix = [""]

    def flush() -> None:
        line = " ".join("".join(pending).split())
        pending.clear()
        if line:
            lines.append(prefix[0] + line)
            prefix[0] = ""

    def walk(element) -> None:
        tag = element.tag if isinstance(element.tag, str) else None  # comments, PIs
        if tag == "pre":
            flush()
            code = element.text_content().strip("\n")
            if code.strip():
                lines.extend(line.rstrip() for line in code.split("\n"))
        elif tag == "br":
            flush()
        elif tag in _SKIPPED_TAGS or tag is None:
            pass
        else:
            block = tag in _BLOCK_TAGS
            if block:
                flush()
                if tag == "li":
                    prefix[0] = "- "
            if element.text:
                pending.append(element.text)
            for child in element:
                walk(child)
            if block:
                flush()
        if element.tail:
            pending.append(element.tail)

    walk(root)
    flush()
    return "\n".join(lines)
