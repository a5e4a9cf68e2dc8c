"""The fixture mirror over real HTTP on 127.0.0.1, answering only once a test opens its gate.

A build reading its upstream through it waits inside its partition runs, mid-download, for as
long as the test needs (to hold the home's lock, to be stopped by a signal while it runs).
"""

from __future__ import annotations

import functools
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path


class Gate(threading.Event):
    """Set: requests are answered. `held`: how many requests are waiting for it now."""

    def __init__(self) -> None:
        super().__init__()
        self._lock = threading.Lock()
        self.held = 0

    def pass_through(self, timeout: float) -> None:
        with self._lock:
            self.held += 1
        try:
            self.wait(timeout=timeout)
        finally:
            with self._lock:
                self.held -= 1


@contextmanager
def gated_mirror(directory: Path) -> Iterator[tuple[str, Gate]]:
    """The mirror folder served over HTTP on 127.0.0.1; no request is answered before the
    yielded gate is set (set on leaving, so no request hangs)."""
    gate = Gate()

    class GatedHandler(SimpleHTTPRequestHandler):
        def log_message(self, *args):
            pass

        def send_head(self):
            gate.pass_through(timeout=300)
            return super().send_head()

        def handle_one_request(self):
            try:
                super().handle_one_request()
            except (BrokenPipeError, ConnectionResetError):
                pass  # the client is gone (a stopped build): nothing to answer

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(GatedHandler, directory=str(directory)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}", gate
    finally:
        gate.set()
        server.shutdown()
        server.server_close()
