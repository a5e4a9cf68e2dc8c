"""The Dagster UI of a built data home, as the tests and the screenshot benchmark see it.

`dagster_dev(home, mirror)` runs `opencorpus ui` (what users run: `dagster dev` on the home's
instance) on a free local port against that home and yields the base URL once the `opencorpus` code location is loaded; on
exit it stops the whole process group (webserver, daemon, code server). `query(client, text, **vars)`
posts one GraphQL query and returns its `data`, failing on any GraphQL error. The query strings
below are written against the Dagster 1.13 schema (`dagster_graphql/schema/`: `assetNodes`,
`AssetNode.assetChecksOrError`, `AssetCheck.executionForLatestMaterialization`,
`AssetNode.latestMaterializationByPartition`, `workspaceLocationEntryOrError`, `runsOrError`).
"""

from __future__ import annotations

import contextlib
import json
import os
import signal
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx

REPO = Path(__file__).resolve().parent.parent
DAGSTER = str(Path(sys.executable).parent / "dagster")
OPENCORPUS = str(Path(sys.executable).parent / "opencorpus")
LOCATION = "opencorpus"
REPOSITORY = "__repository__"  # the name Dagster gives the repository of a `Definitions` object

METADATA_VALUES = """
fragment MetadataValues on MetadataEntry {
  __typename
  label
  ... on IntMetadataEntry { intValue }
  ... on FloatMetadataEntry { floatValue }
  ... on TextMetadataEntry { text }
  ... on PathMetadataEntry { path }
  ... on MarkdownMetadataEntry { mdStr }
  ... on JsonMetadataEntry { jsonString }
  ... on TableMetadataEntry { table { records schema { columns { name type } } } }
}
"""

LOCATION_QUERY = """
query Location($name: String!) {
  workspaceLocationEntryOrError(name: $name) {
    __typename
    ... on WorkspaceLocationEntry {
      name
      loadStatus
      locationOrLoadError {
        __typename
        ... on RepositoryLocation { name repositories { name } }
        ... on PythonError { message }
      }
    }
    ... on PythonError { message }
  }
}
"""

ASSETS_QUERY = """
query Assets {
  assetNodes {
    assetKey { path }
    groupName
    description
    kinds
    isPartitioned
    partitionKeys
    dependencyKeys { path }
    assetPartitionStatuses {
      __typename
      ... on DefaultPartitionStatuses { materializedPartitions failedPartitions unmaterializedPartitions }
    }
    assetMaterializations(limit: 1) { runId partition }
    assetChecksOrError {
      __typename
      ... on AssetChecks {
        checks {
          name
          description
          executionForLatestMaterialization { status runId evaluation { success } }
        }
      }
    }
  }
}
"""

LATEST_MATERIALIZATION_QUERY = (
    """
query LatestMaterialization($path: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      assetMaterializations(limit: 1) { runId timestamp metadataEntries { ...MetadataValues } }
    }
  }
}
"""
    + METADATA_VALUES
)

PARTITION_MATERIALIZATIONS_QUERY = (
    """
query PartitionMaterializations($path: [String!]!, $partitions: [String!]!) {
  assetNodeOrError(assetKey: {path: $path}) {
    __typename
    ... on AssetNode {
      latestMaterializationByPartition(partitions: $partitions) { partition runId metadataEntries { ...MetadataValues } }
    }
  }
}
"""
    + METADATA_VALUES
)

CHECK_EXECUTIONS_QUERY = """
query CheckExecutions($path: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 100) {
    runId
    status
    evaluation { success }
  }
}
"""

CHECK_EVALUATIONS_QUERY = """
query CheckEvaluations($path: [String!]!, $check: String!) {
  assetCheckExecutions(assetKey: {path: $path}, checkName: $check, limit: 100) {
    runId
    status
    evaluation { success severity description }
  }
}
"""

RUNS_QUERY = """
query Runs {
  runsOrError(limit: 1000) {
    __typename
    ... on Runs { count results { runId jobName status startTime endTime tags { key value } } }
    ... on PythonError { message }
  }
}
"""

# What the UI's "Materialize selected" on a partitioned asset sends (a backfill of those partitions).
LAUNCH_BACKFILL_MUTATION = """
mutation LaunchBackfill($partitions: [String!]!, $assets: [AssetKeyInput!]!) {
  launchPartitionBackfill(backfillParams: {partitionNames: $partitions, assetSelection: $assets}) {
    __typename
    ... on LaunchBackfillSuccess { backfillId }
    ... on Error { message }
  }
}
"""

BACKFILL_STATUS_QUERY = """
query BackfillStatus($id: String!) {
  partitionBackfillOrError(backfillId: $id) {
    __typename
    ... on PartitionBackfill { status }
    ... on Error { message }
  }
}
"""

