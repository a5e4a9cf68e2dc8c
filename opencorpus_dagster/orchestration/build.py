"""`opencorpus build`: materialise the catalog through Dagster, on the local instance.

Each pending partition runs as its source's job (so the runs, their logs and metadata show in
the Dagster UI), then one run of the corpus job. Partition runs go `jobs` at a time (default: the
number of cores), in worker processes forked from the build, each run with its own run id on the same instance;
`jobs=1` runs them one after another in this process. They share nothing that locks: each writes
its own stage and lineage files. A partition is pending when its documents
stage has never been recorded or was recorded with another fingerprint (its unit or the source's shared settings changed); unchanged
partitions are not re-read. A failed partition is reported and does not stop the others. The
corpus run is skipped when nothing it reads changed since the last one that published with every
check passed (`corpus_inputs.py`): a no-op build does no work in proportion to the corpus, and
a build with nothing to run does not import Dagster (`_Dagster` makes the definitions and the
instance when first needed).
"""

from __future__ import annotations

import functools
import gc
import multiprocessing
import os
from concurrent.futures import FIRST_COMPLETED, ProcessPoolExecutor, wait
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
from rich.console import Console
from rich.markup import escape
from rich.progress import (
    BarColumn,
    MofNCompleteColumn,
    Progress,
    TextColumn,
    TimeElapsedColumn,
)

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.connectors.base import UnreadableInput
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.orchestration.instance import ensure_instance_config, usable_cores
from opencorpus_dagster.orchestration.stopping import BuildStopped, StopSignals, end_workers, worker_started
from opencorpus_dagster.stages.corpus_inputs import corpus_inputs_digest, forget_digest, record_digest, recorded_digest
from opencorpus_dagster.stages.discovery import discover_and_record, recorded_units
from opencorpus_dagster.stages.shards import read_manifest
from opencorpus_dagster.state.atomic import remove_stale_temporaries, write_text_atomically
from opencorpus_dagster.state.home import data_home
from opencorpus_dagster.state.home_lock import HomeLocked, hold_home
from opencorpus_dagster.state.releases import current_release, manifest_path
from opencorpus_dagster.state.storage import close_process_database
from opencorpus_dagster.upstream.fetch import MIRROR_ENV, Fetcher, FetchError, mirrors_from
from opencorpus_dagster.upstream.url_policy import UrlRefused

QUIET_LOGS = {"loggers": {"console": {"config": {"log_level": "WARNING"}}}}
# A failed step is reported once, in the summary; Dagster's console logger would add its
# traceback to stderr. `debug` keeps it.
SILENT_LOGS = {"loggers": {"console": {"config": {"log_level": "CRITICAL"}}}}


@dataclass
class BuildSummary:
    records_in: int = 0
    outcomes: dict[str, int] = field(default_factory=dict)
    processed: list[str] = field(default_factory=list)
    unchanged: list[str] = field(default_factory=list)
    failed: list[str] = field(default_factory=list)
    warnings: list[str] = field(default_factory=list)  # failed WARN checks: reported, not a failure
    corpus_unchanged: bool = False  # nothing the corpus run reads changed: it did not run
    shards_written: int = 0
    shards_total: int = 0
    manifest: str = ""
    release: str = ""  # the current release after the build
    lineage_db: str = ""


