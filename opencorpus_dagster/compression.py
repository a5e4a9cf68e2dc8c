"""Open a local file whatever its compression, decided by its magic bytes, not its name.

Mirrors and servers do not always keep the extension honest (a `.txt` served gzipped, a dump
renamed), so the first bytes decide.
"""

from __future__ import annotations

import bz2
import gzip
from pathlib import Path
from typing import BinaryIO

_GZIP_MAGIC = b"\x1f\x8b"
_BZ2_MAGIC = b"BZh"


def compression_of(path: Path) -> str | None:
    with open(path, "rb") as handle:
        head = handle.read(3)
    if head.startswith(_GZIP_MAGIC):
        return "gzip"
    if head.startswith(_BZ2_MAGIC):
        return "bz2"
    return None


def open_decompressed(path: Path) -> BinaryIO:
    """A binary stream of the file's decompressed bytes (gzip, bz2, or plain).

    Truncated archives raise `EOFError` when the reader reaches the cut; callers turn that
    into an error naming the file.
    """
    kind = compression_of(path)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def read_decompressed_bytes(path: Path) -> bytes:
    with open_decompressed(path) as handle:
        return handle.read()


