"""The `opencorpus` command: build the corpus, trace records, check the catalog.

Conventions every command follows (README, "Command-line conventions"): results go to stdout,
errors and warnings to stderr, one line each, prefixed `opencorpus: `. A listing command prints a
table with a header row (a rich table on a terminal, tab-separated values when stdout is a pipe or
file) or, with `--json`, one JSON list; an empty result is said on stderr and exits EXIT_NO_MATCH.
"""

from __future__ import annotations

import contextlib
import dataclasses
import errno
import json
import logging
import os
import re
import sys
from collections.abc import Callable, Sequence
from importlib.metadata import PackageNotFoundError, version
from pathlib import Path
from typing import Annotated, Any

import duckdb
import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from opencorpus_dagster.catalog import CATALOG_ENV, CatalogProblem, load_catalog
from opencorpus_dagster.licensing.spdx import parse_expression, spdx_expression_problems
from opencorpus_dagster.lineage import trace as tracing
from opencorpus_dagster.lineage.store import LineageStore, LineageStoreMissing
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import HOME_ENV, STATE_ENV, data_home
from opencorpus_dagster.upstream.fetch import MIRROR_ENV

# Exit codes (documented in the README, "Errors and --debug", and in `opencorpus --help`):
EXIT_FAILED = 1  # the command ran and found failures: a partition failed, a catalog file is invalid
EXIT_USAGE = 2  # bad options or arguments (click's own code)
EXIT_NOT_BUILT = 3  # the data home has no lineage store yet, or does not exist
EXIT_ENVIRONMENT = 4  # the machine refused: disk full, read-only, permission denied, missing path
EXIT_LOCKED = 5  # another build holds the data home; retry when it has finished
EXIT_NO_MATCH = 6  # the command ran and nothing matched: an empty listing, a trace that found no record
EXIT_CODES_HELP = f"""Exit codes:
  0  success
  {EXIT_FAILED}  the command ran and something failed (a partition, an invalid catalog file)
  {EXIT_USAGE}  bad options or arguments
  {EXIT_NOT_BUILT}  the data home was never built or does not exist
  {EXIT_ENVIRONMENT}  the machine refused (disk full, read-only, permission denied, missing path)
  {EXIT_LOCKED}  another build holds the data home (wait, then retry)
  {EXIT_NO_MATCH}  nothing matched: an empty listing or trace (said on stderr)
  129  a build stopped by SIGHUP (terminal closed); stderr says what is left
  130  a build stopped by SIGINT (Ctrl-C); stderr says what is left
  143  a build stopped by SIGTERM (kill); stderr says what is left"""
DEBUG_ENV = "OPENCORPUS_DEBUG"

# DuckDB says: Could not set lock on file "/x/lineage.duckdb": Conflicting lock is held in /usr/bin/python3 (PID 12) ...
_DUCKDB_LOCK = re.compile(
    r'Could not set lock on file "(?P<path>[^"]+)": Conflicting lock is held in (?P<holder>.*?) \(PID (?P<pid>\d+)\)',
    re.DOTALL,
)

# What to do about an OSError, by errno; the message names the path the OS complained about.
_OS_ADVICE = {
    errno.ENOSPC: (EXIT_ENVIRONMENT, "no space left on the device: free some space or use another --home"),
    errno.EDQUOT: (EXIT_ENVIRONMENT, "disk quota exceeded: free some space or use another --home"),
    errno.EROFS: (EXIT_ENVIRONMENT, "read-only file system: use a writable --home"),
    errno.EACCES: (EXIT_ENVIRONMENT, "permission denied: check the owner and mode of the folder, or use another --home"),
    errno.EPERM: (EXIT_ENVIRONMENT, "operation not permitted: check the owner and mode of the folder, or use another --home"),
    errno.ENOENT: (EXIT_ENVIRONMENT, "no such file or folder: check the path"),
    errno.ENOTDIR: (EXIT_ENVIRONMENT, "a part of this path is a file, not a folder: check --home"),
}


class HomeMissing(FileNotFoundError):
    """A read-only command was given a local data home folder that does not exist."""


class _App(typer.Typer):
    """The `opencorpus` command: operational errors become one line on stderr and an exit code.

    A traceback is for bugs. Errors the user can act on (disk full, read-only or missing paths, a
    home never built, a lock held by another process) are reported as `opencorpus: PATH: what
    happened: what to do`, found anywhere in the exception's cause chain (Dagster and DuckDB wrap
    them). With `--debug` or OPENCORPUS_DEBUG=1 every error keeps its full traceback.
    """

    def __call__(self, *args, **kwargs):
        try:
            return super().__call__(*args, **kwargs)
        except Exception as error:
            if _debug_enabled():
                raise
            explained = explain_error(error)
            if explained is None:
                raise
            code, message = explained
            print(f"opencorpus: {message}", file=sys.stderr)
            sys.exit(code)


