"""Exact duplicates over all documents files, found with DuckDB (only candidate keys reach Python).

- superseded: the same doc_id in several partitions of one source (a page present in two dump
  dates); the record of the greatest partition key (the newest unit) stays, the others go;
- same text: equal `content_sha256` (the hash of the normalised text); these groups become
  clusters whose keeper the corpus dedup chooses by the keeper policy.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import PurePosixPath

import pyarrow as pa

from opencorpus_dagster.state.storage import duckdb_connect


@dataclass(frozen=True)
class Member:
    """One document as the dedup stage sees it (no text)."""

    source: str
    partition: str
    doc_id: str
    source_record_id: str
    upstream_uri: str
    license: str | None
    content_sha256: str
    text_length: int

    @property
    def key(self) -> str:
        """Unique across the corpus (a doc_id may repeat across partitions of one source)."""
        return member_key(self.source, self.partition, self.doc_id)


def member_key(source: str, partition: str, doc_id: str) -> str:
    return f"{source}|{partition}|{doc_id}"


MEMBER_COLUMNS = "source, partition, doc_id, source_record_id, upstream_uri, license, content_sha256, length(text)"


def find_exact_groups(
    documents_files: Sequence[str],
    excluded: frozenset[str] = frozenset(),
    members_of: Callable[[set[str]], dict[str, Member]] | None = None,
) -> tuple[list[tuple[Member, Member]], list[list[Member]]]:
    """(superseded pairs (old, newest), groups of two or more members with the same text).

    `documents_files` are the documents Parquet files (paths or URLs; none yet: no groups).
    Members whose key is in `excluded` (taken down) are treated as absent, so the next member
    of their group becomes the keeper. The groups' keys are found without reading any text;
    `members_of(keys)` gives their members (default: `load_members` from these files; the
    corpus dedup passes its `MemberCache`).
    """
    files = list(documents_files)
    if not files:
        return [], []
    with duckdb_connect(*files) as connection:
        # The file list is a bound parameter ($1), never SQL text.
        keys = connection.execute(
            """
            WITH docs AS (
                SELECT source, partition, doc_id, content_sha256
                FROM read_parquet($1, union_by_name = true)
            ),
            repeated_ids AS (SELECT source, doc_id FROM docs GROUP BY ALL HAVING count(*) > 1),
            repeated_texts AS (SELECT content_sha256 FROM docs GROUP BY ALL HAVING count(*) > 1)
            SELECT source, partition, doc_id
            FROM docs
            WHERE content_sha256 IN (SELECT content_sha256 FROM repeated_texts)
               OR (source, doc_id) IN (SELECT (source, doc_id) FROM repeated_ids)
            """,
            [files],
        ).fetchall()
    wanted = {member_key(*key) for key in keys} - excluded
    loaded = members_of(wanted) if members_of is not None else load_members(files, wanted)
    members = sorted(loaded.values(), key=lambda m: (m.source, m.partition, m.doc_id))

    by_doc: dict[tuple[str, str], list[Member]] = {}
    for member in members:
        by_doc.setdefault((member.source, member.doc_id), []).append(member)
    superseded: list[tuple[Member, Member]] = []
    current: list[Member] = []
    for group in by_doc.values():
        group.sort(key=lambda m: m.partition, reverse=True)
        current.append(group[0])
        superseded.extend((older, group[0]) for older in group[1:])

    by_hash: dict[str, list[Member]] = {}
    for member in current:
        by_hash.setdefault(member.content_sha256, []).append(member)
    groups = [group for group in by_hash.values() if len(group) > 1]
    return superseded, groups


def partition_of(key: str) -> tuple[str, str]:
    """(source, partition) of a member key."""
    source, partition, _ = key.split("|", 2)
    return source, partition


def load_members(documents_files: Sequence[str], keys: set[str]) -> dict[str, Member]:
    """Members for the given keys, read from the documents files of their partitions only.

    A documents file is `<source>/<partition>.parquet`; the others are not opened. The text
    column is read for `text_length`: DuckDB cannot push a key filter into the Parquet scan, so
    every file read here has all its text read (see `member_cache` for not reading it again).
    """
    partitions = {partition_of(key) for key in keys}
    files = [file for file in documents_files if (PurePosixPath(file).parent.name, PurePosixPath(file).stem) in partitions]
    if not keys or not files:
        return {}
    source, partition, doc_id = zip(*(key.split("|", 2) for key in sorted(keys)), strict=True)
    with duckdb_connect(*files) as connection:
        connection.register(
            "wanted",
            pa.table({"source": pa.array(source, pa.string()), "partition": pa.array(partition, pa.string()), "doc_id": pa.array(doc_id, pa.string())}),
        )
        rows = connection.execute(
            f"""
            SELECT {MEMBER_COLUMNS}
            FROM read_parquet(?, union_by_name = true) AS d
            SEMI JOIN wanted AS w ON d.source = w.source AND d.partition = w.partition AND d.doc_id = w.doc_id
            """,
            [files],
        ).fetchall()
    return {member.key: member for member in (Member(*row) for row in rows)}
