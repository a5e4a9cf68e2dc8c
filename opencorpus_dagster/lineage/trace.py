"""Record-level questions answered from the lineage store.

"Where did shard S row R come from, under which licence, and what happened to it on the way?"
A trace gathers, for one record: its upstream URI (precise enough to refetch), the upstream
file it was read from (URL, sha256, mirror), the licence and its evidence, the attribution,
every decision taken about it, and the shard row that holds it (if it was kept).
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

from opencorpus_dagster.lineage.store import STAGE_RANK, LineageStore
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import parquet_file


class NotTraced(LookupError):
    """Nothing in the lineage store matches the question."""


def _dicts(cursor) -> list[dict[str, Any]]:
    names = [d[0] for d in cursor.description]
    return [dict(zip(names, row, strict=True)) for row in cursor.fetchall()]


def trace_doc(store: LineageStore, doc_id: str) -> list[dict[str, Any]]:
    """One trace per (source, partition) holding `doc_id` (usually one)."""
    with store.connection() as conn:
        keys = conn.execute(
            "SELECT DISTINCT source, partition FROM decisions WHERE doc_id = ? "
            "UNION SELECT DISTINCT source, partition FROM raw_records WHERE doc_id = ? ORDER BY ALL",
            [doc_id, doc_id],
        ).fetchall()
        if not keys:
            raise NotTraced(f"no record with doc_id {doc_id!r} in the lineage store")
        traces = []
        for source, partition in keys:
            params = [source, partition, doc_id]
            where = "source = ? AND partition = ? AND doc_id = ?"
            record = _dicts(conn.execute(f"SELECT * EXCLUDE (run_id) FROM raw_records WHERE {where}", params))
            document = _dicts(conn.execute(f"SELECT * EXCLUDE (run_id) FROM documents WHERE {where}", params))
            decisions = _dicts(
                conn.execute(
                    f"SELECT stage, outcome, reason, value, detail, decided_at, run_id, upstream_uri, source_record_id "
                    f"FROM decisions WHERE {where}",
                    params,
                )
            )
            decisions.sort(key=lambda d: STAGE_RANK.get(d["stage"], 99))
            upstream_uri = (record[0]["upstream_uri"] if record else decisions[0]["upstream_uri"]) if (record or decisions) else None
            fetched = _dicts(
                conn.execute(
                    "SELECT url, fetched_from, sha256, size, retrieved_at FROM fetches "
                    "WHERE source = ? AND partition = ? AND url = ?",
                    [source, partition, (upstream_uri or "").split("#", 1)[0]],
                )
            )
            shard_rows = _dicts(
                conn.execute(
                    "SELECT r.shard, r.row, s.sha256 AS shard_sha256 FROM shard_rows r JOIN shards s USING (shard) "
                    "WHERE r.doc_id = ? AND s.source = ? AND s.partition = ?",
                    [doc_id, source, partition],
                )
            )
            outcome = decisions[-1]["outcome"] if decisions else None
            traces.append(
                {
                    "doc_id": doc_id,
                    "source": source,
                    "partition": partition,
                    "source_record_id": record[0]["source_record_id"] if record else decisions[0]["source_record_id"],
                    "upstream_uri": upstream_uri,
                    "upstream_file": fetched[0] if fetched else None,
                    "url": record[0]["url"] if record else None,
                    "title": record[0]["title"] if record else None,
                    "license_statement": record[0]["license_statement"] if record else None,
                    "license": document[0]["license"] if document else None,
                    "license_evidence": document[0]["license_evidence"] if document else (record[0]["license_statement_evidence"] if record else None),
                    "language": document[0]["language"] if document else None,
                    "attribution": record[0]["attribution"] if record else None,
                    "content_sha256": document[0]["content_sha256"] if document else None,
                    "outcome": outcome,
                    "decisions": decisions,
                    "shard_rows": shard_rows,
                }
            )
        return traces


def trace_shard_row(store: LineageStore, shard: str, row: int, home: DataHome | None = None) -> list[dict[str, Any]]:
    """The trace of the record at `row` of `shard` (as the manifest names it, or under `shards/`).

    With `home`, the doc_id is read from the shard file itself: shard files are immutable and
    named by content, so row N of a file is the same record in every release that lists it,
    whatever the lineage store's shard tables say meanwhile (a build publishing a release, an
    earlier release still being read). Without it, from the store's `shard_rows`.
    """
    if home is not None:
        name, path = _shard_file(home, shard)
        doc_id = _doc_id_at(path, row)
        if doc_id is None:
            raise NotTraced(f"shard {name!r} has no row {row}")
        source, partition = name.split("/")[1:3]
        traces = [t for t in trace_doc(store, doc_id) if (t["source"], t["partition"]) == (source, partition)]
        for item in traces:
            item["shard_row"] = {"shard": name, "row": row}
        return traces
    shard = _shard_name(store, shard)
    with store.connection() as conn:
        found = conn.execute("SELECT doc_id FROM shard_rows WHERE shard = ? AND row = ?", [shard, row]).fetchone()
    if found is None:
        raise NotTraced(f"shard {shard!r} has no row {row}")
    return [t for t in trace_doc(store, found[0]) if any(r["shard"] == shard for r in t["shard_rows"])]


def _shard_file(home: DataHome, shard: str) -> tuple[str, Path]:
    """(`shards/<source>/<partition>/<file>`, its path) for a shard named as a manifest names it
    (in the current release), as `releases/<id>/shards/...` (any release), or by a path to the
    file; never a file outside a release folder."""
    candidate = Path(shard)
    if not home.is_remote and candidate.is_absolute():
        try:
            shard = candidate.resolve().relative_to(Path(home.corpus_dir).resolve()).as_posix()
        except ValueError:
            raise NotTraced(f"{shard} is not under {home.corpus_dir}") from None
    parts = shard.strip("/").split("/")
    release = None
    if len(parts) > 2 and parts[0] == "releases":
        release, parts = parts[1], parts[2:]
    if parts and parts[0] != "shards":
        parts = ["shards", *parts]
    name = "/".join(parts)
    if len(parts) != 4 or any(part in ("", ".", "..") for part in parts) or not name.endswith(".parquet"):
        raise NotTraced(f"no shard named {shard!r} (expected shards/<source>/<partition>/<file>.parquet)")
    try:
        release = release or releases.current_release(home)
        path = releases.release_dir(home, release) / name if release else None
    except releases.ReleaseNotFound as error:
        raise NotTraced(str(error)) from None
    if path is None or not path.is_file():
        raise NotTraced(f"no shard named {shard!r} in release {release or '(none published)'}")
    return name, path


def _doc_id_at(path: Path, row: int) -> str | None:
    """The doc_id of one row, reading only the row group that holds it."""
    if row < 0:
        return None
    file = parquet_file(path)
    for group in range(file.num_row_groups):
        rows = file.metadata.row_group(group).num_rows
        if row < rows:
            return file.read_row_group(group, columns=["doc_id"]).column("doc_id")[row].as_py()
        row -= rows
    return None


def trace_url(store: LineageStore, url: str) -> list[dict[str, Any]]:
    """Traces of every record whose page URL or upstream URI is `url` (or starts with it + '#').

    `url` is compared literally: `%` and `_` in it are characters, not LIKE wildcards.
    """
    with store.connection() as conn:
        doc_ids = [
            row[0]
            for row in conn.execute(
                "SELECT DISTINCT doc_id FROM raw_records "
                "WHERE url = $1 OR upstream_uri = $1 OR starts_with(upstream_uri, $2) "
                "UNION SELECT DISTINCT doc_id FROM decisions WHERE upstream_uri = $1 OR starts_with(upstream_uri, $2) "
                "ORDER BY 1",
                [url, url + "#"],
            ).fetchall()
        ]
    if not doc_ids:
        raise NotTraced(f"no record with URL or upstream URI {url!r}")
    return [trace for doc_id in doc_ids for trace in trace_doc(store, doc_id)]


def shards_holding(store: LineageStore, source: str | None = None, license: str | None = None) -> list[dict[str, Any]]:
    """Shards holding records of `source` and/or under `license`, with how many such rows."""
    conditions, params = [], []
    if source:
        conditions.append("s.source = ?")
        params.append(source)
    if license:
        conditions.append("d.license = ?")
        params.append(license)
    where = " AND ".join(conditions) or "TRUE"
    with store.connection() as conn:
        return _dicts(
            conn.execute(
                f"""
                SELECT r.shard, s.sha256, count(*) AS rows
                FROM shard_rows r JOIN shards s USING (shard)
                JOIN documents d ON d.doc_id = r.doc_id AND d.source = s.source AND d.partition = s.partition
                WHERE {where} GROUP BY ALL ORDER BY r.shard
                """,
                params,
            )
        )


def _shard_name(store: LineageStore, shard: str) -> str:
    """Accept `shards/x/y/part-00000.parquet`, `x/y/part-00000.parquet` or an absolute path."""
    with store.connection() as conn:
        names = [row[0] for row in conn.execute("SELECT shard FROM shards").fetchall()]
    for name in names:
        if shard == name or name.endswith("/" + shard.lstrip("/")) or shard.endswith("/" + name):
            return name
    raise NotTraced(f"no shard named {shard!r} (known: {len(names)} shards, e.g. {names[:3]})")
