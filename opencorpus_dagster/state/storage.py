"""Stage files on local disk or in object storage, behind `pathlib`-style paths.

The data home is a folder or an fsspec URL (`s3://bucket/corpus`, `gs://...`, `az://...`).
Code that reads or writes stage files (raw, documents, dedup, shards, manifest, card) uses
paths from `DataHome`: a `pathlib.Path` for a local home, a `upath.UPath` for a remote one.
Both answer `/`, `glob`, `is_file`, `open`, `read_text`, `stat` and `unlink` the same way; what
differs is handled here: how pyarrow and DuckDB are pointed at a remote file (through the same
fsspec filesystem, so credentials and endpoints come from one place: the fsspec/botocore
configuration, e.g. `AWS_ENDPOINT_URL`), and how a file is published at once (see
`opencorpus_dagster.state.atomic`).

Listings are not cached (`use_listings_cache=False`): several processes write the same home,
and a stale listing would hide a partition another run has just published.
"""

from __future__ import annotations

import hashlib
import os
import threading
from pathlib import Path
from typing import Any

import duckdb
import fsspec
import pyarrow as pa
import pyarrow.parquet as pq
from fsspec.core import split_protocol
from upath import UPath

LOCAL_PROTOCOLS = frozenset({None, "", "file", "local"})


def resolve_location(location: str | Path) -> Path:
    """A local folder (absolute `Path`) or, for an fsspec URL with a remote protocol, a `UPath`."""
    text = str(location)
    protocol, rest = split_protocol(text)
    if protocol in LOCAL_PROTOCOLS:
        return Path(rest if protocol else text).expanduser().resolve()
    return UPath(text, use_listings_cache=False)


def is_remote(path: Path | str) -> bool:
    if isinstance(path, str):
        return split_protocol(path)[0] not in LOCAL_PROTOCOLS
    return isinstance(path, UPath) and path.protocol not in LOCAL_PROTOCOLS


def _arrow(path: Path) -> tuple[str, Any]:
    """(path, filesystem) arguments for pyarrow: the fsspec filesystem for a remote path."""
    return (path.path, path.fs) if is_remote(path) else (str(path), None)


def parquet_file(path: Path) -> pq.ParquetFile:
    source, filesystem = _arrow(path)
    return pq.ParquetFile(source, filesystem=filesystem)


def read_parquet(path: Path, **options: Any) -> pa.Table:
    source, filesystem = _arrow(path)
    return pq.read_table(source, filesystem=filesystem, **options)


def read_cached_table(path: Path, schema: pa.Schema) -> pa.Table:
    """The rows of a cache file; none when it is missing, unreadable or of another schema (a
    cache is made again, never trusted)."""
    try:
        if path.is_file():
            table = read_parquet(path)
            if table.schema.equals(schema):
                return table
    except (OSError, pa.ArrowException):
        pass
    return schema.empty_table()


def read_parquet_schema(path: Path) -> pa.Schema:
    source, filesystem = _arrow(path)
    return pq.read_schema(source, filesystem=filesystem)


def parquet_files(folder: Path, pattern: str) -> list[str]:
    """Sorted paths (as text, for DuckDB's `read_parquet(?)`, bound as a parameter) of the files
    under `folder` matching `pattern` (`*/*.parquet`, `**/*.parquet`); [] when there are none.

    The listing is made here rather than by a DuckDB glob because DuckDB would read glob
    characters in `folder` itself: a home named `data[1]` would match no file at all. It lists
    what that glob listed (an atomic write's temporary, `.<name>.tmp-<pid>`, has no `.parquet`).
    """
    if not folder.is_dir():
        return []
    return sorted(str(path) for path in folder.glob(pattern))


def modified_stamp(path: Path) -> str:
    """Size and modification time of a file: changes whenever the file is rewritten."""
    stat = path.stat()
    return f"{stat.st_size}:{stat.st_mtime}"


def duckdb_connect(*locations: Path | str, **options: Any) -> duckdb.DuckDBPyConnection:
    """A DuckDB connection that can read the given locations (paths, URLs or globs).

    Without options it is a new connection (a cursor) to this process's in-memory database:
    its temporary tables, views and macros and its registered Arrow tables are its own, as on a
    database of its own, and it costs microseconds, where starting a DuckDB database costs about
    25 ms of CPU (DuckDB 2.0) and a build opens a hundred connections. So nothing that outlives
    a connection (a table or view that is not TEMP, an ATTACH) is made on one. With options (a
    database file, a config) it is `duckdb.connect(**options)`, a database of its own.

    DuckDB reads local files itself; for a remote location the same fsspec filesystem the
    pipeline writes with is registered on the connection (DuckDB then needs no extension).
    """
    connection = duckdb.connect(**options) if options else _process_database().cursor()
    register_locations(connection, *locations)
    return connection


_database: tuple[int, duckdb.DuckDBPyConnection] | None = None  # (pid, this process's in-memory database)
_database_lock = threading.Lock()


def _process_database() -> duckdb.DuckDBPyConnection:
    """This process's in-memory database: made again in a forked child (a DuckDB database does
    not survive a fork) and after a fatal error invalidated it (a full disk while spilling)."""
    global _database
    with _database_lock:
        if _database is not None and _database[0] == os.getpid():
            try:
                with _database[1].cursor() as probe:
                    probe.execute("SELECT 1").fetchall()
                return _database[1]
            except duckdb.Error:
                pass
        _database = (os.getpid(), duckdb.connect())
        return _database[1]


def close_process_database() -> None:
    """Close this process's in-memory database (its threads end); the next connection makes
    another. Called before forking workers: a child must not start with a copy of a database
    whose threads it does not have."""
    global _database
    with _database_lock:
        if _database is not None and _database[0] == os.getpid():
            _database[1].close()
        _database = None


def register_locations(connection: duckdb.DuckDBPyConnection, *locations: Path | str) -> None:
    """Let `connection` read remote `locations` through fsspec; local ones need nothing."""
    registered = set(connection.list_filesystems())
    for location in locations:
        if not is_remote(location):
            continue
        filesystem = location.fs if isinstance(location, UPath) else _filesystem(str(location))
        if filesystem.protocol and _name(filesystem) not in registered:
            connection.register_filesystem(filesystem)
            registered.add(_name(filesystem))


def _filesystem(url: str) -> fsspec.AbstractFileSystem:
    protocol, _ = split_protocol(url)
    return fsspec.filesystem(protocol, use_listings_cache=False)


def _name(filesystem: fsspec.AbstractFileSystem) -> str:
    protocol = filesystem.protocol
    return protocol[0] if isinstance(protocol, tuple | list) else protocol


def sha256_file(path: Path) -> str:
    """The sha256 (hex) of a file, local or fsspec, read in 1 MiB chunks."""
    hasher = hashlib.sha256()
    with path.open("rb") as handle:
        while chunk := handle.read(1 << 20):
            hasher.update(chunk)
    return hasher.hexdigest()
