"""Run a Great Expectations suite (`expectations/<stage>.json`) over Parquet files in bounded memory.

A suite file is GX 1.x suite JSON, `{"name", "notes"?, "expectations": [{"type", "kwargs", "notes"?}]}`,
loadable as is with `gx.ExpectationSuite(**json)`. A kwarg may be `{"$PARAMETER": "<name>"}` (GX's
suite-parameter form, bare names only): `run_suite(parameters=...)` fills it. A parameter given as
None skips the expectations that use it (a source whose language filter keeps any language has no
allowed set); they are listed in `SuiteResult.skipped`.

How each expectation is decided:
- Per-row ("map") expectations (not_be_null, be_in_set, match_regex, value_lengths_to_be_between,
  ...): the files are read with pyarrow `iter_batches`, only the columns the suite names, and
  gathered (across small files too) into batches of `batch_rows` rows; GX validates each batch as
  a pandas DataFrame; unexpected counts are summed across batches and the first MAX_EXAMPLES
  distinct unexpected values are kept.
- Whole-table expectations (WHOLE_TABLE_TYPES: expect_column_values_to_be_unique,
  expect_compound_columns_to_be_unique): a batch cannot see a duplicate that sits in another batch
  or file, so these are decided by DuckDB over all files at once (`GROUP BY ... HAVING count(*) > 1`).
- Anything else is refused when the suite is loaded (SuiteError): aggregates over a batch (column
  mean, row count, distinct values) and map expectations whose verdict depends on the batch
  (BATCH_DEPENDENT_TYPES: increasing, z-scores, outliers) would be wrong if summed per batch.

GX runs in an ephemeral, in-memory context with analytics and progress bars off: nothing is written
to the working directory or the repository.
"""

from __future__ import annotations

import json
import math
import tempfile
from collections.abc import Callable, Collection, Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import duckdb
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.connectors.base import UnreadableInput
from opencorpus_dagster.quality.gx_import import import_great_expectations
from opencorpus_dagster.state.storage import duckdb_connect, parquet_file

EXPECTATIONS_DIR = Path(__file__).resolve().parents[2] / "expectations"
DEFAULT_BATCH_ROWS = 50_000
# ... and at most this many bytes of Arrow data (50,000 rows of 5 KB texts would be 250 MB, and
# twice that once GX has them as a pandas frame); files are read in pieces of READ_BATCH_ROWS.
MAX_BATCH_BYTES = 16 << 20
READ_BATCH_ROWS = 4096
MAX_EXAMPLES = 10
# A failing text column would otherwise put a whole book into the Dagster metadata.
MAX_EXAMPLE_CHARS = 200

WHOLE_TABLE_TYPES = frozenset({"expect_column_values_to_be_unique", "expect_compound_columns_to_be_unique"})
BATCH_DEPENDENT_TYPES = frozenset(
    {
        "expect_column_values_to_be_increasing",
        "expect_column_values_to_be_decreasing",
        "expect_column_value_z_scores_to_be_less_than",
        "expect_column_values_to_not_be_outliers",
    }
)
_SUITE_KEYS = frozenset({"name", "expectations", "notes", "meta", "id", "suite_parameters"})
# Carried in each expectation's meta so a GX result (GX reorders them) finds its expectation.
_INDEX_KEY = "opencorpus_index"


class SuiteError(ValueError):
    """A suite file that cannot be run; the message names the file, the expectation and the problem."""


class MissingSuiteParameter(SuiteError):
    """The suite uses a `$PARAMETER` the caller did not give."""


@dataclass(frozen=True)
class FailedExpectation:
    """One expectation that did not hold over the whole table.

    `kwargs` are the expectation's arguments with parameters filled in. `unexpected_count` is the
    number of offending rows over all files (for uniqueness: every row whose value occurs more
    than once). `unexpected_examples` holds up to MAX_EXAMPLES distinct offending values (strings
    cut to MAX_EXAMPLE_CHARS). `detail` says why the expectation could not be evaluated
    (a column missing from a file, an error inside GX), None when it simply found bad rows.
    """

    type: str
    column: str | None
    kwargs: dict[str, Any]
    unexpected_count: int | None
    unexpected_examples: list[Any]
    detail: str | None = None
    severity: str = "critical"

    def to_metadata(self) -> dict[str, Any]:
        return {
            "type": self.type,
            "column": self.column,
            "kwargs": self.kwargs,
            "unexpected_count": self.unexpected_count,
            "unexpected_examples": self.unexpected_examples,
            "detail": self.detail,
            "severity": self.severity,
        }


