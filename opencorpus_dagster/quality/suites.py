"""Which Great Expectations suite validates which files, with which parameters.

The suites in `expectations/` are generic; the parameters come from the catalog: a source's
licence policy gives `allowed_licenses`, its language filter `allowed_languages`. The runner
(`expectations.run_suite`) reads the files in batches, never a whole table at once.
"""

from __future__ import annotations

import hashlib
import json
import re
from collections.abc import Callable, Iterable
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
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.storage import duckdb_connect

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
    """The known SPDX ids a policy allows (~2,200 ids: worth caching per policy)."""
    return LicensePolicy(allow=list(allow), deny=list(deny)).allowed_ids(known_license_ids() | {PUBLIC_DOMAIN})


class SuiteCache:
    """Files whose per-row expectations passed, so a later run does not read their rows again.

    One small file per pass in `folder`, named by the sha256 of: CACHE_VERSION, the suite file's
    bytes (its version), the scope (what decides the parameters: the source's licence policy and
    language filter), and the data file's identity (path, size, modification time in ns). A file
    rewritten in place, an edited suite or a changed policy gives another name: validated again.
    Only passes are kept (`SuiteResult.rows_clean`: no unexpected row, no error, no missing
    column in any file of the run), so a failing file fails on every run; whole-table
    expectations (uniqueness across files) are decided over every file on every run.
    """

    def __init__(self, folder: Path):
        self.folder = Path(folder)

    def key(self, suite: Path, scope: object, path: Path, name: str | None = None) -> str | None:
        """The cache name of one data file's result; None when the file cannot be stat'ed.
        `name` stands for the path when the file's name alone says what it holds (a
        content-named shard, hard-linked from one release folder into the next)."""
        try:
            info = path.stat()
        except OSError:
            return None
        modified = getattr(info, "st_mtime_ns", None) or getattr(info, "st_mtime", None)
        material = [CACHE_VERSION, _suite_digest(Path(suite)), scope, name or str(path), info.st_size, modified]
        return hashlib.sha256(json.dumps(material, sort_keys=True, default=str).encode()).hexdigest()

    def passed(self, key: str | None) -> bool:
        return key is not None and (self.folder / f"{key}.json").is_file()

    def record_pass(self, key: str | None, path: Path) -> None:
        if key is None:
            return
        write_text_atomically(self.folder / f"{key}.json", json.dumps({"file": str(path)}) + "\n")


CACHE_VERSION = 1  # bump when what a kept pass means changes
CACHE_DIR = "suite-passes"  # under the home's local state folder


def suite_cache(home) -> SuiteCache:
    """The data home's cache of suite passes (local state: a cache, never published)."""
    return SuiteCache(home.state / CACHE_DIR)


def _suite_digest(suite: Path) -> str:
    return hashlib.sha256(suite.read_bytes()).hexdigest()


def _run_cached(
    suite: Path,
    files: list[Path],
    scope: object,
    parameters_for: Callable[[list[Path]], dict],
    cache: SuiteCache | None,
    name_of: Callable[[Path], str | None] = lambda _: None,
) -> SuiteResult:
    """`run_suite` over `files`, not reading again the rows of files `cache` holds a pass for.
    `parameters_for(files to read)` gives the suite parameters; the passes of this run are kept
    when every per-row expectation held."""
    if cache is None:
        return run_suite(suite, files, parameters_for(files))
    keys = {path: cache.key(suite, scope, path, name_of(path)) for path in files}
    good = [path for path in files if cache.passed(keys[path])]
    fresh = [path for path in files if not cache.passed(keys[path])]
    result = run_suite(suite, files, parameters_for(fresh), rows_known_good=good)
    if result.rows_clean:
        for path in fresh:
            cache.record_pass(keys[path], path)
    return result


def validate_raw(files: list[Path], cache: SuiteCache | None = None) -> SuiteResult:
    return _run_cached(RAW_SUITE, list(files), None, lambda _: {}, cache)


def validate_documents(source: Source, files: list[Path], cache: SuiteCache | None = None) -> SuiteResult:
    identified = source.filters.language.enabled
    languages = source.filters.language.allowed if identified else None
    scope = {"policy": source.policy.model_dump(mode="json"), "languages": languages, "identified": identified}
    return _run_cached(
        DOCUMENTS_SUITE,
        list(files),
        scope,
        lambda read: {
            "allowed_licenses": allowed_licenses(source.policy, read),
            "allowed_languages": languages,
            # A source with language identification off has documents without a language.
            "language_identified": 1.0 if identified else None,
        },
        cache,
    )


def validate_shards(sources: list[Source], files: list[Path], cache: SuiteCache | None = None) -> SuiteResult:
    """The published shards against the union of what the sources' policies allow."""
    languages: list[str] | None = []
    for source in sources:
        allowed = source.filters.language.allowed if source.filters.language.enabled else None
        if allowed is None or languages is None:
            languages = None
        else:
            languages = sorted(set(languages) | set(allowed))
    identified = all(source.filters.language.enabled for source in sources)
    policies = sorted(json.dumps(source.policy.model_dump(mode="json"), sort_keys=True) for source in sources)
    scope = {"policies": policies, "languages": languages, "identified": identified}

    def parameters(read: list[Path]) -> dict:
        licenses = sorted({lic for source in sources for lic in allowed_licenses(source.policy, read)})
        return {
            "corpus_allowed_licenses": licenses,
            "corpus_allowed_languages": languages,
            "corpus_language_identified": 1.0 if identified else None,
        }

    return _run_cached(SHARDS_SUITE, list(files), scope, parameters, cache, _content_name)


# A shard file named by its content (shards.py: part-<index>-<sha256[:16]>.parquet): the same
# name, size and mtime in the next release's folder (a hard link) is the same file.
_CONTENT_NAMED = re.compile(r"^part-\d{5}-[0-9a-f]{16}\.parquet$")


def _content_name(path: Path) -> str | None:
    return f"content:{path.name}" if _CONTENT_NAMED.match(path.name) else None
