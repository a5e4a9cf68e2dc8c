"""Per-shard statistics for the card, ATTRIBUTION and Croissant: each shard read once, ever.

A shard file is immutable (new content gets a new name, and its manifest entry carries the
sha256 of its bytes), so what the card needs from it is computed the first time the shard is
published and kept under that sha256: `<home>/corpus/stats/<sha256>.json`, written atomically
(one PUT in object storage). A card written after a refresh reads only the new shards' text;
the rest come from their files, a few hundred bytes each. The card's figures are sums of these
groups, the same numbers as one aggregate over every shard (tested byte for byte).

What a file holds, per shard:
  groups   one row per (source, licence, language, evidence kind): documents, tokens
  schema   sha256 of the shard's Arrow schema (without metadata): Croissant's columns are the
           first shard's, and every other shard must agree

A stats file that cannot be read, is of another STATS_VERSION or is for another sha256 is
computed again (and rewritten); one is never trusted for a shard whose sha256 it does not name.
"""

from __future__ import annotations

import hashlib
import json
import re
from dataclasses import dataclass
from pathlib import Path

import duckdb
import pyarrow as pa

from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import duckdb_connect, read_parquet_schema, resolve_location

STATS_DIR = "stats"  # under the corpus folder
STATS_VERSION = 1  # bump when what is kept, or how a figure is counted, changes

# A document's tokens, counted by Python's own `str.split()` (registered on the connection by
# `counting_connection`). RE2's `len(regexp_extract_all(text, '[^\t-\r\x{1c}-\x{1f}\x{85}\pZ]+'))`
# gives the same counts (the two whitespace sets agree on every code point) at three times the
# CPU: it builds a list of every token of every document.
TOKENS_SQL = "opencorpus_tokens(text)"

# How each kept document's licence was decided, by the shape of its `license_evidence`
# (see licensing/web.py PageLicense.evidence, licensing/spdx.py, connectors/mediawiki.py).
EVIDENCE_KIND_SQL = """CASE
    WHEN license_evidence LIKE 'rel-license%' OR license_evidence LIKE 'other-signal%' THEN 'web-page'
    WHEN license_evidence LIKE '%Gutenberg rights statement%' THEN 'gutenberg-rights'
    WHEN license_evidence LIKE '%Wikimedia terms of use%' THEN 'wikimedia-terms'
    ELSE 'other' END"""

_SHA256 = re.compile(r"^[0-9a-f]{64}$")

# source, license, language, evidence kind, documents, tokens
Group = tuple[str, "str | None", "str | None", str, int, int]


@dataclass(frozen=True)
class ShardStatistics:
    path: str  # as in the manifest
    sha256: str
    groups: tuple[Group, ...]
    schema_sha256: str


@dataclass(frozen=True)
class CorpusShardStatistics:
    shards: tuple[ShardStatistics, ...]  # in manifest order
    computed: tuple[str, ...]  # manifest paths of the shards read (not found in the stats folder) by this call


def stats_path(home: DataHome, sha256: str) -> Path:
    """Where one shard's statistics live. Raises ValueError for anything but a sha256 (the
    manifest's value names a file; it must not name one elsewhere)."""
    if not _SHA256.match(sha256):
        raise ValueError(f"not a sha256: {sha256!r}")
    return home.corpus_dir / STATS_DIR / f"{sha256}.json"


def shard_statistics(home: DataHome, manifest: dict, files: list) -> CorpusShardStatistics:
    """The statistics of every shard `manifest` lists, read from the stats folder or, for a
    shard seen for the first time, computed from its file (one DuckDB pass over all such
    shards) and kept. `files`: where each listed shard is, in manifest order (a release's
    manifest paths are relative to its folder). Raises FileNotFoundError naming a missing shard file."""
    entries = manifest["shards"]
    located = files
    where = {
        entry["sha256"]: resolve_location(path) if isinstance(path, str) else path
        for entry, path in zip(entries, located, strict=True)
    }
    kept = {entry["sha256"]: _read_kept(home, entry) for entry in entries}
    missing = [entry for entry in entries if kept[entry["sha256"]] is None]
    if missing:
        for statistics in _compute(home, missing, where):
            kept[statistics.sha256] = statistics
            _keep(home, statistics)
    shards = tuple(
        ShardStatistics(entry["path"], entry["sha256"], found.groups, found.schema_sha256)
        for entry in entries
        for found in (kept[entry["sha256"]],)
    )
    return CorpusShardStatistics(shards, tuple(entry["path"] for entry in missing))