def _debug_enabled() -> bool:
    return _debug or os.environ.get(DEBUG_ENV, "").lower() not in ("", "0", "false", "no")


def explain_error(error: BaseException) -> tuple[int, str] | None:
    """(exit code, one-line message) for an operational error, None for anything else (a bug)."""
    # Imported only when there is an error: keeps start-up short.
    from opencorpus_dagster.stages.takedown import TakedownFileError
    from opencorpus_dagster.state.home_lock import HomeLocked

    for cause in _cause_chain(error):
        if isinstance(cause, LineageStoreMissing):
            home = getattr(cause, "home", cause.path.parent)
            return EXIT_NOT_BUILT, f"no lineage store at {cause.path}: this home was never built (run opencorpus build --home {home})"
        if isinstance(cause, HomeMissing):
            return EXIT_NOT_BUILT, f"no data home at {cause.filename}: nothing was built or added there (check --home)"
        if isinstance(cause, HomeLocked):
            return EXIT_LOCKED, str(cause)
        if isinstance(cause, TakedownFileError):
            return EXIT_FAILED, f"{cause}: fix or remove that line of the takedown list"
        if isinstance(cause, duckdb.Error):
            locked = _DUCKDB_LOCK.search(str(cause))
            if locked:
                holder = " ".join(locked["holder"].split())
                return EXIT_LOCKED, (
                    f"{locked['path']} is locked by another process (PID {locked['pid']}, {holder}): "
                    "wait for it to finish or stop it, then retry"
                )
            if "No space left on device" in str(cause):
                return EXIT_ENVIRONMENT, f"{_one_line(cause)}: free some space or use another --home"
        if isinstance(cause, OSError) and cause.errno in _OS_ADVICE:
            code, advice = _OS_ADVICE[cause.errno]
            where = cause.filename or "(no path given)"
            return code, f"{where}: {advice}"
    return None


def _cause_chain(error: BaseException):
    seen: set[int] = set()
    current: BaseException | None = error
    while current is not None and id(current) not in seen:
        seen.add(id(current))
        yield current
        current = current.__cause__ or current.__context__


def _one_line(error: BaseException) -> str:
    return " ".join(str(error).split())


_debug = False

app = _App(
    help="Assemble an openly licensed, traceable text corpus.",
    epilog=EXIT_CODES_HELP,
    no_args_is_help=True,
    add_completion=False,
)
console = Console(stderr=True)
# Long URIs and messages stay on one line (for grep); tables get room when piped.
out = Console(soft_wrap=True, width=None if sys.stdout.isatty() else 200)
JsonOption = Annotated[bool, typer.Option("--json", help="machine-readable output: one JSON list")]

HomeOption = Annotated[
    str | None,
    typer.Option("--home", help=f"data home: a folder or an fsspec URL such as s3://bucket/corpus (default ${HOME_ENV} or ./opencorpus-data)"),
]
WaitOption = Annotated[
    bool, typer.Option("--wait", help="when another build holds the home, wait for it (default: exit 5)")
]
JobsOption = Annotated[
    int | None,
    typer.Option("--jobs", "-j", min=1, help="partition runs at once (default: the number of cores; 1: one after another)"),
]
CatalogOption = Annotated[Path | None, typer.Option("--catalog", help=f"catalog directory (default ${CATALOG_ENV} or the packaged assets/)")]
MirrorOption = Annotated[
    list[str] | None,
    typer.Option("--mirror", help=f"mirror directory or base URL laid out as <host>/<path>, or HOST=BASEURL; repeatable (default ${MIRROR_ENV})"),
]


def _print_version(requested: bool) -> None:
    if requested:
        try:
            installed = version("opencorpus-dagster")
        except PackageNotFoundError:  # run from a source tree that was never installed
            installed = "unknown (not installed)"
        print(f"opencorpus {installed}")
        raise typer.Exit()


@app.callback()
def main(
    debug: Annotated[
        bool, typer.Option("--debug", help=f"show the full traceback of any error (also ${DEBUG_ENV}=1)")
    ] = False,
    show_version: Annotated[
        bool, typer.Option("--version", callback=_print_version, is_eager=True, help="print the version and exit")
    ] = False,
) -> None:
    """Assemble an openly licensed, traceable text corpus."""
    global _debug
    _debug = debug
    if not _debug_enabled():
        _log_warnings_on_one_line()


