"""How `opencorpus build` stops (opencorpus_dagster/orchestration/stopping.py).

Real builds in their own session, as a shell starts them, reading the two Stack Exchange dumps
through a gated mirror on 127.0.0.1 (tests/gated_mirror.py): the test sends its signal once
every partition run it expects is inside its download, so the stop always lands mid-partition.
A stop during the corpus run is placed by an OpenLineage endpoint that holds one event.
What must hold: the build ends promptly with 128 + the signal's number and one line saying what
it left undone; no process of it is left; nothing new is published; Dagster records every
interrupted run as failed; the next build finishes the work.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_runner import REPO, build, shard_bytes, start_opencorpus
from gated_mirror import gated_mirror
from test_openlineage import Receiver

from opencorpus_dagster.orchestration.stopping import STOP_SIGNALS, BuildStopped, StopSignals

PARTITIONS = ("coffee.stackexchange.com-2015-03", "beer.stackexchange.com-2017-03")
UNFINISHED = ", ".join(f"stackexchange/{key}" for key in PARTITIONS)

pytestmark = pytest.mark.skipif(not Path("/proc/self/stat").is_file(), reason="reads processes from /proc (Linux)")


@pytest.fixture
def catalog(tmp_path) -> Path:
    folder = tmp_path / "catalog"
    folder.mkdir()
    shutil.copy(REPO / "tests" / "catalogs" / "web" / "stackexchange.yaml", folder)
    return folder


def session_processes(session: int) -> list[str]:
    """`pid command` of every live process in `session` (zombies, already ended, left out)."""
    found = []
    for stat in Path("/proc").glob("[0-9]*/stat"):
        try:
            text = stat.read_text()
        except OSError:  # ended while listed
            continue
        state, _ppid, _group, sid = text[text.rindex(")") + 2 :].split()[:4]
        if int(sid) == session and state != "Z":
            found.append(f"{stat.parent.name} {text[text.index('(') + 1 : text.rindex(')')]}")
    return found


def wait_for(condition, process: subprocess.Popen, what: str, timeout: float = 300) -> None:
    deadline = time.monotonic() + timeout
    while not condition():
        if process.poll() is not None:
            raise AssertionError(f"the build ended ({process.returncode}) before {what}:\n{process.communicate()}")
        assert time.monotonic() < deadline, f"never: {what}"
        time.sleep(0.1)


def stopped_build(home: Path, catalog: Path, mirror: Path, signum: int, *, group: bool, jobs: int, force: bool = False):
    """A build stopped by `signum` (to its process group, as Ctrl-C in a terminal sends it, or to
    its pid, as `kill` does) once its partition runs, `jobs` at a time, are reading upstream:
    (exit code, stdout, stderr, seconds from the signal to its end, the processes of its session
    still there 60 s after its end)."""
    with gated_mirror(mirror) as (url, gate):
        args = ["build", "--catalog", str(catalog), "--mirror", url, "--json", "--jobs", str(jobs)]
        process = start_opencorpus(*args, *(["--force"] if force else []), home=home, new_session=True)
        try:
            wait_for(lambda: gate.held == jobs, process, f"{jobs} partition run(s) were reading upstream")
            signalled = time.monotonic()
            (os.killpg if group else os.kill)(process.pid, signum)
            process.wait(timeout=120)
            seconds = time.monotonic() - signalled
            deadline = time.monotonic() + 60
            while (left := session_processes(process.pid)) and time.monotonic() < deadline:
                time.sleep(0.2)
        finally:
            if session_processes(process.pid):
                os.killpg(process.pid, signal.SIGKILL)  # whatever a failing build left, so the pipes close
    out, err = process.communicate(timeout=60)
    return process.returncode, out, err, seconds, left


def run_statuses(home: Path) -> dict[str, list[str]]:
    """Each partition's runs' statuses in the home's Dagster instance, oldest first."""
    from dagster import DagsterInstance

    with DagsterInstance.from_config(str(home / "dagster")) as instance:
        runs = instance.get_runs()
    statuses: dict[str, list[str]] = {}
    for run in reversed(runs):
        statuses.setdefault(run.tags.get("dagster/partition", run.job_name), []).append(run.status.value)
    return statuses


