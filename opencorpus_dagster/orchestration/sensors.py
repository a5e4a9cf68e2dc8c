"""Discovery sensors: new or changed upstream units of a source get runs, and only they do.

One sensor per source that discovers its units (a Common Crawl `warc.paths` listing, Project
Gutenberg's RDF feed, ...). Each tick lists the units through the mirror-aware fetcher, records
the listing in the data home (the runs read their unit from it, not from upstream), adds the
keys not yet known as dynamic partitions and requests one run per new key, and one per known
key whose unit changed since the last tick (a new book inside an existing batch keeps its key).

The known keys live in the Dagster instance (the dynamic partitions); the cursor names a saved
snapshot of each unit's digest as last seen (`<home>/units/<source>.digests/<sha256>.json`, small
cursors even for a 90,000-file crawl), so a restarted daemon neither loses nor repeats work. Without a
cursor (the first tick, a reset one) the keys already known are taken as they are: whoever
added them (`opencorpus build`) ran them.
"""

import json

from dagster import (
    AddDynamicPartitionsRequest,
    DefaultSensorStatus,
    RunRequest,
    SensorDefinition,
    SensorEvaluationContext,
    SensorResult,
    SkipReason,
    sensor,
)

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.discovery import discover_and_record, load_digests, prune_digests, save_digests, unit_digest
from opencorpus_dagster.orchestration.assets import dynamic_partitions_name
from opencorpus_dagster.orchestration.jobs import source_job_name
from opencorpus_dagster.orchestration.resources import CorpusSettings

DISCOVERY_INTERVAL_SECONDS = 3600
_CURSOR_FIELD = "digests_sha256"  # names the snapshot of unit digests (discovery.save_digests)


def discovery_sensor(source: Source) -> SensorDefinition:
    @sensor(
        name=f"{source.name}_discovery",
        job_name=source_job_name(source.name),
        minimum_interval_seconds=DISCOVERY_INTERVAL_SECONDS,
        default_status=DefaultSensorStatus.STOPPED,
        description=f"Lists the upstream units of {source.name} and requests runs for the new or changed ones.",
    )
    def discover(context: SensorEvaluationContext, corpus: CorpusSettings) -> SensorResult:
        home = corpus.data_home()
        units = discover_and_record(source, corpus.fetcher(), home)
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
                RunRequest(run_key=f"{source.name}:{key}:{seen.get(key, 'new')}>{digests[key]}", partition_key=key)
                for key in to_run
            ],
            dynamic_partitions_requests=[AddDynamicPartitionsRequest(name, new)] if new else [],
            cursor=cursor,
        )

    return discover


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
