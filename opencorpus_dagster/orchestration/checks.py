"""Asset checks on the published corpus (each wraps one audit from `audit.py`)."""


from dagster import AssetCheckResult, AssetChecksDefinition, MetadataValue, asset_check
from dagster_duckdb import DuckDBResource

from opencorpus_dagster import audit
from opencorpus_dagster.catalog import Source
from opencorpus_dagster.orchestration.assets import SHARDS_KEY, suite_check
from opencorpus_dagster.orchestration.resources import CorpusSettings, lineage_store
from opencorpus_dagster.quality.suites import validate_shards
from opencorpus_dagster.takedown import shard_rows_taken_down


def corpus_checks(sources: list[Source]) -> list[AssetChecksDefinition]:
    policies = {source.name: source.policy for source in sources}

    @asset_check(asset=SHARDS_KEY, description="records in = kept + filtered + duplicate + quarantined + removed + skipped, per partition")
    def conservation(lineage: DuckDBResource) -> AssetCheckResult:
        store = lineage_store(lineage)
        rows = store.conservation()
        problems = [row for row in rows if row["records_in"] != row["total"]]
        return AssetCheckResult(
            passed=not problems,
            metadata={"partitions": len(rows), "unbalanced": MetadataValue.json(problems[:20])},
        )

    @asset_check(asset=SHARDS_KEY, description="every shard row has a licence its source's policy allows and an upstream URI")
    def licences_allowed_and_traceable(corpus: CorpusSettings) -> AssetCheckResult:
        home = corpus.data_home()
        disallowed = audit.disallowed_licenses(home, policies)
        untraceable = audit.rows_without_upstream(home)
        return AssetCheckResult(
            passed=not disallowed and untraceable == 0,
            metadata={"disallowed": MetadataValue.json(disallowed[:20]), "rows_without_upstream_or_licence": untraceable},
        )

    @asset_check(asset=SHARDS_KEY, description="doc_id is unique across all shards")
    def doc_ids_unique(corpus: CorpusSettings) -> AssetCheckResult:
        repeated = audit.repeated_doc_ids(corpus.data_home())
        return AssetCheckResult(passed=not repeated, metadata={"examples": MetadataValue.json([list(r) for r in repeated])})

    @asset_check(asset=SHARDS_KEY, description="every shard file matches the sha256 and size in manifest.json")
    def manifest_checksums(corpus: CorpusSettings) -> AssetCheckResult:
        problems = audit.manifest_mismatches(corpus.data_home())
        return AssetCheckResult(passed=not problems, metadata={"problems": MetadataValue.json(problems[:20])})

    @asset_check(asset=SHARDS_KEY, description="no shard row is hit by a request in the takedown list")
    def no_taken_down_rows(corpus: CorpusSettings) -> AssetCheckResult:
        hits = shard_rows_taken_down(corpus.data_home())
        return AssetCheckResult(passed=hits.num_rows == 0, metadata={"rows": hits.num_rows, "examples": MetadataValue.json(hits.slice(0, 10).to_pylist())})

    @asset_check(asset=SHARDS_KEY, blocking=True, description="Great Expectations suite expectations/shards.json on the published shards")
    def shards_expectations(corpus: CorpusSettings) -> AssetCheckResult:
        files = sorted(corpus.data_home().shards_dir.rglob("*.parquet"))
        if not files:
            return AssetCheckResult(passed=True, metadata={"rows": 0})
        return suite_check("shards_expectations", validate_shards(sources, files))

    return [conservation, licences_allowed_and_traceable, doc_ids_unique, manifest_checksums, no_taken_down_rows, shards_expectations]