class _OneLineFormatter(logging.Formatter):
    """A logged warning with its exception as `(Type: message)`, not a traceback."""

    def format(self, record: logging.LogRecord) -> str:
        message = record.getMessage()
        if record.exc_info and record.exc_info[1] is not None:
            error = record.exc_info[1]
            message += f" ({type(error).__name__}: {_one_line(error)})"
        return f"opencorpus: {message}"


def _log_warnings_on_one_line() -> None:
    # Without a handler, Python's last-resort handler prints a logged exception's traceback
    # (e.g. an OpenLineage event not delivered to a full disk); the run goes on, so one line is enough.
    logger = logging.getLogger("opencorpus_dagster")
    if not logger.handlers:
        handler = logging.StreamHandler(sys.stderr)
        handler.setFormatter(_OneLineFormatter())
        handler.setLevel(logging.WARNING)
        logger.addHandler(handler)
        logger.propagate = False


# -- output: results on stdout, errors on stderr, listings as tables or JSON -------------------


# A tab or line break inside a value would shift the columns of a TSV line; --json keeps them.
_TSV_BREAKS = re.compile(r"[\t\r\n]+")


def _say(message: str) -> None:
    """One line on stderr, never wrapped (rich would break a long path at 80 columns)."""
    print(f"opencorpus: {' '.join(message.split())}", file=sys.stderr)


def _print_json(data: Any) -> None:
    out.print_json(json.dumps(data, default=str))


@dataclasses.dataclass(frozen=True)
class Column:
    """One column of a listing: its header and how a row's cell is written."""

    header: str
    cell: Callable[[dict], Any]
    numeric: bool = False


def _print_listing(rows: list[dict], columns: Sequence[Column], *, as_json: bool, title: str, nothing: str) -> None:
    """A listing command's result, the same way for every listing.

    `--json`: the rows as one JSON list (`[]` when empty). Otherwise a table with a header row:
    a rich table on a terminal, tab-separated values when stdout is a pipe or a file (so `cut`,
    `sort`, `awk -F'\t'` and spreadsheets read every value whole: a rich table wraps or cuts long
    paths and hashes to the width it is given). No rows: `nothing` on stderr, exit EXIT_NO_MATCH.
    """
    if as_json:
        _print_json(rows)
    elif rows:
        cells = [["" if (value := column.cell(row)) is None else str(value) for column in columns] for row in rows]
        if sys.stdout.isatty():
            table = Table(title=title, show_header=True)
            for column in columns:
                table.add_column(column.header, justify="right" if column.numeric else "left", overflow="fold")
            for line in cells:
                table.add_row(*(escape(cell) for cell in line))
            out.print(table)
        else:
            for line in [[column.header for column in columns], *cells]:
                sys.stdout.write("\t".join(_TSV_BREAKS.sub(" ", cell) for cell in line) + "\n")
    if not rows:
        _say(nothing)
        raise typer.Exit(code=EXIT_NO_MATCH)


def _configure_environment(home: str | None, catalog: Path | None, mirror: list[str] | None) -> None:
    """Dagster definitions read their settings from the environment; set it before loading them."""
    if home is not None:
        os.environ[HOME_ENV] = home
    if catalog is not None:
        os.environ[CATALOG_ENV] = str(catalog.resolve())
    if mirror:
        os.environ[MIRROR_ENV] = ",".join(m if "://" in m or "=" in m else str(Path(m).resolve()) for m in mirror)
    resolved = data_home()
    os.environ[HOME_ENV] = str(resolved.root)
    os.environ[STATE_ENV] = str(resolved.state)  # absolute, so every run process agrees
    if "DAGSTER_HOME" not in os.environ:
        os.environ["DAGSTER_HOME"] = str(resolved.dagster_home)
    Path(os.environ["DAGSTER_HOME"]).mkdir(parents=True, exist_ok=True)


def _lineage(home: str | None) -> LineageStore:
    """The lineage store of a home, read-only: the files under `<home>/lineage/`, local or in
    object storage, read while any build writes new ones."""
    resolved = data_home(home)
    try:
        return LineageStore.at(resolved.lineage_dir, read_only=True)
    except LineageStoreMissing as error:
        error.home = resolved.root  # what to pass to `opencorpus build --home` (not the state folder)
        raise


