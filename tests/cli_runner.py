"""Run the real `opencorpus` console script in a subprocess with its own data home and Dagster instance."""

from __future__ import annotations

import json
import os
import re
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")


def run_opencorpus(*args: str, home: Path | str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """`opencorpus ARGS --home HOME` with a clean environment (plus `env`) and its own DAGSTER_HOME
    (`<home>/dagster` for a folder; a home given as a URL needs `DAGSTER_HOME` in `env`)."""
    result = subprocess.run(
        [OPENCORPUS, *args, "--home", str(home)],
        capture_output=True, text=True, env=clean_environment(home, env), cwd=REPO, timeout=900,
    )  # fmt: skip
    if check and result.returncode != 0:
        raise AssertionError(f"opencorpus {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def clean_environment(home: Path | str, env: dict | None = None) -> dict[str, str]:
    """This process's environment without OPENCORPUS_*, DAGSTER_*, OPENLINEAGE* settings, plus
    DAGSTER_HOME=`<home>/dagster` for a folder home, plus `env`."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    if isinstance(home, Path):
        clean["DAGSTER_HOME"] = str(home / "dagster")
    clean.update(env or {})
    return clean


def start_opencorpus(*args: str, home: Path | str, env: dict | None = None, new_session: bool = False) -> subprocess.Popen:
    """`opencorpus ARGS --home HOME` started in the background, as `run_opencorpus` runs it
    (stdout and stderr are pipes, text); with `new_session`, as a terminal's shell starts a
    command: the leader of its own session and process group (whose id is its pid), with SIGINT
    and SIGHUP at their defaults whatever this process was started with (a CI runner may start
    the tests with them ignored, and an ignored signal stays ignored across exec)."""
    command = [OPENCORPUS, *args, "--home", str(home)]
    if new_session:
        command = [sys.executable, "-c", _WITH_DEFAULT_DISPOSITIONS, *command]
    return subprocess.Popen(
        command, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=clean_environment(home, env), cwd=REPO,
        start_new_session=new_session,
    )  # fmt: skip


# Exec argv[1:] with SIGINT and SIGHUP at their defaults (the process keeps its pid).
_WITH_DEFAULT_DISPOSITIONS = (
    "import os, signal, sys; signal.signal(signal.SIGINT, signal.SIG_DFL); "
    "signal.signal(signal.SIGHUP, signal.SIG_DFL); os.execv(sys.argv[1], sys.argv[1:])"
)


def build(
    home: Path | str, mirror: Path | str, catalog: Path = REPO / "assets", *extra: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    return run_opencorpus("build", "--catalog", str(catalog), "--mirror", str(mirror), "--json", *extra, home=home, check=check, env=env)


_CONTENT_DIGEST = re.compile(r"-[0-9a-f]{16}(?=\.parquet$)")


def shard_name(path: str) -> str:
    """A shard's manifest path without its content digest: `shards/s/p/part-00000.parquet`."""
    return _CONTENT_DIGEST.sub("", path)


def shard_bytes(home: Path) -> dict[str, bytes]:
    """What the current release publishes, file by file: every file of its folder but
    `release.json` (which records when and by which run it was published), shards keyed by
    `shard_name` (so a rewritten shard shows as changed bytes under the same key)."""
    corpus = home / "corpus"
    pointer = corpus / "current.json"
    if not pointer.is_file():
        return {}
    folder = corpus / "releases" / json.loads(pointer.read_text())["release"]
    return {
        shard_name(path.relative_to(folder).as_posix()): path.read_bytes()
        for path in sorted(folder.rglob("*"))
        if path.is_file() and path.name != "release.json"
    }
