"""One build at a time per data home: an exclusive lock that names its holder.

`opencorpus build` and `opencorpus backfill` hold the lock of their home for their whole run;
a second build on the same home fails at once with `HomeLocked`, which names the holder (pid,
host, user, command line, start time), or waits for it (`wait=True`). The corpus steps of a run
launched by the daemon, a sensor or the UI hold it while each runs, waiting for a build that
holds it (`hold_home_for_step`); inside a build's own runs that is a no-op. Readers (`trace`,
`report`, `takedown list/audit`) never take it.

The lock is `fcntl.flock` on `<state>/build.lock` (the state folder is the home itself for a
local home, `OPENCORPUS_STATE` for one in object storage). The kernel releases a flock when its
holder exits, however it exits, so a killed build never leaves the home locked: the next build
takes the lock over, and the killed one's description in the file is simply overwritten. The
file is created once and never removed or replaced (a lock file that is unlinked or renamed
lets two processes each lock a different inode).

Limits (README, "One build at a time"): the lock is only as shared as the state folder. Two
machines building one `s3://` home each have their own state folder and do not see each other's
lock (a lease object in the bucket would be the follow-up). On a state folder shared over NFS,
flock is the best effort (Linux maps it to NFS byte-range locks; a holder on another host cannot
be checked for liveness, so its description is reported as it stands).
"""

from __future__ import annotations

import errno
import fcntl
import getpass
import json
import os
import shlex
import socket
import sys
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import UTC, datetime
from pathlib import Path

from opencorpus_dagster.state.atomic import process_alive

LOCK_NAME = "build.lock"
_POLL_SECONDS = 0.5
# A holder writes its description right after taking the lock; a reader that finds the file
# empty, unparseable or still naming a dead holder looks again for this long.
_DESCRIPTION_WAIT_SECONDS = 2.0


@dataclass(frozen=True)
class LockHolder:
    """Who holds a home's build lock (the JSON content of the lock file)."""

    pid: int
    host: str
    user: str
    command: str
    started: str  # ISO 8601 UTC, seconds: 2026-11-30T17:02:11Z
    home: str = ""  # the data home it builds (homes in object storage may share one state folder)

    @classmethod
    def this_process(cls, home: str = "") -> LockHolder:
        return cls(
            home=home,
            pid=os.getpid(),
            host=socket.gethostname(),
            user=_user(),
            command=_command_line(),
            started=datetime.now(UTC).strftime("%Y-%m-%dT%H:%M:%SZ"),
        )

    def describe(self) -> str:
        """`pid 1234 on host, since 2026-11-30T17:02:11Z: opencorpus build ...`"""
        return f"pid {self.pid} on {self.host}, since {self.started}: {self.command}"


class HomeLocked(Exception):
    """Another build holds the home's lock. `holder` is None when its description could not be
    read (it had just taken the lock, or the file was edited by hand).

    The lock is per state folder; homes in object storage may share one (`OPENCORPUS_STATE`), and
    with it the lineage store, so a build of another home there holds this one too: `home` is
    then the holder's home, and the message says which state folder they share.
    """

    def __init__(self, home: str, lock_file: Path, holder: LockHolder | None) -> None:
        self.home = holder.home if holder and holder.home else home
        self.lock_file = lock_file
        self.holder = holder
        self.held_by = holder.describe() if holder else f"its description in {lock_file} is not readable"
        shared = f"; it shares the state folder {lock_file.parent} with {home}" if self.home != home else ""
        super().__init__(f"another build holds {self.home} ({self.held_by}){shared}; wait for it or stop it")


def lock_file(home) -> Path:
    """The lock file of a `DataHome`: `<state>/build.lock` (always a local path)."""
    return Path(home.state) / LOCK_NAME


