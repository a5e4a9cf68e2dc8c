"""`opencorpus ui`: the Dagster UI and daemon on the instance `opencorpus build` uses.

`dagster dev` on its own needs `DAGSTER_HOME` pointed at the data home's instance (or it starts
an empty temporary one) and that instance's `dagster.yaml` (or every queued run starts at once).
This sets both, writes the workspace file next to the instance, and replaces itself with
`dagster dev`, so Ctrl-C stops the webserver, the daemon and the code server as usual.
"""

from __future__ import annotations

import os
import shutil
import sys
from pathlib import Path

from opencorpus_dagster.orchestration.instance import ensure_instance_config
from opencorpus_dagster.state.atomic import write_text_atomically

WORKSPACE = """\
# Written by `opencorpus ui`: the opencorpus code location, as in the repository's workspace.yaml.
load_from:
  - python_module:
      module_name: opencorpus_dagster.definitions
      location_name: opencorpus
"""


def dagster_dev_command(dagster_home: Path, host: str, port: int) -> list[str]:
    """The `dagster dev` command line for the instance in `dagster_home` (prepared on the way)."""
    ensure_instance_config(dagster_home)
    workspace = dagster_home / "workspace.yaml"
    if not workspace.is_file() or workspace.read_text() != WORKSPACE:
        write_text_atomically(workspace, WORKSPACE)
    beside = Path(sys.executable).parent / "dagster"  # the venv's, even when it is not activated
    dagster = str(beside) if beside.is_file() else shutil.which("dagster") or "dagster"
    return [dagster, "dev", "-w", str(workspace), "-h", host, "-p", str(port)]


def run_ui(host: str, port: int) -> None:
    """Replace this process with `dagster dev` (the environment is already configured)."""
    command = dagster_dev_command(Path(os.environ["DAGSTER_HOME"]), host, port)
    os.execv(command[0], command)