@app.command()
def build(
    home: HomeOption = None,
    catalog: CatalogOption = None,
    mirror: MirrorOption = None,
    source: Annotated[list[str] | None, typer.Option("--source", help="only these sources (repeatable)")] = None,
    force: Annotated[bool, typer.Option("--force", help="re-process partitions even if unchanged")] = False,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    wait: WaitOption = False,
    jobs: JobsOption = None,
) -> None:
    """Materialise the whole catalog: new or changed partitions of every source, then the corpus."""
    _configure_environment(home, catalog, mirror)
    from opencorpus_dagster.orchestration.build import run_build

    with _stopped_reported():
        summary = run_build(sources=source, force=force, console=console, debug=_debug_enabled(), wait=wait, jobs=jobs)
    _report_build(summary, as_json, "opencorpus build")


@app.command()
def ui(
    home: HomeOption = None,
    catalog: CatalogOption = None,
    mirror: MirrorOption = None,
    host: Annotated[str, typer.Option("--host", "-h", help="address the webserver listens on")] = "127.0.0.1",
    port: Annotated[int, typer.Option("--port", "-p", help="port of the webserver")] = 3000,
) -> None:
    """The Dagster UI and daemon (`dagster dev`) on the instance `opencorpus build` uses."""
    _configure_environment(home, catalog, mirror)
    from opencorpus_dagster.orchestration.ui import run_ui

    run_ui(host, port)


@app.command()
def backfill(
    source: Annotated[str, typer.Argument(help="the source to re-materialise")],
    partitions: Annotated[list[str] | None, typer.Option("--partitions", "--partition", help="only these partition keys (repeatable)")] = None,
    home: HomeOption = None,
    catalog: CatalogOption = None,
    mirror: MirrorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="print the summary as JSON")] = False,
    wait: WaitOption = False,
    jobs: JobsOption = None,
) -> None:
    """Re-materialise one source's partitions (all, or --partitions), then the corpus assets.

    Other sources' partitions are not touched: their documents, decisions and shards keep
    their bytes unless the new data changes a duplicate cluster they are part of.
    """
    _configure_environment(home, catalog, mirror)
    from opencorpus_dagster.orchestration.build import run_build

    with _stopped_reported():
        summary = run_build(
            sources=[source], force=True, console=console, partitions=partitions, debug=_debug_enabled(), wait=wait,
            jobs=jobs,
        )
    _report_build(summary, as_json, "opencorpus backfill")


@contextlib.contextmanager
def _stopped_reported():
    """A build stopped by a signal (`stopping.py`): one line on stderr saying what it left undone, and
    the exit code a shell gives a process the signal ended (129, 130, 143). Click would otherwise
    take it for a Ctrl-C at a prompt ("Aborted!", exit 1)."""
    from opencorpus_dagster.orchestration.stopping import BuildStopped

    try:
        yield
    except BuildStopped as stopped:
        print(f"opencorpus: {stopped}", file=sys.stderr)
        raise typer.Exit(code=stopped.exit_code) from None


def _report_build(summary, as_json: bool, title: str) -> None:
    """The build summary (table titled after the command, or JSON); exit 1 when a partition or the corpus failed."""
    if as_json:
        out.print_json(json.dumps(dataclasses.asdict(summary)))
    else:
        _print_summary(summary, title)
    if summary.failed:
        raise typer.Exit(code=1)


def _print_summary(summary, title: str = "opencorpus build") -> None:
    table = Table(title=title, show_header=True)
    table.add_column("")
    table.add_column("records", justify="right")
    table.add_row("records in", str(summary.records_in))
    for outcome, count in summary.outcomes.items():
        table.add_row(f"  {outcome}", str(count))
    table.add_row("partitions processed", str(len(summary.processed)))
    table.add_row("partitions unchanged", str(len(summary.unchanged)))
    table.add_row("shards written / total", f"{summary.shards_written} / {summary.shards_total}")
    if summary.corpus_unchanged:
        table.add_row("corpus", "unchanged")
    if summary.release:
        table.add_row("current release", summary.release)
    out.print(table)
    # One line each, on stderr with the other errors; the full error is in the log the line names.
    for warning in summary.warnings:
        console.print(f"[yellow]WARN[/yellow] {escape(str(warning))}", soft_wrap=True, highlight=False)
    for failure in summary.failed:
        console.print(f"[red]FAILED[/red] {escape(str(failure))}", soft_wrap=True, highlight=False)
    out.print(f"output: {summary.manifest}")
    out.print(f"lineage: {summary.lineage_db}")