@dataclass(frozen=True)
class SuiteResult:
    """The verdict of one suite over a set of Parquet files taken as one table.

    `success` is True when no expectation failed. `evaluated` counts the expectations run
    (skipped ones excluded); `rows` and `files` what was read; `columns` the columns read per row.
    """

    suite_name: str
    success: bool
    evaluated: int
    failed: list[FailedExpectation]
    rows: int
    files: int = 0
    columns: tuple[str, ...] = ()
    skipped: list[str] = field(default_factory=list)
    # Every per-row expectation found no unexpected row, no error and no missing column in the
    # files it read: each of those files passed them (what a suite cache may keep).
    rows_clean: bool = False
    rows_read_from: tuple[str, ...] = ()  # the files whose rows the per-row expectations read

    def to_metadata(self) -> dict[str, Any]:
        """A JSON-serialisable summary for Dagster asset-check metadata."""
        return {
            "suite": self.suite_name,
            "success": self.success,
            "evaluated": self.evaluated,
            "failed_count": len(self.failed),
            "failed": [failure.to_metadata() for failure in self.failed],
            "skipped": list(self.skipped),
            "rows": self.rows,
            "files": self.files,
            "columns_read": list(self.columns),
        }


def suite_parameter_names(suite_path: Path) -> frozenset[str]:
    """The `$PARAMETER` names a suite file uses (what `run_suite(parameters=...)` must give)."""
    return frozenset(_parameter_names(_read_suite_file(Path(suite_path))["expectations"]))


def run_suite(
    suite_path: Path,
    parquet_paths: Sequence[Path],
    parameters: Mapping[str, Any] | None = None,
    batch_rows: int = DEFAULT_BATCH_ROWS,
    rows_known_good: Collection[Path] = (),
) -> SuiteResult:
    """Validate the Parquet files, taken as one table, against the suite at `suite_path`.

    Reads at most `batch_rows` rows (of the columns the suite names) at a time. Parameters the
    suite does not use are ignored. Files in `rows_known_good` (their per-row expectations passed
    before, with the same suite and parameters: suites.SuiteCache) are not read for the per-row
    expectations; they count in `rows` and take part in the whole-table ones. Great Expectations
    is imported only when some file's rows are validated. Raises SuiteError for a suite that cannot be run (bad JSON,
    unknown expectation type or argument, unsupported expectation), MissingSuiteParameter when a
    parameter is not given, and UnreadableInput (naming the file) for a file that is not Parquet.
    A column missing from a file is not an error: the expectations on it fail with a `detail`.
    """
    if batch_rows < 1:
        raise ValueError(f"batch_rows must be at least 1, got {batch_rows}")
    suite_path = Path(suite_path)
    name, checks, skipped = _load_checks(suite_path, dict(parameters or {}))
    row_checks = [check for check in checks if not check.whole_table]
    batches = _BatchCoalescer(lambda: _GxBatchValidator(name), batch_rows) if row_checks else None
    paths = list(parquet_paths)
    known_good = {str(path) for path in rows_known_good}
    read_from: list[str] = []
    rows = 0
    columns_read: set[str] = set()
    for path in paths:
        with _open_parquet(path) as parquet:
            present = set(parquet.schema_arrow.names)
            rows += parquet.metadata.num_rows
            runnable = []
            for check in checks:
                absent = [column for column in check.columns if column not in present]
                if absent:
                    check.note_missing_columns(absent, path)
                elif check.whole_table:
                    check.files.append(path)
                elif str(path) not in known_good:
                    runnable.append(check)
            if not runnable or batches is None or parquet.metadata.num_rows == 0:
                continue
            read_from.append(str(path))
            if any(check.reads_all_columns for check in runnable):
                columns = list(parquet.schema_arrow.names)
            else:
                columns = sorted({column for check in runnable for column in check.columns})
            columns_read.update(columns)
            try:
                for batch in parquet.iter_batches(batch_size=min(batch_rows, READ_BATCH_ROWS), columns=columns):
                    batches.add(batch, runnable)
            except (pa.ArrowException, OSError) as error:
                raise UnreadableInput(str(path), f"cannot read Parquet: {error}") from error
    if batches is not None:
        batches.flush()
    whole_table = [check for check in checks if check.whole_table]
    if whole_table:
        _decide_duplicates(whole_table)
    failed = [failure for check in checks if (failure := check.failure()) is not None]
    return SuiteResult(
        suite_name=name,
        success=not failed,
        evaluated=len(checks),
        failed=failed,
        rows=rows,
        files=len(paths),
        columns=tuple(sorted(columns_read)),
        skipped=skipped,
        rows_read_from=tuple(read_from),
        rows_clean=all(
            check.unexpected_count == 0 and not check.problems and not check.missing_columns for check in row_checks
        ),
    )


