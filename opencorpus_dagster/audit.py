"""Corpus-wide audits: the invariants the published corpus must satisfy.

Each function returns the problems it found (empty = the invariant holds), with example values
so a failing check says what is wrong. Plain Python over DuckDB and the shard files.
"""

from __future__ import annotations

from collections.abc import Mapping

from opencorpus_dagster.home import DataHome
from opencorpus_dagster.licensing.policy import LicensePolicy
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.shards import read_manifest, sha256_file
from opencorpus_dagster.storage import duckdb_connect, parquet_files


def conservation_problems(store: LineageStore) -> list[dict]:
    """Partitions where records in != kept + filtered + duplicate + quarantined + removed + skipped."""
    return [row for row in store.conservation() if row["records_in"] != row["total"]]


def _shard_files(home: DataHome) -> list[str]:
    """Every shard file on disk (listed or not: the audits look at what a reader would find)."""
    return parquet_files(home.shards_dir, "**/*.parquet")


def disallowed_licenses(home: DataHome, policies: Mapping[str, LicensePolicy]) -> list[dict]:
    """Shard rows whose licence the policy of their source does not allow."""
    files = _shard_files(home)
    if not files:
        return []
    with duckdb_connect(home.root) as conn:
        rows = conn.execute(
            "SELECT source, license, count(*) FROM read_parquet(?) GROUP BY ALL ORDER BY ALL", [files]
        ).fetchall()
    problems = []
    for source, license, count in rows:
        policy = policies.get(source, LicensePolicy())
        verdict = policy.judge(license)
        if not verdict.allowed:
            problems.append({"source": source, "license": license, "rows": count, "reason": verdict.reason})
    return problems


def rows_without_upstream(home: DataHome) -> int:
    files = _shard_files(home)
    if not files:
        return 0
    with duckdb_connect(home.root) as conn:
        return conn.execute(
            "SELECT count(*) FROM read_parquet(?) "
            "WHERE upstream_uri IS NULL OR upstream_uri = '' OR license IS NULL OR license = ''",
            [files],
        ).fetchone()[0]


def repeated_doc_ids(home: DataHome, limit: int = 10) -> list[tuple[str, int]]:
    files = _shard_files(home)
    if not files:
        return []
    with duckdb_connect(home.root) as conn:
        return conn.execute(
            "SELECT doc_id, count(*) FROM read_parquet(?) GROUP BY doc_id HAVING count(*) > 1 ORDER BY doc_id LIMIT ?",
            [files, int(limit)],
        ).fetchall()


def manifest_mismatches(home: DataHome) -> list[dict]:
    """Shards whose file is missing or whose sha256/size differs from the manifest."""
    manifest = read_manifest(home)
    if manifest is None:
        return [{"path": str(home.manifest), "problem": "no manifest"}]
    problems = []
    for entry in manifest["shards"]:
        path = home.corpus_dir / entry["path"]
        if not path.is_file():
            problems.append({"path": entry["path"], "problem": "missing"})
            continue
        digest = sha256_file(path)
        if digest != entry["sha256"] or path.stat().st_size != entry["bytes"]:
            problems.append({"path": entry["path"], "problem": f"sha256 {digest} != manifest {entry['sha256']}"})
    return problems


