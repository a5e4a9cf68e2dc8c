"""Open a local file whatever its compression, decided by its magic bytes, not its name.

Mirrors and servers do not always keep the extension honest (a `.txt` served gzipped, a dump
renamed), so the first bytes decide.
"""

from __future__ import annotations

import bz2
import gzip
import io
from pathlib import Path
from typing import BinaryIO

from opencorpus_dagster.upstream.limits import LimitExceeded

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


def open_decompressed(path: Path, max_bytes: int | None = None, what: str = "file_bytes") -> BinaryIO:
    """A binary stream of the file's decompressed bytes (gzip, bz2, or plain).

    Truncated archives raise `EOFError` when the reader reaches the cut; callers turn that
    into an error naming the file. With `max_bytes`, reading more than that many decompressed
    bytes raises `LimitExceeded(what, ...)` (a decompression bomb stops there).
    """
    stream = _open_by_magic(path)
    return stream if max_bytes is None else CountingReader(stream, max_bytes, what)


def _open_by_magic(path: Path) -> BinaryIO:
    kind = compression_of(path)
    if kind == "gzip":
        return gzip.open(path, "rb")
    if kind == "bz2":
        return bz2.open(path, "rb")
    return open(path, "rb")


def read_decompressed_bytes(path: Path, max_bytes: int | None = None, what: str = "file_bytes") -> bytes:
    """The whole decompressed file; over `max_bytes` raises `LimitExceeded(what, ...)` having
    read (and held) at most `max_bytes + 1` bytes."""
    with open_decompressed(path, max_bytes, what) as handle:
        return handle.read()


class CountingReader(io.RawIOBase):
    """A read-only binary stream that raises `LimitExceeded(what, limit, seen)` once more than
    `limit` bytes have been read through it. Reads ask the wrapped stream for at most
    `limit + 1 - seen` bytes, so a caller's `read()` never holds more than `limit + 1` bytes."""

    def __init__(self, stream: BinaryIO, limit: int, what: str = "file_bytes"):
        super().__init__()
        self._stream = stream
        self.limit = limit
        self.what = what
        self.seen = 0

    def readable(self) -> bool:
        return True

    def _count(self, data: bytes) -> bytes:
        self.seen += len(data)
        if self.seen > self.limit:
            raise LimitExceeded(self.what, self.limit, self.seen)
        return data

    def _allowed(self, size: int | None) -> int:
        room = self.limit + 1 - self.seen
        return room if size is None or size < 0 else min(size, room)

    def read(self, size: int | None = -1) -> bytes:
        if size is None or size < 0:
            parts = []
            while chunk := self.read(1 << 20):
                parts.append(chunk)
            return b"".join(parts)
        return self._count(self._stream.read(self._allowed(size)))

    def readinto(self, buffer) -> int:
        data = self.read(len(buffer))
        buffer[: len(data)] = data
        return len(data)

    def readline(self, size: int | None = -1) -> bytes:
        return self._count(self._stream.readline(self._allowed(size)))

    def close(self) -> None:
        if not self.closed:
            self._stream.close()
        super().close()