@dataclass
class _Check:
    """One expectation of the suite and its tally over the files read so far."""

    index: int
    type: str
    kwargs: dict[str, Any]
    entry: dict[str, Any]  # the suite entry with parameters filled, for GX's ExpectationConfiguration
    columns: tuple[str, ...]
    reads_all_columns: bool  # a row_condition may name any column
    whole_table: bool
    severity: str
    element_count: int = 0
    missing_count: int = 0
    unexpected_count: int = 0
    examples: list[Any] = field(default_factory=list)
    problems: list[str] = field(default_factory=list)
    files: list[Path] = field(default_factory=list)  # whole-table: the files that have its columns
    missing_columns: dict[str, list[Path]] = field(default_factory=dict)  # column -> files without it

    def add_batch_result(self, result: Mapping[str, Any]) -> None:
        self.element_count += result.get("element_count") or 0
        self.missing_count += result.get("missing_count") or 0
        self.unexpected_count += result.get("unexpected_count") or 0
        self.add_examples(result.get("partial_unexpected_list") or [])

    def add_examples(self, values: Iterable[Any]) -> None:
        for value in values:
            if len(self.examples) >= MAX_EXAMPLES:
                return
            example = _jsonable(value)
            if example not in self.examples:
                self.examples.append(example)

    def note_missing_columns(self, columns: Iterable[str], path: Path) -> None:
        for column in columns:
            self.missing_columns.setdefault(column, []).append(path)

    def note_problem(self, problem: str) -> None:
        if problem not in self.problems and len(self.problems) < MAX_EXAMPLES:
            self.problems.append(problem)

    def failure(self) -> FailedExpectation | None:
        problems = [
            f"column {column!r} not in {len(paths)} file(s), first {paths[0]}"
            for column, paths in self.missing_columns.items()
        ] + self.problems
        if not problems and self._holds():
            return None
        return FailedExpectation(
            type=self.type,
            column=_column_label(self.kwargs),
            kwargs=_jsonable(self.kwargs),
            # None: nothing could be evaluated, so no count would be honest.
            unexpected_count=None if problems and not self.element_count else self.unexpected_count,
            unexpected_examples=list(self.examples),
            detail="; ".join(problems) or None,
            severity=self.severity,
        )

    def _holds(self) -> bool:
        if self.unexpected_count == 0:
            return True
        # GX's `mostly`: the share of non-missing rows that must be as expected.
        considered = self.element_count - self.missing_count
        mostly = self.kwargs.get("mostly", 1.0)
        return considered > 0 and (considered - self.unexpected_count) / considered >= mostly


def _read_suite_file(suite_path: Path) -> dict[str, Any]:
    try:
        spec = json.loads(suite_path.read_text(encoding="utf-8"))
    except (OSError, UnicodeDecodeError, json.JSONDecodeError) as error:
        raise SuiteError(f"{suite_path}: cannot read suite: {error}") from None
    if (
        not isinstance(spec, dict)
        or not isinstance(spec.get("name"), str)
        or not isinstance(spec.get("expectations"), list)
    ):
        raise SuiteError(f"{suite_path}: a suite is an object with 'name' (string) and 'expectations' (list)")
    unknown = sorted(set(spec) - _SUITE_KEYS)
    if unknown:
        raise SuiteError(f"{suite_path}: unknown key(s) {unknown}; a suite has {sorted(_SUITE_KEYS)}")
    for index, entry in enumerate(spec["expectations"]):
        if (
            not isinstance(entry, dict)
            or not isinstance(entry.get("type"), str)
            or not isinstance(entry.get("kwargs"), dict)
        ):
            raise SuiteError(
                f"{suite_path}: expectations[{index}]: an expectation is an object with 'type' and 'kwargs'"
            )
    return spec


