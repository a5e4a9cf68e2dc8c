"""What makes `opencorpus build` fail: a failed ERROR check in a run that Dagster calls a success."""

from __future__ import annotations

import json
import re
from pathlib import Path

import pytest
from cli_runner import build
from conftest import current_manifest
from dagster import (
    AssetCheckKey,
    AssetCheckResult,
    AssetCheckSeverity,
    AssetCheckSpec,
    AssetKey,
    DagsterInstance,
    MaterializeResult,
    asset,
    materialize,
)

from opencorpus_dagster.orchestration.build import _failed_error_checks


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


KEPT_YAML = """
name: books
kind: textfiles
options:
  partitions:
    pd: [https://fixtures.opencorpus.invalid/gutenberg-clean/2701.txt, https://fixtures.opencorpus.invalid/gutenberg-clean/10026.txt]
license: {spdx: LicenseRef-PublicDomain, evidence: the fixture books are public domain in the USA}
filters: {quality: {enabled: false}, pii: {enabled: false}}
"""
REFUSED_YAML = """
name: refused
kind: textfiles
options:
  partitions:
    nc: [https://fixtures.opencorpus.invalid/gutenberg-clean/1013.txt, https://fixtures.opencorpus.invalid/gutenberg-clean/10028.txt]
license: {spdx: CC-BY-NC-4.0, evidence: declared non-commercial for this test}
filters: {quality: {enabled: false}, pii: {enabled: false}}
"""
BROKEN_YAML = """
name: broken
kind: mediawiki
options:
  dumps: [https://dumps.example.org/xxwiki/xxwiki-20260101-pages-articles.xml.bz2]
"""


@pytest.fixture(scope="module")
def warned_build(tmp_path_factory, fixture_mirror):
    """`opencorpus build` of a catalog with a source whose licence the default policy refuses
    (its partition `nc` keeps nothing) and a partition whose file is not in the mirror."""
    root = tmp_path_factory.mktemp("warned")
    catalog = root / "catalog"
    catalog.mkdir()
    (catalog / "books.yaml").write_text(KEPT_YAML)
    (catalog / "refused.yaml").write_text(REFUSED_YAML)
    (catalog / "broken.yaml").write_text(BROKEN_YAML)
    broken = root / "mirror" / "dumps.example.org" / "xxwiki" / "xxwiki-20260101-pages-articles.xml.bz2"
    broken.parent.mkdir(parents=True)
    broken.write_bytes(b"BZh91AY&SY" + bytes(range(256)) * 4)  # a bzip2 header, then garbage
    home = root / "home"
    result = build(home, fixture_mirror, catalog, "--mirror", str(root / "mirror"), check=False)
    return home, result, json.loads(result.stdout)


def test_a_partition_that_kept_nothing_is_a_warn_check_with_its_top_reasons(warned_build):
    home, _, summary = warned_build
    instance = DagsterInstance.from_config(str(home / "dagster"))
    evaluations = {}
    for source, key in (("books", "pd"), ("refused", "nc")):
        check = AssetCheckKey(AssetKey(f"{source}_documents"), "kept_documents")
        (record,) = [
            r for r in instance.event_log_storage.get_asset_check_execution_history(check, limit=10)
            if instance.get_run_by_id(r.run_id).tags.get("dagster/partition") == key
        ]
        evaluations[source] = record.event.dagster_event.event_specific_data
    assert evaluations["books"].passed
    assert evaluations["books"].metadata["kept"].value == 2
    refused = evaluations["refused"]
    assert (refused.passed, refused.severity) == (False, AssetCheckSeverity.WARN)
    assert refused.metadata["kept"].value == 0
    assert refused.metadata["top_reasons"].value == {"license.denied": 2}
    assert summary["warnings"] == ["refused/nc: kept 0 of 2 records; top reasons: {'license.denied': 2}"]


def test_a_failed_partition_is_one_line_naming_its_log(warned_build):
    home, result, summary = warned_build
    assert result.returncode == 1  # a partition failed; a WARN alone would not fail the build
    (line,) = [f for f in summary["failed"] if f.startswith("broken/")]
    assert "\n" not in line
    assert "xxwiki-20260101-pages-articles.xml.bz2" in line
    log = re.search(r"\(log: (\S+); run ([0-9a-f-]{36}) in the Dagster UI\)$", line)
    assert log, line
    text = Path(log.group(1)).read_text()
    assert text.startswith(f"run {log.group(2)} (broken_job)")
    assert 'File "' in text  # the full stack is in the log, not on the terminal
    assert "xxwiki-20260101-pages-articles.xml.bz2" in text
    assert "Traceback" not in result.stderr
    # The other partitions and the corpus went on.
    assert sorted(summary["processed"]) == ["books/pd", "refused/nc"]
    manifest = current_manifest(home)
    assert manifest["totals"]["sources"] == {"books": 2}
