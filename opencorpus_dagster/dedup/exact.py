"""Exact deduplication across sources on normalised text, with a deterministic keeper.

Two kinds of exact duplicate are found over all documents files with DuckDB (only the keys
are read, never the text):

- superseded: the same doc_id in several partitions of one source (a page present in two dump
  dates); the record of the greatest partition key (the newest unit) is kept;
- same text: equal `content_sha256` (the text after normalisation); the keeper is the first by
  the keeper order (most permissive licence, then the earlier upstream record, then doc_id).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass

import duckdb


@dataclass(frozen=True)
class Member:
    source: str
    partition: str
    doc_id: str
    source_record_id: str
    upstream_uri: str
    license: str | None


@dataclass(frozen=True)
class Duplicate:
    member: Member
    keeper: Member
    reason: str  # dedup.superseded | dedup.exact
    similarity: float
    cluster: tuple[Member, ...]  # every member, keeper first: the order a takedown promotes in


def keeper_order(license_rank: Callable[[str | None], int]) -> Callable[[Member], tuple]:
    """Sort key of the default keeper policy: permissive licence, earlier upstream record, doc_id."""

    def key(member: Member) -> tuple:
        return (license_rank(member.license), member.source, member.partition, member.source_record_id, member.doc_id)

    return key


def find_exact_duplicates(
    documents_glob: str, license_rank: Callable[[str | None], int], excluded: set[tuple[str, str, str]] = frozenset()
) -> list[Duplicate]:
    """Duplicates among all documents files matching `documents_glob`.

    `excluded` (source, partition, doc_id) triples are treated as absent (taken-down records),
    so their cluster's next member becomes the keeper.
    """
    connection = duckdb.connect()
    try:
        # Only candidate rows (a repeated doc_id or a repeated text hash) reach Python.
        rows = connection.execute(
            f"""
            WITH docs AS (
                SELECT source, partition, doc_id, source_record_id, upstream_uri, license, content_sha256
                FROM read_parquet('{documents_glob}', union_by_name = true)
            ),
            repeated_ids AS (SELECT source, doc_id FROM docs GROUP BY ALL HAVING count(*) > 1),
            repeated_texts AS (SELECT content_sha256 FROM docs GROUP BY ALL HAVING count(*) > 1)
            SELECT source, partition, doc_id, source_record_id, upstream_uri, license, 0, content_sha256
            FROM docs
            WHERE content_sha256 IN (SELECT content_sha256 FROM repeated_texts)
               OR (source, doc_id) IN (SELECT (source, doc_id) FROM repeated_ids)
            """
        ).fetchall()
    except duckdb.IOException:
        return []  # no documents files yet
    finally:
        connection.close()

    members = [Member(*row[:6]) for row in rows if (row[0], row[1], row[2]) not in excluded]
    hashes = {(r[0], r[1], r[2]): r[7] for r in rows}
    order = keeper_order(license_rank)
    duplicates: list[Duplicate] = []

    by_doc: dict[tuple[str, str], list[Member]] = {}
    for member in members:
        by_doc.setdefault((member.source, member.doc_id), []).append(member)
    current: list[Member] = []
    for group in by_doc.values():
        group.sort(key=lambda m: m.partition, reverse=True)
        current.append(group[0])
        for older in group[1:]:
            duplicates.append(Duplicate(older, group[0], "dedup.superseded", 1.0, tuple(group)))

    by_hash: dict[str, list[Member]] = {}
    for member in current:
        by_hash.setdefault(hashes[(member.source, member.partition, member.doc_id)], []).append(member)
    for group in by_hash.values():
        if len(group) < 2:
            continue
        group.sort(key=order)
        for member in group[1:]:
            duplicates.append(Duplicate(member, group[0], "dedup.exact", 1.0, tuple(group)))
    duplicates.sort(key=lambda d: (d.member.source, d.member.partition, d.member.doc_id))
    return duplicates
