"""The units a source lists upstream, and the listing last seen, kept in the data home.

Listing a source's units can be expensive (Project Gutenberg's RDF feed is ~100 MB), so whoever
lists them (the discovery sensor, `opencorpus build`) records what it saw in
`<home>/units/<source>.jsonl`, and a run for one partition takes its unit from there instead of
reading the listing again. A record is tied to the connector options it was made with: once the
catalog entry changes, it is ignored and the units are listed afresh.

A listing is a function of the connector options and the files the connector fetched to make it
(the feed, the index and its dumpstatus.json files, a `warc.paths`). The record keeps the sha256
of each (and which URLs were missing), so the next listing first revalidates those files (a
conditional request each, see `Fetcher`) and, when none changed, reuses the recorded units
instead of parsing the feed again.

Plain Python, no Dagster.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path

from opencorpus_dagster.catalog import Source
from opencorpus_dagster.connectors.base import Unit
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.upstream.fetch import FetchedFile, Fetcher, FetchError, RecordingFetcher

MISSING = "missing"  # the sha256 recorded for a URL whose fetch failed while listing


def listing_path(home: DataHome, source_name: str) -> Path:
    """Where the last listing of `source_name` is recorded: `<home>/units/<source>.jsonl`."""
    return home.root / "units" / f"{source_name}.jsonl"


def discover_and_record(source: Source, fetcher: Fetcher, home: DataHome) -> list[Unit]:
    """The source's units listed upstream now (`Connector.discover_units`), recorded in `home`.

    When every file the recorded listing was made from is unchanged upstream, the recorded
    units are returned without listing again. Raises what `discover_units` raises
    (`UnreadableInput`, fetch errors); then the previous record stays as it was.
    """
    previous = _read_record(source, home)
    if _is_current(previous, fetcher):
        return previous.listed
    recorder = _InputRecorder(fetcher)
    units = source.connector.discover_units(recorder)
    keys = {unit.key for unit in units}
    retired = [unit for unit in previous.all_units() if unit.key not in keys] if previous else []
    write_text_atomically(listing_path(home, source.name), _record_lines(source, recorder.inputs, units, retired))
    return units


def current_listing(source: Source, fetcher: Fetcher, home: DataHome) -> list[Unit] | None:
    """The recorded listing, when it was made with the source's current options from files that
    are unchanged upstream (each revalidated); None when the units must be listed again."""
    record = _read_record(source, home)
    return record.listed if _is_current(record, fetcher) else None


def _is_current(record: _Record | None, fetcher: Fetcher) -> bool:
    return record is not None and bool(record.inputs) and _inputs_unchanged(record.inputs, fetcher)


def recorded_units(source: Source, home: DataHome) -> list[Unit]:
    """Every unit recorded for `source` with its current options, in record order ([] if none).

    Units that upstream no longer lists stay in the record (a Wikimedia dump run deleted after a
    few months, a run beyond `latest_runs`): their partitions exist in Dagster, and a backfill
    of one of them must still find what it was made of.
    """
    record = _read_record(source, home)
    return record.all_units() if record else []


def recorded_unit(source: Source, key: str, home: DataHome) -> Unit | None:
    """The unit `key` as last recorded for `source`; None when the record lacks it or was not
    made with the source's current options (none yet, an edited catalog entry, a file this code
    cannot read)."""
    return next((unit for unit in recorded_units(source, home) if unit.key == key), None)


def discovered_unit(source: Source, key: str, fetcher: Fetcher, home: DataHome) -> Unit | None:
    """The unit `key` of a source that discovers its units: from the recorded listing when it
    has the key (no listing is read), else from a fresh listing (recorded in turn); None when
    neither has it."""
    unit = recorded_unit(source, key, home)
    if unit is None:
        unit = next((u for u in discover_and_record(source, fetcher, home) if u.key == key), None)
    return unit


def unit_digest(unit: Unit) -> str:
    """Short hash of what a unit is made of (its files and the connector's extras): it changes
    when a batch gains a member while its key stays the same."""
    content = json.dumps([list(unit.urls), unit.extra], sort_keys=True, default=str)
    return hashlib.sha256(content.encode()).hexdigest()[:16]


# -- what a sensor tick saw -----------------------------------------------------------------------


def save_digests(home: DataHome, source_name: str, digests: dict[str, str]) -> str:
    """Store a tick's unit digests (key -> `unit_digest`) under their own sha256; returns it.

    A sensor cursor names the snapshot by this hash instead of holding the digests: a Common
    Crawl listing has ~90,000 units, and Dagster keeps every tick's cursor. The snapshot is
    immutable, so a tick that fails after saving it leaves the cursor on the previous one.
    """
    text = json.dumps(digests, sort_keys=True, separators=(",", ":"))
    name = hashlib.sha256(text.encode()).hexdigest()
    path = _digests_dir(home, source_name) / f"{name}.json"
    if not path.is_file():
        write_text_atomically(path, text)
    return name


def load_digests(home: DataHome, source_name: str, name: str | None) -> dict[str, str]:
    """The digests saved as `name`; {} when there is none (no cursor yet, a wiped data home)."""
    if not name:
        return {}
    path = _digests_dir(home, source_name) / f"{name}.json"
    try:
        digests = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return {}
    return digests if isinstance(digests, dict) else {}


def prune_digests(home: DataHome, source_name: str, keep: set[str]) -> None:
    """Delete saved digests other than `keep` (the current cursor's and the new one)."""
    folder = _digests_dir(home, source_name)
    for path in folder.glob("*.json") if folder.is_dir() else ():
        if path.stem not in keep:
            path.unlink(missing_ok=True)


def _digests_dir(home: DataHome, source_name: str) -> Path:
    return home.root / "units" / f"{source_name}.digests"


# -- the record ----------------------------------------------------------------------------------


@dataclass
class _Record:
    inputs: dict[str, str]  # URL -> sha256 (or MISSING) of the files the listing was made from
    listed: list[Unit] = field(default_factory=list)  # as upstream listed them last time
    retired: list[Unit] = field(default_factory=list)  # recorded before, no longer listed

    def all_units(self) -> list[Unit]:
        return self.listed + self.retired


class _InputRecorder(RecordingFetcher):
    """A fetcher for `discover_units` that notes the sha256 of every file fetched (the last
    fetch of a URL wins), and the URLs that could not be fetched (a dump run's missing
    dumpstatus.json is an input too: when it appears, the listing changes)."""

    def __init__(self, fetcher: Fetcher):
        super().__init__(fetcher)
        self.inputs: dict[str, str] = {}

    def fetch(self, url: str, refresh: bool = False, *, local_root: Path | None = None) -> FetchedFile:
        try:
            fetched = super().fetch(url, refresh, local_root=local_root)
        except FetchError:
            self.inputs[url] = MISSING
            raise
        self.inputs[url] = fetched.sha256
        return fetched


def _inputs_unchanged(inputs: dict[str, str], fetcher: Fetcher) -> bool:
    for url, recorded in inputs.items():
        try:
            current = fetcher.fetch(url, refresh=True).sha256
        except FetchError:
            current = MISSING
        if current != recorded:
            return False
    return True


def _read_record(source: Source, home: DataHome) -> _Record | None:
    """The record made with the source's current options; None when it is missing, was made
    with other options or cannot be read (then the caller lists afresh, which rewrites it)."""
    path = listing_path(home, source.name)
    try:
        if not path.is_file():
            return None
        with path.open(encoding="utf-8") as lines:
            header = json.loads(next(lines, "{}"))
            if header.get("options_sha256") != _options_digest(source):
                return None
            record = _Record(inputs=dict(header.get("inputs") or {}))
            for line in lines:
                entry = json.loads(line)
                unit = Unit(key=entry["key"], urls=tuple(entry["urls"]), extra=entry["extra"])
                (record.listed if entry.get("listed", True) else record.retired).append(unit)
        return record
    except (OSError, ValueError, LookupError, TypeError, AttributeError):
        return None


def _options_digest(source: Source) -> str:
    # Every option, listing ones included: a changed `books` or `batch_size` changes the units.
    options = {"kind": source.spec.kind, "options": source.connector.options.model_dump(mode="json")}
    return hashlib.sha256(json.dumps(options, sort_keys=True).encode()).hexdigest()


def _record_lines(source: Source, inputs: dict[str, str], listed: list[Unit], retired: list[Unit]) -> Iterator[str]:
    """The record as JSON lines: a header (source, options digest, inputs, time), then one unit
    per line, produced as they are written (a listing can be long)."""
    header = {
        "source": source.name,
        "options_sha256": _options_digest(source),
        "inputs": inputs,
        "listed_at": datetime.now(UTC).replace(microsecond=0).isoformat(),
    }
    yield json.dumps(header, sort_keys=True) + "\n"
    for is_listed, units in ((True, listed), (False, retired)):
        for unit in units:
            content = {"key": unit.key, "urls": list(unit.urls), "extra": unit.extra, "listed": is_listed}
            yield json.dumps(content, sort_keys=True, default=str) + "\n"