def pending_partitions(
    sources,
    store: LineageStore,
    home,
    force: bool,
    only: set[str] | None = None,
    fetcher=None,
    instance=None,
    failed: list[str] | None = None,
) -> tuple[list[tuple], list[tuple]]:
    """(pending, unchanged) (source, partition key) pairs; `only` limits forcing to these keys.

    Sources that discover their units list them now (through `fetcher`) and record the listing
    in `home` for the runs; new keys are added to the instance's dynamic partitions, as the
    discovery sensor would. With `failed`, a listing that cannot be read (unreadable, not
    fetched, refused) is reported there and its source goes on with the units recorded before:
    one hostile or broken upstream does not stop the other sources. Without it, the error is
    raised.
    """
    pending, unchanged = [], []
    recorded_fingerprints = store.partition_fingerprints("documents")
    for source in sources:
        units = source.connector.units()
        if source.connector.discovers() and fetcher is not None:
            try:
                units = discover_and_record(source, fetcher, home)
            except (UnreadableInput, FetchError, UrlRefused, ValueError) as error:
                if failed is None:
                    raise
                failed.append(f"{source.name} (listing units upstream): {error}")
                units = recorded_units(source, home) or units
            if instance is not None:
                from opencorpus_dagster.orchestration.assets import dynamic_partitions_name

                name = dynamic_partitions_name(source.name)
                known = set(instance.get_dynamic_partitions(name))
                instance.add_dynamic_partitions(name, [u.key for u in units if u.key not in known])
        for unit in units:
            if only is not None and unit.key not in only:
                unchanged.append((source, unit.key))
                continue
            recorded = recorded_fingerprints.get((source.name, unit.key))
            fresh = recorded == source.partition_fingerprint(unit) and home.documents_path(source.name, unit.key).is_file()
            (unchanged if fresh and not force else pending).append((source, unit.key))
    return pending, unchanged


def run_build(
    sources: list[str] | None = None,
    force: bool = False,
    console: Console | None = None,
    partitions: list[str] | None = None,
    debug: bool = False,
    wait: bool = False,
    jobs: int | None = None,
) -> BuildSummary:
    """Materialise pending partitions of `sources` (all by default), then the corpus assets.

    `force` re-processes partitions even when unchanged; `partitions` restricts the work to
    these partition keys (a backfill of part of one source). `debug` lets Dagster log failed
    steps with their tracebacks; otherwise a failure is only in `BuildSummary.failed`.

    Temporary files that killed writers left in the home (`.<name>.tmp-<pid>` of a dead pid)
    are removed first.

    The whole build holds the home's build lock (`home_lock.hold_home`): while another build
    holds it, `HomeLocked` is raised naming that build, or with `wait` the build waits for it.

    `jobs` bounds how many partition runs go at once (None: the number of cores; 1: serially
    in this process).

    SIGINT, SIGTERM or SIGHUP stops the build (`stopping.py`): `BuildStopped` is raised, saying
    what was left undone, once the running partitions are interrupted and their workers ended.
    """
    console = console or Console(stderr=True)
    home = data_home()
    def say_waiting(busy: HomeLocked) -> None:
        notice = f"opencorpus: waiting for another build on {busy.home} ({busy.held_by})"
        console.print(notice, highlight=False, markup=False, soft_wrap=True)

    jobs = default_jobs(jobs)
    with StopSignals() as stop:
        try:
            with hold_home(home, wait=wait, on_wait=say_waiting):
                return _build_holding_lock(home, sources, force, console, partitions, debug, jobs, stop)
        except BuildStopped as stopped:
            if stopped.undone:
                raise
            raise BuildStopped(stopped.signum, f"{_published_now(home)}; run the build again to finish") from None


def default_jobs(jobs: int | None = None) -> int:
    """`jobs`, or the number of cores this process may use; at least 1."""
    if jobs is not None:
        if jobs < 1:
            raise ValueError(f"--jobs must be at least 1, not {jobs}")
        return jobs
    return max(1, usable_cores())


