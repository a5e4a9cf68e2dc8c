"""Asset checks: the Great Expectations suites and the audits of the published corpus.

The corpus audits (each wraps one audit from `audit.py`) are declared as check specs of
`corpus/shards` itself and evaluated in the same step that writes the shards and stages the
release (releases.py), on that staged release. A check defined
beside an asset (`@asset_check`) runs only when whatever launches the run selects it, and runs
launched by declarative automation did not: shards were published with no check evaluated. A
check spec of the asset's own op cannot be left out of any run that materialises the asset
(Dagster refuses such a subset), so the CLI, the automation sensor, a schedule, a UI
materialisation and a backfill all evaluate the same checks. They are blocking: a failure
stops `corpus/card` and `corpus/release`, so the staged release is never published (readers keep
the current one), and makes `opencorpus build` exit non-zero.
"""

from __future__ import annotations

from dagster import AssetCheckResult, AssetCheckSeverity, AssetCheckSpec, AssetKey, MetadataValue

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.quality.expectations import SuiteResult
from opencorpus_dagster.quality.suites import suite_cache, validate_shards
from opencorpus_dagster.stages import audit
from opencorpus_dagster.stages.shards import release_shards
from opencorpus_dagster.stages.takedown import shard_rows_taken_down
from opencorpus_dagster.state.home import DataHome

SHARD_CHECKS = {
    "conservation": "records in = kept + filtered + duplicate + quarantined + removed + skipped, per partition",
    "licences_allowed_and_traceable": "every shard row has a licence its source's policy allows and an upstream URI",
    "doc_ids_unique": "doc_id is unique across all shards",
    "manifest_checksums": "every shard file matches the sha256 and size in the staged release's manifest.json",
    "no_taken_down_rows": "no shard row is hit by a request in the takedown list",
    "shards_expectations": "Great Expectations suite expectations/shards.json on the published shards",
}


def shard_check_specs(shards_key: AssetKey) -> list[AssetCheckSpec]:
    return [
        AssetCheckSpec(name, asset=shards_key, blocking=True, description=description)
        for name, description in SHARD_CHECKS.items()
    ]


def shard_check_results(
    home: DataHome, store: LineageStore, sources: list[Source], release: str | None = None
) -> list[AssetCheckResult]:
    """Every check of `SHARD_CHECKS` on `release` (the staged one; default: the current release),
    in that order. A failure stops the release from being published."""
    policies = {source.name: source.policy for source in sources}

    rows = store.conservation()
    unbalanced = [row for row in rows if row["records_in"] != row["total"]]
    disallowed = audit.disallowed_licenses(home, policies, release)
    untraceable = audit.rows_without_upstream(home, release)
    repeated = audit.repeated_doc_ids(home, release=release)
    mismatches = audit.manifest_mismatches(home, release)
    hits = shard_rows_taken_down(home, release=release)
    files = release_shards(home, release)
    expectations = (
        suite_check("shards_expectations", validate_shards(sources, files, suite_cache(home)))
        if files
        else AssetCheckResult(check_name="shards_expectations", passed=True, metadata={"rows": 0})
    )
    return [
        _result("conservation", not unbalanced, {"partitions": len(rows), "unbalanced": MetadataValue.json(unbalanced[:20])}),
        _result(
            "licences_allowed_and_traceable",
            not disallowed and untraceable == 0,
            {"disallowed": MetadataValue.json(disallowed[:20]), "rows_without_upstream_or_licence": untraceable},
        ),
        _result("doc_ids_unique", not repeated, {"examples": MetadataValue.json([list(r) for r in repeated])}),
        _result("manifest_checksums", not mismatches, {"problems": MetadataValue.json(mismatches[:20])}),
        _result(
            "no_taken_down_rows",
            hits.num_rows == 0,
            {"rows": hits.num_rows, "examples": MetadataValue.json(hits.slice(0, 10).to_pylist())},
        ),
        expectations,
    ]


def kept_documents_check(records_in: int, kept: int, reasons: dict[str, int]) -> AssetCheckResult:
    """WARN when a documents partition kept nothing: a green run that contributes no text is
    usually a wrong licence declaration, a filter that does not fit the source, or an empty unit."""
    top = dict(sorted(reasons.items(), key=lambda kv: (-kv[1], kv[0]))[:5])
    return AssetCheckResult(
        check_name="kept_documents",
        passed=kept > 0,
        severity=AssetCheckSeverity.WARN,
        description=None if kept else f"kept 0 of {records_in} records; top reasons: {top or 'none'}",
        metadata={"records_in": records_in, "kept": kept, "top_reasons": MetadataValue.json(top)},
    )


def suite_check(name: str, result: SuiteResult) -> AssetCheckResult:
    """A Great Expectations suite result as an asset check, failing expectations in the metadata."""
    return AssetCheckResult(
        check_name=name,
        passed=result.success,
        severity=AssetCheckSeverity.ERROR,
        metadata={"rows": result.rows, "evaluated": result.evaluated, "result": MetadataValue.json(result.to_metadata())},
    )


def combined_suite_check(name: str, results: list[SuiteResult]) -> AssetCheckResult:
    return AssetCheckResult(
        check_name=name,
        passed=all(r.success for r in results),
        severity=AssetCheckSeverity.ERROR,
        metadata={
            "rows": sum(r.rows for r in results),
            "failed": MetadataValue.json([f.to_metadata() for r in results for f in r.failed]),
        },
    )


def _result(name: str, passed: bool, metadata: dict) -> AssetCheckResult:
    return AssetCheckResult(check_name=name, passed=bool(passed), severity=AssetCheckSeverity.ERROR, metadata=metadata)