@app.command()
def trace(
    home: HomeOption = None,
    doc_id: Annotated[str | None, typer.Option("--doc-id")] = None,
    url: Annotated[str | None, typer.Option("--url", help="page URL or upstream URI")] = None,
    shard: Annotated[str | None, typer.Option("--shard", help="shard path as in a release's manifest.json (shards/<source>/<partition>/<file>)")] = None,
    row: Annotated[int | None, typer.Option("--row", help="row number in the shard (from 0)")] = None,
    source: Annotated[str | None, typer.Option("--source", help="list the shards holding this source's records")] = None,
    license: Annotated[str | None, typer.Option("--license", help="list the shards holding records under this SPDX licence")] = None,
    as_json: JsonOption = False,
) -> None:
    """Where a record came from, under which licence, and what happened to it.

    --source / --license list shards (a table, or --json); nothing found exits 6.
    """
    if source or license:
        if license:
            license = _spdx_option(license)
        shards = tracing.shards_holding(_lineage(home), source=source, license=license)
        asked = (("--source", source), ("--license", license))
        query = " and ".join(f"{name} {value}" for name, value in asked if value)
        _print_listing(
            shards,
            [
                Column("shard", lambda r: r["shard"]),
                Column("rows", lambda r: r["rows"], numeric=True),
                Column("sha256", lambda r: r["sha256"]),
            ],
            as_json=as_json,
            title="shards",
            nothing=f"no shard holds records matching {query}",
        )
        return
    if shard is not None and row is None:
        raise typer.BadParameter("--shard needs --row")
    if shard is None and doc_id is None and url is None:
        raise typer.BadParameter("give one of --doc-id, --url, --shard/--row, --source, --license")
    store = _lineage(home)
    try:
        if shard is not None:
            traces = tracing.trace_shard_row(store, shard, row, data_home(home))
        elif doc_id is not None:
            traces = tracing.trace_doc(store, doc_id)
        else:
            traces = tracing.trace_url(store, url)
    except tracing.NotTraced as error:
        if as_json:
            _print_json([])
        _say(str(error))
        raise typer.Exit(code=EXIT_NO_MATCH) from None
    if as_json:
        _print_json(traces)
        return
    for item in traces:
        _print_trace(item)


def _spdx_option(license: str) -> str:
    """A --license value in the spelling the lineage store keeps (`cc-by-sa-4.0` -> `CC-BY-SA-4.0`);
    an id that is not on the SPDX licence list is a usage error (no kept record can carry it)."""
    parsed = parse_expression(license)
    if parsed is None:
        raise typer.BadParameter("; ".join(spdx_expression_problems(license)), param_hint="--license")
    return parsed.render()


def _print_trace(item: dict) -> None:
    out.rule(f"{item['source']} / {item['partition']} / {item['doc_id']}")
    fields = [
        ("outcome", item["outcome"]),
        ("title", item["title"]),
        ("url", item["url"]),
        ("upstream uri", item["upstream_uri"]),
        ("upstream file", _describe_file(item["upstream_file"])),
        ("licence", item["license"]),
        ("licence evidence", item["license_evidence"]),
        ("upstream statement", item["license_statement"]),
        ("attribution", item["attribution"]),
        ("language", item["language"]),
        ("content sha256", item["content_sha256"]),
    ]
    for name, value in fields:
        if value is not None:
            out.print(f"{name}: {value}", highlight=False, markup=False)
    for shard_row in item["shard_rows"]:
        out.print(f"shard row: {shard_row['shard']} row {shard_row['row']} (sha256 {shard_row['shard_sha256']})", markup=False)
    out.print("decisions:")
    for decision in item["decisions"]:
        value = f" value={decision['value']}" if decision["value"] is not None else ""
        detail = f" ({decision['detail']})" if decision["detail"] else ""
        out.print(f"  {decision['stage']}: {decision['outcome']} [{decision['reason']}]{value}{detail}", highlight=False, markup=False)


def _describe_file(fetched: dict | None) -> str | None:
    if not fetched:
        return None
    return f"{fetched['url']} sha256={fetched['sha256']} ({fetched['size']} bytes, read from {fetched['fetched_from']} at {fetched['retrieved_at']})"


@app.command()
def report(
    home: HomeOption = None,
    source: Annotated[str | None, typer.Option("--source", help="only this source")] = None,
    as_json: JsonOption = False,
) -> None:
    """Records removed by each rule, per source, with the distribution of the measured value."""
    from opencorpus_dagster.lineage.report import rule_report

    rows = [r for r in rule_report(_lineage(home)) if not source or r["source"] == source]
    _print_listing(
        rows,
        [
            Column("source", lambda r: r["source"]),
            Column("rule", lambda r: r["rule"]),
            Column("removed", lambda r: r["removed"], numeric=True),
            Column("measured", lambda r: r["measured"], numeric=True),
            Column("min", lambda r: _fmt(r["minimum"]), numeric=True),
            Column("median", lambda r: _fmt(r["median"]), numeric=True),
            Column("max", lambda r: _fmt(r["maximum"]), numeric=True),
        ],
        as_json=as_json,
        title="records removed per rule",
        nothing=f"no rule removed or measured records of source {source!r}"
        if source
        else "no rule removed or measured any record",
    )


