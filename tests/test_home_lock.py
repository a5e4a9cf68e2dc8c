"""One build at a time per data home (opencorpus_dagster/state/home_lock.py).

Real `opencorpus build` processes on one home, against the fixture mirror. To be sure the first
build is still running when the second starts, the first reads its upstream through a real HTTP
mirror on 127.0.0.1 that answers only once the test opens its gate: the first build then holds
the lock, waiting for its download, for as long as the test needs.
"""

from __future__ import annotations

import json
import os
import shutil
import socket
import subprocess
import sys
import time
from dataclasses import asdict
from pathlib import Path

import pytest
from cli_runner import REPO, build, run_opencorpus, start_opencorpus
from gated_mirror import gated_mirror

from opencorpus_dagster.cli import EXIT_LOCKED
from opencorpus_dagster.state.home import DataHome, data_home
from opencorpus_dagster.state.home_lock import LOCK_NAME, HomeLocked, hold_home

DEAD_PID = 99999999  # above Linux's pid_max: never a live process
# The enwiki fixture dump: 206 pages, 100 of them redirects (skipped), 12 filtered, 94 kept.
ENWIKI_OUTCOMES = {"filtered": 12, "kept": 94, "skipped": 100}
ENWIKI_PARTITION = "enwiki/enwiki-latest-pages-articles1.xml-p000000010p000030302"


@pytest.fixture
def enwiki_catalog(tmp_path) -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog)
    return catalog


def start_build(home: Path, mirror: str, catalog: Path) -> subprocess.Popen:
    return start_opencorpus("build", "--catalog", str(catalog), "--mirror", mirror, "--json", home=home)


def wait_for_holder(home: Path, process: subprocess.Popen, timeout: float = 180) -> dict:
    """The lock file's description once it names `process` (fails if the process ends first)."""
    deadline = time.monotonic() + timeout
    lock = home / LOCK_NAME
    while time.monotonic() < deadline:
        if process.poll() is not None:
            output = process.communicate()
            raise AssertionError(f"the build ended ({process.returncode}) before it held the lock:\n{output}")
        try:
            description = json.loads(lock.read_text())
        except (OSError, ValueError):
            description = None
        if description and description["pid"] == process.pid:
            return description
        time.sleep(0.2)
    raise AssertionError(f"{lock} never named pid {process.pid}")


def refusal_line(home: Path, holder: dict) -> str:
    return (
        f"opencorpus: another build holds {home} (pid {holder['pid']} on {holder['host']}, "
        f"since {holder['started']}: {holder['command']}); wait for it or stop it"
    )


def test_a_second_concurrent_build_refuses_naming_the_first(tmp_path, fixture_mirror, enwiki_catalog):
    home = tmp_path / "home"
    with gated_mirror(fixture_mirror) as (mirror_url, gate):
        first = start_build(home, mirror_url, enwiki_catalog)
        try:
            holder = wait_for_holder(home, first)
            second = build(home, fixture_mirror, enwiki_catalog, check=False)
        finally:
            gate.set()
        first_out, first_err = first.communicate(timeout=900)

    assert holder["host"] == socket.gethostname()
    assert holder["command"] == (
        f"opencorpus build --catalog {enwiki_catalog} --mirror {mirror_url} --json --home {home}"
    )
    assert holder["started"].endswith("Z") and len(holder["started"]) == len("2026-11-30T17:02:11Z")
    assert second.returncode == EXIT_LOCKED
    assert (second.stdout, second.stderr) == ("", refusal_line(home, holder) + "\n")

    assert first.returncode == 0, first_err
    summary = json.loads(first_out)
    assert summary["failed"] == []
    assert summary["processed"] == [ENWIKI_PARTITION]
    assert (summary["records_in"], summary["outcomes"]) == (206, ENWIKI_OUTCOMES)
    assert (home / LOCK_NAME).read_text() == ""  # released: nobody is named


