"""How `opencorpus build` stops on SIGINT (Ctrl-C), SIGTERM (`kill`, a service manager) or SIGHUP
(its terminal closed).

The first such signal stops the build where it is: no new partition run starts, the running
ones are interrupted (Dagster records them as failed), the partition workers are ended, the
corpus run does not start, and `BuildStopped` reaches the command, which says what was left
undone and exits 128 + the signal's number. What a partition finished before the signal is
kept; nothing is published that was not published before (a publish is one rename; see
`state/releases.py`), so the next build picks up where this one stopped.

While `StopSignals` is entered, its handler raises `BuildStopped` in the build's main thread.
Inside a Dagster run in this process, Dagster holds SIGINT's and SIGTERM's handlers instead (the
run ends as interrupted) and then puts back, for SIGTERM, whatever SIGINT had: the signals that arrived are
also read from a wakeup fd (`signal.set_wakeup_fd`, written for every signal that has a Python
handler, whichever), and `StopSignals.check`, called after each such run, re-arms the handlers
and raises `BuildStopped` for what arrived meanwhile. SIGHUP or SIGINT that the build was
started ignoring (under `nohup`, `cmd &` in a script) stays ignored, as shells intend; an ignored
SIGTERM is not (no shell ignores it on purpose, but Dagster's mapping passes it on: a process
that ran a Dagster run with SIGINT ignored has SIGTERM ignored too, and so do its children).

A partition worker (`worker_started`, the pool's initializer) ends on SIGINT or SIGTERM (inside
a Dagster run, once the run has recorded the interruption), leaves SIGHUP to the build (which
then interrupts it: Dagster does not record a run SIGHUP kills), and ends itself when its parent is
gone, even killed with SIGKILL: a forked worker holds the write end of its own task pipe and
would otherwise wait on it forever.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import threading
import time
from collections.abc import Iterator
from typing import Self

STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM, *((signal.SIGHUP,) if hasattr(signal, "SIGHUP") else ()))
# Those a shell or `nohup` starts a command ignoring on purpose: an inherited SIG_IGN is kept.
SHELL_IGNORED = tuple(signum for signum in STOP_SIGNALS if signum != signal.SIGTERM)
WORKER_ENDING_SIGNALS = (signal.SIGINT, signal.SIGTERM)
# How long interrupted workers get to record their runs as failed before they are killed.
WORKER_GRACE_SECONDS = 10.0
# How often a worker looks for its parent.
PARENT_POLL_SECONDS = 1.0


class BuildStopped(KeyboardInterrupt):
    """The build was stopped by `signum`; `undone` says, in one line, what it left undone."""

    def __init__(self, signum: int, undone: str = "") -> None:
        super().__init__(signum, undone)
        self.signum = signum
        self.undone = undone

    @property
    def signal_name(self) -> str:
        return signal.Signals(self.signum).name

    @property
    def exit_code(self) -> int:
        return 128 + self.signum  # what a shell reports for a process ended by the signal

    def __str__(self) -> str:
        return f"stopped by {self.signal_name}" + (f": {self.undone}" if self.undone else "")


class StopSignals:
    """While entered (in the main thread; elsewhere it does nothing), SIGINT, SIGTERM and SIGHUP stop
    the build by raising `BuildStopped`; on leaving, the handlers and wakeup fd are put back."""

    def __init__(self) -> None:
        self._active = False
        self._held = False
        self._received: int | None = None
        self._previous: dict[int, object] = {}

    def __enter__(self) -> Self:
        if threading.current_thread() is not threading.main_thread():
            return self
        self._reader, self._writer = socket.socketpair()
        self._reader.setblocking(False)
        self._writer.setblocking(False)
        self._previous_wakeup = signal.set_wakeup_fd(self._writer.fileno(), warn_on_full_buffer=False)
        self._previous = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
        self._active = True
        self._arm()
        return self

    def __exit__(self, *exc_info) -> None:
        if not self._active:
            return
        for signum, handler in self._previous.items():
            signal.signal(signum, handler if handler is not None else signal.SIG_DFL)
        signal.set_wakeup_fd(self._previous_wakeup)
        self._reader.close()
        self._writer.close()
        self._active = False

    def check(self) -> None:
        """After a Dagster run in this process: re-arm the handlers the run replaced, and raise
        `BuildStopped` if a stop signal arrived during it."""
        if not self._active:
            return
        self._arm()
        received = self.received()
        if received is not None:
            raise BuildStopped(received)

    def received(self) -> int | None:
        """The first stop signal received so far, if any."""
        if self._active and self._received is None:
            try:
                arrived = self._reader.recv(4096)
            except BlockingIOError:
                arrived = b""
            self._received = next((signum for signum in arrived if signum in STOP_SIGNALS), None)
        return self._received

    def _arm(self) -> None:
        for signum in STOP_SIGNALS:
            if signum in SHELL_IGNORED and self._previous[signum] == signal.SIG_IGN:
                continue
            signal.signal(signum, self._stop)

    @contextlib.contextmanager
    def held(self) -> Iterator[None]:
        """While the build is stopping (ending its workers, a bounded wait): a repeated signal
        is noted, not raised, so it cannot cut the clean-up short and leave a worker behind."""
        self._held = True
        try:
            yield
        finally:
            self._held = False

    def _stop(self, signum: int, _frame) -> None:
        if self._received is None:
            self._received = signum
        if not self._held:
            raise BuildStopped(self._received)


def worker_started(parent: int) -> None:
    """The initializer of a partition worker forked from the build (pid `parent`).

    Outside a Dagster run, SIGINT and SIGTERM end the worker at once (there is nothing of its
    own to save; a traceback per worker would only bury the build's message); inside one,
    Dagster takes them and the run ends as interrupted. The build's wakeup fd is not the
    worker's. A thread ends the worker when the build is gone."""
    signal.set_wakeup_fd(-1)
    for signum in WORKER_ENDING_SIGNALS:
        signal.signal(signum, _exit_now)
    if hasattr(signal, "SIGHUP"):
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    threading.Thread(target=_end_when_orphaned, args=(parent,), name="opencorpus-parent-watch", daemon=True).start()


def _exit_now(signum: int, _frame) -> None:
    os._exit(128 + signum)


def _end_when_orphaned(parent: int) -> None:
    """Once `parent` is gone (this process was re-parented), interrupt this process until it
    ends: the first SIGINT ends the run in progress as interrupted, a later one the idle worker;
    after the grace period it exits whatever it is doing."""
    while os.getppid() == parent:
        time.sleep(PARENT_POLL_SECONDS)
    deadline = time.monotonic() + WORKER_GRACE_SECONDS
    while time.monotonic() < deadline:
        os.kill(os.getpid(), signal.SIGINT)
        time.sleep(PARENT_POLL_SECONDS)
    os._exit(128 + signal.SIGINT)


def end_workers(processes, grace: float = WORKER_GRACE_SECONDS) -> None:
    """Interrupt the worker `processes` (multiprocessing.Process) until they end, for up to
    `grace` seconds, then kill those still there. A SIGINT during a Dagster run ends the run
    as interrupted (Dagster records it as failed); the next, once the worker is idle, ends it."""
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline:
        alive = [process for process in processes if process.is_alive()]
        if not alive:
            return
        for process in alive:
            with contextlib.suppress(ProcessLookupError):  # ended since is_alive
                os.kill(process.pid, signal.SIGINT)
        time.sleep(PARENT_POLL_SECONDS / 5)
    for process in processes:
        if process.is_alive():
            process.kill()
            process.join()
