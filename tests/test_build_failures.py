"""What makes `opencorpus build` fail: a failed ERROR check in a run that Dagster calls a success."""

from __future__ import annotations

from dagster import (
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    DagsterInstance,
    MaterializeResult,
    asset,
    materialize,
)

from opencorpus_dagster.build import _failed_error_checks


def test_a_failed_non_blocking_error_check_is_a_build_failure():
    @asset(
        check_specs=[
            AssetCheckSpec("conservation", asset="shards"),
            AssetCheckSpec("licences", asset="shards"),
            AssetCheckSpec("zero_kept", asset="shards"),
        ]
    )
    def shards() -> MaterializeResult:
        return MaterializeResult(
            check_results=[
                AssetCheckResult(check_name="conservation", passed=False, severity=AssetCheckSeverity.ERROR),
                AssetCheckResult(check_name="licences", passed=True, severity=AssetCheckSeverity.ERROR),
                AssetCheckResult(check_name="zero_kept", passed=False, severity=AssetCheckSeverity.WARN),
            ]
        )

    result = materialize([shards], instance=DagsterInstance.ephemeral(), raise_on_error=False)

    assert result.success  # Dagster: the run succeeded, a non-blocking check failed
    assert _failed_error_checks(result) == ["check shards:conservation failed (ERROR)"]