def forget_statistics(home: DataHome, listed: set[str]) -> list[str]:
    """Remove the kept statistics of every shard no release lists any more (after `gc`); returns
    the sha256s forgotten."""
    folder = home.corpus_dir / STATS_DIR
    if not folder.is_dir():
        return []
    forgotten = sorted(p.stem for p in folder.glob("*.json") if _SHA256.match(p.stem) and p.stem not in listed)
    for sha256 in forgotten:
        stats_path(home, sha256).unlink(missing_ok=True)
    return forgotten


def schema_digest(schema) -> str:
    return hashlib.sha256(schema.remove_metadata().serialize().to_pybytes()).hexdigest()


def _read_kept(home: DataHome, entry: dict) -> ShardStatistics | None:
    try:
        data = json.loads(stats_path(home, entry["sha256"]).read_text(encoding="utf-8"))
        if data.get("version") != STATS_VERSION or data.get("sha256") != entry["sha256"]:
            return None
        groups = tuple((s, lic, lang, kind, int(d), int(t)) for s, lic, lang, kind, d, t in data["groups"])
        return ShardStatistics(entry["path"], entry["sha256"], groups, str(data["schema_sha256"]))
    except (OSError, ValueError, KeyError, TypeError, AttributeError):
        return None


def _keep(home: DataHome, statistics: ShardStatistics) -> None:
    document = {
        "version": STATS_VERSION,
        "sha256": statistics.sha256,
        "schema_sha256": statistics.schema_sha256,
        "groups": [list(group) for group in statistics.groups],
    }
    try:
        write_text_atomically(stats_path(home, statistics.sha256), json.dumps(document, sort_keys=True) + "\n")
    except OSError:  # a read-only home (`opencorpus summary` on a copy): computed again next time
        pass


def _compute(home: DataHome, entries: list[dict], where: dict) -> list[ShardStatistics]:
    files = {str(where[entry["sha256"]]): entry for entry in entries}
    for path, entry in files.items():
        if not where[entry["sha256"]].is_file():
            raise FileNotFoundError(f"{path}: shard listed in the manifest is missing")
    groups: dict[str, list[Group]] = {path: [] for path in files}
    connection = counting_connection(*files)
    try:
        # One pass over the new shards' text: per (shard, source, licence, language, evidence
        # kind) counts; the card's figures are sums of these.
        rows = connection.execute(
            f"""
            SELECT filename, source, license, language, {EVIDENCE_KIND_SQL} AS evidence_kind,
                   count(*) AS documents, coalesce(sum({TOKENS_SQL}), 0) AS tokens
            FROM read_parquet(?, filename = true)
            GROUP BY ALL
            ORDER BY ALL
            """,
            [list(files)],
        ).fetchall()
    finally:
        connection.close()
    # DuckDB names a file as it resolved it (`memory:///x` for `memory://x`): matched without
    # the protocol's slashes.
    by_name = {_bare(path): path for path in files}
    for filename, source, license, language, kind, documents, tokens in rows:
        groups[by_name[_bare(filename)]].append((source, license, language, kind, int(documents), int(tokens)))
    return [
        ShardStatistics(
            entry["path"],
            entry["sha256"],
            tuple(groups[path]),
            schema_digest(read_parquet_schema(where[entry["sha256"]])),
        )
        for path, entry in files.items()
    ]


def counting_connection(*locations: Path | str) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read `locations` and knows `TOKENS_SQL`. A database of its
    own: a Python function registered on a cursor of the process's shared database crashes
    DuckDB 2.0 when it is used after that cursor is closed."""
    connection = duckdb_connect(*locations, database=":memory:")
    connection.create_function("opencorpus_tokens", _count_tokens, ["VARCHAR"], "BIGINT", type="arrow")
    return connection


def _count_tokens(texts: pa.Array) -> pa.Array:
    """`len(text.split())` of each text (null for a null text), for one of DuckDB's vectors."""
    values = texts.to_pylist()
    if texts.null_count:
        return pa.array([None if text is None else len(text.split()) for text in values], pa.int64())
    return pa.array(list(map(len, map(str.split, values))), pa.int64())


def _bare(location: str) -> str:
    return location.split("://", 1)[-1].lstrip("/")
