"""The corpus-level stages: deduplicate across all sources, then publish shards.

Plain Python over the documents files and the lineage store; the Dagster assets
`corpus/dedup` and `corpus/shards` call these.
"""

from __future__ import annotations

from collections import Counter
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pyarrow as pa

from opencorpus_dagster.dedup.clusters import (
    DEFAULT_KEEPER_POLICY,
    Criterion,
    DocInfo,
    choose_keeper,
    form_clusters,
)
from opencorpus_dagster.dedup.exact import (
    Member,
    find_exact_groups,
    member_key,
)
from opencorpus_dagster.dedup.member_cache import MemberCache
from opencorpus_dagster.dedup.near import NearDuplicateIndex
from opencorpus_dagster.licensing.policy import permissiveness_rank
from opencorpus_dagster.lineage.store import LineageStore, decisions_table
from opencorpus_dagster.stages.shards import (
    DEFAULT_MAX_SHARD_BYTES,
    ShardGroup,
    ShardingReport,
    read_manifest,
    write_shards,
)
from opencorpus_dagster.stages.takedown import removed_keys as taken_down
from opencorpus_dagster.state.atomic import write_parquet_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.releases import Published, commit_release, release_dir
from opencorpus_dagster.state.storage import duckdb_connect, parquet_files

DUPLICATES_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition", pa.string()),
        ("doc_id", pa.string()),
        ("keeper_source", pa.string()),
        ("keeper_partition", pa.string()),
        ("keeper_doc_id", pa.string()),
        ("reason", pa.string()),
        ("similarity", pa.float64()),
    ]
)
CLUSTERS_SCHEMA = pa.schema(
    [("cluster", pa.int64()), ("rank", pa.int64()), ("source", pa.string()), ("partition", pa.string()), ("doc_id", pa.string())]
)


@dataclass
class DedupReport:
    documents: int
    duplicates: int
    by_reason: Counter
    clusters: int = 0
    reindexed_partitions: int = 0


@dataclass(frozen=True)
class DuplicateDecision:
    member: Member
    keeper: Member
    reason: str  # dedup.superseded | dedup.exact | dedup.near
    similarity: float


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()


def duplicates_path(home: DataHome) -> Path:
    return home.dedup_dir / "duplicates.parquet"


def clusters_path(home: DataHome) -> Path:
    return home.dedup_dir / "clusters.parquet"


def documents_files(home: DataHome) -> list[str]:
    """Every documents file of the corpus, for DuckDB's `read_parquet(?)` (a bound list)."""
    return parquet_files(home.root / "documents", "*/*.parquet")


def removed_keys(home: DataHome) -> frozenset[str]:
    """Member keys of taken-down records: absent for dedup, so their cluster's next member is kept."""
    return frozenset(member_key(*key) for key in taken_down(home))


def _keeper_info(member: Member) -> DocInfo:
    return DocInfo(
        doc_id=member.key,
        license_rank=permissiveness_rank(member.license),
        upstream_order="\x00".join((member.source, member.partition, member.source_record_id)),
        text_length=member.text_length,
    )


