"""OpenLineage run events for every materialisation of a corpus asset.

Plain Python over `openlineage-python`; the Dagster assets wrap their work in `emitter.run(...)`.

Jobs are named after asset keys (`<source>.raw`, `<source>.documents`, `corpus.dedup`,
`corpus.shards`); datasets after the folders of the data home, so the output of one job is,
by name, the input of the next:

    upstream file URLs --<source>.raw--> raw/<source> --<source>.documents--> documents/<source>
    documents/<source> --corpus.dedup--> dedup/duplicates
    documents/<source> + dedup/duplicates --corpus.shards--> corpus/shards

Dataset namespace: the data home as a `file://` URI (one home, one namespace; the names are
relative to it). Upstream inputs: namespace `scheme://host`, name = the URL path.

Run ids: OpenLineage consumers (Marquez, DataHub) treat a run id as the run of exactly one job,
but one Dagster run can materialise several assets and partitions. So the event's run id is
`uuid5(dagster_run_id, "<job>/<partition>")`: unique per (Dagster run, job, partition), stable
when the same step is re-emitted, and the Dagster run itself is named in a `parent` run facet.

Transport: the standard OpenLineage configuration (`OPENLINEAGE_URL`, `OPENLINEAGE_CONFIG`,
`openlineage.yml` in the working directory or `~/.openlineage/`, `OPENLINEAGE__...` variables),
resolved by `OpenLineageClient` itself; without any, one JSON object per line appended to
`<home>/openlineage/events.jsonl`. `OPENLINEAGE_DISABLED=true` turns emission off.

A lineage backend that is down must not fail a corpus build: a transport error is logged and
counted (`LineageEmitter.emit_errors`), never raised into the asset.
"""

from __future__ import annotations

import logging
import os
import traceback
import uuid
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import attr
import pyarrow as pa
from openlineage.client import OpenLineageClient
from openlineage.client.event_v2 import (
    InputDataset,
    Job,
    OutputDataset,
    Run,
    RunEvent,
    RunState,
)
from openlineage.client.facet_v2 import (
    DatasetFacet,
    column_lineage_dataset,
    error_message_run,
    output_statistics_output_dataset,
    parent_run,
    schema_dataset,
)
from openlineage.client.transport.file import FileConfig, FileTransport
from openlineage.client.transport.noop import NoopConfig, NoopTransport

from opencorpus_dagster.state.storage import is_remote

log = logging.getLogger(__name__)

PRODUCER = "https://github.com/opencorpus/opencorpus-dagster"
DEFAULT_JOB_NAMESPACE = "opencorpus"
NAMESPACE_ENV = "OPENLINEAGE_NAMESPACE"
DISABLED_ENV = "OPENLINEAGE_DISABLED"
DEFAULT_EVENTS_FILE = Path("openlineage") / "events.jsonl"

DEDUP_JOB = "corpus.dedup"
SHARDS_JOB = "corpus.shards"

OPENCORPUS_FACET_SCHEMA_ID = f"{PRODUCER}/spec/facets/1-0-0/OpencorpusDatasetFacet.json"
OPENCORPUS_FACET_SCHEMA_URL = f"{OPENCORPUS_FACET_SCHEMA_ID}#/$defs/OpencorpusDatasetFacet"
# The JSON schema of the custom facet, published with the code so consumers (and the tests) can
# validate it; `_schemaURL` points here.
OPENCORPUS_FACET_SCHEMA: dict[str, Any] = {
    "$schema": "https://json-schema.org/draft/2020-12/schema",
    "$id": OPENCORPUS_FACET_SCHEMA_ID,
    "$defs": {
        "OpencorpusDatasetFacet": {
            "allOf": [
                {"$ref": "https://openlineage.io/spec/2-0-2/OpenLineage.json#/$defs/DatasetFacet"},
                {
                    "type": "object",
                    "properties": {
                        "partition": {
                            "description": "The partition (upstream unit) this run wrote or read; absent for corpus-wide runs.",
                            "type": "string",
                        },
                        "licenses": {
                            "description": "Rows per SPDX licence expression.",
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0},
                        },
                        "outcomes": {
                            "description": "Records per outcome (kept, filtered, duplicate, quarantined, removed, skipped).",
                            "type": "object",
                            "additionalProperties": {"type": "integer", "minimum": 0},
                        },
                    },
                    "required": ["licenses", "outcomes"],
                },
            ],
            "type": "object",
        }
    },
    "type": "object",
    "properties": {"opencorpus": {"$ref": "#/$defs/OpencorpusDatasetFacet"}},
}