@contextmanager
def dispositions(**handlers) -> Iterator[None]:
    """These signals' handlers (`SIGHUP=signal.SIG_DFL`, ...) while inside, whatever this test
    process was started with (a CI runner may start it with SIGINT or SIGHUP ignored)."""
    previous = {name: signal.signal(getattr(signal, name), handler) for name, handler in handlers.items()}
    try:
        yield
    finally:
        for name, handler in previous.items():
            signal.signal(getattr(signal, name), handler)


def test_sigterm_stops_a_parallel_build_ending_its_workers(tmp_path, fixture_mirror, catalog):
    home = tmp_path / "home"

    code, out, err, seconds, left = stopped_build(home, catalog, fixture_mirror, signal.SIGTERM, group=False, jobs=2)

    assert code == 128 + signal.SIGTERM == 143
    assert out == ""
    assert err.splitlines()[-1] == (
        f"opencorpus: stopped by SIGTERM: 0 of 2 partition(s) done and kept, not finished: {UNFINISHED}; "
        "the corpus run did not start; the published corpus is unchanged (nothing published yet); "
        "run the build again to finish"
    )
    assert "Traceback" not in err
    assert seconds < 30  # the workers were interrupted, not waited for (the gate never opens)
    assert left == []
    assert not (home / "corpus" / "current.json").exists()
    assert run_statuses(home) == {key: ["FAILURE"] for key in PARTITIONS}

    again = json.loads(build(home, fixture_mirror, catalog).stdout)
    assert again["failed"] == []
    assert sorted(again["processed"]) == sorted(f"stackexchange/{key}" for key in PARTITIONS)
    assert again["release"] == "r000001"


def test_ctrl_c_stops_a_serial_build_and_the_published_release_stays(tmp_path, fixture_mirror, catalog):
    home = tmp_path / "home"
    first = json.loads(build(home, fixture_mirror, catalog).stdout)
    published, pointer = shard_bytes(home), (home / "corpus" / "current.json").read_bytes()

    code, out, err, seconds, left = stopped_build(
        home, catalog, fixture_mirror, signal.SIGINT, group=True, jobs=1, force=True
    )

    assert code == 128 + signal.SIGINT == 130
    assert out == ""
    assert err.splitlines()[-1] == (
        f"opencorpus: stopped by SIGINT: 0 of 2 partition(s) done and kept, not finished: {UNFINISHED}; "
        f"the corpus run did not start; the published corpus is unchanged (release {first['release']}); "
        "run the build again to finish"
    )
    assert seconds < 30
    assert left == []
    assert (home / "corpus" / "current.json").read_bytes() == pointer
    assert shard_bytes(home) == published
    statuses = run_statuses(home)
    interrupted = [key for key in PARTITIONS if statuses[key] == ["SUCCESS", "FAILURE"]]
    assert len(interrupted) == 1 and all(statuses[key] == ["SUCCESS"] for key in PARTITIONS if key not in interrupted)


