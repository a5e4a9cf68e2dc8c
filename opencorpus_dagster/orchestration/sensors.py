"""Discovery sensors: new or changed upstream units of a source get runs, and only they do.

One sensor per source that discovers its units (a Common Crawl `warc.paths` listing, Project
Gutenberg's RDF feed, ...), running by default wherever the Dagster daemon runs: declaring a
listing in the catalog is asking for it to be followed. Each tick lists the units through the mirror-aware fetcher, records
the listing in the data home (the runs read their unit from it, not from upstream), adds the
keys not yet known as dynamic partitions and requests one run per new key, and one per known
key whose unit changed since the last tick (a new book inside an existing batch keeps its key).

A source whose listing outlasts a sensor evaluation (`Connector.listing_is_slow`: PG's feed is
~1 GB of bzip2, minutes to read; Dagster gives a tick 60 s) gets a `<source>_listing` job: a tick
that finds the recorded listing stale (never made, options changed, or one of the files it was
read from changed upstream) requests one run of it and decides nothing; the next tick after that
run decides from the record, at the cost of revalidating the feed.

The known keys live in the Dagster instance (the dynamic partitions); the cursor names a saved
snapshot of each unit's digest as last seen (`<home>/units/<source>.digests/<sha256>.json`, small
cursors even for a 90,000-file crawl), so a restarted daemon neither loses nor repeats work. Without a
cursor (the first tick, a reset one) the keys already known are taken as they are: whoever
added them (`opencorpus build`) ran them.
"""

import json

from dagster import (
    AddDynamicPartitionsRequest,
    DagsterRunStatus,
    DefaultSensorStatus,
    JobDefinition,
    OpExecutionContext,
    RunRequest,
    RunsFilter,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    job,
    op,
    sensor,
)

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.orchestration.assets import dynamic_partitions_name
from opencorpus_dagster.orchestration.resources import CorpusSettings
from opencorpus_dagster.stages.discovery import (
    current_listing,
    discover_and_record,
    load_digests,
    prune_digests,
    save_digests,
    unit_digest,
)

DISCOVERY_INTERVAL_SECONDS = 3600
_CURSOR_FIELD = "digests_sha256"  # names the snapshot of unit digests (discovery.save_digests)


def listing_job_name(source_name: str) -> str:
    return f"{source_name}_listing"


def listing_job(source: Source) -> JobDefinition:
    """A job that lists the units of a source whose listing outlasts a sensor evaluation (see
    `Connector.listing_is_slow`) and records it; the sensor's next tick then reads the record."""

    @op(name=f"{source.name}__list_units", description=f"List and record the upstream units of {source.name}.")
    def list_units(context: OpExecutionContext, corpus: CorpusSettings) -> None:
        units = discover_and_record(source, corpus.fetcher(), corpus.data_home())
        context.log.info(f"{source.name}: {len(units)} units listed upstream and recorded in the data home")

    @job(name=listing_job_name(source.name), description=list_units.description)
    def listing():
        list_units()

    return listing


def discovery_sensor(source: Source, source_job, slow_listing_job: JobDefinition | None = None) -> SensorDefinition:
    """The sensor of `source`, requesting runs of `source_job` (its asset job) and, when its
    listing is slow, of `slow_listing_job` (from `listing_job`)."""

    @sensor(
        name=f"{source.name}_discovery",
        # A job name where it is the only target: a sensor given unresolved asset jobs makes
        # Dagster 1.13 warn (BetaWarning on `owners`) when it resolves them.
        **({"jobs": [source_job, slow_listing_job]} if slow_listing_job else {"job_name": source_job.name}),
        minimum_interval_seconds=DISCOVERY_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.RUNNING,
        description=f"Lists the upstream units of {source.name} and requests runs for the new or changed ones.",
    )
    def discover(context: SensorEvaluationContext, corpus: CorpusSettings) -> SensorResult | SkipReason:
        home, fetcher = corpus.data_home(), corpus.fetcher()
        if slow_listing_job is not None:
            units = current_listing(source, fetcher, home)
            if units is None:
                return _request_listing(context, slow_listing_job.name)
        else:
            units = discover_and_record(source, fetcher, home)
        digests = {unit.key: unit_digest(unit) for unit in units}
        name = dynamic_partitions_name(source.name)
        known = set(context.instance.get_dynamic_partitions(name))
        previous = _snapshot_in(context.cursor)
        seen = load_digests(home, source.name, previous)
        to_run = _keys_to_run(digests, known, seen)
        snapshot = save_digests(home, source.name, digests)
        prune_digests(home, source.name, keep={snapshot, previous} - {None})
        cursor = json.dumps({_CURSOR_FIELD: snapshot, "units": len(digests)}, sort_keys=True)
        if not to_run:
            message = f"no new upstream unit and none changed among {len(digests)} listed"
            return SensorResult(skip_reason=SkipReason(message), cursor=cursor)
        new = [key for key in to_run if key not in known]
        return SensorResult(
            run_requests=[
                # Digests before and after in the run key: a unit that changes again (even back
                # to an earlier state, a book withdrawn and restored) gets another run.
                RunRequest(
                    run_key=f"{source.name}:{key}:{seen.get(key, 'new')}>{digests[key]}",
                    partition_key=key,
                    job_name=source_job.name,
                )
                for key in to_run
            ],
            dynamic_partitions_requests=[AddDynamicPartitionsRequest(name, new)] if new else [],
            cursor=cursor,
        )

    return discover


def _request_listing(context: SensorEvaluationContext, job_name: str) -> SensorResult | SkipReason:
    """A run of the listing job, unless one is already queued or running; the cursor stays."""
    pending = context.instance.get_runs(
        filters=RunsFilter(
            job_name=job_name,
            statuses=[
                DagsterRunStatus.QUEUED,
                DagsterRunStatus.NOT_STARTED,
                DagsterRunStatus.STARTING,
                DagsterRunStatus.STARTED,
            ],
        ),
        limit=1,
    )
    if pending:
        return SkipReason(f"the upstream listing is being made by run {pending[0].run_id}")
    return SensorResult(run_requests=[RunRequest(job_name=job_name)], cursor=context.cursor)


def _keys_to_run(digests: dict[str, str], known: set[str], seen: dict[str, str]) -> list[str]:
    """The listed keys (in listing order) that need a run: those not yet partitions, and known
    ones whose unit digest differs from the one in the cursor (`seen`). A known key the cursor
    does not hold (no cursor yet, or partitions added by `opencorpus build`) is taken as done."""
    return [key for key, digest in digests.items() if key not in known or seen.get(key, digest) != digest]


def _snapshot_in(cursor: str | None) -> str | None:
    """The name of the digest snapshot the last tick saved; None without a cursor."""
    try:
        snapshot = json.loads(cursor or "{}").get(_CURSOR_FIELD)
    except (ValueError, AttributeError):
        return None
    return snapshot if isinstance(snapshot, str) else None
