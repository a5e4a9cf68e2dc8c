"""The CPU that any `opencorpus build` running a partition pays to Dagster and Great Expectations
alone, before any work of its own: the floor under the build's figures.

Each part is measured in a new process (user + system time of the child, best of --rounds):
  dagster             import dagster; a partitioned asset with a blocking check and an asset
                      downstream of it; the instance of an existing DAGSTER_HOME (made by a first
                      process that is not counted, as a refresh finds it); one partition run and one
                      run of the downstream asset (a build's partition run and its corpus run).
  great_expectations  import it as the build does (quality/gx_import: scipy and altair deferred),
                      an ephemeral context, one validation of a one-row DataFrame.
  interpreter         `python -c pass`, counted once in the floor.

scale_build.py prints the floor beside the one-partition refresh, e2e_web.py beside DataTrove.

Run: .venv/bin/python benchmarks/stack_floor.py [--rounds 3]
"""

from __future__ import annotations

import argparse
import os
import resource
import subprocess
import sys
import tempfile
import textwrap
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent

DAGSTER_SCRIPT = textwrap.dedent(
    """
    import dagster as dg

    @dg.asset(partitions_def=dg.StaticPartitionsDefinition(["a"]))
    def records() -> None:
        return None

    @dg.asset_check(asset=records, blocking=True)
    def records_check() -> dg.AssetCheckResult:
        return dg.AssetCheckResult(passed=True)

    @dg.asset(deps=[records])
    def corpus() -> None:
        return None

    defs = dg.Definitions(
        assets=[records, corpus],
        asset_checks=[records_check],
        jobs=[dg.define_asset_job("partition", selection=[records]), dg.define_asset_job("corpus", selection=[corpus])],
    )
    instance = dg.DagsterInstance.get()
    assert defs.resolve_job_def("partition").execute_in_process(partition_key="a", instance=instance).success
    assert defs.resolve_job_def("corpus").execute_in_process(instance=instance).success
    """
)

GX_SCRIPT = textwrap.dedent(
    """
    import pandas as pd

    from opencorpus_dagster.quality.gx_import import import_great_expectations

    gx = import_great_expectations()
    context = gx.get_context(mode="ephemeral")
    batch = context.data_sources.add_pandas("p").add_dataframe_asset("a").add_batch_definition_whole_dataframe("b")
    suite = gx.ExpectationSuite(name="s", expectations=[gx.expectations.ExpectColumnValuesToNotBeNull(column="text")])
    result = batch.get_batch(batch_parameters={"dataframe": pd.DataFrame({"text": ["x"]})}).validate(suite)
    assert result.success
    """
)


@dataclass(frozen=True)
class Floor:
    interpreter: float
    dagster: float
    great_expectations: float

    @property
    def total(self) -> float:
        """Both parts in one process: the interpreter counted once."""
        return self.dagster + self.great_expectations - self.interpreter

    def describe(self) -> str:
        return (
            f"Dagster {self.dagster:.2f} s (import, instance, a partition run and a corpus run) + "
            f"Great Expectations {self.great_expectations:.2f} s (import, one validation) = {self.total:.2f} s of CPU"
        )


def child_cpu(command: list[str], **kwargs) -> float:
    """CPU seconds (user + system) a subprocess used; raises when it fails."""
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = subprocess.run(command, capture_output=True, text=True, check=False, **kwargs)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    if result.returncode != 0:
        raise SystemExit(f"{command[:3]} failed ({result.returncode}):\n{result.stderr[-3000:]}")
    return (after.ru_utime - before.ru_utime) + (after.ru_stime - before.ru_stime)


def stack_floor(rounds: int = 3) -> Floor:
    """Best of `rounds` for each part, the parts alternating."""
    with tempfile.TemporaryDirectory(prefix="opencorpus-floor-") as tmp:
        env = {k: v for k, v in os.environ.items() if not k.startswith(("DAGSTER_", "OPENLINEAGE"))}
        env["DAGSTER_HOME"] = tmp
        env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(ROOT), env.get("PYTHONPATH", "")]))
        python = [sys.executable, "-c"]
        child_cpu([*python, DAGSTER_SCRIPT], env=env, cwd=ROOT)  # makes the instance's storage, as a refresh finds it
        times: dict[str, list[float]] = {"interpreter": [], "dagster": [], "great_expectations": []}
        for _ in range(rounds):
            times["interpreter"].append(child_cpu([*python, "pass"], env=env, cwd=ROOT))
            times["dagster"].append(child_cpu([*python, DAGSTER_SCRIPT], env=env, cwd=ROOT))
            times["great_expectations"].append(child_cpu([*python, GX_SCRIPT], env=env, cwd=ROOT))
    return Floor(**{part: min(values) for part, values in times.items()})


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each part (the best is kept)")
    floor = stack_floor(parser.parse_args().rounds)
    print(f"interpreter alone {floor.interpreter:.2f} s")
    print(f"the stack's floor for a build that runs a partition: {floor.describe()}")


if __name__ == "__main__":
    main()