def _load_checks(suite_path: Path, parameters: dict[str, Any]) -> tuple[str, list[_Check], list[str]]:
    # GX's ExpectationSuite(**spec) logs and drops an expectation it cannot build; building each
    # one here makes a typo in a suite an error that names it instead.
    import_great_expectations()
    from great_expectations.exceptions import GreatExpectationsError
    from great_expectations.expectations.expectation import (
        ColumnMapExpectation,
        ColumnPairMapExpectation,
        MulticolumnMapExpectation,
    )
    from great_expectations.expectations.expectation_configuration import (
        ExpectationConfiguration,
    )

    spec = _read_suite_file(suite_path)
    missing = sorted(_parameter_names(spec["expectations"]) - set(parameters))
    if missing:
        raise MissingSuiteParameter(
            f"{suite_path}: suite parameter(s) {missing} not given (given: {sorted(parameters)}); "
            "pass None to skip the expectations that use one"
        )
    checks: list[_Check] = []
    skipped: list[str] = []
    for index, entry in enumerate(spec["expectations"]):
        kind = entry["type"]
        where = f"{suite_path}: expectations[{index}] ({kind})"
        unset = sorted(name for name in _parameter_names([entry]) if parameters[name] is None)
        if unset:
            skipped.append(f"{kind} on {_column_label(entry['kwargs'])} (parameter {', '.join(unset)} is None)")
            continue
        kwargs = _fill_parameters(entry["kwargs"], parameters)
        filled = {**entry, "kwargs": kwargs, "meta": {**(entry.get("meta") or {}), _INDEX_KEY: index}}
        try:
            expectation = ExpectationConfiguration(**filled).to_domain_obj()
        except (TypeError, ValueError, GreatExpectationsError) as error:
            raise SuiteError(f"{where}: {error}") from None
        whole_table = kind in WHOLE_TABLE_TYPES
        if kind in BATCH_DEPENDENT_TYPES or not isinstance(
            expectation, (ColumnMapExpectation, ColumnPairMapExpectation, MulticolumnMapExpectation)
        ):
            raise SuiteError(
                f"{where}: not supported: its verdict depends on the whole batch, and batches cannot be "
                f"combined; supported are per-row expectations and {sorted(WHOLE_TABLE_TYPES)}"
            )
        if whole_table and kwargs.get("row_condition"):
            raise SuiteError(f"{where}: row_condition is not supported on a whole-table expectation")
        columns = tuple(kwargs.get("column_list") or ()) + tuple(
            kwargs[key] for key in ("column", "column_A", "column_B") if key in kwargs
        )
        checks.append(
            _Check(
                index=index,
                type=kind,
                kwargs=kwargs,
                entry=filled,
                columns=columns,
                reads_all_columns=bool(kwargs.get("row_condition")),
                whole_table=whole_table,
                severity=str(getattr(expectation.severity, "value", expectation.severity)),
            )
        )
    return spec["name"], checks, skipped


def preload() -> None:
    """Import what validating a batch imports (seconds of Great Expectations imports): before
    a build forks its partition workers, so they start with it instead of each importing it."""
    import_great_expectations()
    from great_expectations.data_context.types.base import DataContextConfig  # noqa: F401
    from great_expectations.expectations.expectation import ColumnMapExpectation  # noqa: F401


