"""A throwaway Celery cluster on 127.0.0.1 for tests: Redis, PostgreSQL and dagster-celery workers.

Each piece is a context manager that starts a real server in a temporary directory, waits (with a
bound) until it answers, and always stops it, by the process id it started, on the way out.

PostgreSQL refuses to run as root: when the tests run as root, the cluster is initialised and run
as the `postgres` system user (through `runuser`) in a directory that user owns.
"""

from __future__ import annotations

import contextlib
import glob
import os
import pwd
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path

import pytest

BIN = Path(sys.executable).parent
POSTGRES_SYSTEM_USER = "postgres"


def require_cluster_tools() -> dict[str, str]:
    """Paths of redis-server, initdb and pg_ctl; skips (or fails when CI=true) naming what is missing."""
    tools = {"redis-server": shutil.which("redis-server"), **postgres_binaries()}
    missing = [name for name, path in tools.items() if not path]
    for module in ("dagster_celery", "dagster_postgres", "redis"):
        try:
            __import__(module)
        except ImportError:
            missing.append(f"python package {module}")
    if os.geteuid() == 0 and not _system_user_exists(POSTGRES_SYSTEM_USER):
        missing.append(f"system user {POSTGRES_SYSTEM_USER!r} (PostgreSQL will not run as root)")
    if missing:
        message = (
            f"cluster test needs {', '.join(missing)} "
            "(apt-get install redis-server postgresql; pip install -e '.[cluster]')"
        )
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return tools


def postgres_binaries() -> dict[str, str | None]:
    """initdb and pg_ctl: from PATH, else Debian's /usr/lib/postgresql/<version>/bin (newest)."""
    found = {name: shutil.which(name) for name in ("initdb", "pg_ctl")}
    versions = sorted(glob.glob("/usr/lib/postgresql/*/bin"), key=lambda p: int(Path(p).parent.name) if Path(p).parent.name.isdigit() else 0)
    for name, path in found.items():
        if not path and versions and Path(versions[-1], name).exists():
            found[name] = str(Path(versions[-1], name))
    return found


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def wait_until(predicate, timeout: float, what: str, log: Path | None = None) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return
        time.sleep(0.2)
    tail = log.read_text(errors="replace")[-3000:] if log and log.exists() else ""
    raise TimeoutError(f"{what} not ready after {timeout:.0f}s\n{tail}")