def _build_holding_lock(home, sources, force, console, partitions, debug, jobs, stop: StopSignals) -> BuildSummary:
    """`run_build`'s work, once the home's build lock is held."""
    log_config = QUIET_LOGS if debug else SILENT_LOGS
    skip = (home.downloads, home.dagster_home)  # `published` never writes there; the cache can be huge
    stale = [path for folder in {home.root, home.state} for path in remove_stale_temporaries(folder, skip=skip)]
    if stale:
        console.print(f"removed {len(stale)} temporary file(s) left by killed writers", highlight=False)
    catalog = load_catalog()
    for error in catalog.errors:
        console.print(f"[yellow]skipping invalid catalog file[/yellow] {escape(str(error))}", highlight=False)
    selected = [s for s in catalog.sources if not sources or s.name in sources]
    unknown = set(sources or ()) - {s.name for s in catalog.sources}
    if unknown:
        raise SystemExit(f"unknown source(s): {', '.join(sorted(unknown))}; catalog has {', '.join(s.name for s in catalog.sources)}")
    dagster = _Dagster(home)
    store = LineageStore.at(home.lineage_dir)
    if partitions and not any(s.connector.discovers() for s in selected):
        known = {unit.key for source in selected for unit in source.connector.units()}
        missing = sorted(set(partitions) - known)
        if missing:
            raise SystemExit(f"unknown partition(s) {', '.join(missing)}; known: {', '.join(sorted(known))}")
    fetcher = Fetcher(home.downloads, mirrors_from(os.environ.get(MIRROR_ENV, "")))
    listing_failures: list[str] = []
    pending, unchanged = pending_partitions(
        selected,
        store,
        home,
        force,
        set(partitions) if partitions else None,
        fetcher=fetcher,
        instance=dagster.instance if any(s.connector.discovers() for s in selected) else None,
        failed=listing_failures,
    )
    summary = BuildSummary(
        unchanged=[f"{s.name}/{k}" for s, k in unchanged],
        failed=[f"catalog: {error}" for error in catalog.errors] + listing_failures,
    )

    with Progress(
        TextColumn("{task.description}"), BarColumn(), MofNCompleteColumn(), TimeElapsedColumn(), console=console
    ) as progress:
        task = progress.add_task("partitions", total=len(pending) + 1)
        outcomes = _run_partitions(pending, jobs, log_config, progress, task, dagster, stop)
        for (source, key), outcome in zip(pending, outcomes, strict=True):
            label = f"{source.name}/{key}"
            if outcome.success:
                summary.processed.append(label)
                summary.failed.extend(f"{label}: {check}" for check in outcome.error_checks)
                summary.warnings.extend(f"{label}: {warning}" for warning in outcome.warn_checks)
            else:
                summary.failed.append(f"{label}: {outcome.failure}")
        unchanged_corpus = not force and not summary.processed and not catalog.errors and (
            (digest := corpus_inputs_digest(catalog.sources, store, home)) is not None
            and digest == recorded_digest(home.state)
        )
        if catalog.errors:
            # A source whose file is invalid is not in the catalog: publishing now would drop its
            # records (all of them, when every file is invalid) from the published corpus.
            summary.failed.append("corpus: not published while catalog files are invalid; the published corpus is unchanged")
        elif unchanged_corpus:
            summary.corpus_unchanged = True
        else:
            from opencorpus_dagster.orchestration.jobs import CORPUS_JOB

            progress.update(task, description="corpus: dedup + shards")
            published_before = current_release(home)
            try:
                result = dagster.defs.resolve_job_def(CORPUS_JOB).execute_in_process(
                    instance=dagster.instance, run_config=log_config, raise_on_error=False
                )
                stop.check()
            except BuildStopped as stopped:
                forget_digest(home.state)
                done = f"{len(summary.processed)} partition(s) done and kept; " if summary.processed else ""
                raise BuildStopped(
                    stopped.signum, f"{done}the corpus run was interrupted; {_published_now(home, published_before)}"
                ) from None
            failed_checks = _failed_error_checks(result) if result.success else []
            if not result.success:
                summary.failed.append(f"corpus: {_failure_message(result)}{_log_note(result, home)}")
            else:
                summary.failed.extend(f"corpus: {check}" for check in failed_checks)
                written = result.asset_materializations_for_node("corpus__shards")
                if written:
                    summary.shards_written = int(written[-1].metadata["written_this_run"].value)
            published = result.success and not failed_checks and corpus_inputs_digest(catalog.sources, store, home)
            if published:
                record_digest(home.state, published, result.run_id)
            else:
                forget_digest(home.state)
        progress.advance(task)

    summary.manifest = str(manifest_path(home) or "")
    summary.release = current_release(home) or ""
    summary.lineage_db = str(home.lineage_db)
    try:
        _add_totals(summary, store, home)
    except (duckdb.Error, OSError) as error:
        if not summary.failed:
            raise
        # After a failed write (a full disk) DuckDB may refuse the store until it is reopened by
        # a new process; the failures above are the news, not this.
        summary.failed.append(f"totals: not read from {home.lineage_db} after the failures above ({' '.join(str(error).split())})")
    return summary