def test_a_stop_during_the_corpus_run_publishes_nothing_and_keeps_the_partitions(tmp_path, fixture_mirror, catalog):
    home = tmp_path / "home"
    # The corpus run's shards step, its shards staged, reports them; the build is stopped then.
    with Receiver(hold=("corpus.shards", "COMPLETE")) as receiver:
        args = ["build", "--catalog", str(catalog), "--mirror", str(fixture_mirror), "--json"]
        process = start_opencorpus(*args, home=home, env={"OPENLINEAGE_URL": receiver.url}, new_session=True)
        try:
            wait_for(receiver.holding.is_set, process, "the corpus run's shards step reported its shards")
            os.kill(process.pid, signal.SIGTERM)
            out, err = process.communicate(timeout=120)
        finally:
            if process.poll() is None:
                os.killpg(process.pid, signal.SIGKILL)

    assert process.returncode == 143
    assert out == ""
    assert err.splitlines()[-1] == (
        "opencorpus: stopped by SIGTERM: 2 partition(s) done and kept; the corpus run was interrupted; "
        "the published corpus is unchanged (nothing published yet)"
    )
    assert session_processes(process.pid) == []
    assert not (home / "corpus" / "current.json").exists()
    statuses = run_statuses(home)
    assert statuses == {**{key: ["SUCCESS"] for key in PARTITIONS}, "corpus_job": ["FAILURE"]}

    again = json.loads(build(home, fixture_mirror, catalog).stdout)
    assert (again["failed"], again["processed"], again["corpus_unchanged"]) == ([], [], False)
    assert again["release"] == "r000001"
    assert run_statuses(home)["corpus_job"] == ["FAILURE", "SUCCESS"]


def test_the_workers_of_a_killed_build_end_by_themselves(tmp_path, fixture_mirror, catalog):
    home = tmp_path / "home"

    code, _out, _err, _seconds, left = stopped_build(home, catalog, fixture_mirror, signal.SIGKILL, group=False, jobs=2)

    assert code == -signal.SIGKILL
    assert left == []  # each worker saw its parent gone, ended its run and itself
    assert run_statuses(home) == {key: ["FAILURE"] for key in PARTITIONS}


def test_stop_signals_keep_an_ignored_sigint_or_sighup_not_sigterm_and_put_every_handler_back():
    before = {signum: signal.getsignal(signum) for signum in STOP_SIGNALS}
    # As `nohup` starts a command (SIGHUP ignored), and a script's `cmd &` (SIGINT ignored); and
    # SIGTERM ignored as Dagster passes it on (after a run, SIGTERM gets SIGINT's handler).
    with dispositions(SIGINT=signal.SIG_IGN, SIGHUP=signal.SIG_IGN, SIGTERM=signal.SIG_IGN):
        with StopSignals() as stop:
            assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
            os.kill(os.getpid(), signal.SIGINT)  # ignored: no stop
            os.kill(os.getpid(), signal.SIGHUP)
            with pytest.raises(BuildStopped) as stopped:
                os.kill(os.getpid(), signal.SIGTERM)
                time.sleep(1)  # the handler runs before this ends
            assert (stopped.value.signum, stopped.value.exit_code, str(stopped.value)) == (
                signal.SIGTERM, 143, "stopped by SIGTERM"
            )
            assert stop.received() == signal.SIGTERM
        assert signal.getsignal(signal.SIGINT) == signal.getsignal(signal.SIGHUP) == signal.SIG_IGN
        assert signal.getsignal(signal.SIGTERM) == signal.SIG_IGN
    assert {signum: signal.getsignal(signum) for signum in STOP_SIGNALS} == before


def test_a_closed_terminal_stops_the_build():
    with dispositions(SIGHUP=signal.SIG_DFL), StopSignals(), pytest.raises(BuildStopped) as stopped:
        os.kill(os.getpid(), signal.SIGHUP)
        time.sleep(1)
    assert (stopped.value.exit_code, str(stopped.value)) == (129, "stopped by SIGHUP")


def test_a_repeated_signal_does_not_cut_the_stop_short():
    with dispositions(SIGINT=signal.default_int_handler), StopSignals() as stop:
        with stop.held():  # ending the workers
            os.kill(os.getpid(), signal.SIGINT)
            time.sleep(1)  # not raised here
        assert stop.received() == signal.SIGINT
        with pytest.raises(BuildStopped) as stopped:
            stop.check()
    assert str(stopped.value) == "stopped by SIGINT"
