"""The units a source lists upstream, and the listing last seen, kept in the data home.

Listing a source's units can be expensive (Project Gutenberg's RDF feed is ~100 MB), so whoever
lists them (the discovery sensor, `opencorpus build`) records what it saw in
`<home>/units/<source>.jsonl`, and a run for one partition takes its unit from there instead of
reading the listing again. A record is tied to the connector options it was made with: once the
catalog entry changes, it is ignored and the units are listed afresh.

Plain Python, no Dagster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path

from opencorpus_dagster.atomic import write_text_atomically
from opencorpus_dagster.catalog import Source
from opencorpus_dagster.connectors.base import Unit
from opencorpus_dagster.fetch import Fetcher
from opencorpus_dagster.home import DataHome


def listing_path(home: DataHome, source_name: str) -> Path:
    """Where the last listing of `source_name` is recorded: `<home>/units/<source>.jsonl`."""
    return home.root / "units" / f"{source_name}.jsonl"


def discover_and_record(source: Source, fetcher: Fetcher, home: DataHome) -> list[Unit]:
    """The source's units listed upstream now (`Connector.discover_units`), recorded in `home`.

    Raises what `discover_units` raises (`UnreadableInput`, fetch errors); then the previous
    record stays as it was.
    """
    units = source.connector.discover_units(fetcher)
    listed = {unit.key for unit in units}
    retired = [unit for unit in recorded_units(source, home) if unit.key not in listed]
    write_text_atomically(listing_path(home, source.name), _listing_lines(source, units + retired))
    return units


def recorded_units(source: Source, home: DataHome) -> list[Unit]:
    """Every unit recorded for `source` with its current options, in record order ([] if none).

    Units that upstream no longer lists stay in the record (a Wikimedia dump run deleted after a
    few months, a book batch beyond `latest_runs`): their partitions exist in Dagster, and a
    backfill of one of them must still find what it was made of.
    """
    return list(_read_record(source, home))


def recorded_unit(source: Source, key: str, home: DataHome) -> Unit | None:
    """The unit `key` as last recorded for `source`, read line by line; None when the record
    lacks it or was not made with the source's current options (none yet, an edited catalog
    entry, a file this code cannot read)."""
    return next((unit for unit in _read_record(source, home) if unit.key == key), None)


def discovered_unit(source: Source, key: str, fetcher: Fetcher, home: DataHome) -> Unit | None:
    """The unit `key` of a source that discovers its units: from the recorded listing when it
    has the key (no listing is read), else from a fresh listing (recorded in turn); None when
    neither has it."""
    unit = recorded_unit(source, key, home)
    if unit is None:
        unit = next((u for u in discover_and_record(source, fetcher, home) if u.key == key), None)
    return unit


def _read_record(source: Source, home: DataHome) -> Iterator[Unit]:
    """The recorded units, read line by line; nothing when the record is missing, was made with
    other options or cannot be read (then the caller lists afresh, which rewrites it)."""
    path = listing_path(home, source.name)
    try:
        if not path.is_file():
            return
        with path.open(encoding="utf-8") as lines:
            header = json.loads(next(lines, "{}"))
            if header.get("options_sha256") != _options_digest(source):
                return
            units = [json.loads(line) for line in lines]
        for unit in units:
            yield Unit(key=unit["key"], urls=tuple(unit["urls"]), extra=unit["extra"])
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return


def unit_digest(unit: Unit) -> str:
    """Short hash of what a unit is made of (its files and the connector's extras): it changes
    when a batch gains a member while its key stays the same."""
    content = json.dumps([list(unit.urls), unit.extra], sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


def _options_digest(source: Source) -> str:
    # Every option, listing ones included: a changed `books` or `batch_size` changes the units.
    options = {"kind": source.spec.kind, "options": source.connector.options.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def _listing_lines(source: Source, units: list[Unit]) -> Iterator[str]:
    """The record as JSON lines: a header (source, options digest, time), then one unit per line,
    produced as they are written (a listing can be long)."""
    header = {
        "source": source.name,
        "options_sha256": _options_digest(source),
        "listed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    yield json.dumps(header, sort_keys=True) + "\n"
    for unit in units:
        content = {"key": unit.key, "urls": list(unit.urls), "extra": unit.extra}
        yield json.dumps(content, sort_keys=True, default=str) + "\n"