class _Dagster:
    """The build's Dagster definitions and instance, made when first needed: a build with no
    partition to run and an unchanged corpus never imports Dagster (1-2 s of a no-op build)."""

    def __init__(self, home) -> None:
        self.home = home

    @functools.cached_property
    def defs(self):
        from opencorpus_dagster.definitions import build_definitions

        return build_definitions()

    @functools.cached_property
    def instance(self):
        from dagster import DagsterInstance

        ensure_instance_config(Path(os.environ.get("DAGSTER_HOME") or self.home.dagster_home))
        return DagsterInstance.get()


@dataclass
class PartitionOutcome:
    """What the build needs from one partition run (picklable: it comes back from a worker)."""

    run_id: str
    success: bool
    error_checks: list[str]
    warn_checks: list[str]
    failure: str = ""  # the one-line message with the log note, when not `success`


def _outcome(result, home) -> PartitionOutcome:
    if not result.success:
        return PartitionOutcome(result.run_id, False, [], [], f"{_failure_message(result)}{_log_note(result, home)}")
    return PartitionOutcome(result.run_id, True, _failed_error_checks(result), _failed_warn_checks(result))


# The definitions a forked worker inherits from the build (set just before the fork).
_INHERITED_DEFINITIONS = None
# (pid, DagsterInstance) of a worker: its own instance (storage connections are not shared
# across a fork), made by its first partition run.
_WORKER_INSTANCE = None


def _partition_pool(jobs: int, pending: int, defs, web: bool = False) -> ProcessPoolExecutor | None:
    """Worker processes for the partition runs, started now, before the progress display's
    thread exists; None when they run one at a time in this process. `web`: some partition
    holds web pages, whose dates need dateparser's tables."""
    workers = min(jobs, pending)
    if workers <= 1:
        return None
    global _INHERITED_DEFINITIONS
    _INHERITED_DEFINITIONS = defs
    # What every partition run loads on first use, loaded once here: each forked worker starts
    # with it (Great Expectations' imports alone are seconds of CPU per process).
    from opencorpus_dagster.dedup import minhash
    from opencorpus_dagster.quality import expectations
    from opencorpus_dagster.text import language

    expectations.preload()
    language.preload()
    minhash.preload()
    if web:
        from opencorpus_dagster.text import html

        html.preload()
    close_process_database()
    # Every object made so far (modules, definitions, the models loaded above) is left out of
    # the collections a forked worker makes: a collection writes to each object it visits, so
    # the page holding it, shared with this process until then, would be copied into the worker
    # (a 2-partition build: 9-10% fewer page faults, 0.5-1 s less system time).
    gc.freeze()
    # `fork` where there is one: a worker starts with the code location already loaded (a
    # spawned one spends seconds importing Dagster and building the definitions again).
    method = "fork" if "fork" in multiprocessing.get_all_start_methods() else "spawn"
    pool = ProcessPoolExecutor(
        max_workers=workers, mp_context=multiprocessing.get_context(method), initializer=worker_started, initargs=(os.getpid(),)
    )
    for ready in [pool.submit(os.getpid) for _ in range(workers)]:  # starts every worker now
        ready.result()
    return pool


def _end_workers(pool: ProcessPoolExecutor | None) -> None:
    """On a stop: cancel the partition runs not started, interrupt the running ones and end
    the workers (`stopping.end_workers`). ProcessPoolExecutor gives no public way to its
    processes before Python 3.14's `terminate_workers`."""
    if pool is not None:
        processes = list((pool._processes or {}).values())
        pool.shutdown(wait=False, cancel_futures=True)
        end_workers(processes)


