"""The data home: where one corpus's files live (downloads, stage outputs, shards, lineage).

    <home>/downloads/<host>/<path>            fetched upstream files (cache)
    <home>/raw/<source>/<partition>.parquet   raw records of one partition
    <home>/documents/<source>/<partition>.parquet
    <home>/dedup/                             duplicate decisions, MinHash index
    <home>/corpus/releases/<id>/                manifest.json, shards/, card, release.json (releases.py)
    <home>/corpus/current.json                  which release is published
    <home>/lineage/                           the lineage store: immutable Parquet files per run
    <home>/dagster/                           DAGSTER_HOME, unless set elsewhere

Set with `--home` or `OPENCORPUS_HOME`; the default is `./opencorpus-data`.

The home may be an fsspec URL (`s3://bucket/corpus`, `gs://...`): then stage files, shards,
manifest, card and lineage files are written there, and what must be a local file (Dagster's
instance folder, the download cache, the build lock) lives in a local state folder,
`OPENCORPUS_STATE` (default `./opencorpus-state`), laid out as above.
"""

from __future__ import annotations

import hashlib
import os
import re
from dataclasses import dataclass
from pathlib import Path

from opencorpus_dagster.state.storage import is_remote, resolve_location

HOME_ENV = "OPENCORPUS_HOME"
STATE_ENV = "OPENCORPUS_STATE"
DEFAULT_HOME = "opencorpus-data"
DEFAULT_STATE = "opencorpus-state"
_SAFE_KEY = re.compile(r"^[A-Za-z0-9][A-Za-z0-9._@+=-]*$")


def data_home(explicit: str | Path | None = None) -> DataHome:
    """The home named by `explicit`, else `OPENCORPUS_HOME`, else `./opencorpus-data`."""
    root = resolve_location(explicit or os.environ.get(HOME_ENV) or DEFAULT_HOME)
    if not is_remote(root):
        return DataHome(root)
    return DataHome(root, Path(os.environ.get(STATE_ENV) or DEFAULT_STATE).resolve())


def check_partition_key(key: str) -> str:
    """Partition keys become file names: refuse anything that could escape a folder."""
    if not _SAFE_KEY.match(key) or ".." in key:
        raise ValueError(
            f"partition key {key!r} must be letters, digits and ._@+=- (no '/', no '..')"
        )
    return key


_MAX_KEY_CHARS = 120  # keys become file names (plus `.parquet`) and Dagster partition names


def readable_key(name: str, fallback: str) -> str:
    """A partition key made from an upstream file name that passes `check_partition_key`:
    characters outside letters, digits and `._-` become `_`, dot runs (`..`) one dot, a
    leading non-alphanumeric is dropped, and a name too long is cut and given a hash of the
    whole; `fallback` when nothing is left. Readable names come out as they are."""
    key = re.sub(r"\.{2,}", ".", re.sub(r"[^A-Za-z0-9._-]", "_", name)).lstrip("._-")
    if len(key) > _MAX_KEY_CHARS:
        key = f"{key[: _MAX_KEY_CHARS - 17]}-{hashlib.sha256(name.encode()).hexdigest()[:16]}"
    return key or fallback


@dataclass(frozen=True)
class DataHome:
    root: Path  # a local folder, or a `UPath` in object storage
    local_state: Path | None = None  # where local-only files go; None: under `root`

    @property
    def state(self) -> Path:
        """The local folder for Dagster's instance, the download cache and the build lock."""
        return self.local_state or self.root

    @property
    def is_remote(self) -> bool:
        return is_remote(self.root)

    @property
    def downloads(self) -> Path:
        return self.state / "downloads"

    @property
    def lineage_dir(self) -> Path:
        """The lineage store's folder (`LineageStore.at`): immutable Parquet files, in the home
        itself (local or object storage), so every writer and reader sees the same files."""
        return self.root / "lineage"

    @property
    def lineage_db(self) -> Path:
        """The lineage store (the name of the days it was one DuckDB file): `lineage_dir`."""
        return self.lineage_dir

    @property
    def dagster_home(self) -> Path:
        return self.state / "dagster"

    @property
    def dedup_dir(self) -> Path:
        return self.root / "dedup"

    @property
    def removed_records(self) -> Path:
        """(source, partition, doc_id) of taken-down records, with the request that removed them."""
        return self.dedup_dir / "removed.parquet"

    @property
    def takedowns(self) -> Path:
        return self.root / "takedowns.jsonl"

    @property
    def corpus_dir(self) -> Path:
        return self.root / "corpus"

    def raw_path(self, source: str, partition: str) -> Path:
        return self.root / "raw" / source / f"{check_partition_key(partition)}.parquet"

    def documents_path(self, source: str, partition: str) -> Path:
        return (
            self.root
            / "documents"
            / source
            / f"{check_partition_key(partition)}.parquet"
        )