def find_duplicates(
    home: DataHome, near: bool = True, keeper_policy: tuple[Criterion, ...] = DEFAULT_KEEPER_POLICY
) -> tuple[list[DuplicateDecision], list[list[Member]], int]:
    """All duplicate decisions of the corpus, the ordered clusters, and partitions re-indexed.

    Clusters join exact (same normalised text) groups and verified near-duplicate pairs across
    all sources; each is ordered by the keeper policy (default: most permissive licence, then
    earlier upstream record, then longer text) and its first member is kept.
    """
    excluded = removed_keys(home)
    files = documents_files(home)
    index = NearDuplicateIndex(home)
    cache = MemberCache(home.dedup_dir / "members.parquet", index.documents_files())
    superseded, groups = find_exact_groups(files, excluded, cache.load)
    gone = {old.key for old, _ in superseded} | excluded
    pairs: list[tuple[str, str, float]] = []
    reindexed: list = []
    if near:
        pairs, reindexed = index.update()
        pairs = [p for p in pairs if p[0] not in gone and p[1] not in gone]
    links = [(g[i].key, g[i + 1].key) for g in groups for i in range(len(g) - 1)] + [(a, b) for a, b, _ in pairs]
    members = {m.key: m for g in groups for m in g}
    members.update(cache.load({k for a, b, _ in pairs for k in (a, b)} - set(members)))
    cache.save()
    similarity = {(a, b): s for a, b, s in pairs}

    decisions = [DuplicateDecision(old, newest, "dedup.superseded", 1.0) for old, newest in superseded]
    ordered_clusters: list[list[Member]] = []
    for cluster in form_clusters(links):
        ordered = [members[info.doc_id] for info in choose_keeper([_keeper_info(members[k]) for k in cluster], keeper_policy)]
        ordered_clusters.append(ordered)
    # Members joined to their keeper through another member have no verified pair with it: their
    # similarity is measured (or taken from an earlier run's measure of the same two files).
    joined = {
        _pair(member.key, ordered[0].key)
        for ordered in ordered_clusters
        for member in ordered[1:]
        if member.content_sha256 != ordered[0].content_sha256 and _pair(member.key, ordered[0].key) not in similarity
    }
    similarity.update(index.similarities(joined))
    for ordered in ordered_clusters:
        keeper = ordered[0]
        for member in ordered[1:]:
            if member.content_sha256 == keeper.content_sha256:
                decisions.append(DuplicateDecision(member, keeper, "dedup.exact", 1.0))
            else:
                value = similarity[_pair(member.key, keeper.key)]
                decisions.append(DuplicateDecision(member, keeper, "dedup.near", value))
    decisions.sort(key=lambda d: d.member.key)
    return decisions, ordered_clusters, len(reindexed)


def _pair(a: str, b: str) -> tuple[str, str]:
    return (a, b) if a <= b else (b, a)


def deduplicate_corpus(home: DataHome, store: LineageStore, run_id: str, near: bool = True) -> DedupReport:
    """Find duplicates over every documents file; record `duplicate` / `kept` decisions."""
    duplicates, clusters, reindexed = find_duplicates(home, near=near)
    home.dedup_dir.mkdir(parents=True, exist_ok=True)
    write_parquet_atomically(
        pa.Table.from_pylist(
            [
                {
                    "source": d.member.source,
                    "partition": d.member.partition,
                    "doc_id": d.member.doc_id,
                    "keeper_source": d.keeper.source,
                    "keeper_partition": d.keeper.partition,
                    "keeper_doc_id": d.keeper.doc_id,
                    "reason": d.reason,
                    "similarity": d.similarity,
                }
                for d in duplicates
            ],
            schema=DUPLICATES_SCHEMA,
        ),
        duplicates_path(home),
    )
    write_parquet_atomically(
        pa.Table.from_pylist(
            [
                {"cluster": number, "rank": rank, "source": m.source, "partition": m.partition, "doc_id": m.doc_id}
                for number, cluster in enumerate(clusters)
                for rank, m in enumerate(cluster)
            ],
            schema=CLUSTERS_SCHEMA,
        ),
        clusters_path(home),
    )

    files = documents_files(home)
    decisions, documents = _dedup_decisions(home, files, duplicates, run_id) if files else (decisions_table([]), 0)
    store.replace_stage("dedup", decisions)
    return DedupReport(documents, len(duplicates), Counter(d.reason for d in duplicates), len(clusters), reindexed)