# What the UI's "Skip" button on its first-visit newsletter dialog sends; screenshots need it gone.
MARK_NUX_SEEN = "mutation { setNuxSeen }"


def query(client: httpx.Client, text: str, **variables) -> dict:
    """POST `text` to the client's `/graphql`; the `data` object, or AssertionError on any error."""
    response = client.post("/graphql", json={"query": text, "variables": variables})
    response.raise_for_status()
    body = response.json()
    if body.get("errors"):
        raise AssertionError(f"GraphQL errors: {body['errors']}")
    return body["data"]


def metadata(entries: list[dict]) -> dict[str, object]:
    """`{label: value}` from entries fetched with the MetadataValues fragment."""
    fields = ("intValue", "floatValue", "text", "path", "mdStr", "jsonString")
    values = {}
    for entry in entries:
        if "table" in entry:  # a table: its records, each a dict
            values[entry["label"]] = [json.loads(record) for record in entry["table"]["records"]]
        else:
            values[entry["label"]] = next((entry[f] for f in fields if f in entry), None)
    return values


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def dagster_env(home: Path, mirror: Path, extra: dict[str, str] | None = None) -> dict[str, str]:
    """The environment a user sets for `dagster dev` on a data home (see orchestration/resources.py)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_"))}
    env.update(OPENCORPUS_HOME=str(home), OPENCORPUS_MIRROR=str(mirror), DAGSTER_HOME=str(home / "dagster"))
    env.update(extra or {})
    return env


@contextlib.contextmanager
def dagster_dev(home: Path, mirror: Path, timeout: float = 120.0, env: dict[str, str] | None = None) -> Iterator[str]:
    """Run `dagster dev` on `home`; yields `http://127.0.0.1:<port>` once the location is loaded.

    The server's output goes to `<home>/dagster-dev.log` (quoted when start-up fails). The process
    group is always terminated on exit (SIGTERM, then SIGKILL after 20 s).
    """
    port = free_port()
    url = f"http://127.0.0.1:{port}"
    (home / "dagster").mkdir(parents=True, exist_ok=True)
    log_path = home / "dagster-dev.log"
    with open(log_path, "wb") as log:
        process = subprocess.Popen(
            # What the README says to run: `opencorpus ui` (it becomes `dagster dev` on the home's instance).
            [OPENCORPUS, "ui", "--home", str(home), "--mirror", str(mirror), "--host", "127.0.0.1", "--port", str(port)],
            cwd=REPO,
            env=dagster_env(home, mirror, env),
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,  # its own process group, so teardown reaches every child
            preexec_fn=_default_interrupt_handling,  # noqa: PLW1509 (only resets one signal disposition)
        )
    try:
        _wait_until_loaded(process, url, timeout, log_path)
        yield url
    finally:
        _stop(process)


def _wait_until_loaded(process: subprocess.Popen, url: str, timeout: float, log_path: Path) -> None:
    deadline = time.monotonic() + timeout
    status = "no answer"
    with httpx.Client(base_url=url, timeout=10) as client:
        while time.monotonic() < deadline:
            if process.poll() is not None:
                raise RuntimeError(f"dagster dev exited with {process.returncode}:\n{log_path.read_text()[-4000:]}")
            try:
                entry = query(client, LOCATION_QUERY, name=LOCATION)["workspaceLocationEntryOrError"]
                status = (entry or {}).get("loadStatus", str(entry))
                if status == "LOADED":
                    return
            except (httpx.HTTPError, ValueError) as error:  # not listening yet, or still starting
                status = repr(error)
            time.sleep(0.5)
    raise TimeoutError(f"dagster dev at {url} not ready after {timeout:.0f} s ({status}):\n{log_path.read_text()[-4000:]}")


def _default_interrupt_handling() -> None:
    # dagster dev maps SIGTERM to its SIGINT handler; a SIGINT ignored by a background parent
    # shell would be inherited and make it ignore SIGTERM too.
    signal.signal(signal.SIGINT, signal.SIG_DFL)


def _stop(process: subprocess.Popen, grace: float = 10.0) -> None:
    """SIGTERM dagster dev (it tells the webserver, daemon and code server to shut down, as on
    Ctrl-C), then SIGKILL whatever is left of its process group after `grace` seconds."""
    group = process.pid
    with contextlib.suppress(ProcessLookupError):
        os.kill(process.pid, signal.SIGTERM)
    deadline = time.monotonic() + grace
    while time.monotonic() < deadline and _group_alive(group):
        process.poll()  # reap the leader so it does not linger as a zombie member of the group
        time.sleep(0.2)
    with contextlib.suppress(ProcessLookupError):
        os.killpg(group, signal.SIGKILL)
    process.wait(timeout=10)


def _group_alive(group: int) -> bool:
    try:
        os.killpg(group, 0)
    except ProcessLookupError:
        return False
    return True
