"""Which Dagster executor runs the steps of a run, chosen by the environment.

    OPENCORPUS_EXECUTOR=multiprocess   (default) one process per step on this machine, at most one
                                       step per CPU core at a time (Dagster's multiprocess executor)
    OPENCORPUS_EXECUTOR=in_process     every step in the run's own process, one after another
    OPENCORPUS_EXECUTOR=celery         every step is a Celery task, run by whichever worker takes it;
        OPENCORPUS_CELERY_BROKER       broker URL, required (e.g. redis://127.0.0.1:6379/0)
        OPENCORPUS_CELERY_BACKEND      result backend URL; default: the broker URL for a Redis
                                       broker, else Celery's `rpc://`

The choice applies to runs Dagster launches itself (daemon, UI, `dagster job execute`,
`execute_job`); `opencorpus build` executes each run in process (its partition runs in worker
processes forked from it, `--jobs` at a time).

Celery workers (`dagster-celery worker start -A dagster_celery.app -y <file>`) load the same code
location, so they need the same OPENCORPUS_* environment, the same DAGSTER_HOME (a shared instance:
PostgreSQL) and the same data home; `celery_worker_config()` is the file `-y` expects, so the
workers listen where the executor sends. `dagster-celery` is an optional dependency (the
`cluster` extra): it is imported only when the Celery executor is selected.
"""

from __future__ import annotations

import os
from collections.abc import Mapping

from dagster import ExecutorDefinition, in_process_executor, multiprocess_executor

EXECUTOR_ENV = "OPENCORPUS_EXECUTOR"
BROKER_ENV = "OPENCORPUS_CELERY_BROKER"
BACKEND_ENV = "OPENCORPUS_CELERY_BACKEND"
EXECUTORS = ("multiprocess", "in_process", "celery")


def executor_from_environment(environ: Mapping[str, str] | None = None) -> ExecutorDefinition:
    """The executor named by OPENCORPUS_EXECUTOR (default `multiprocess`), configured from the
    environment; raises ValueError naming the variable for an unknown name or a missing broker."""
    environ = os.environ if environ is None else environ
    name = (environ.get(EXECUTOR_ENV) or "multiprocess").strip().lower()
    if name == "multiprocess":
        return multiprocess_executor  # max_concurrent defaults to the number of cores
    if name == "in_process":
        return in_process_executor
    if name == "celery":
        try:
            from dagster_celery import celery_executor
        except ImportError as error:
            raise ValueError(
                f"{EXECUTOR_ENV}=celery needs the dagster-celery package (pip install 'opencorpus-dagster[cluster]')"
            ) from error
        return celery_executor.configured(celery_config(environ), name="celery")
    raise ValueError(f"{EXECUTOR_ENV}={name!r} is not one of {', '.join(EXECUTORS)}")


def celery_config(environ: Mapping[str, str] | None = None) -> dict:
    """The Celery executor's config (broker, backend, one task prefetched per worker process)."""
    environ = os.environ if environ is None else environ
    broker = (environ.get(BROKER_ENV) or "").strip()
    if not broker:
        raise ValueError(f"{EXECUTOR_ENV}=celery needs {BROKER_ENV} (e.g. redis://127.0.0.1:6379/0)")
    backend = (environ.get(BACKEND_ENV) or "").strip() or (broker if broker.startswith(("redis://", "rediss://")) else "rpc://")
    return {
        "broker": broker,
        "backend": backend,
        # A step can run for minutes: a worker process that reserved several would hold them back
        # from idle workers.
        "config_source": {"worker_prefetch_multiplier": 1},
    }


def celery_worker_config(environ: Mapping[str, str] | None = None) -> dict:
    """The YAML document `dagster-celery worker start -y` reads: the executor's config under
    `execution.config`, so workers consume the queue the executor publishes to."""
    return {"execution": {"config": celery_config(environ)}}
