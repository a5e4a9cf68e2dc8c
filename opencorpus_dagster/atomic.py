"""Publish a file all at once: write a temporary sibling, then rename it over the target.

A reader never sees a half-written file, and a killed writer leaves at most a temporary
`.<name>.tmp-<pid>` (no `.parquet`/`.json` suffix, so no reader's glob picks it up).
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path
from typing import Any

import pyarrow as pa
import pyarrow.parquet as pq


def temporary_sibling(path: Path) -> Path:
    return path.with_name(f".{path.name}.tmp-{os.getpid()}")


def write_text_atomically(path: Path, chunks: Iterable[str] | str) -> Path:
    """Write text (UTF-8, "\\n" newlines) to `path` atomically; chunks are written as they come,
    so a long file is never held in memory. A failure leaves `path` as it was."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
            for chunk in [chunks] if isinstance(chunks, str) else chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path


def write_parquet_atomically(table: pa.Table, path: Path, **options: Any) -> Path:
    """`pq.write_table(table, path, **options)` atomically (zstd unless told otherwise)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = temporary_sibling(path)
    try:
        pq.write_table(table, temporary, **{"compression": "zstd", **options})
        os.replace(temporary, path)
    finally:
        temporary.unlink(missing_ok=True)
    return path
