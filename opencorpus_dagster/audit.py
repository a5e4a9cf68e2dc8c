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
from opencorpus_dagster.storage import duckdb_connect


def conservation_problems(store: LineageStore) -> list[dict]:
    """Partitions where records in != kept + filtered + duplicate + quarantined + removed + skipped."""
    return [row for row in store.conservation() if row["records_in"] != row["total"]]


def _shard_glob(home: DataHome) -> str:
    return str(home.shards_dir / "**" / "*.parquet")


def _has_shards(home: DataHome) -> bool:
    return home.shards_dir.is_dir() and any(home.shards_dir.rglob("*.parquet"))


def disallowed_licenses(home: DataHome, policies: Mapping[str, LicensePolicy]) -> list[dict]:
    """Shard rows whose licence the policy of their source does not allow."""
    if not _has_shards(home):
        return []
    with duckdb_connect(home.root) as conn:
        rows = conn.execute(
            f"SELECT source, license, count(*) FROM read_parquet('{_shard_glob(home)}') GROUP BY ALL ORDER BY ALL"
        ).fetchall()
    problems = []
    for source, license, count in rows:
        policy = policies.get(source, LicensePolicy())
        verdict = policy.judge(license)
        if not verdict.allowed:
            problems.append({"source": source, "license": license, "rows": count, "reason": verdict.reason})
    return problems


def rows_without_upstream(home: DataHome) -> int:
    if not _has_shards(home):
        return 0
    with duckdb_connect(home.root) as conn:
        return conn.execute(
            f"SELECT count(*) FROM read_parquet('{_shard_glob(home)}') "
            "WHERE upstream_uri IS NULL OR upstream_uri = '' OR license IS NULL OR license = ''"
        ).fetchone()[0]


def repeated_doc_ids(home: DataHome, limit: int = 10) -> list[tuple[str, int]]:
    if not _has_shards(home):
        return []
    with duckdb_connect(home.root) as conn:
        return conn.execute(
            f"SELECT doc_id, count(*) FROM read_parquet('{_shard_glob(home)}') "
            f"GROUP BY doc_id HAVING count(*) > 1 ORDER BY doc_id LIMIT {int(limit)}"
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


