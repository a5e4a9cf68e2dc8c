"""Asset factories: a catalog source becomes `<source>_raw` and `<source>_documents`
(partitioned by upstream unit); the corpus gets `corpus/takedown`, `corpus/dedup`,
`corpus/shards` (stages a release), `corpus/card` (writes its card) and `corpus/release`
(publishes it: releases.py).

A source's asset names carry the source's name: the UI labels a node with the last part of its
key, and in the corpus group (where every source's documents are upstream stubs) a bare
`documents` could not be told from another source's.
"""


from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetExecutionContext,
    AssetKey,
    AssetsDefinition,
    AutomationCondition,
    DynamicPartitionsDefinition,
    MaterializeResult,
    MetadataValue,
    StaticPartitionsDefinition,
    asset,
    get_dagster_logger,
)

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.dedup.presign import presign
from opencorpus_dagster.lineage.openlineage import (
    DEDUP_JOB,
    SHARDS_JOB,
    DatasetRef,
    documents_column_lineage,
    documents_job,
    raw_job,
    shards_column_lineage,
)
from opencorpus_dagster.orchestration.checks import (
    combined_suite_check,
    kept_documents_check,
    shard_check_results,
    shard_check_specs,
    suite_check,
)
from opencorpus_dagster.orchestration.metadata import counts_table, rules_table, shards_table
from opencorpus_dagster.orchestration.resources import CorpusSettings, LineageFiles, lineage_store
from opencorpus_dagster.publish.attribution import write_attribution
from opencorpus_dagster.publish.card import write_card
from opencorpus_dagster.publish.croissant import write_croissant
from opencorpus_dagster.publish.markdown import markdown_text
from opencorpus_dagster.publish.release import base_url_from_environment
from opencorpus_dagster.quality.suites import suite_cache, validate_documents, validate_raw
from opencorpus_dagster.rights.training_summary import write_release_summary
from opencorpus_dagster.stages.corpus import (
    DUPLICATES_SCHEMA,
    deduplicate_corpus,
    duplicates_path,
    publish_release,
    stage_shards,
)
from opencorpus_dagster.stages.documents import (
    DOCUMENT_SCHEMA,
    process_partition,
    rule_stats_table,
)
from opencorpus_dagster.stages.ingest import (
    RAW_SCHEMA,
    PartitionFailed,
    find_unit,
    ingest_partition,
)
from opencorpus_dagster.stages.shards import SHARD_COLUMNS, SHARD_SCHEMA
from opencorpus_dagster.stages.takedown import apply_takedowns, record_shard_changes
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.home_lock import hold_home_for_step

CORPUS_GROUP = "corpus"
TAKEDOWN_KEY = AssetKey([CORPUS_GROUP, "takedown"])
DEDUP_KEY = AssetKey([CORPUS_GROUP, "dedup"])
SHARDS_KEY = AssetKey([CORPUS_GROUP, "shards"])
CARD_KEY = AssetKey([CORPUS_GROUP, "card"])
RELEASE_KEY = AssetKey([CORPUS_GROUP, "release"])
CATALOG_KEY = AssetKey([CORPUS_GROUP, "catalog"])

# Declarative automation of the corpus assets: run when any upstream asset was updated since this
# one was last handled, and not while any upstream is still running (a backfill of nine partitions
# makes one corpus run, after the last). Unlike `eager()`, a missing upstream partition (one that
# failed, one discovered but not run yet) does not hold the corpus back forever.
CORPUS_AUTOMATION = AutomationCondition.eager().without(~AutomationCondition.any_deps_missing())


def raw_key(source_name: str) -> AssetKey:
    return AssetKey([f"{source_name}_raw"])


def documents_key(source_name: str) -> AssetKey:
    return AssetKey([f"{source_name}_documents"])


def partitions_for(source: Source) -> StaticPartitionsDefinition | DynamicPartitionsDefinition:
    """Declared units are static partitions; a source that discovers its units upstream (a
    listing) gets dynamic partitions, added by its discovery sensor or by `opencorpus build`."""
    if source.connector.discovers():
        return DynamicPartitionsDefinition(name=dynamic_partitions_name(source.name))
    return StaticPartitionsDefinition([unit.key for unit in source.connector.units()])


