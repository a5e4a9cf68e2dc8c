"""Run the real `opencorpus` console script in a subprocess with its own data home and Dagster instance."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")


def run_opencorpus(*args: str, home: Path | str, check: bool = True, env: dict | None = None) -> subprocess.CompletedProcess:
    """`opencorpus ARGS --home HOME` with a clean environment (plus `env`) and its own DAGSTER_HOME
    (`<home>/dagster` for a folder; a home given as a URL needs `DAGSTER_HOME` in `env`)."""
    extra = env or {}
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    if isinstance(home, Path):
        env["DAGSTER_HOME"] = str(home / "dagster")
    env.update(extra)
    result = subprocess.run(
        [OPENCORPUS, *args, "--home", str(home)], capture_output=True, text=True, env=env, cwd=REPO, timeout=900
    )
    if check and result.returncode != 0:
        raise AssertionError(f"opencorpus {' '.join(args)} failed ({result.returncode}):\n{result.stdout}\n{result.stderr}")
    return result


def build(
    home: Path | str, mirror: Path | str, catalog: Path = REPO / "assets", *extra: str, check: bool = True, env: dict | None = None
) -> subprocess.CompletedProcess:
    return run_opencorpus("build", "--catalog", str(catalog), "--mirror", str(mirror), "--json", *extra, home=home, check=check, env=env)


def shard_bytes(home: Path) -> dict[str, bytes]:
    corpus = home / "corpus"
    return {str(p.relative_to(corpus)): p.read_bytes() for p in sorted(corpus.rglob("*")) if p.is_file()}