def _fmt(value: float | None) -> str:
    return "" if value is None else f"{value:.3g}"


takedown_app = typer.Typer(help="Takedown requests: remove records from the corpus, with an audit trail.", no_args_is_help=True)
app.add_typer(takedown_app, name="takedown")


@takedown_app.command("add")
def takedown_add(
    reason: Annotated[str, typer.Option("--reason", help="why (the request, a ticket, the rights holder)")],
    url: Annotated[str | None, typer.Option("--url")] = None,
    domain: Annotated[str | None, typer.Option("--domain", help="a host and its subdomains")] = None,
    doc_id: Annotated[str | None, typer.Option("--doc-id")] = None,
    sha256: Annotated[str | None, typer.Option("--sha256", help="content_sha256 of the text")] = None,
    requested_by: Annotated[str | None, typer.Option("--by")] = None,
    home: HomeOption = None,
) -> None:
    """Add a request to the takedown list; the next `opencorpus build` applies it."""
    from opencorpus_dagster.stages.takedown import add_takedown

    given = [(kind, value) for kind, value in (("url", url), ("domain", domain), ("doc_id", doc_id), ("sha256", sha256)) if value]
    if len(given) != 1:
        raise typer.BadParameter("give exactly one of --url, --domain, --doc-id, --sha256")
    try:
        request = add_takedown(data_home(home), given[0][0], given[0][1], reason, requested_by)
    except ValueError as error:
        raise typer.BadParameter(str(error)) from None
    out.print(f"takedown {request.id}: {request.kind} {request.value} ({request.reason}); run `opencorpus build` to apply it", markup=False)