def test_a_killed_build_leaves_the_lock_to_the_next(tmp_path, fixture_mirror, enwiki_catalog):
    home = tmp_path / "home"
    with gated_mirror(fixture_mirror) as (mirror_url, _gate):
        killed = start_build(home, mirror_url, enwiki_catalog)
        holder = wait_for_holder(home, killed)
        killed.kill()  # SIGKILL: no handler, no cleanup; only the kernel releases the flock
        killed.wait(timeout=60)
    assert json.loads((home / LOCK_NAME).read_text()) == holder  # its description stays behind

    after = build(home, fixture_mirror, enwiki_catalog)

    summary = json.loads(after.stdout)
    assert summary["failed"] == [] and summary["warnings"] == []
    assert summary["processed"] == [ENWIKI_PARTITION]
    assert (summary["records_in"], summary["outcomes"]) == (206, ENWIKI_OUTCOMES)
    assert "another build" not in after.stderr and f"pid {killed.pid}" not in after.stderr
    assert "Traceback" not in after.stderr
    assert (home / LOCK_NAME).read_text() == ""


@pytest.fixture(scope="module")
def built_enwiki(tmp_path_factory, fixture_mirror) -> tuple[Path, Path]:
    """A home where the enwiki catalog was built (home, catalog)."""
    root = tmp_path_factory.mktemp("lock-readers")
    catalog = root / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog)
    build(root / "home", fixture_mirror, catalog)
    return root / "home", catalog


def test_readers_are_not_blocked_while_a_build_holds_the_home(built_enwiki, fixture_mirror):
    home, catalog = built_enwiki
    with hold_home(DataHome(home)) as held:
        shards = run_opencorpus("trace", "--source", "enwiki", "--json", home=home)
        report = run_opencorpus("report", "--source", "enwiki", "--json", home=home)
        refused = build(home, fixture_mirror, catalog, check=False)

    (shard,) = json.loads(shards.stdout)
    assert shard["rows"] == ENWIKI_OUTCOMES["kept"]
    assert shard["shard"].startswith("shards/enwiki/")
    removed = {row["rule"]: row["removed"] for row in json.loads(report.stdout)}
    assert removed["mediawiki.redirect"] == 99
    assert sum(removed.values()) == ENWIKI_OUTCOMES["filtered"] + ENWIKI_OUTCOMES["skipped"]
    assert refused.returncode == EXIT_LOCKED
    assert refused.stderr == refusal_line(home, asdict(held)) + "\n"
    assert held.pid == os.getpid()


def test_wait_waits_for_the_holder_then_builds(built_enwiki, fixture_mirror):
    home, catalog = built_enwiki
    with hold_home(DataHome(home)) as held:
        waiting = start_opencorpus(
            "build", "--catalog", str(catalog), "--mirror", str(fixture_mirror), "--json", "--wait", home=home
        )
        first_line = waiting.stderr.readline()  # blocks until the build has found the lock held
        still_waiting = waiting.poll() is None
    out, err = waiting.communicate(timeout=900)

    assert first_line == f"opencorpus: waiting for another build on {home} ({held.describe()})\n"
    assert still_waiting
    assert waiting.returncode == 0, err
    summary = json.loads(out)
    assert summary["failed"] == []
    assert (summary["processed"], summary["unchanged"]) == ([], [ENWIKI_PARTITION])
    assert (summary["records_in"], summary["outcomes"]) == (206, ENWIKI_OUTCOMES)


def test_a_stale_description_is_taken_over_and_a_live_holder_is_named(tmp_path):
    home = DataHome(tmp_path / "home")
    lock = tmp_path / "home" / LOCK_NAME
    lock.parent.mkdir()
    stale = {
        "pid": DEAD_PID, "host": socket.gethostname(), "user": "x", "command": "opencorpus build",
        "started": "2026-01-01T00:00:00Z",
    }  # fmt: skip
    lock.write_text(json.dumps(stale))

    with hold_home(home) as held:
        assert json.loads(lock.read_text())["pid"] == os.getpid() == held.pid
        holder_code = (
            "import sys\n"
            "from opencorpus_dagster.state.home import DataHome\n"
            "from opencorpus_dagster.state.home_lock import HomeLocked, hold_home\n"
            "try:\n"
            "    with hold_home(DataHome(sys.argv[1])):\n"
            "        print('acquired')\n"
            "except HomeLocked as error:\n"
            "    print(error.holder.pid, error.holder.command, error)\n"
        )
        other = subprocess.run(
            [sys.executable, "-c", holder_code, str(tmp_path / "home")], capture_output=True, text=True, check=True
        )
    assert other.stdout.split(" ", 1)[0] == str(os.getpid())
    assert str(HomeLocked(str(tmp_path / "home"), lock, held)) in other.stdout
    assert lock.read_text() == ""