def dynamic_partitions_name(source_name: str) -> str:
    return f"{source_name}_units"


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

    raw_suite_spec = AssetCheckSpec(
        "raw_records_expectations",
        asset=raw_key(source.name),
        blocking=True,
        description="Great Expectations suite expectations/raw_records.json on this partition's raw records.",
    )

    @asset(
        key=raw_key(source.name),
        check_specs=[raw_suite_spec],
        description=f"{description}\n\nRaw records parsed from one upstream unit ({source.spec.kind}).",
        kinds={source.spec.kind, "parquet"},
        deps=[CATALOG_KEY],
        metadata={"catalog_file": MetadataValue.path(str(source.path))},
        **common,
    )
    def raw(context: AssetExecutionContext, corpus: CorpusSettings, lineage: LineageFiles) -> MaterializeResult:
        unit = find_unit(source, context.partition_key, corpus.fetcher(), corpus.data_home())
        emitter = corpus.lineage_emitter()
        output = emitter.datasets.raw(source.name)
        upstream = [DatasetRef.from_url(url) for url in unit.urls if "://" in url]
        with emitter.run(raw_job(source.name), context.run.run_id, upstream, [output], context.partition_key, context.job_name) as run:
            try:
                result = ingest_partition(
                    source, unit, corpus.fetcher(), corpus.data_home(), lineage_store(lineage), context.run.run_id
                )
            except PartitionFailed as error:
                context.log.error(str(error))
                raise
            run.set_schema(output, RAW_SCHEMA)
            run.set_output_stats(output, result.raw_records, result.path.stat().st_size, files=1)
            run.set_facet(output, "opencorpus", {"outcomes": dict(result.counts), "partition": context.partition_key})
        return MaterializeResult(
            check_results=[
                suite_check("raw_records_expectations", validate_raw([result.path], suite_cache(corpus.data_home())))
            ],
            metadata={
                "records_in": result.records_in,
                "raw_records": result.raw_records,
                "outcomes_at_raw": counts_table("outcome", dict(result.counts)),
                "files": MetadataValue.md(
                    "\n".join(["| file | sha256 | bytes |", "|---|---|---:|"] + [f"| {markdown_text(f.url)} | `{f.sha256}` | {f.size} |" for f in result.fetched])
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
        check_specs=[
            conservation_spec,
            AssetCheckSpec(
                "documents_expectations",
                asset=documents_key(source.name),
                blocking=True,
                description="Great Expectations suite expectations/documents.json on this partition, with the source's policy.",
            ),
            AssetCheckSpec(
                "kept_documents",
                asset=documents_key(source.name),
                description="The partition kept at least one document (WARN: a partition that keeps nothing shows its top reasons).",
            ),
        ],
        **common,
    )
    def documents(context: AssetExecutionContext, corpus: CorpusSettings, lineage: LineageFiles) -> MaterializeResult:
        store = lineage_store(lineage)
        emitter = corpus.lineage_emitter()
        raw_ref, output = emitter.datasets.raw(source.name), emitter.datasets.documents(source.name)
        with emitter.run(documents_job(source.name), context.run.run_id, [raw_ref], [output], context.partition_key, context.job_name) as run:
            result = process_partition(
                source, context.partition_key, corpus.data_home(), store, context.run.run_id, fetcher=corpus.fetcher()
            )
            # Signed here, in parallel with the other partition runs, not in the corpus run.
            presign(corpus.data_home(), source.name, context.partition_key, result.path)
            run.set_schema(output, DOCUMENT_SCHEMA)
            run.set_column_lineage(output, documents_column_lineage(raw_ref))
            run.set_output_stats(output, result.kept, result.path.stat().st_size, files=1)
            outcomes = {**result.counts, "passed": result.kept}
            run.set_facet(output, "opencorpus", {"licenses": dict(result.licenses), "outcomes": outcomes, "partition": context.partition_key})
        raw_reasons = _raw_reasons(store, source.name, context.partition_key)
        raw_decided = sum(raw_reasons.values())
        with store.connection() as conn:
            (raw_in,) = conn.execute(
                "SELECT any_value(records_in) FROM partitions WHERE source = $1 AND partition = $2 AND stage = 'raw'",
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
                "rules": rules_table(rule_stats_table(source.name, context.partition_key, result, context.run.run_id)),
                "path": MetadataValue.path(str(result.path)),
            },
            check_results=[
                suite_check(
                    "documents_expectations", validate_documents(source, [result.path], suite_cache(corpus.data_home()))
                ),
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
                ),
                kept_documents_check(raw_in or 0, result.kept, {**dict(result.reasons), **raw_reasons}),
            ],
        )

    return [raw, documents]