@takedown_app.command("list")
def takedown_list(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The takedown requests in the list."""
    from opencorpus_dagster.stages.takedown import load_takedowns, takedowns_path

    resolved = data_home(home)
    if not resolved.is_remote and not resolved.root.is_dir():
        # An empty list would hide a mistyped --home.
        raise HomeMissing(errno.ENOENT, "no data home", str(resolved.root))
    requests = [dataclasses.asdict(request) for request in load_takedowns(resolved)]
    _print_listing(
        requests,
        [
            Column(name, lambda r, key=name: r[key])
            for name in ("id", "kind", "value", "requested_at", "requested_by", "reason")
        ],
        as_json=as_json,
        title="takedown requests",
        nothing=f"no takedown requests in {takedowns_path(resolved)} (add one with opencorpus takedown add)",
    )


@takedown_app.command("audit")
def takedown_audit_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """What each application of the list removed, when, why, and which shards changed."""
    from opencorpus_dagster.stages.takedown import takedown_audit

    rows = takedown_audit(_lineage(home))
    _print_listing(
        rows,
        [
            Column("applied_at", lambda r: r["applied_at"]),
            Column("request_id", lambda r: r["request_id"]),
            Column("kind", lambda r: r["kind"]),
            Column("value", lambda r: r["value"]),
            Column("records", lambda r: r["records"], numeric=True),
            Column("new_records", lambda r: r["new_records"], numeric=True),
            Column("shards_changed", lambda r: " ".join(r["shards_changed"] or [])),
            Column("reason", lambda r: r["reason"]),
        ],
        as_json=as_json,
        title="takedown audit",
        nothing="no takedown has been applied in this home (opencorpus takedown add, then opencorpus build)",
    )


@app.command()
def summary(
    home: HomeOption = None,
    catalog: CatalogOption = None,
    mirror: MirrorOption = None,
    as_json: Annotated[bool, typer.Option("--json", help="the summary as one JSON object")] = False,
    release: Annotated[
        str | None, typer.Option("--release", help="print the summary published with this release (see opencorpus releases)")
    ] = None,
) -> None:
    """The EU AI Act training-content summary (Art. 53(1)(d) template) of the published release.

    Markdown by default. --mirror lets it read each crawled WARC's warcinfo record (the crawler's
    name) from a mirror; without one, upstream is not contacted and the crawler is "not recorded here".
    --release R prints the summary as it was published in release R's folder (checked against
    its release.json), not one computed from today's lineage.
    """
    from opencorpus_dagster.rights.training_summary import source_facts, summary_markdown, training_summary
    from opencorpus_dagster.stages.shards import read_manifest
    from opencorpus_dagster.upstream.fetch import Fetcher, mirrors_from

    if release is not None:
        sys.stdout.write(_published_summary(data_home(home), release, as_json))
        return
    store = _lineage(home)
    resolved = data_home(home)
    manifest = read_manifest(resolved)
    if manifest is None:
        _say(f"no published release in {resolved.root}: nothing to summarise (run opencorpus build)")
        raise typer.Exit(code=EXIT_NOT_BUILT)
    loaded = load_catalog(catalog)
    for error in loaded.errors:
        for line in error.lines():
            _say(f"catalog: {line}")
    if any(Path(error.path).name == "_corpus.yaml" for error in loaded.errors):
        raise typer.Exit(code=EXIT_FAILED)
    specs = mirror or [m for m in os.environ.get(MIRROR_ENV, "").split(",") if m]
    # Upstream is not contacted for a summary: the crawler is read from a mirror when one is given.
    mirrors = mirrors_from([m if "://" in m or "=" in m else str(Path(m).resolve()) for m in specs])
    fetcher = Fetcher(resolved.downloads, mirrors) if specs else None
    result = training_summary(
        store, resolved, manifest, sources=source_facts(loaded), settings=loaded.settings.summary, fetcher=fetcher
    )
    if as_json:
        _print_json(result)
    else:
        sys.stdout.write(summary_markdown(result))


def _published_summary(home, release: str, as_json: bool) -> str:
    """The training-content summary file published in `release`'s folder, after checking its
    sha256 against the release's release.json."""
    from opencorpus_dagster.rights.training_summary import SUMMARY_JSON, SUMMARY_MARKDOWN
    from opencorpus_dagster.state import releases
    from opencorpus_dagster.state.storage import sha256_file

    try:
        record = releases.read_release(home, release)
    except releases.ReleaseNotFound as error:
        raise typer.BadParameter(str(error), param_hint="--release") from None
    name = SUMMARY_JSON if as_json else SUMMARY_MARKDOWN
    path = releases.release_dir(home, release) / name
    if name not in record["files"] or not path.is_file():
        _say(f"release {release} was published without {name}")
        raise typer.Exit(code=EXIT_NO_MATCH)
    if sha256_file(path) != record["files"][name]:
        _say(f"{path}: sha256 differs from the one release {release} published (release.json); not printed")
        raise typer.Exit(code=EXIT_FAILED)
    return path.read_text(encoding="utf-8")


def _published_releases(home) -> list[tuple[str, dict]]:
    """(release id, manifest) of every complete release up to the current one, oldest first."""
    from opencorpus_dagster.state import releases

    current = releases.current_release(home)
    if current is None:
        return []
    listed = [r["release"] for r in releases.list_releases(home) if releases.sequence_of(r["release"]) <= releases.sequence_of(current)]
    return [(release, releases.read_manifest(home, release)) for release in listed]


