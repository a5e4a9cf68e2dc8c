"""Publish a file all at once: a reader never sees a half-written file.

On local disk the file is written as a temporary sibling and renamed over the target; a killed
writer leaves at most a temporary `.<name>.tmp-<pid>` (no `.parquet`/`.json` suffix, so no
reader's glob picks it up). In object storage (an fsspec data home) there is no rename: the
file is written to local scratch and uploaded in one PUT (a multipart upload becomes visible
only when it completes), so the object appears whole or not at all.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.storage import is_remote


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


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