def stop_process_group(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM the group the process leads (it was started in a new session) and wait until every
    member is gone (a launcher may exit before its children); SIGKILL whatever is left."""
    group = process.pid
    for sig, wait in ((signal.SIGTERM, timeout), (signal.SIGKILL, 5)):
        try:
            os.killpg(group, sig)
        except ProcessLookupError:
            break
        deadline = time.monotonic() + wait
        while time.monotonic() < deadline and group_members(group):
            process.poll()  # reap the leader
            time.sleep(0.1)
        if not group_members(group):
            break
    process.poll()


def group_members(group: int) -> set[int]:
    """Live (not zombie) processes of a process group."""
    members = set()
    for entry in os.listdir("/proc"):
        if not entry.isdigit():
            continue
        try:
            stat = Path(f"/proc/{entry}/stat").read_text()
        except OSError:
            continue
        fields = stat[stat.rindex(")") + 2:].split()  # after "pid (comm) ": state ppid pgrp ...
        if int(fields[2]) == group and fields[0] != "Z":
            members.add(int(entry))
    return members


@contextmanager
def redis_server(directory: Path) -> Iterator[str]:
    """A Redis server on a free 127.0.0.1 port, without persistence; yields its URL."""
    port = free_port()
    log = directory / "redis.log"
    process = subprocess.Popen(
        [shutil.which("redis-server") or "redis-server", "--bind", "127.0.0.1", "--port", str(port),
         "--save", "", "--appendonly", "no", "--dir", str(directory), "--logfile", str(log)],
        start_new_session=True, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL,
    )
    try:
        wait_until(lambda: _redis_answers(port) or process.poll() is not None, 20, "redis-server", log)
        if process.poll() is not None:
            raise RuntimeError(f"redis-server exited with {process.returncode}: {log.read_text(errors='replace')[-2000:]}")
        yield f"redis://127.0.0.1:{port}"
    finally:
        stop_process_group(process)


def _redis_answers(port: int) -> bool:
    try:
        with socket.create_connection(("127.0.0.1", port), timeout=1) as sock:
            sock.sendall(b"PING\r\n")
            return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False


@dataclass(frozen=True)
class Postgres:
    host: str
    port: int
    user: str
    password: str
    db_name: str

    def dagster_storage(self) -> dict:
        """The `storage:` block of a dagster.yaml keeping runs, events and schedules here.

        The scheme names the driver: dagster-postgres installs psycopg2, while SQLAlchemy 2.1
        maps a bare `postgresql://` to psycopg 3."""
        return {
            "postgres": {
                "postgres_db": {
                    "hostname": self.host,
                    "port": self.port,
                    "username": self.user,
                    "password": self.password,
                    "db_name": self.db_name,
                    "scheme": "postgresql+psycopg2",
                }
            }
        }


@contextmanager
def postgres_server(db_name: str = "dagster") -> Iterator[Postgres]:
    """A fresh PostgreSQL cluster listening on 127.0.0.1 (free port), its unix socket in its own
    temporary directory, with password login for user `dagster` and an empty database `db_name`."""
    binaries = postgres_binaries()
    # Not under pytest's tmp_path: that is private to the test user, and the server may run as another.
    root = Path(tempfile.mkdtemp(prefix="opencorpus-pg-"))
    as_user: list[str] = []
    if os.geteuid() == 0:
        account = pwd.getpwnam(POSTGRES_SYSTEM_USER)
        os.chown(root, account.pw_uid, account.pw_gid)
        as_user = ["runuser", "-u", POSTGRES_SYSTEM_USER, "--"]
    data, log, password = root / "data", root / "server.log", secrets.token_hex(12)
    (root / "password").write_text(password + "\n")
    if as_user:
        os.chown(root / "password", account.pw_uid, account.pw_gid)
    port = free_port()
    started = False
    try:
        _run([*as_user, binaries["initdb"], "-D", str(data), "-U", "dagster", f"--pwfile={root / 'password'}",
              "--auth-host=scram-sha-256", "--auth-local=trust", "-E", "UTF8", "--no-sync", "--no-instructions"])
        options = (f"-c listen_addresses=127.0.0.1 -c port={port} -c unix_socket_directories={root} "
                   "-c fsync=off -c synchronous_commit=off -c full_page_writes=off -c max_connections=200")
        started = True
        _run([*as_user, binaries["pg_ctl"], "-D", str(data), "-l", str(log), "-o", options, "-w", "-t", "60", "start"], log)
        import psycopg2

        connection = psycopg2.connect(host="127.0.0.1", port=port, user="dagster", password=password, dbname="postgres")
        connection.autocommit = True
        with connection.cursor() as cursor:
            cursor.execute(f'CREATE DATABASE "{db_name}"')
        connection.close()
        yield Postgres("127.0.0.1", port, "dagster", password, db_name)
    finally:
        if started:
            subprocess.run([*as_user, binaries["pg_ctl"], "-D", str(data), "-m", "immediate", "-w", "-t", "30", "stop"],
                           check=False, capture_output=True, timeout=60)
        shutil.rmtree(root, ignore_errors=True)


def _run(command: list[str], log: Path | None = None) -> None:
    result = subprocess.run(command, check=False, capture_output=True, text=True, timeout=120)
    if result.returncode != 0:
        tail = log.read_text(errors="replace")[-2000:] if log and log.exists() else ""
        raise RuntimeError(f"{' '.join(command)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}\n{tail}")


@dataclass
class Worker:
    name: str          # the Celery node name's prefix: tasks report `<name>@<host>`
    process: subprocess.Popen
    log: Path

    def process_ids(self) -> set[int]:
        """The worker's processes: the dagster-celery launcher, celery's main process, its pool."""
        return group_members(self.process.pid)


@contextmanager
def celery_workers(names: list[str], config_yaml: Path, env: dict[str, str], directory: Path,
                   concurrency: int = 1) -> Iterator[list[Worker]]:
    """`dagster-celery worker start` per name (`concurrency` pool processes each), waited for until
    each says it is ready; all stopped on exit."""
    workers: list[Worker] = []
    # The launcher execs a bare `celery`: the venv's, even when the venv is not activated.
    env = {**env, "PATH": f"{BIN}{os.pathsep}{env.get('PATH', os.defpath)}"}
    try:
        for name in names:
            log = directory / f"worker-{name}.log"
            with open(log, "wb") as out:
                process = subprocess.Popen(
                    [str(BIN / "dagster-celery"), "worker", "start", "-A", "dagster_celery.app", "-y", str(config_yaml),
                     "--name", name, "--loglevel", "INFO",
                     "--", f"--concurrency={concurrency}", "--without-gossip", "--without-mingle"],
                    env=env, stdout=out, stderr=subprocess.STDOUT, start_new_session=True, cwd=directory,
                )
            workers.append(Worker(name, process, log))
        for worker in workers:
            wait_until(lambda w=worker: b" ready." in w.log.read_bytes() or w.process.poll() is not None,
                       90, f"celery worker {worker.name}", worker.log)
            if worker.process.poll() is not None:
                raise RuntimeError(f"worker {worker.name} exited: {worker.log.read_text(errors='replace')[-3000:]}")
        yield workers
    finally:
        for worker in workers:  # all shut down at once, then wait for each
            with contextlib.suppress(ProcessLookupError):
                os.killpg(worker.process.pid, signal.SIGTERM)
        for worker in workers:
            stop_process_group(worker.process)


def _system_user_exists(name: str) -> bool:
    try:
        pwd.getpwnam(name)
        return True
    except KeyError:
        return False
