"""The user's cache folders: what a process derived once from files that do not change
(a parsed catalog file, the decompressed language model), kept for the next process.

Each cache has its own folder, `$XDG_CACHE_HOME/opencorpus/<name>` (`~/.cache/...` without
XDG_CACHE_HOME), or the folder its environment variable names; "off" there turns it off.
A cache is only ever read from a folder that this user owns and that no one else can write
(`trusted`), and anything found there is checked before use: a cache can make a command
faster, never change what it computes.
"""

from __future__ import annotations

import os
from pathlib import Path

OFF = "off"


def cache_folder(env: str, name: str) -> Path | None:
    """The folder of the cache `name` (the value of the variable `env` when set), or None when off."""
    setting = os.environ.get(env, "")
    if setting == OFF:
        return None
    if setting:
        return Path(setting)
    try:
        base = os.environ.get("XDG_CACHE_HOME") or (Path.home() / ".cache")
    except (RuntimeError, KeyError):  # no HOME and no passwd entry (a bare container): no cache
        return None
    return Path(base) / "opencorpus" / name


def trusted(folder: Path, *files: Path) -> bool:
    """True when this user owns `folder` and `files` (in it), and no one else can write in
    `folder`: then no one else can have put or replaced what is there, whatever the files' modes."""
    try:
        info = folder.stat()
        if info.st_uid != os.getuid() or info.st_mode & 0o022:
            return False
        return all(path.stat().st_uid == os.getuid() for path in files)
    except OSError:
        return False


def prune(folder: Path, pattern: str, max_bytes: int) -> list[Path]:
    """Remove the files of `folder` matching `pattern` that were used least recently (oldest
    modification time first; a reader marks a file it uses with `os.utime`) until the others
    hold at most `max_bytes`; returns what was removed. A cache must not grow without end: each
    edit of a catalog file, and each new version of the code, adds entries."""
    entries = []
    for path in folder.glob(pattern):
        try:
            info = path.stat()
        except OSError:
            continue
        entries.append((info.st_mtime_ns, info.st_size, path))
    entries.sort(key=lambda entry: entry[0], reverse=True)
    kept_bytes = 0
    removed = []
    for _, size, path in entries:
        kept_bytes += size
        if kept_bytes > max_bytes:
            path.unlink(missing_ok=True)
            removed.append(path)
    return removed
