"""Corpus-wide audits: the invariants the published corpus must satisfy.

Each function returns the problems it found (empty = the invariant holds), with example values
so a failing check says what is wrong. Plain Python over DuckDB and the shard files.
"""

from __future__ import annotations

from collections.abc import Mapping

from opencorpus_dagster.licensing.policy import LicensePolicy
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.shards import read_manifest, sha256_file, shard_paths
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.releases import current_release, release_dir
from opencorpus_dagster.state.storage import duckdb_connect


def conservation_problems(store: LineageStore) -> list[dict]:
    """Partitions where records in != kept + filtered + duplicate + quarantined + removed + skipped."""
    return [row for row in store.conservation() if row["records_in"] != row["total"]]


def _shard_files(home: DataHome, release: str | None) -> list[str]:
    """The shard files of the release being checked (the staged one), else the current release's."""
    return shard_paths(home, release)


def disallowed_licenses(home: DataHome, policies: Mapping[str, LicensePolicy], release: str | None = None) -> list[dict]:
    """Shard rows whose licence the policy of their source does not allow."""
    files = _shard_files(home, release)
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


def rows_without_upstream(home: DataHome, release: str | None = None) -> int:
    files = _shard_files(home, release)
    if not files:
        return 0
    with duckdb_connect(home.root) as conn:
        return conn.execute(
            "SELECT count(*) FROM read_parquet(?) "
            "WHERE upstream_uri IS NULL OR upstream_uri = '' OR license IS NULL OR license = ''",
            [files],
        ).fetchone()[0]


def repeated_doc_ids(home: DataHome, limit: int = 10, release: str | None = None) -> list[tuple[str, int]]:
    files = _shard_files(home, release)
    if not files:
        return []
    with duckdb_connect(home.root) as conn:
        return conn.execute(
            "SELECT doc_id, count(*) FROM read_parquet(?) GROUP BY doc_id HAVING count(*) > 1 ORDER BY doc_id LIMIT ?",
            [files, int(limit)],
        ).fetchall()


def manifest_mismatches(home: DataHome, release: str | None = None) -> list[dict]:
    """Shards whose file is missing or whose sha256/size differs from the manifest of `release`
    (default: the current release)."""
    release = release or current_release(home)
    manifest = read_manifest(home, release) if release else None
    if manifest is None:
        return [{"path": str(home.corpus_dir / "current.json"), "problem": "no release"}]
    folder = release_dir(home, release)
    problems = []
    for entry in manifest["shards"]:
        path = folder / entry["path"]
        if not path.is_file():
            problems.append({"path": entry["path"], "problem": "missing"})
            continue
        digest = sha256_file(path)
        if digest != entry["sha256"] or path.stat().st_size != entry["bytes"]:
            problems.append({"path": entry["path"], "problem": f"sha256 {digest} != manifest {entry['sha256']}"})
    return problems


