"""Asset factories: a catalog source becomes `<source>/raw` and `<source>/documents`
(partitioned by upstream unit); the corpus gets `corpus/dedup` and `corpus/shards`."""


from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
)
from dagster_duckdb import DuckDBResource

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.corpus import deduplicate_corpus, publish_corpus
from opencorpus_dagster.documents import process_partition, rule_stats_table
from opencorpus_dagster.ingest import PartitionFailed, find_unit, ingest_partition
from opencorpus_dagster.orchestration.metadata import counts_table, rules_table
from opencorpus_dagster.orchestration.resources import CorpusSettings, lineage_store

CORPUS_GROUP = "corpus"
DEDUP_KEY = AssetKey([CORPUS_GROUP, "dedup"])
SHARDS_KEY = AssetKey([CORPUS_GROUP, "shards"])


def raw_key(source_name: str) -> AssetKey:
    return AssetKey([source_name, "raw"])


def documents_key(source_name: str) -> AssetKey:
    return AssetKey([source_name, "documents"])


def partitions_for(source: Source) -> StaticPartitionsDefinition:
    return StaticPartitionsDefinition([unit.key for unit in source.connector.units()])


def source_assets(source: Source) -> list[AssetsDefinition]:
    """The raw and documents assets of one catalog source."""
    partitions = partitions_for(source)
    common = {
        "partitions_def": partitions,
        "group_name": source.name,
        "owners": source.spec.owners or None,
        "tags": source.spec.tags or None,
        "code_version": source.fingerprint,
    }
    description = source.spec.description.strip() or f"{source.spec.kind} source {source.name}"

    @asset(
        key=raw_key(source.name),
        description=f"{description}\n\nRaw records parsed from one upstream unit ({source.spec.kind}).",
        kinds={source.spec.kind, "parquet"},
        metadata={"catalog_file": MetadataValue.path(str(source.path))},
        **common,
    )
    def raw(context: AssetExecutionContext, corpus: CorpusSettings, lineage: DuckDBResource) -> MaterializeResult:
        unit = find_unit(source, context.partition_key)
        try:
            result = ingest_partition(
                source, unit, corpus.fetcher(), corpus.data_home(), lineage_store(lineage), context.run_id
            )
        except PartitionFailed as error:
            context.log.error(str(error))
            raise
        return MaterializeResult(
            metadata={
                "records_in": result.records_in,
                "raw_records": result.raw_records,
                "outcomes_at_raw": counts_table("outcome", dict(result.counts)),
                "files": MetadataValue.md(
                    "\n".join(["| file | sha256 | bytes |", "|---|---|---:|"] + [f"| {f.url} | `{f.sha256}` | {f.size} |" for f in result.fetched])
                ),
                "path": MetadataValue.path(str(result.path)),
            }
        )

    conservation_spec = AssetCheckSpec(
        "partition_conservation",
        asset=documents_key(source.name),
        description="Every raw record of the partition leaves the documents stage exactly once.",
    )

    @asset(
        key=documents_key(source.name),
        deps=[raw_key(source.name)],
        description=f"{description}\n\nExtracted, licence-checked and filtered documents.",
        kinds={"parquet"},
        check_specs=[conservation_spec],
        **common,
    )
    def documents(context: AssetExecutionContext, corpus: CorpusSettings, lineage: DuckDBResource) -> MaterializeResult:
        store = lineage_store(lineage)
        result = process_partition(
            source, context.partition_key, corpus.data_home(), store, context.run_id, fetcher=corpus.fetcher()
        )
        with store.connection() as conn:
            raw_in, raw_decided = conn.execute(
                "SELECT any_value(records_in), (SELECT count(*) FROM decisions WHERE source = $1 AND partition = $2 AND stage = 'raw') "
                "FROM partitions WHERE source = $1 AND partition = $2 AND stage = 'raw'",
                [source.name, context.partition_key],
            ).fetchone()
        dropped = sum(result.counts.values())
        balanced = raw_in == raw_decided + result.kept + dropped
        return MaterializeResult(
            metadata={
                "records_in": result.records_in,
                "kept": result.kept,
                "outcomes": counts_table("outcome", {**result.counts, "passed": result.kept}, result.records_in),
                "reasons": counts_table("reason", dict(result.reasons), result.records_in),
                "licenses": counts_table("licence", dict(result.licenses), result.kept),
                "rules": rules_table(rule_stats_table(source.name, context.partition_key, result, context.run_id)),
                "path": MetadataValue.path(str(result.path)),
            },
            check_results=[
                AssetCheckResult(
                    check_name="partition_conservation",
                    passed=bool(balanced),
                    severity=AssetCheckSeverity.ERROR,
                    metadata={
                        "raw_records_in": raw_in,
                        "decided_at_raw": raw_decided,
                        "passed_documents_stage": result.kept,
                        "dropped_at_documents": dropped,
                    },
                )
            ],
        )

    return [raw, documents]


def corpus_assets(sources: list[Source]) -> list[AssetsDefinition]:
    """`corpus/dedup` over every source's documents, and `corpus/shards` after it."""

    @asset(
        key=DEDUP_KEY,
        deps=[documents_key(s.name) for s in sources],
        group_name=CORPUS_GROUP,
        description="Exact duplicates across all sources (same normalised text, or a record superseded by a newer unit).",
        kinds={"duckdb"},
        automation_condition=AutomationCondition.eager(),
    )
    def dedup(context: AssetExecutionContext, corpus: CorpusSettings, lineage: DuckDBResource) -> MaterializeResult:
        report = deduplicate_corpus(corpus.data_home(), lineage_store(lineage), context.run_id)
        return MaterializeResult(
            metadata={
                "documents": report.documents,
                "duplicates": report.duplicates,
                "by_reason": counts_table("reason", dict(report.by_reason), report.documents),
            }
        )

    @asset(
        key=SHARDS_KEY,
        deps=[DEDUP_KEY],
        group_name=CORPUS_GROUP,
        description="Deterministic, size-bounded Parquet shards (zstd) and manifest.json.",
        kinds={"parquet"},
        automation_condition=AutomationCondition.eager(),
    )
    def shards(context: AssetExecutionContext, corpus: CorpusSettings, lineage: DuckDBResource) -> MaterializeResult:
        home = corpus.data_home()
        report = publish_corpus(home, lineage_store(lineage), context.run_id, corpus.max_shard_bytes)
        totals = report.manifest["totals"]
        context.log.info(f"shards written: {len(report.written)}, unchanged: {len(report.kept)}, deleted: {len(report.deleted)}")
        return MaterializeResult(
            metadata={
                "shards": totals["shards"],
                "rows": totals["rows"],
                "bytes": totals["bytes"],
                "written_this_run": len(report.written),
                "unchanged": len(report.kept),
                "licenses": counts_table("licence", totals["licenses"], totals["rows"]),
                "sources": counts_table("source", totals["sources"], totals["rows"]),
                "manifest": MetadataValue.path(str(home.manifest)),
            }
        )

    return [dedup, shards]