@contextmanager
def hold_home(
    home, wait: bool = False, on_wait: Callable[[HomeLocked], None] | None = None
) -> Iterator[LockHolder]:
    """Hold the build lock of `home` (a `DataHome`) for the block; yields this process's description.

    When another process holds it: raise `HomeLocked` naming that process, or with `wait` poll
    until it is free (calling `on_wait` once with the `HomeLocked` that would have been raised).
    A description left by a dead holder is overwritten without a word. Raises OSError when the
    state folder cannot be created or the lock file opened (read-only, not a folder, ...).
    """
    path = lock_file(home)
    held = f"{path}\0{home.root}"
    if held in _HELD:  # held for this home by this process already (or by the build that forked it)
        yield _HELD[held]
        return
    path.parent.mkdir(parents=True, exist_ok=True)
    # O_RDWR without O_TRUNC: opening must not wipe the description of a live holder.
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_CLOEXEC, 0o644)
    try:
        told = False
        while not _try_lock(fd):
            if not told:
                busy = HomeLocked(str(home.root), path, read_holder(path))
                if not wait:
                    raise busy
                if on_wait is not None:
                    on_wait(busy)
                told = True
            time.sleep(_POLL_SECONDS)
        holder = LockHolder.this_process(str(home.root))
        _write_description(fd, holder)
        _HELD[held] = holder
        try:
            yield holder
        finally:
            _HELD.pop(held, None)
            # Emptied before the unlock: a file naming a pid is a file whose pid holds, or held, the lock.
            os.ftruncate(fd, 0)
            fcntl.flock(fd, fcntl.LOCK_UN)
    finally:
        os.close(fd)


# (lock file, home) pairs this process holds, with its description: holding again is a no-op (a CLI build's
# corpus run takes the lock in its steps, in the build's own process or a worker forked from it).
_HELD: dict[str, LockHolder] = {}


@contextmanager
def hold_home_for_step(home, log: Callable[[str], None]) -> Iterator[LockHolder]:
    """A corpus step holds its home's build lock while it runs, waiting (and saying so in `log`)
    while a build holds it: a run the daemon, a sensor or the UI launched never stages or
    publishes a release beside an `opencorpus build`. Inside a build's own run, a no-op."""

    def waiting(busy: HomeLocked) -> None:
        log(f"waiting for the build lock of {busy.home}: {busy.held_by}")

    with hold_home(home, wait=True, on_wait=waiting) as holder:
        yield holder


def read_holder(path: Path) -> LockHolder | None:
    """The description in a lock file held by another process; None when it cannot be read.

    The holder writes it just after taking the lock, so an empty or partial file, or one still
    naming a dead process on this host (the previous, killed holder), is read again for a moment.
    """
    deadline = time.monotonic() + _DESCRIPTION_WAIT_SECONDS
    while True:
        holder = _parse(path)
        current = holder is not None and (holder.host != socket.gethostname() or process_alive(holder.pid))
        if current or time.monotonic() >= deadline:
            return holder
        time.sleep(0.1)


def _try_lock(fd: int) -> bool:
    try:
        fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
    except OSError as error:
        if error.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
            return False
        raise
    return True


def _write_description(fd: int, holder: LockHolder) -> None:
    # The file is never replaced (see the module docstring), so it is rewritten in place.
    os.ftruncate(fd, 0)
    os.pwrite(fd, (json.dumps(asdict(holder)) + "\n").encode("utf-8"), 0)
    os.fsync(fd)


def _parse(path: Path) -> LockHolder | None:
    try:
        data = json.loads(path.read_text(encoding="utf-8"))
        return LockHolder(
            pid=int(data["pid"]), host=str(data["host"]), user=str(data["user"]),
            command=str(data["command"]), started=str(data["started"]), home=str(data.get("home", "")),
        )  # fmt: skip
    except (OSError, ValueError, TypeError, KeyError, AttributeError):
        return None


def _command_line() -> str:
    """`opencorpus build --home ...`: the program's name (not its full path) and its arguments."""
    program = Path(sys.argv[0]).name if sys.argv and sys.argv[0] not in ("", "-c", "-m") else "python"
    return shlex.join([program, *sys.argv[1:]])


def _user() -> str:
    try:
        return getpass.getuser()
    except (KeyError, OSError):  # no passwd entry (a container running as an arbitrary uid)
        return str(os.getuid())
