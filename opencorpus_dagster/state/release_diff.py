"""What changed between two releases: the records added and removed, and why.

The records of a release are the rows of its shards (immutable files, so an old release reads as
it was published). Why a record left or came is the lineage store's terminal decision for it:

    removed, takedown        a takedown request removed it (the request's reason in `detail`)
    removed, superseded      the same upstream record in a newer unit replaced it
    removed, duplicate       dedup found it a duplicate of another kept record
    removed, filtered        a filter or the licence policy now refuses it (rule in `reason`)
    removed, upstream        its upstream unit was re-read and no longer has it
    added,   new unit        its partition is new in the later release
    added,   changed         its partition was there: the unit was re-read with the record new in
                             it, or a filter, policy, dedup or takedown change let it in

The store holds decisions as of the latest build, so for two old releases the reason is today's
account of the record (its `decided_at` says when that decision was taken).
"""

from __future__ import annotations

from typing import Any

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.shards import shard_paths
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import duckdb_connect

_CATEGORY = {"takedown": "takedown", "dedup.superseded": "superseded", "dedup.exact": "duplicate", "dedup.near": "duplicate"}


def release_rows(home: DataHome, release: str) -> dict[tuple[str, str, str], str]:
    """(source, partition, doc_id) -> shard path of every row of `release`."""
    manifest = releases.read_manifest(home, release)
    files = shard_paths(home, release)
    if not files:
        return {}
    names = dict(zip(files, (s["path"] for s in manifest["shards"]), strict=True))
    with duckdb_connect(home.root) as connection:
        rows = connection.execute(
            "SELECT source, partition, doc_id, filename FROM read_parquet(?, filename = true)", [files]
        ).fetchall()
    return {(source, partition, doc_id): names.get(filename, filename) for source, partition, doc_id, filename in rows}


def diff_releases(home: DataHome, store: LineageStore, older: str, newer: str) -> list[dict[str, Any]]:
    """Records in `newer` and not `older` (added) and the reverse (removed), each with why."""
    releases.read_release(home, older), releases.read_release(home, newer)  # both complete, or ReleaseNotFound
    before, after = release_rows(home, older), release_rows(home, newer)
    removed, added = sorted(set(before) - set(after)), sorted(set(after) - set(before))
    decisions = _decisions(store, removed + added)
    partitions_before = {(s, p) for s, p, _ in before}
    changes = []
    for key in removed:
        decision = decisions.get(key)
        changes.append(_change("removed", key, before[key], decision, _removed_category(decision)))
    for key in added:
        decision = decisions.get(key)
        category = "new unit" if key[:2] not in partitions_before else "changed"
        changes.append(_change("added", key, after[key], decision, category))
    return changes


def _removed_category(decision: dict | None) -> str:
    if decision is None:
        return "upstream"
    if decision["stage"] == "takedown":
        return "takedown"
    if decision["stage"] == "dedup" and decision["outcome"] == "duplicate":
        return _CATEGORY.get(decision["reason"], "duplicate")
    if decision["outcome"] == "kept":
        return "upstream"  # kept in its documents file, yet not in the shards: its unit changed under it
    return "filtered"


def _change(change: str, key: tuple[str, str, str], shard: str, decision: dict | None, category: str) -> dict[str, Any]:
    source, partition, doc_id = key
    return {
        "change": change,
        "why": category,
        "source": source,
        "partition": partition,
        "doc_id": doc_id,
        "shard": shard,
        "stage": decision["stage"] if decision else None,
        "outcome": decision["outcome"] if decision else None,
        "reason": decision["reason"] if decision else None,
        "detail": decision["detail"] if decision else None,
        "decided_at": decision["decided_at"] if decision else None,
    }


def _decisions(store: LineageStore, keys: list[tuple[str, str, str]]) -> dict[tuple[str, str, str], dict]:
    """The terminal decision (the `outcomes` view) of each record."""
    if not keys:
        return {}
    with store.connection() as conn:
        conn.execute("CREATE OR REPLACE TEMP TABLE wanted (source VARCHAR, partition VARCHAR, doc_id VARCHAR)")
        conn.executemany("INSERT INTO wanted VALUES (?, ?, ?)", keys)
        rows = conn.execute(
            "SELECT o.source, o.partition, o.doc_id, o.stage, o.outcome, o.reason, o.detail, o.decided_at "
            "FROM outcomes o JOIN wanted w USING (source, partition, doc_id)"
        ).fetchall()
    columns = ("stage", "outcome", "reason", "detail", "decided_at")
    return {(s, p, d): dict(zip(columns, rest, strict=True)) for s, p, d, *rest in rows}