def test_homes_in_object_storage_lock_their_shared_state_folder(tmp_path, monkeypatch):
    # Two homes in a bucket built from one machine share its state folder (and so its lineage
    # store and Dagster instance): one build at a time there, and the refusal says why.
    monkeypatch.setenv("OPENCORPUS_STATE", str(tmp_path / "state"))
    first, second = data_home("memory://bucket/first"), data_home("memory://bucket/second")
    assert first.is_remote and first.state == second.state == tmp_path / "state"

    with hold_home(first) as held, pytest.raises(HomeLocked) as refused, hold_home(second):
        pass

    assert held.home == "memory://bucket/first"
    assert not first.root.exists()  # the lock is a local file, nothing is written to the bucket
    assert str(refused.value) == (
        f"another build holds memory://bucket/first ({held.describe()}); it shares the state folder "
        f"{tmp_path / 'state'} with memory://bucket/second; wait for it or stop it"
    )
    assert (tmp_path / "state" / LOCK_NAME).read_text() == ""


def test_a_corpus_run_launched_beside_a_build_waits_for_its_lock(built_enwiki, fixture_mirror, tmp_path):
    """A corpus run the daemon, a sensor or the UI starts (here `dagster job execute`, the way a
    run worker executes it) stages nothing while a build holds the home: its first corpus step
    waits, says so in the run's log, and goes on once the lock is free."""
    home, catalog = built_enwiki
    work = tmp_path / "home"
    shutil.copytree(home, work, symlinks=True)
    (work / "takedowns.jsonl").write_text("")  # something for the run to read; the release stays the same
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    env.update(
        OPENCORPUS_HOME=str(work), OPENCORPUS_CATALOG=str(catalog), OPENCORPUS_MIRROR=str(fixture_mirror),
        DAGSTER_HOME=str(work / "dagster"), PYTHONUNBUFFERED="1",
    )  # fmt: skip
    dagster = Path(sys.executable).parent / "dagster"
    log = tmp_path / "run.log"
    current_before = (work / "corpus" / "current.json").read_bytes()
    with hold_home(DataHome(work)) as held, open(log, "wb") as out:
        run = subprocess.Popen(
            [str(dagster), "job", "execute", "-m", "opencorpus_dagster.definitions", "-j", "corpus_job"],
            env=env, cwd=REPO, stdout=out, stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + 240
        while "waiting for the build lock" not in log.read_text(errors="replace"):
            assert run.poll() is None, log.read_text(errors="replace")[-4000:]
            assert time.monotonic() < deadline, "the corpus run never reported waiting for the lock"
            time.sleep(0.5)
        time.sleep(3)
        assert run.poll() is None  # still waiting: nothing staged beside the build
        assert not any(p.name != "current" and not (p / "release.json").exists() for p in (work / "corpus" / "releases").iterdir())
        released_at = time.time()
    assert run.wait(timeout=600) == 0, log.read_text(errors="replace")[-4000:]
    text = log.read_text(errors="replace")
    assert f"waiting for the build lock of {work}: {held.describe()}" in " ".join(text.split())
    assert (work / "corpus" / "current.json").read_bytes() == current_before  # nothing changed: no new release
    # The run's corpus steps started after the lock was let go (the event log of the instance).
    from dagster import DagsterEventType, DagsterInstance

    with DagsterInstance.from_config(str(work / "dagster")) as instance:
        (record,) = instance.get_runs(limit=1)
        successes = instance.get_records_for_run(record.run_id, of_type=DagsterEventType.STEP_SUCCESS).records
    step_ends = {r.event_log_entry.step_key: r.event_log_entry.timestamp for r in successes}
    locked = ("corpus__takedown", "corpus__dedup", "corpus__shards", "corpus__card", "corpus__release")
    assert set(step_ends) >= set(locked)
    assert min(step_ends[step] for step in locked) >= released_at  # (corpus__catalog only reads the catalog)