@app.command()
def lookup(
    items: Annotated[list[str] | None, typer.Argument(help="text or HTML files, URLs (http/https) or domains")] = None,
    from_file: Annotated[
        list[Path] | None, typer.Option("--from", help="a file listing items, one a line (repeatable)")
    ] = None,
    home: HomeOption = None,
    near_threshold: Annotated[
        float, typer.Option("--near", min=0.0, max=1.0, help="least shingle Jaccard of a near duplicate")
    ] = 0.5,
    passage_threshold: Annotated[
        float,
        typer.Option("--passage", min=0.0, max=1.0, help="least share of the query's shingles found in a document"),
    ] = 0.8,
    takedown_request: Annotated[
        Path | None,
        typer.Option(
            "--takedown-request",
            help="write the takedown requests that would remove what was found to this file "
            "(JSON lines in the takedowns.jsonl format; '-' for stdout)",
        ),
    ] = None,
    reason: Annotated[
        str, typer.Option("--reason", help="reason recorded in the takedown requests")
    ] = "rights-holder request (opencorpus lookup)",
    as_json: JsonOption = False,
) -> None:
    """Is this work in the corpus? Exact copies, near duplicates and passages of texts; records of
    URLs and domains; with release, shard, row, doc_id, similarity and lineage, or the decision
    that removed them. Nothing found for any item exits 6."""
    from opencorpus_dagster.rights.lookup import QueryError, parse_queries, takedown_requests
    from opencorpus_dagster.rights.lookup import lookup as find

    if not items and not from_file:
        raise typer.BadParameter("give files, URLs or domains to look up (or --from FILE)")
    try:
        queries = parse_queries(items or [], from_file)
    except (QueryError, OSError) as error:
        raise typer.BadParameter(str(error)) from None
    store = _lineage(home)
    resolved = data_home(home)
    results = find(
        resolved, store, queries, _published_releases(resolved),
        near_threshold=near_threshold, passage_threshold=passage_threshold,
    )  # fmt: skip
    if takedown_request is not None:
        lines = "".join(r.to_json() + "\n" for r in takedown_requests(results, reason))
        if str(takedown_request) == "-":
            sys.stdout.write(lines)
        else:
            write_text_atomically(takedown_request, lines)
            _say(
                f"{lines.count(chr(10))} takedown request(s) written to {takedown_request}; append them to the "
                "takedown list (takedowns.jsonl in the data home) to apply them at the next build"
            )
    if as_json:
        _print_json(results)
    elif takedown_request is None or str(takedown_request) != "-":
        rows = [
            {"query": r["query"], **m, "where": " ".join(f"{h['release']}:{h['shard']}#{h['row']}" for h in m["in_release"])}  # noqa: E501
            for r in results
            for m in r["matches"]
        ]
        rows += [{"query": r["query"], "match": "not found", "status": ""} for r in results if not r["matches"]]
        _print_listing(
            rows,
            [
                Column("query", lambda r: r["query"]),
                Column("match", lambda r: r["match"]),
                Column("similarity", lambda r: _fmt(r.get("similarity")), numeric=True),
                Column("status", lambda r: r["status"]),
                Column("release:shard#row", lambda r: r.get("where")),
                Column("doc_id", lambda r: r.get("doc_id")),
                Column("source", lambda r: r.get("source")),
                Column("decision", lambda r: "" if r["status"] == "in release" else _decision_text(r.get("decision"))),
            ],
            as_json=False,
            title="lookup",
            nothing="nothing to look up",
        )
    if not any(r["matches"] for r in results):
        _say("not found in any release: " + ", ".join(r["query"] for r in results))
        raise typer.Exit(code=EXIT_NO_MATCH)


def _decision_text(decision: dict | None) -> str:
    if not decision:
        return ""
    value = f" {decision['value']}" if decision["value"] is not None else ""
    return f"{decision['stage']}: {decision['outcome']} [{decision['reason']}]{value}"


@app.command()
def validate(catalog: CatalogOption = None, as_json: JsonOption = False) -> None:
    """Check every catalog file: `ok` lines on stdout, every error of every file on stderr; exit 1 if any is invalid."""
    loaded = load_catalog(catalog)
    files: list[dict] = []
    for source in loaded.sources:
        units = len(source.connector.units())
        files.append({
            "file": str(source.path), "valid": True, "source": source.name, "kind": source.spec.kind,
            "partitions": units, "discovers_partitions": source.connector.discovers(), "errors": [],
        })  # fmt: skip
    for error in loaded.errors:
        problems = error.problems or (CatalogProblem("", error.message),)
        errors = [{"field": problem.field, "message": problem.message} for problem in problems]
        files.append({"file": str(error.path), "valid": False, "errors": errors})
    files.sort(key=lambda item: item["file"])
    if as_json:
        _print_json(files)
    else:
        for item in files:
            _print_validation(item)
    if not files:
        _say(f"no catalog files (*.yaml, *.yml) in {loaded.directory}")
        raise typer.Exit(code=EXIT_NO_MATCH)
    if loaded.errors:
        count = sum(len(item["errors"]) for item in files)
        _say(f"{count} error{'s' * (count != 1)} in {len(loaded.errors)} of {len(files)} catalog files")
        raise typer.Exit(code=EXIT_FAILED)


def _print_validation(item: dict) -> None:
    """`ok  FILE: ...` on stdout for a valid file; `bad PATH: field: problem` on stderr for each error."""
    if item["valid"]:
        partitions = f"{item['partitions']} partitions"
        if item["discovers_partitions"]:
            partitions = f"{item['partitions']} declared partitions + those listed upstream"
        print(f"ok  {Path(item['file']).name}: {item['source']} ({item['kind']}, {partitions})")
        return
    for problem in item["errors"]:
        where = f"{problem['field']}: " if problem["field"] else ""
        print(f"bad {item['file']}: {where}{problem['message']}", file=sys.stderr)


# The release commands live in their own module and register themselves on `app`.
from opencorpus_dagster import cli_releases  # noqa: E402, F401

if __name__ == "__main__":
    app()