@attr.define
class OpencorpusDatasetFacet(DatasetFacet):
    """Licence and outcome counts of one dataset as written (or read) by one run."""

    licenses: dict[str, int] = attr.field(factory=dict)
    outcomes: dict[str, int] = attr.field(factory=dict)
    partition: str | None = attr.field(default=None)

    @staticmethod
    def _get_schema() -> str:
        return OPENCORPUS_FACET_SCHEMA_URL


# Facets that `RunHandle.set_facet` may build from a plain mapping, by facet name.
CUSTOM_DATASET_FACETS: dict[str, type[DatasetFacet]] = {"opencorpus": OpencorpusDatasetFacet}


# ---------------------------------------------------------------------------------------------
# Names


def job_name(*asset_key_path: str) -> str:
    """The OpenLineage job name of an asset key: `("gutenberg", "raw")` -> `"gutenberg.raw"`."""
    if not asset_key_path or any(not part for part in asset_key_path):
        raise ValueError(f"asset key path must be non-empty strings, got {asset_key_path!r}")
    return ".".join(asset_key_path)


def raw_job(source: str) -> str:
    return job_name(source, "raw")


def documents_job(source: str) -> str:
    return job_name(source, "documents")


@dataclass(frozen=True)
class DatasetRef:
    """An OpenLineage dataset identity (namespace, name)."""

    namespace: str
    name: str

    @classmethod
    def from_url(cls, url: str) -> DatasetRef:
        """An upstream file: namespace `scheme://host[:port]`, name the path (plus query, if any).

        The fragment is dropped: it addresses a record inside the file, not the file.
        """
        parts = urlsplit(url)
        if not parts.scheme:
            raise ValueError(f"upstream URL {url!r} has no scheme")
        name = parts.path or "/"
        if parts.query:
            name = f"{name}?{parts.query}"
        return cls(namespace=f"{parts.scheme}://{parts.netloc}", name=name)


@dataclass(frozen=True)
class CorpusDatasets:
    """The dataset names of one data home; every name is a folder or file under it."""

    namespace: str

    @classmethod
    def for_home(cls, home: Path) -> CorpusDatasets:
        """Namespace: the home's URL (`file:///...` for a folder, `s3://bucket/...` in object storage)."""
        return cls(namespace=str(home) if is_remote(home) else Path(home).resolve().as_uri())

    def raw(self, source: str) -> DatasetRef:
        """The raw partition Parquet files of a source: `<home>/raw/<source>/*.parquet`."""
        return DatasetRef(self.namespace, f"raw/{source}")

    def documents(self, source: str) -> DatasetRef:
        """`<home>/documents/<source>/*.parquet`."""
        return DatasetRef(self.namespace, f"documents/{source}")

    def duplicates(self) -> DatasetRef:
        """`<home>/dedup/duplicates.parquet`."""
        return DatasetRef(self.namespace, "dedup/duplicates")

    def shards(self) -> DatasetRef:
        """`<home>/corpus/shards/` (plus the manifest that lists them)."""
        return DatasetRef(self.namespace, "corpus/shards")


# ---------------------------------------------------------------------------------------------
# Facet builders


def schema_facet(schema: pa.Schema) -> schema_dataset.SchemaDatasetFacet:
    """The OpenLineage schema facet of an Arrow schema (types as Arrow spells them, nested structs kept)."""

    def fields_of(arrow_fields: Iterable[pa.Field]) -> list[schema_dataset.SchemaDatasetFacetFields]:
        out = []
        for position, arrow_field in enumerate(arrow_fields, start=1):
            nested = list(arrow_field.type) if pa.types.is_struct(arrow_field.type) else []
            out.append(
                schema_dataset.SchemaDatasetFacetFields(
                    name=arrow_field.name,
                    type=str(arrow_field.type),
                    ordinal_position=position,
                    fields=fields_of(nested),
                )
            )
        return out

    return schema_dataset.SchemaDatasetFacet(fields=fields_of(schema), producer=PRODUCER)