class _GxBatchValidator:
    """One ephemeral GX context that validates pandas DataFrames against per-row expectations."""

    def __init__(self, suite_name: str):
        # Deferred: importing GX takes seconds, and loading Dagster definitions should not pay it.
        gx = import_great_expectations()
        from great_expectations.data_context.types.base import (
            DataContextConfig,
            InMemoryStoreBackendDefaults,
            ProgressBarsConfig,
        )

        config = DataContextConfig(
            store_backend_defaults=InMemoryStoreBackendDefaults(init_temp_docs_sites=False),
            analytics_enabled=False,
            progress_bars=ProgressBarsConfig(globally=False),
        )
        context = gx.get_context(mode="ephemeral", project_config=config)
        asset = context.data_sources.add_pandas("opencorpus").add_dataframe_asset("batch")
        self._definition = asset.add_batch_definition_whole_dataframe("whole_dataframe")
        self._suite_name = suite_name
        self._suites: dict[tuple[int, ...], Any] = {}

    def validate(self, frame: pd.DataFrame, checks: Sequence[_Check]) -> None:
        """Validate one batch and add its counts, examples and errors to each check's tally."""
        suite = self._suite_for(checks)
        batch = self._definition.get_batch(batch_parameters={"dataframe": frame})
        # BASIC holds every field a tally reads (element, missing and unexpected counts, the
        # first unexpected values); SUMMARY adds value counts and row indexes, which cost GX a
        # fifth more per validation and were never read.
        result = batch.validate(
            suite, result_format={"result_format": "BASIC", "partial_unexpected_count": MAX_EXAMPLES}
        )
        # GX's execution engine (one per data source, kept for the process) holds every batch's
        # DataFrame in its batch manager: validating a corpus's texts grew the process by all
        # of them. Each batch is validated once; let it go.
        manager = batch.data.execution_engine.batch_manager
        manager.batch_data_cache.clear()
        manager.reset_batch_cache()
        by_index = {check.index: check for check in checks}
        for outcome in result.results:
            check = by_index[outcome.expectation_config.meta[_INDEX_KEY]]
            errors = _exception_messages(outcome.exception_info)
            for error in errors:
                check.note_problem(f"GX error: {error}")
            if not errors:
                check.add_batch_result(outcome.result)

    def _suite_for(self, checks: Sequence[_Check]):
        gx = import_great_expectations()
        from great_expectations.expectations.expectation_configuration import (
            ExpectationConfiguration,
        )

        key = tuple(check.index for check in checks)
        if key not in self._suites:
            expectations = [ExpectationConfiguration(**check.entry).to_domain_obj() for check in checks]
            self._suites[key] = gx.ExpectationSuite(name=self._suite_name, expectations=expectations)
        return self._suites[key]