def _stop_workers(pool: ProcessPoolExecutor | None) -> None:
    """Stop the partition workers once the partitions are done, before the corpus run: their
    memory (each has copied part of this process's pages by then) is released, and the pages
    they shared with this process need no copy when the corpus run writes them. Then this
    process's collections visit the objects frozen for the fork again."""
    if pool is not None:
        pool.shutdown()
        gc.unfreeze()


def _run_partitions(pending, jobs, log_config, progress, task, dagster: _Dagster, stop: StopSignals) -> list[PartitionOutcome]:
    """Run each (source, partition key) of `pending` as a run of its source's job, `jobs` at a
    time on forked workers (one after another here when one is enough); the outcomes in the
    order of `pending`. A failed run does not stop the others; a stop signal stops them all
    (`BuildStopped`, naming the partitions it left unfinished)."""
    names = [(source.name, key) for source, key in pending]
    outcomes: dict[int, PartitionOutcome] = {}
    pool = None
    try:
        if pending:
            _ = dagster.instance  # made (its storage, dagster.yaml) before workers fork and open it
            web = any(source.connector.content_kind == "web" for source, _ in pending)
            pool = _partition_pool(jobs, len(pending), dagster.defs, web=web)
        if pool is None:
            for index, (source, key) in enumerate(names):
                progress.update(task, description=f"{source}/{key}")
                outcome = _run_partition(source, key, log_config, dagster.defs, dagster.instance)
                stop.check()  # the run was interrupted: it is not done
                outcomes[index] = outcome
                progress.advance(task)
        else:
            _run_on_workers(names, pool, log_config, progress, task, outcomes)
    except BuildStopped as stopped:
        with stop.held():
            _end_workers(pool)
        raise BuildStopped(stopped.signum, _unfinished(names, outcomes, dagster.home)) from None
    finally:
        _stop_workers(pool)
    return [outcomes[i] for i in range(len(pending))]


def _run_on_workers(names, pool, log_config, progress, task, outcomes: dict[int, PartitionOutcome]) -> None:
    """`_run_partitions` on the workers of `pool`: each outcome into `outcomes` by its index in
    `names` as it comes."""
    running = {pool.submit(_run_partition, source, key, log_config): i for i, (source, key) in enumerate(names)}
    progress.update(task, description=f"{len(names)} partitions, {pool._max_workers} at a time")
    while running:
        done, _ = wait(running, return_when=FIRST_COMPLETED)
        for future in done:
            index = running.pop(future)
            source, key = names[index]
            try:
                outcomes[index] = future.result()
            except Exception as error:  # the worker itself died (killed, out of memory)
                message = " ".join(f"{type(error).__name__}: {error}".split())
                outcomes[index] = PartitionOutcome("", False, [], [], f"worker process failed: {message}")
            progress.update(task, description=f"{source}/{key}")
            progress.advance(task)


def _unfinished(names, outcomes: dict[int, PartitionOutcome], home) -> str:
    """What a stop during the partitions left undone, in one line."""
    left = [f"{source}/{key}" for i, (source, key) in enumerate(names) if i not in outcomes]
    shown = ", ".join(left[:3]) + (f" and {len(left) - 3} more" if len(left) > 3 else "")
    return (
        f"{len(outcomes)} of {len(names)} partition(s) done and kept, not finished: {shown}; "
        f"the corpus run did not start; {_published_now(home)}; run the build again to finish"
    )


def _published_now(home, before: str | None = None) -> str:
    """`the published corpus is unchanged (release r...)`, or what changed since `before`."""
    now = current_release(home)
    if before is not None and now != before:
        return f"release {now} was published before the stop"
    return f"the published corpus is unchanged ({f'release {now}' if now else 'nothing published yet'})"