def corpus_assets(sources: list[Source]) -> list[AssetsDefinition]:
    """`corpus/takedown`, `corpus/dedup` over every source's documents, `corpus/shards`, `corpus/card`."""

    @asset(
        key=TAKEDOWN_KEY,
        deps=[documents_key(s.name) for s in sources],
        group_name=CORPUS_GROUP,
        description=(
            "Applies the takedown list (takedowns.jsonl in the data home, `opencorpus takedown add`) to every "
            "document: matched records become `removed`; runs on every corpus run so re-ingested content stays out."
        ),
        kinds={"duckdb"},
        automation_condition=CORPUS_AUTOMATION,
    )
    def takedown(context: AssetExecutionContext, corpus: CorpusSettings, lineage: LineageFiles) -> MaterializeResult:
        with hold_home_for_step(corpus.data_home(), context.log.info):
            report = apply_takedowns(corpus.data_home(), lineage_store(lineage), context.run.run_id)
            return MaterializeResult(
                metadata={
                    "requests": report.requests,
                    "records_removed": report.records,
                    "newly_removed": report.new_records,
                    "by_kind": counts_table("kind", report.by_kind),
                    "unmatched_requests": MetadataValue.json(report.unmatched),
                    "takedown_list": MetadataValue.path(str(corpus.data_home().takedowns)),
                }
            )

    @asset(
        key=DEDUP_KEY,
        deps=[TAKEDOWN_KEY, *[documents_key(s.name) for s in sources]],
        group_name=CORPUS_GROUP,
        description=(
            "Duplicates across all sources: the same record superseded by a newer unit, the same normalised text, "
            "and near duplicates (MinHash LSH, verified on exact shingle Jaccard); one keeper per cluster."
        ),
        kinds={"duckdb"},
        automation_condition=CORPUS_AUTOMATION,
        check_specs=[
            AssetCheckSpec(
                "documents_expectations",
                asset=DEDUP_KEY,
                blocking=True,
                description="expectations/documents.json over every source's documents; a failure stops the shards.",
            )
        ],
    )
    def dedup(context: AssetExecutionContext, corpus: CorpusSettings, lineage: LineageFiles) -> MaterializeResult:
        with hold_home_for_step(corpus.data_home(), context.log.info):
            emitter = corpus.lineage_emitter()
            inputs = [emitter.datasets.documents(s.name) for s in sources]
            output = emitter.datasets.duplicates()
            with emitter.run(DEDUP_JOB, context.run.run_id, inputs, [output], parent_job=context.job_name) as run:
                report = deduplicate_corpus(corpus.data_home(), lineage_store(lineage), context.run.run_id)
                run.set_schema(output, DUPLICATES_SCHEMA)
                run.set_output_stats(output, report.duplicates, duplicates_path(corpus.data_home()).stat().st_size, files=1)
                run.set_facet(output, "opencorpus", {"outcomes": {"duplicate": report.duplicates, "kept": report.documents - report.duplicates}})
            home = corpus.data_home()
            cache = suite_cache(home)
            results = [
                # Files validated before (by their partition's run or the last corpus run) with the same
                # suite and policy are not read again: suite_cache.
                validate_documents(s, sorted((home.root / "documents" / s.name).glob("*.parquet")), cache)
                for s in sources
                if any((home.root / "documents" / s.name).glob("*.parquet"))
            ]
            return MaterializeResult(
                check_results=[combined_suite_check("documents_expectations", results)],
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
        description=(
            "Deterministic, size-bounded Parquet shards (zstd, immutable files named by content) and the "
            "manifest.json of the release it stages. Its checks audit that release in the same step, whatever "
            "launched it; a failure stops the card and the release: readers keep the current release."
        ),
        kinds={"parquet"},
        automation_condition=CORPUS_AUTOMATION,
        check_specs=shard_check_specs(SHARDS_KEY),
    )
    def shards(context: AssetExecutionContext, corpus: CorpusSettings, lineage: LineageFiles) -> MaterializeResult:
        with hold_home_for_step(corpus.data_home(), context.log.info):
            home = corpus.data_home()
            emitter = corpus.lineage_emitter()
            documents = [emitter.datasets.documents(s.name) for s in sources]
            inputs, output = [*documents, emitter.datasets.duplicates()], emitter.datasets.shards()
            with emitter.run(SHARDS_JOB, context.run.run_id, inputs, [output], parent_job=context.job_name) as run:
                store = lineage_store(lineage)
                report = stage_shards(home, corpus.max_shard_bytes, corpus.writers())
                totals = report.manifest["totals"]
                run.set_schema(output, SHARD_SCHEMA)
                run.set_column_lineage(output, shards_column_lineage(documents, emitter.datasets.duplicates(), SHARD_COLUMNS))
                run.set_output_stats(output, totals["rows"], totals["bytes"], files=totals["shards"])
                run.set_facet(output, "opencorpus", {"licenses": totals["licenses"], "outcomes": {"kept": totals["rows"]}})
            context.log.info(
                f"release {report.release} staged: shards written: {len(report.written)}, unchanged: {len(report.kept)}, "
                f"no longer listed: {len(report.deleted)}"
            )
            return MaterializeResult(
                check_results=shard_check_results(home, store, sources, report.release),
                metadata={
                    "shard_files": shards_table(report.manifest["shards"]),
                    "shards": totals["shards"],
                    "rows": totals["rows"],
                    "bytes": totals["bytes"],
                    "written_this_run": len(report.written),
                    "unchanged": len(report.kept),
                    "licenses": counts_table("licence", totals["licenses"], totals["rows"]),
                    "sources": counts_table("source", totals["sources"], totals["rows"]),
                    "staged_release": report.release,
                    "manifest": MetadataValue.path(str(releases.release_dir(home, report.release) / releases.MANIFEST_FILE)),
                }
            )

    @asset(
        key=CARD_KEY,
        deps=[SHARDS_KEY, CATALOG_KEY],
        group_name=CORPUS_GROUP,
        description="Dataset card (README.md, Hugging Face form), ATTRIBUTION and Croissant JSON-LD, written into the staged release.",
        kinds={"markdown", "json"},
        automation_condition=CORPUS_AUTOMATION,
    )
    def card(corpus: CorpusSettings, lineage: LineageFiles) -> MaterializeResult:
        with hold_home_for_step(corpus.data_home(), get_dagster_logger().info):
            home, store = corpus.data_home(), lineage_store(lineage)
            descriptions = {s.name: s.spec.description for s in sources if s.spec.description}
            owners, base_url = {s.name: list(s.spec.owners) for s in sources}, base_url_from_environment()
            release = releases.staged_for_card(home)
            readme = write_card(home, store, descriptions, owners=owners, base_url=base_url, release=release)
            attribution = write_attribution(home, store, release)
            croissant = write_croissant(home, store, owners=owners, base_url=base_url, release=release)
            summary_md, _ = write_release_summary(home, store, sources, corpus.fetcher(), release)
            metadata = {
                "card": MetadataValue.path(str(readme)),
                "training_content_summary": MetadataValue.path(str(summary_md)),
                "attribution": MetadataValue.path(str(attribution)),
                "croissant": MetadataValue.path(str(croissant)),
                "preview": MetadataValue.md(readme.read_text()[:4000]),
            }
            return MaterializeResult(metadata=metadata)

    @asset(
        key=RELEASE_KEY,
        deps=[CARD_KEY, SHARDS_KEY],
        group_name=CORPUS_GROUP,
        description=(
            "Publishes the staged release in one step: release.json (every file's sha256, the shard totals, the "
            "Merkle root, the corpus run) written last, then current.json switched. A run that changed nothing "
            "keeps the current release."
        ),
        kinds={"json"},
        automation_condition=CORPUS_AUTOMATION,
    )
    def release(context: AssetExecutionContext, corpus: CorpusSettings, lineage: LineageFiles) -> MaterializeResult:
        with hold_home_for_step(corpus.data_home(), context.log.info):
            home, store = corpus.data_home(), lineage_store(lineage)
            published, changed = publish_release(home, store, context.run.run_id)
            record_shard_changes(store, context.run.run_id, changed)
            context.log.info(f"release {published.release} {'published' if published.new else 'unchanged (nothing differs)'}")
            return MaterializeResult(
                metadata={
                    "release": published.release,
                    "new_release": published.new,
                    "rows": published.manifest["totals"]["rows"],
                    "merkle_root": published.manifest.get("merkle_root", ""),
                    "folder": MetadataValue.path(str(releases.release_dir(home, published.release))),
                }
            )

    return [takedown, dedup, shards, card, release]


def _raw_reasons(store, source_name: str, partition: str) -> dict[str, int]:
    """Reasons of the records the raw stage already decided (skipped, quarantined) in this partition."""
    with store.connection() as conn:
        rows = conn.execute(
            "SELECT reason, count(*) FROM decisions WHERE source = $1 AND partition = $2 AND stage = 'raw' "
            "AND outcome <> 'kept' GROUP BY reason",
            [source_name, partition],
        ).fetchall()
    return {reason or "(no reason)": count for reason, count in rows}
