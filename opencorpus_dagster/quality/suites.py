"""Which Great Expectations suite validates which files, with which parameters.

The suites in `expectations/` are generic; the parameters come from the catalog: a source's
licence policy gives `allowed_licenses`, its language filter `allowed_languages`. The runner
(`expectations.run_suite`) reads the files in batches, never a whole table at once.
"""

from __future__ import annotations

from collections.abc import Iterable
from functools import lru_cache
from pathlib import Path

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.licensing.policy import LicensePolicy
from opencorpus_dagster.licensing.spdx import PUBLIC_DOMAIN, known_license_ids
from opencorpus_dagster.quality.expectations import (
    EXPECTATIONS_DIR,
    SuiteResult,
    run_suite,
)
from opencorpus_dagster.storage import duckdb_connect

RAW_SUITE = EXPECTATIONS_DIR / "raw_records.json"
DOCUMENTS_SUITE = EXPECTATIONS_DIR / "documents.json"
SHARDS_SUITE = EXPECTATIONS_DIR / "shards.json"


def allowed_licenses(policy: LicensePolicy, files: Iterable[Path]) -> list[str]:
    """Every SPDX id the policy allows, plus the allowed expressions (`A OR B`) present in `files`.

    An expression the policy refuses is left out, so a record that slipped past the licence
    gate fails the expectation.
    """
    present: set[str] = set()
    paths = [str(p) for p in files]
    if paths:
        with duckdb_connect(*paths) as conn:
            rows = conn.execute("SELECT DISTINCT license FROM read_parquet(?) WHERE license IS NOT NULL", [paths]).fetchall()
        present = {row[0] for row in rows}
    allowed = _allowed_known_ids(tuple(policy.allow), tuple(policy.deny))
    return sorted(allowed | {expression for expression in present if policy.judge(expression).allowed})


@lru_cache(maxsize=64)
def _allowed_known_ids(allow: tuple[str, ...], deny: tuple[str, ...]) -> frozenset[str]:
    """The known SPDX ids a policy allows (judging ~700 ids is worth caching per policy)."""
    policy = LicensePolicy(allow=list(allow), deny=list(deny))
    return frozenset(i for i in known_license_ids() | {PUBLIC_DOMAIN} if policy.judge(i).allowed)


def validate_raw(files: list[Path]) -> SuiteResult:
    return run_suite(RAW_SUITE, files)


def validate_documents(source: Source, files: list[Path]) -> SuiteResult:
    languages = source.filters.language.allowed if source.filters.language.enabled else None
    parameters = {"allowed_licenses": allowed_licenses(source.policy, files), "allowed_languages": languages}
    return run_suite(DOCUMENTS_SUITE, files, parameters)


def validate_shards(sources: list[Source], files: list[Path]) -> SuiteResult:
    """The published shards against the union of what the sources' policies allow."""
    licenses = sorted({lic for source in sources for lic in allowed_licenses(source.policy, files)})
    languages: list[str] | None = []
    for source in sources:
        allowed = source.filters.language.allowed if source.filters.language.enabled else None
        if allowed is None or languages is None:
            languages = None
        else:
            languages = sorted(set(languages) | set(allowed))
    return run_suite(SHARDS_SUITE, files, {"corpus_allowed_licenses": licenses, "corpus_allowed_languages": languages})
