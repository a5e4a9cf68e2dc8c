"""Operational errors at the CLI boundary: one line on stderr, a documented exit code, no traceback
unless --debug. Runs the real `opencorpus` console script against real failures (a never-built
home, a path under a file, a read-only and a full tmpfs, a DuckDB lock held by another process)."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import time
from contextlib import contextmanager
from pathlib import Path

import pytest
from cli_runner import REPO, build, run_opencorpus

from opencorpus_dagster.cli import EXIT_ENVIRONMENT, EXIT_FAILED, EXIT_NO_MATCH, EXIT_NOT_BUILT
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.state.atomic import remove_stale_temporaries

DEAD_PID = 99999999  # above Linux's pid_max (4194304 at most): never a live process


def assert_one_line(result: subprocess.CompletedProcess, *expected: str) -> str:
    assert "Traceback" not in result.stderr
    lines = result.stderr.splitlines()
    assert len(lines) == 1, result.stderr
    for text in expected:
        assert text in lines[0]
    return lines[0]


@pytest.mark.parametrize(
    "command",
    [("trace", "--doc-id", "x"), ("report",), ("takedown", "audit")],
)
def test_lineage_command_on_a_never_built_home_says_so(tmp_path, command):
    home = tmp_path / "never-built"
    result = run_opencorpus(*command, home=home, check=False)
    assert result.returncode == EXIT_NOT_BUILT
    line = assert_one_line(result)
    assert line == (
        f"opencorpus: no lineage store at {home / 'lineage'}: this home was never built "
        f"(run opencorpus build --home {home})"
    )
    assert result.stdout == ""


def test_takedown_list_on_a_missing_home_says_so(tmp_path):
    home = tmp_path / "never-built"
    result = run_opencorpus("takedown", "list", home=home, check=False)
    assert result.returncode == EXIT_NOT_BUILT
    assert_one_line(result, f"opencorpus: no data home at {home}: ")


def test_a_malformed_takedown_list_is_one_line_naming_file_and_line(tmp_path):
    home = tmp_path / "home"
    home.mkdir()
    good = '{"kind": "domain", "value": "example.org", "reason": "opt-out", "requested_at": "2024-05-01T12:00:00Z"}'
    (home / "takedowns.jsonl").write_text(good + "\n{not json\n")
    result = run_opencorpus("takedown", "list", home=home, check=False)
    assert (result.returncode, result.stdout) == (EXIT_FAILED, "")
    assert_one_line(result)
    assert result.stderr == (
        f"opencorpus: {home / 'takedowns.jsonl'}:2: not a JSON object (Expecting property name enclosed in double "
        "quotes at column 2): fix or remove that line of the takedown list\n"
    )


@pytest.mark.parametrize("debug", [("--debug",), ()])
def test_debug_shows_the_traceback(tmp_path, debug):
    env = {} if debug else {"OPENCORPUS_DEBUG": "1"}
    result = run_opencorpus(*debug, "report", home=tmp_path / "never-built", check=False, env=env)
    assert result.returncode != 0
    assert "Traceback" in result.stderr
    assert "LineageStoreMissing" in result.stderr


@pytest.mark.parametrize(
    ("home_under", "expected"),
    [
        ("file", "a part of this path is a file, not a folder: check --home"),  # ENOTDIR, also as root
        ("/proc", "no such file or folder: check the path"),  # ENOENT for root too: procfs makes no folders
    ],
)
def test_unwritable_home_is_one_line(tmp_path, fixture_mirror, home_under, expected):
    if home_under == "file":
        (tmp_path / "file").write_text("not a folder\n")
        home = tmp_path / "file" / "home"
    else:
        home = Path(home_under) / f"opencorpus-test-{os.getpid()}"
    started = time.monotonic()
    result = build(home, fixture_mirror, check=False)
    assert result.returncode == EXIT_ENVIRONMENT
    line = assert_one_line(result, expected)
    assert str(home) in line
    assert time.monotonic() - started < 60


@contextmanager
def mounted_tmpfs(path: Path, options: str):
    """A tmpfs at `path`; skips when this user cannot mount (CI runs as root, where it works)."""
    path.mkdir()
    if not shutil.which("mount") or os.geteuid() != 0:
        pytest.skip("mounting a tmpfs needs root and mount(8) (CI runs as root)")
    done = subprocess.run(["mount", "-t", "tmpfs", "-o", options, "tmpfs", str(path)], check=False, capture_output=True, text=True)
    if done.returncode != 0:
        pytest.skip(f"cannot mount a tmpfs here: {done.stderr.strip()}")
    try:
        yield path
    finally:
        subprocess.run(["umount", str(path)], check=True)


def test_read_only_home_is_one_line(tmp_path, fixture_mirror):
    # chmod does not stop root; a read-only mount does.
    with mounted_tmpfs(tmp_path / "ro", "ro,size=1m") as mount:
        result = build(mount / "home", fixture_mirror, check=False)
    assert result.returncode == EXIT_ENVIRONMENT
    assert_one_line(result, str(mount / "home"), "read-only file system: use a writable --home")


def test_full_disk_fails_the_build_without_a_traceback(tmp_path, fixture_mirror):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "gutenberg.yaml", catalog)
    env = {"DAGSTER_HOME": str(tmp_path / "dagster")}  # Dagster's own sqlite stays off the full disk
    with mounted_tmpfs(tmp_path / "full", "size=1m") as mount:
        result = build(mount / "home", fixture_mirror, catalog, check=False, env=env)
    assert result.returncode == EXIT_FAILED
    assert "Traceback" not in result.stderr
    failed = json.loads(result.stdout)["failed"]
    assert failed
    assert any(f"{mount / 'home'}" in item and "No space left on device" in item for item in failed), failed


def test_a_reader_holding_the_lineage_open_blocks_nobody(tmp_path):
    """The lineage store is files: a process with a connection open locks nothing (the DuckDB
    file lock that made `trace` exit 5 is gone), so another reader answers at once."""
    home = tmp_path / "home"
    LineageStore.at(home / "lineage")  # a built (empty) store
    holder = subprocess.Popen(
        [sys.executable, "-c",
         "import sys, time; from opencorpus_dagster.lineage.store import LineageStore\n"
         "with LineageStore.at(sys.argv[1], read_only=True).connection() as c:\n"
         "    print('held', flush=True); time.sleep(120)",
         str(home / "lineage")],
        stdout=subprocess.PIPE, text=True,
    )
    try:
        assert holder.stdout.readline().strip() == "held"
        result = run_opencorpus("trace", "--doc-id", "x", home=home, check=False)
    finally:
        holder.kill()
        holder.wait()
    assert result.returncode == EXIT_NO_MATCH, result.stderr
    assert "locked" not in result.stderr


def test_build_removes_temporary_files_of_dead_writers_only(tmp_path, fixture_mirror):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog)
    home = tmp_path / "home"
    dead = home / "raw" / "enwiki" / f".x.parquet.tmp-{DEAD_PID}"
    live = home / "raw" / "enwiki" / f".y.parquet.tmp-{os.getpid()}"
    for path in (dead, live):
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_bytes(b"half a parquet file")

    build(home, fixture_mirror, catalog)

    assert not dead.exists()
    assert live.read_bytes() == b"half a parquet file"


@pytest.mark.parametrize(
    ("name", "pattern", "max_age_hours", "age_hours", "removed"),
    [
        (f".a.parquet.tmp-{DEAD_PID}", ".*.tmp-*", None, 0, True),
        (f".a.parquet.tmp-{os.getpid()}", ".*.tmp-*", None, 1000, False),  # a live writer's file, however old
        (f".a.parquet.tmp-{DEAD_PID}", ".*.tmp-*", 24, 1, False),  # dead, but younger than asked
        (f".a.parquet.tmp-{DEAD_PID}", ".*.tmp-*", 24, 25, True),
        ("a.parquet.tmp-notapid", ".*.tmp-*", None, 0, False),
        ("a.parquet", ".*.tmp-*", None, 0, False),
        (f"dump.xml.bz2.part-{DEAD_PID}", "*.part-*", None, 0, True),  # the download cache's partial files
        (f"dump.xml.bz2.part-{os.getpid()}", "*.part-*", None, 0, False),
        (f".a.parquet.tmp-{DEAD_PID}", "*.part-*", None, 0, False),
    ],
)
def test_remove_stale_temporaries(tmp_path, name, pattern, max_age_hours, age_hours, removed):
    path = tmp_path / "deep" / "folder" / name
    path.parent.mkdir(parents=True)
    path.write_text("x")
    then = time.time() - age_hours * 3600
    os.utime(path, (then, then))

    result = remove_stale_temporaries(tmp_path, pattern, max_age_hours=max_age_hours)

    assert result == ([path] if removed else [])
    assert path.exists() is not removed