def _run_partition(source: str, key: str, log_config: dict, defs=None, instance=None) -> PartitionOutcome:
    """One partition run of `source`'s job, on this process's instance (a worker's own
    DagsterInstance when called in a pool: the environment names the same DAGSTER_HOME)."""
    from dagster import DagsterInstance

    from opencorpus_dagster.definitions import build_definitions
    from opencorpus_dagster.orchestration.jobs import source_job_name

    global _WORKER_INSTANCE
    defs = defs or _INHERITED_DEFINITIONS or build_definitions()
    if instance is None:  # in a worker: one instance per process, for all its partition runs
        if _WORKER_INSTANCE is None or _WORKER_INSTANCE[0] != os.getpid():
            _WORKER_INSTANCE = (os.getpid(), DagsterInstance.get())
        instance = _WORKER_INSTANCE[1]
    job = defs.resolve_job_def(source_job_name(source))
    result = job.execute_in_process(partition_key=key, instance=instance, run_config=log_config, raise_on_error=False)
    return _outcome(result, data_home())


def _add_totals(summary: BuildSummary, store: LineageStore, home) -> None:
    with store.connection() as conn:
        summary.records_in = int(conn.execute("SELECT coalesce(sum(records_in), 0) FROM partitions WHERE stage = 'raw'").fetchone()[0])
    summary.outcomes = dict(sorted(store.outcome_counts().items()))
    manifest = read_manifest(home)
    summary.shards_total = manifest["totals"]["shards"] if manifest else 0


def _failed_error_checks(result) -> list[str]:
    """The checks of a successful run that failed at ERROR severity (a non-blocking ERROR check
    lets the run succeed; the build must not)."""
    from dagster import AssetCheckSeverity

    return [
        f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} failed (ERROR)"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed and evaluation.severity == AssetCheckSeverity.ERROR
    ]


def _failed_warn_checks(result) -> list[str]:
    """The WARN checks that failed, each as its description (what the check said) or its name."""
    from dagster import AssetCheckSeverity

    return [
        evaluation.description or f"check {evaluation.asset_key.to_user_string()}:{evaluation.check_name} failed (WARN)"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed and evaluation.severity == AssetCheckSeverity.WARN
    ]


def _failure_message(result) -> str:
    failed_checks = [
        f"{evaluation.asset_key.to_user_string()}:{evaluation.check_name}"
        for evaluation in result.get_asset_check_evaluations()
        if not evaluation.passed
    ]
    if failed_checks:
        return f"blocking check(s) failed: {', '.join(failed_checks)} (downstream assets not materialised)"
    for event in result.all_events:
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error:
            error = event.step_failure_data.error
            while error.cause is not None and "PartitionFailed" not in error.cls_name:
                error = error.cause
            message = error.message.strip()
            # Dagster's message often starts with the class name already ("OSError: [Errno 28] ...").
            return message if message.startswith(f"{error.cls_name}:") else f"{error.cls_name}: {message}"
    return "failed (see the run in the Dagster UI)"


def _log_note(result, home) -> str:
    """` (log: <file>; run <id> in the Dagster UI)`: the failed run's errors with their
    tracebacks, written to `<state>/logs/<run id>.log`, so the summary can stay one line."""
    errors = [
        f"step {event.step_key}:\n{event.step_failure_data.error.to_string()}"
        for event in result.all_events
        if event.is_step_failure and event.step_failure_data and event.step_failure_data.error
    ]
    errors += [
        f"check {e.asset_key.to_user_string()}:{e.check_name} failed ({e.severity.value}): {e.metadata}"
        for e in result.get_asset_check_evaluations()
        if not e.passed
    ]
    if not errors:
        return f" (run {result.run_id} in the Dagster UI)"
    path = home.state / "logs" / f"{result.run_id}.log"
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        write_text_atomically(path, f"run {result.run_id} ({result.job_def.name})\n\n" + "\n\n".join(errors) + "\n")
    except OSError:  # a full disk: the one-line message is still the news
        return f" (run {result.run_id} in the Dagster UI)"
    return f" (log: {path}; run {result.run_id} in the Dagster UI)"
