"""Publish a file all at once: a reader never sees a half-written file.

On local disk the file is written as a temporary sibling and renamed over the target; a killed
writer leaves at most a temporary `.<name>.tmp-<pid>` (no `.parquet`/`.json` suffix, so no
reader's glob picks it up). In object storage (an fsspec data home) there is no rename: the
file is written to local scratch and uploaded in one PUT (a multipart upload becomes visible
only when it completes), so the object appears whole or not at all.
"""

from __future__ import annotations

import fnmatch
import os
import re
import tempfile
import time
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.state.storage import is_remote

TEMPORARY_PATTERN = ".*.tmp-*"  # what `temporary_sibling` names, as a glob

# The writer's pid ends the name of a temporary file: `.x.parquet.tmp-123`, `file.part-123`.
_WRITER_PID = re.compile(r"-(\d+)$")


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def remove_stale_temporaries(
    folder: Path, pattern: str = TEMPORARY_PATTERN, max_age_hours: float | None = None, skip: Iterable[Path] = ()
) -> list[Path]:
    """Remove the temporary files a killed writer left under `folder` (recursively); returns them.

    A file matches `pattern` (a glob on the name: `.*.tmp-*` for `published`, `*.part-*` for
    the download cache's partial files) and its name ends in `-<pid>`. It is stale when no
    process with that pid is alive on this machine (`os.kill(pid, 0)`), so a running writer's
    file is never touched, whatever its age. With `max_age_hours`, a file is also required to be
    at least that old: for a folder shared by several machines, where a pid says nothing.
    Files without a trailing pid, folders, and a missing `folder` are left alone. Files that
    vanish meanwhile (their writer finished) are skipped. Folders in `skip` are not walked (a
    download cache of many thousand files that `published` never writes into). Not for remote
    (fsspec) folders: `published` writes no temporary file there.
    """
    if is_remote(folder) or not Path(folder).is_dir():
        return []
    removed = []
    now = time.time()
    for path in _walk(Path(folder), pattern, {Path(s) for s in skip}):
        if not left_by_dead_writer(path):
            continue
        try:
            if not path.is_file():
                continue
            if max_age_hours is not None and now - path.stat().st_mtime < max_age_hours * 3600:
                continue
            path.unlink()
        except FileNotFoundError:
            continue
        removed.append(path)
    return removed


def left_by_dead_writer(path: Path) -> bool:
    """Whether `path`'s name ends in `-<pid>` of a process no longer alive on this machine."""
    found = _WRITER_PID.search(path.name)
    return found is not None and not process_alive(int(found.group(1)))


def _walk(folder: Path, pattern: str, skip: set[Path]) -> Iterator[Path]:
    """The files under `folder` whose name matches `pattern`, not descending into `skip`."""
    for current, folders, files in os.walk(folder):
        here = Path(current)
        folders[:] = [name for name in folders if here / name not in skip]
        yield from (here / name for name in fnmatch.filter(files, pattern))


def process_alive(pid: int) -> bool:
    """True unless no process with `pid` runs on this machine (a writer's pid ends its temp file's name)."""
    if pid <= 0:
        return True  # not a real writer's pid (0 and -n mean process groups to os.kill): keep the file
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True  # alive, owned by another user
    except OverflowError:
        return False  # larger than any pid the kernel hands out
    return True


@contextmanager
def published(target: Path) -> Iterator[Path]:
    """A local file to write; when the block succeeds it becomes `target` in one step.

    When the block raises, the temporary file is removed and `target` stays as it was.
    """
    if is_remote(target):
        with tempfile.TemporaryDirectory(prefix="opencorpus-publish-") as scratch:
            temporary = Path(scratch) / target.name
            yield temporary
            target.fs.put_file(str(temporary), target.path)
        return
    target.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(target)
    try:
        yield temporary
        with open(temporary, "rb+") as handle:
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    finally:
        temporary.unlink(missing_ok=True)


def write_text_atomically(path: Path, chunks: Iterable[str] | str) -> Path:
    """Write text (UTF-8, "\\n" newlines) to `path` atomically; chunks are written as they come,
    so a long file is never held in memory. A failure leaves `path` as it was."""
    with (
        published(path) as temporary,
        open(temporary, "w", encoding="utf-8", newline="\n") as handle,
    ):
        handle.writelines([chunks] if isinstance(chunks, str) else chunks)
    return path


def write_parquet_atomically(table: pa.Table, path: Path, **options: Any) -> Path:
    """`pq.write_table(table, path, **options)` atomically (zstd unless told otherwise)."""
    with published(path) as temporary:
        pq.write_table(table, temporary, **{"compression": "zstd", **options})
    return path