def column_lineage_facet(
    fields: Mapping[str, Sequence[tuple[DatasetRef, str, str, str]]],
    dataset: Sequence[tuple[DatasetRef, str, str, str]] = (),
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """Column lineage: output column -> [(input dataset, input column, type, subtype)], plus
    dataset-wide dependencies (filters, joins) in `dataset`. type is DIRECT or INDIRECT;
    subtype IDENTITY, TRANSFORMATION, AGGREGATION, FILTER, JOIN, ... (OpenLineage's vocabulary)."""

    def input_field(ref: DatasetRef, column: str, kind: str, subtype: str) -> column_lineage_dataset.InputField:
        return column_lineage_dataset.InputField(
            namespace=ref.namespace,
            name=ref.name,
            field=column,
            transformations=[column_lineage_dataset.Transformation(type=kind, subtype=subtype)],
        )

    return column_lineage_dataset.ColumnLineageDatasetFacet(
        fields={
            out: column_lineage_dataset.Fields(inputFields=[input_field(*source) for source in sources])
            for out, sources in fields.items()
        },
        dataset=[input_field(*source) for source in dataset],
        producer=PRODUCER,
    )


# Documents columns carried over from raw unchanged; the others are computed from the payload.
_DOCUMENT_IDENTITY_COLUMNS = (
    "doc_id", "source", "partition", "source_record_id", "upstream_uri", "url", "title",
    "license_evidence", "attribution", "metadata",
)


def documents_column_lineage(raw: DatasetRef) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """How `documents/<source>` columns derive from `raw/<source>` (documents.DOCUMENT_SCHEMA).

    text, language and content_sha256 are computed from the payload (extraction, normalisation,
    detection, hashing); licence is normalised to SPDX and may be refined from the payload (web
    pages' rel="license"); rows are kept or dropped by the quality and licence filters.
    """
    fields: dict[str, list[tuple[DatasetRef, str, str, str]]] = {
        column: [(raw, column, "DIRECT", "IDENTITY")] for column in _DOCUMENT_IDENTITY_COLUMNS
    }
    fields["text"] = [(raw, "payload", "DIRECT", "TRANSFORMATION"), (raw, "payload_type", "INDIRECT", "CONDITIONAL")]
    fields["language"] = [(raw, "payload", "DIRECT", "TRANSFORMATION")]
    fields["content_sha256"] = [(raw, "payload", "DIRECT", "TRANSFORMATION")]
    fields["license"] = [(raw, "license", "DIRECT", "TRANSFORMATION"), (raw, "payload", "DIRECT", "TRANSFORMATION")]
    dataset = [(raw, "payload", "INDIRECT", "FILTER"), (raw, "license", "INDIRECT", "FILTER")]
    return column_lineage_facet(fields, dataset)


def shards_column_lineage(
    documents: Sequence[DatasetRef], duplicates: DatasetRef, columns: Sequence[str]
) -> column_lineage_dataset.ColumnLineageDatasetFacet:
    """`corpus/shards`: every shard column is the same column of the documents of every source
    (shards.SHARD_COLUMNS); rows listed in the dedup decisions are left out (a filter)."""
    fields = {column: [(ref, column, "DIRECT", "IDENTITY") for ref in documents] for column in columns}
    dataset = [(duplicates, key, "INDIRECT", "FILTER") for key in ("source", "partition", "doc_id")]
    return column_lineage_facet(fields, dataset)


# ---------------------------------------------------------------------------------------------
# Transport


def _disabled() -> bool:
    return os.environ.get(DISABLED_ENV, "").strip().lower() == "true"


def _standard_configuration_present() -> bool:
    """True when the user configured a transport the OpenLineage way (URL, yml file or env vars)."""
    if os.environ.get("OPENLINEAGE_URL"):
        return True
    # A client with an explicit no-op transport only loads the configuration (yml file, then
    # OPENLINEAGE__ variables) without building a transport or warning that none was found.
    probe = OpenLineageClient(transport=NoopTransport(NoopConfig()))
    return bool((probe.config.transport or {}).get("type"))


# ---------------------------------------------------------------------------------------------
# Emitter


@dataclass
class _DatasetState:
    ref: DatasetRef
    facets: dict[str, DatasetFacet] = field(default_factory=dict)
    output_facets: dict[str, Any] = field(default_factory=dict)


class RunHandle:
    """What a run says about its datasets; sent with the COMPLETE (or FAIL) event."""

    def __init__(self, run_id: str, inputs: Sequence[DatasetRef], outputs: Sequence[DatasetRef]) -> None:
        self.run_id = run_id
        self._inputs = {ref: _DatasetState(ref) for ref in inputs}
        self._outputs = {ref: _DatasetState(ref) for ref in outputs}

    def _state(self, dataset: DatasetRef) -> _DatasetState:
        state = self._outputs.get(dataset) or self._inputs.get(dataset)
        if state is None:
            raise ValueError(f"{dataset} is neither an input nor an output of this run")
        return state

    def set_output_stats(self, dataset: DatasetRef, rows: int, size: int, files: int | None = None) -> None:
        """Rows and bytes written to an output dataset by this run (outputStatistics facet)."""
        if dataset not in self._outputs:
            raise ValueError(f"{dataset} is not an output of this run")
        self._outputs[dataset].output_facets["outputStatistics"] = (
            output_statistics_output_dataset.OutputStatisticsOutputDatasetFacet(
                rowCount=int(rows), size=int(size), fileCount=files, producer=PRODUCER
            )
        )

    def set_facet(self, dataset: DatasetRef, name: str, facet: DatasetFacet | Mapping[str, Any]) -> None:
        """Attach a dataset facet. A mapping is accepted for the custom facets (`opencorpus`:
        licenses, outcomes, partition) and built into its facet class; unknown keys raise TypeError."""
        if not isinstance(facet, DatasetFacet):
            facet_class = CUSTOM_DATASET_FACETS.get(name)
            if facet_class is None:
                raise TypeError(f"facet {name!r} must be a DatasetFacet; mappings only for {sorted(CUSTOM_DATASET_FACETS)}")
            facet = facet_class(**dict(facet), producer=PRODUCER)
        self._state(dataset).facets[name] = facet

    def set_schema(self, dataset: DatasetRef, schema: pa.Schema) -> None:
        self.set_facet(dataset, "schema", schema_facet(schema))

    def set_column_lineage(self, dataset: DatasetRef, facet: column_lineage_dataset.ColumnLineageDatasetFacet) -> None:
        if dataset not in self._outputs:
            raise ValueError(f"column lineage describes an output; {dataset} is not one of this run")
        self.set_facet(dataset, "columnLineage", facet)

    def datasets(self, with_facets: bool) -> tuple[list[InputDataset], list[OutputDataset]]:
        inputs = [
            InputDataset(namespace=s.ref.namespace, name=s.ref.name, facets=dict(s.facets) if with_facets else {})
            for s in self._inputs.values()
        ]
        outputs = [
            OutputDataset(
                namespace=s.ref.namespace,
                name=s.ref.name,
                facets=dict(s.facets) if with_facets else {},
                outputFacets=dict(s.output_facets) if with_facets else {},
            )
            for s in self._outputs.values()
        ]
        return inputs, outputs


class LineageEmitter:
    """Emits START / COMPLETE / FAIL run events through one OpenLineage client.

    `client=None` means disabled: `run()` still yields a handle, and nothing is built or sent.
    """

    def __init__(self, client: OpenLineageClient | None, datasets: CorpusDatasets, job_namespace: str = DEFAULT_JOB_NAMESPACE):
        self.client = client
        self.datasets = datasets
        self.job_namespace = job_namespace
        self.emitted = 0
        self.emit_errors = 0

    @classmethod
    def from_environment(cls, home: Path, state: Path | None = None) -> LineageEmitter:
        """The emitter for a data home, configured the standard OpenLineage way (see module doc);
        default transport: JSON lines appended to `<state>/openlineage/events.jsonl`, where the
        state folder is the home itself unless the home is in object storage."""
        datasets = CorpusDatasets.for_home(home)
        namespace = os.environ.get(NAMESPACE_ENV) or DEFAULT_JOB_NAMESPACE
        if _disabled():
            return cls(None, datasets, namespace)
        if _standard_configuration_present():
            client = OpenLineageClient()
        else:
            path = Path(state or home).resolve() / DEFAULT_EVENTS_FILE
            path.parent.mkdir(parents=True, exist_ok=True)
            # Append mode writes each event as one line with one write() on an O_APPEND file, so
            # parallel step processes do not interleave (tests/test_openlineage.py checks it).
            client = OpenLineageClient(transport=FileTransport(FileConfig(log_file_path=str(path), append=True)))
        return cls(client, datasets, namespace)

    @property
    def enabled(self) -> bool:
        return self.client is not None

    @staticmethod
    def derive_run_id(dagster_run_id: str, job: str, partition: str | None) -> str:
        """uuid5 of the Dagster run id (a UUID; any other string is hashed into one first)."""
        try:
            base = uuid.UUID(dagster_run_id)
        except ValueError:
            base = uuid.uuid5(uuid.NAMESPACE_URL, f"dagster-run:{dagster_run_id}")
        return str(uuid.uuid5(base, f"{job}/{partition or ''}"))

    @contextmanager
    def run(
        self,
        job_name: str,
        run_id: str,
        inputs: Sequence[DatasetRef],
        outputs: Sequence[DatasetRef],
        partition: str | None = None,
        parent_job: str | None = None,
    ) -> Iterator[RunHandle]:
        """START on enter, COMPLETE on normal exit, FAIL (with an errorMessage facet) on an
        exception (ABORT on a BaseException such as KeyboardInterrupt), which is re-raised. `run_id` is the Dagster run id; `parent_job` the Dagster
        job name, recorded with it in the `parent` facet."""
        handle = RunHandle(self.derive_run_id(run_id, job_name, partition), inputs, outputs)
        if not self.enabled:
            yield handle
            return
        run_facets: dict[str, Any] = {}
        try:
            uuid.UUID(run_id)
            run_facets["parent"] = parent_run.ParentRunFacet(
                run=parent_run.Run(runId=run_id),
                job=parent_run.Job(namespace=self.job_namespace, name=parent_job or "dagster"),
                producer=PRODUCER,
            )
        except ValueError:
            pass  # not a Dagster run id; the facet requires a UUID
        self._emit(RunState.START, job_name, handle, run_facets, with_facets=False)
        try:
            yield handle
        except GeneratorExit:
            raise
        except BaseException as error:
            # An exception is a failed run; anything else (KeyboardInterrupt, Dagster's
            # interruption on termination) stopped it from outside: ABORT.
            state = RunState.FAIL if isinstance(error, Exception) else RunState.ABORT
            failed = dict(run_facets)
            failed["errorMessage"] = error_message_run.ErrorMessageRunFacet(
                message=f"{type(error).__name__}: {error}",
                programmingLanguage="PYTHON",
                stackTrace="".join(traceback.format_exception(error)),
                producer=PRODUCER,
            )
            self._emit(state, job_name, handle, failed, with_facets=True)
            raise
        self._emit(RunState.COMPLETE, job_name, handle, run_facets, with_facets=True)

    def _emit(self, state: RunState, job: str, handle: RunHandle, run_facets: dict[str, Any], with_facets: bool) -> None:
        inputs, outputs = handle.datasets(with_facets)
        event = RunEvent(
            eventType=state,
            eventTime=datetime.now(UTC).isoformat(),
            run=Run(runId=handle.run_id, facets=dict(run_facets)),
            job=Job(namespace=self.job_namespace, name=job),
            inputs=inputs,
            outputs=outputs,
            producer=PRODUCER,
        )
        try:
            self.client.emit(event)
            self.emitted += 1
        except Exception:  # a lineage backend outage must not fail the materialisation
            self.emit_errors += 1
            log.warning("OpenLineage %s event for %s (run %s) was not delivered", state.value, job, handle.run_id, exc_info=True)

    def close(self) -> None:
        if self.client is not None:
            self.client.close()