def _dedup_decisions(home: DataHome, files: list[str], duplicates: list[DuplicateDecision], run_id: str) -> tuple[pa.Table, int]:
    """(a `dedup` decision for every document that is not taken down, the number of documents).

    Built by DuckDB from the documents files' keys and the duplicates (few): at 100K documents,
    a Python dict per document was half a second of every corpus run.
    """
    duplicated = pa.Table.from_pylist(
        [
            {
                "source": d.member.source,
                "partition": d.member.partition,
                "doc_id": d.member.doc_id,
                "reason": d.reason,
                "keeper": d.keeper.doc_id,
                "detail": _duplicate_detail(d),
            }
            for d in duplicates
        ],
        schema=pa.schema([(name, pa.string()) for name in ("source", "partition", "doc_id", "reason", "keeper", "detail")]),
    )
    gone = sorted(taken_down(home))
    removed = pa.table({name: pa.array([key[i] for key in gone], pa.string()) for i, name in enumerate(("source", "partition", "doc_id"))})
    with duckdb_connect(home.root) as connection:
        connection.register("duplicated", duplicated)
        connection.register("removed", removed)
        connection.execute("CREATE TEMP TABLE docs AS SELECT source, partition, doc_id, source_record_id, upstream_uri FROM read_parquet(?, union_by_name = true)", [files])
        ((documents,),) = connection.execute("SELECT count(*) FROM docs").fetchall()
        decisions = connection.sql(
            """
            SELECT d.source, d.partition, d.doc_id, d.source_record_id, d.upstream_uri, 'dedup' AS stage,
                   CASE WHEN x.doc_id IS NULL THEN 'kept' ELSE 'duplicate' END AS outcome,
                   coalesce(x.reason, 'dedup.unique') AS reason, x.keeper AS value, x.detail AS detail,
                   ?::VARCHAR AS run_id, ?::VARCHAR AS decided_at
            FROM docs AS d
            LEFT JOIN duplicated AS x ON d.source = x.source AND d.partition = x.partition AND d.doc_id = x.doc_id
            ANTI JOIN removed AS r ON d.source = r.source AND d.partition = r.partition AND d.doc_id = r.doc_id
            ORDER BY d.source, d.partition, d.doc_id, d.source_record_id, d.upstream_uri
            """,
            params=[run_id, _now()],
        ).to_arrow_table()
    return decisions, int(documents)


def _duplicate_detail(duplicate: DuplicateDecision) -> str:
    keeper = f"{duplicate.keeper.source}/{duplicate.keeper.partition}/{duplicate.keeper.doc_id}"
    if duplicate.reason == "dedup.superseded":
        return f"superseded by the same record in a newer unit: {keeper}"
    return f"similarity {duplicate.similarity:.3f} to {keeper}"


def stage_shards(home: DataHome, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES, writers: int = 1) -> ShardingReport:
    """Write the shards of every partition that has documents, minus duplicates and removals, and
    stage their manifest in the next release (`writers` threads compress them); nothing is
    published (see `publish_release`)."""
    groups = [
        ShardGroup(path.parent.name, path.stem, path)
        for path in sorted((home.root / "documents").glob("*/*.parquet"))
        if not path.name.startswith(".")
    ]
    excluded = home.dedup_dir / "excluded.parquet"
    _write_excluded(home, excluded)
    return write_shards(home, groups, excluded, max_shard_bytes, writers)


def publish_release(home: DataHome, store: LineageStore, run_id: str) -> tuple[Published, list[str]]:
    """Publish the staged release (with its card when the card step wrote one) and bring the
    lineage store's shard tables to it; returns it with the shard paths that entered or left."""
    before = {s["path"] for s in (read_manifest(home) or {"shards": []})["shards"]}
    published = commit_release(home, run_id)
    listed = {s["path"] for s in published.manifest["shards"]}
    store.sync_shards(published.manifest, release_dir(home, published.release), sorted(listed - before), run_id)
    return published, sorted(listed ^ before)


def publish_corpus(
    home: DataHome, store: LineageStore, run_id: str, max_shard_bytes: int = DEFAULT_MAX_SHARD_BYTES
) -> ShardingReport:
    """Stage the shards and publish them at once as a release without a card (the plain path;
    the Dagster assets put the card step between the two)."""
    report = stage_shards(home, max_shard_bytes)
    publish_release(home, store, run_id)
    return report


def _write_excluded(home: DataHome, target) -> None:
    """(source, partition, doc_id) of every record that must not be in a shard."""
    home.dedup_dir.mkdir(parents=True, exist_ok=True)
    parts = [p for p in (duplicates_path(home), home.removed_records) if p.is_file()]
    connection = duckdb_connect(home.root)
    try:
        if parts:
            # UNION of the files' rows (distinct), the file list a bound parameter; union_by_name
            # because the two files have different columns beyond the three read here.
            table = connection.sql(
                "SELECT DISTINCT source, partition, doc_id FROM read_parquet(?, union_by_name = true) ORDER BY ALL",
                params=[[str(p) for p in parts]],
            ).to_arrow_table()
        else:
            table = pa.table({"source": pa.array([], pa.string()), "partition": pa.array([], pa.string()), "doc_id": pa.array([], pa.string())})
    finally:
        connection.close()
    write_parquet_atomically(table, target)