class _BatchCoalescer:
    """Gathers record batches, across files, into validation batches of `batch_rows` rows (fewer
    when they would hold more than MAX_BATCH_BYTES).

    GX costs a fixed ~0.1-0.5 s per validation whatever the batch size, and most partition files
    are small, so one validation per file would make thousands of partitions slow. Batches are
    merged only while the same expectations apply (same columns present); memory stays bounded
    by `batch_rows` rows and MAX_BATCH_BYTES.
    """

    def __init__(self, make_validator: Callable[[], _GxBatchValidator], batch_rows: int):
        self._make_validator = make_validator  # called at the first batch: importing GX takes seconds
        self._validator: _GxBatchValidator | None = None
        self._batch_rows = batch_rows
        self._frames: list[pd.DataFrame] = []
        self._rows = 0
        self._bytes = 0
        self._checks: list[_Check] = []

    def add(self, batch: pa.RecordBatch, checks: list[_Check]) -> None:
        if [check.index for check in checks] != [check.index for check in self._checks]:
            self.flush()
            self._checks = checks
        offset = 0
        row_bytes = max(1, batch.nbytes // max(batch.num_rows, 1))
        while offset < batch.num_rows:
            room = max(1, (MAX_BATCH_BYTES - self._bytes) // row_bytes)
            take = min(self._batch_rows - self._rows, batch.num_rows - offset, room)
            self._frames.append(batch.slice(offset, take).to_pandas())
            self._rows += take
            self._bytes += take * row_bytes
            offset += take
            if self._rows >= self._batch_rows or self._bytes >= MAX_BATCH_BYTES:
                self.flush()

    def flush(self) -> None:
        if self._rows:
            frame = self._frames[0] if len(self._frames) == 1 else pd.concat(self._frames, ignore_index=True)
            if self._validator is None:
                self._validator = self._make_validator()
            self._validator.validate(frame, self._checks)
        self._frames = []
        self._rows = 0
        self._bytes = 0


def _decide_duplicates(checks: Sequence[_Check]) -> None:
    """Tally whole-table uniqueness with DuckDB over every file that has the checked columns."""
    # DuckDB spills a large GROUP BY to temp_directory, which defaults to `.tmp` in the cwd.
    with tempfile.TemporaryDirectory(prefix="opencorpus-gx-") as spill:
        connection = duckdb_connect(*{file for check in checks for file in check.files}, database=":memory:", config={"temp_directory": spill})
        try:
            for check in checks:
                if check.files:
                    _count_duplicates(connection, check)
        finally:
            connection.close()


def _count_duplicates(connection: duckdb.DuckDBPyConnection, check: _Check) -> None:
    quoted = [_quote_identifier(column) for column in check.columns]
    if check.type == "expect_column_values_to_be_unique":
        considered = f"{quoted[0]} IS NOT NULL"  # GX ignores nulls in uniqueness
    else:
        ignore = check.kwargs.get("ignore_row_if", "all_values_are_missing")
        considered = {
            "all_values_are_missing": "NOT (" + " AND ".join(f"{q} IS NULL" for q in quoted) + ")",
            "any_value_is_missing": " AND ".join(f"{q} IS NOT NULL" for q in quoted),
            "never": "TRUE",
        }[ignore]
    columns = ", ".join(quoted)
    counted = f"""
        SELECT {columns}, count(*) AS n
        FROM read_parquet(?, union_by_name = true)
        WHERE {considered}
        GROUP BY ALL
    """
    files = [str(path) for path in check.files]
    total, unexpected = connection.execute(
        f"SELECT coalesce(sum(n), 0), coalesce(sum(n) FILTER (WHERE n > 1), 0) FROM ({counted})", [files]
    ).fetchone()
    check.element_count = int(total)
    check.unexpected_count = int(unexpected)
    if unexpected:
        examples = connection.execute(
            f"SELECT {columns} FROM ({counted}) WHERE n > 1 ORDER BY {columns} LIMIT {MAX_EXAMPLES}", [files]
        ).fetchall()
        if len(check.columns) == 1:
            check.add_examples(row[0] for row in examples)
        else:
            check.add_examples(dict(zip(check.columns, row, strict=True)) for row in examples)


def _open_parquet(path: Path) -> pq.ParquetFile:
    try:
        return parquet_file(path)
    except (pa.ArrowException, OSError) as error:
        raise UnreadableInput(str(path), f"cannot open Parquet: {error}") from error


def _parameter_names(value: Any) -> set[str]:
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"}:
            return {value["$PARAMETER"]}
        return set().union(*(_parameter_names(item) for item in value.values()))
    if isinstance(value, list):
        return set().union(*(_parameter_names(item) for item in value))
    return set()


def _fill_parameters(value: Any, parameters: Mapping[str, Any]) -> Any:
    if isinstance(value, dict):
        if set(value) == {"$PARAMETER"}:
            filled = parameters[value["$PARAMETER"]]
            # A set (the natural type of an allowlist) is neither JSON nor ordered; GX wants a list.
            return sorted(filled) if isinstance(filled, (set, frozenset)) else filled
        return {key: _fill_parameters(item, parameters) for key, item in value.items()}
    if isinstance(value, list):
        return [_fill_parameters(item, parameters) for item in value]
    return value


def _column_label(kwargs: Mapping[str, Any]) -> str | None:
    if "column" in kwargs:
        return kwargs["column"]
    pair = [kwargs[key] for key in ("column_A", "column_B") if key in kwargs]
    columns = pair or list(kwargs.get("column_list") or [])
    return ", ".join(columns) or None


def _quote_identifier(name: str) -> str:
    return '"' + name.replace('"', '""') + '"'


def _exception_messages(info: Mapping[str, Any] | None) -> list[str]:
    """Error messages in a GX exception_info: flat, or keyed by the metric that raised."""
    if not info:
        return []
    if "raised_exception" in info:
        return [str(info.get("exception_message") or "error")] if info["raised_exception"] else []
    return [message for value in info.values() if isinstance(value, Mapping) for message in _exception_messages(value)]


def _jsonable(value: Any) -> Any:
    """A JSON-serialisable copy of a value from GX or DuckDB; long strings cut."""
    if value is None or value is pd.NA or value is pd.NaT:
        return None
    if isinstance(value, str):
        if len(value) > MAX_EXAMPLE_CHARS:
            return f"{value[:MAX_EXAMPLE_CHARS]}... ({len(value)} chars)"
        return value
    if isinstance(value, bool | int):
        return value
    if isinstance(value, float):
        return None if math.isnan(value) else value
    if hasattr(value, "item") and not isinstance(value, (list, tuple, dict)):  # numpy scalar
        return _jsonable(value.item())
    if isinstance(value, Mapping):
        return {str(key): _jsonable(item) for key, item in value.items()}
    if isinstance(value, (list, tuple, set, frozenset)):
        return [_jsonable(item) for item in value]
    return str(value)
