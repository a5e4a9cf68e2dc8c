"""OpenLineage events: real HTTP over loopback, the default JSON-lines file, the spec's JSON schema."""

from __future__ import annotations

import gzip
import hashlib
import json
import multiprocessing
import os
import threading
import uuid
from collections import Counter
from datetime import datetime
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path

import pyarrow as pa
import pytest
from jsonschema import Draft202012Validator, FormatChecker
from referencing import Registry, Resource

from opencorpus_dagster.lineage.openlineage import (
    DEDUP_JOB,
    OPENCORPUS_FACET_SCHEMA,
    PRODUCER,
    SHARDS_JOB,
    DatasetRef,
    LineageEmitter,
    documents_column_lineage,
    documents_job,
    job_name,
    raw_job,
    shards_column_lineage,
)
from opencorpus_dagster.stages.corpus import DUPLICATES_SCHEMA
from opencorpus_dagster.stages.documents import DOCUMENT_SCHEMA
from opencorpus_dagster.stages.ingest import RAW_SCHEMA
from opencorpus_dagster.stages.shards import SHARD_COLUMNS, SHARD_SCHEMA

SPEC_DIR = Path(__file__).parent / "data" / "openlineage"
CORE = "https://openlineage.io/spec/2-0-2/OpenLineage.json"
# Facets the client or we emit whose schema files are not vendored (see the report): they are
# still validated as generic facets by the core schema, and this list makes a new one visible.
NOT_VENDORED = {
    "https://openlineage.io/spec/facets/1-2-0/ColumnLineageDatasetFacet.json",
    "https://openlineage.io/spec/facets/1-0-2/OutputStatisticsOutputDatasetFacet.json",
    "https://openlineage.io/spec/facets/1-2-0/ParentRunFacet.json",
    "https://openlineage.io/spec/facets/1-0-0/TagsRunFacet.json",
}
DAGSTER_RUN = "6f1c2a8e-3b7d-4e55-9a0c-1d2e3f405162"


# --------------------------------------------------------------------------------------------
# Spec validation (offline: the registry holds every document a $ref can reach)


def _registry() -> Registry:
    documents = [json.loads(path.read_text()) for path in sorted(SPEC_DIR.glob("*.json"))]
    documents.append(OPENCORPUS_FACET_SCHEMA)
    return Registry().with_resources((d["$id"], Resource.from_contents(d)) for d in documents)


REGISTRY = _registry()


def _validator(url: str) -> Draft202012Validator:
    return Draft202012Validator({"$ref": url}, registry=REGISTRY, format_checker=FormatChecker())


def _facet_bags(event: dict):
    yield event["run"].get("facets", {})
    yield event["job"].get("facets", {})
    for dataset in event.get("inputs", []) + event.get("outputs", []):
        for key in ("facets", "inputFacets", "outputFacets"):
            yield dataset.get(key, {})


def validate(event: dict) -> set[str]:
    """Validate an event against the core spec and each facet against the schema its
    `_schemaURL` names; returns the schema documents that are not vendored."""
    _validator(f"{CORE}#/$defs/RunEvent").validate(event)
    assert event["schemaURL"] == f"{CORE}#/$defs/RunEvent"
    uuid.UUID(event["run"]["runId"])
    assert datetime.fromisoformat(event["eventTime"]).tzinfo is not None
    missing = set()
    for bag in _facet_bags(event):
        for facet in bag.values():
            document = facet["_schemaURL"].split("#", 1)[0]
            if document in NOT_VENDORED:
                missing.add(document)
            else:
                _validator(facet["_schemaURL"]).validate(facet)
    return missing


@pytest.mark.parametrize(
    ("file", "sha256"),
    [
        ("OpenLineage-2-0-2.json", "69f68bee00b9beac88a87059c0102410e7bb05f3f43c46d02a0409831eceb0d2"),
        ("SchemaDatasetFacet-1-2-0.json", "50236a779aa64baa0bad0055391838bd22fcb36ce667c41d60ada80915e899b6"),
        ("ErrorMessageRunFacet-1-0-1.json", "b11b4ee8b0f99f6846264f87cad48390255c7ef142ce623216660c7097be0ea6"),
    ],
)
def test_vendored_spec_files_are_the_published_ones(file, sha256):
    assert hashlib.sha256((SPEC_DIR / file).read_bytes()).hexdigest() == sha256


def test_the_validator_rejects_a_broken_event():
    good = {
        "eventTime": "2024-01-01T00:00:00+00:00",
        "producer": PRODUCER,
        "schemaURL": f"{CORE}#/$defs/RunEvent",
        "eventType": "START",
        "run": {"runId": str(uuid.uuid4())},
        "job": {"namespace": "opencorpus", "name": "x.raw"},
    }
    validate(good)
    with pytest.raises(Exception, match="'name' is a required property"):
        validate({**good, "job": {"namespace": "opencorpus"}})
    facet = {"_producer": PRODUCER, "_schemaURL": OPENCORPUS_FACET_SCHEMA["$id"] + "#/$defs/OpencorpusDatasetFacet"}
    with pytest.raises(Exception, match="-1 is less than the minimum"):
        _validator(facet["_schemaURL"]).validate({**facet, "licenses": {"CC0-1.0": -1}, "outcomes": {}})


# --------------------------------------------------------------------------------------------
# Environment: every test starts with no OpenLineage configuration at all


@pytest.fixture(autouse=True)
def clean_openlineage_environment(monkeypatch, tmp_path):
    saved = {k: v for k, v in os.environ.items() if k.startswith("OPENLINEAGE")}
    for key in saved:
        monkeypatch.delenv(key)
    # No stray openlineage.yml from the working directory or ~/.openlineage.
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("HOME", str(tmp_path))
    yield
    # OpenLineageClient copies OPENLINEAGE_URL into OPENLINEAGE__TRANSPORT__... variables of
    # its own; drop them so the next test starts clean.
    for key in [k for k in os.environ if k.startswith("OPENLINEAGE") and k not in saved]:
        del os.environ[key]


class Receiver:
    """An OpenLineage HTTP endpoint on loopback that records what is POSTed to it. With `hold`
    (job name, event type), it does not answer that event (`holding` is set meanwhile) until
    it closes."""

    def __init__(self, status: int = 200, hold: tuple[str, str] | None = None):
        self.events: list[dict] = []
        self.paths: list[str] = []
        self.holding, self._release = threading.Event(), threading.Event()
        outer = self

        class Handler(BaseHTTPRequestHandler):
            def do_POST(self):
                body = self.rfile.read(int(self.headers["Content-Length"]))
                if self.headers.get("Content-Encoding") == "gzip":
                    body = gzip.decompress(body)
                outer.paths.append(self.path)
                event = json.loads(body)
                outer.events.append(event)
                if (event["job"]["name"], event["eventType"]) == hold:
                    outer.holding.set()
                    outer._release.wait(timeout=300)
                try:
                    self.send_response(status)
                    self.end_headers()
                except (BrokenPipeError, ConnectionResetError):
                    pass  # the client is gone (a stopped build)

            def log_message(self, *args):
                pass

        self.server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.url = f"http://127.0.0.1:{self.server.server_port}"
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    def __enter__(self) -> Receiver:
        self.thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._release.set()
        self.server.shutdown()
        self.server.server_close()


# --------------------------------------------------------------------------------------------
# The chain raw -> documents -> dedup -> shards over HTTP

GUTENBERG_URLS = [
    "https://www.gutenberg.org/cache/epub/feeds/rdf-files.tar.bz2",
    "https://www.gutenberg.org/cache/epub/1342/pg1342.txt",
]
ENWIKI_URL = "https://dumps.wikimedia.org/enwiki/20240601/enwiki-20240601-pages-articles1.xml-p1p41242.bz2"


def emit_chain(emitter: LineageEmitter) -> None:
    """Two sources through every stage, plus one failing documents partition."""
    d = emitter.datasets
    for source, partition, urls, rows, size, licenses in [
        ("gutenberg", "books-0001", GUTENBERG_URLS, 12, 40_960, {"LicenseRef-PublicDomain": 12}),
        ("enwiki", "pages-p1p41242", [ENWIKI_URL], 30, 81_920, {"CC-BY-SA-4.0": 30}),
    ]:
        with emitter.run(raw_job(source), DAGSTER_RUN, [DatasetRef.from_url(u) for u in urls], [d.raw(source)], partition) as run:
            run.set_schema(d.raw(source), RAW_SCHEMA)
            run.set_output_stats(d.raw(source), rows=rows, size=size)
            run.set_facet(d.raw(source), "opencorpus", {"licenses": licenses, "outcomes": {"kept": rows, "skipped": 2}, "partition": partition})
    for source, partition, kept, filtered in [("gutenberg", "books-0001", 11, 1), ("enwiki", "pages-p1p41242", 25, 5)]:
        with emitter.run(documents_job(source), DAGSTER_RUN, [d.raw(source)], [d.documents(source)], partition, parent_job="build") as run:
            run.set_schema(d.documents(source), DOCUMENT_SCHEMA)
            run.set_column_lineage(d.documents(source), documents_column_lineage(d.raw(source)))
            run.set_output_stats(d.documents(source), rows=kept, size=kept * 1000)
            run.set_facet(d.documents(source), "opencorpus", {"licenses": {}, "outcomes": {"kept": kept, "filtered": filtered}, "partition": partition})
    with pytest.raises(ValueError, match="truncated bz2 stream"):
        with emitter.run(documents_job("enwiki"), DAGSTER_RUN, [d.raw("enwiki")], [d.documents("enwiki")], "pages-p41243p151573"):
            raise ValueError("enwiki-20240601-pages-articles2.xml.bz2: truncated bz2 stream")
    documents = [d.documents("enwiki"), d.documents("gutenberg")]
    with emitter.run(DEDUP_JOB, DAGSTER_RUN, documents, [d.duplicates()]) as run:
        run.set_schema(d.duplicates(), DUPLICATES_SCHEMA)
        run.set_output_stats(d.duplicates(), rows=3, size=2048)
        run.set_facet(d.duplicates(), "opencorpus", {"licenses": {}, "outcomes": {"duplicate": 3}})
    with emitter.run(SHARDS_JOB, DAGSTER_RUN, [*documents, d.duplicates()], [d.shards()]) as run:
        run.set_schema(d.shards(), SHARD_SCHEMA)
        run.set_column_lineage(d.shards(), shards_column_lineage(documents, d.duplicates(), SHARD_COLUMNS))
        run.set_output_stats(d.shards(), rows=33, size=123_456, files=2)
        run.set_facet(d.shards(), "opencorpus", {"licenses": {"CC-BY-SA-4.0": 22, "LicenseRef-PublicDomain": 11}, "outcomes": {"kept": 33}})


def test_chain_over_http_is_valid_connected_and_carries_the_facets(monkeypatch, tmp_path):
    home = tmp_path / "home"
    with Receiver() as receiver:
        monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
        emitter = LineageEmitter.from_environment(home)
        emit_chain(emitter)
    events = receiver.events
    assert receiver.paths == ["/api/v1/lineage"] * 14
    assert emitter.emitted == 14 and emitter.emit_errors == 0
    assert not (home / "openlineage").exists()  # HTTP configured: no default file

    missing = set().union(*(validate(e) for e in events))
    assert missing == NOT_VENDORED

    # One START and one terminal event per run, in order, the run id shared by both.
    by_run: dict[str, list[dict]] = {}
    for event in events:
        by_run.setdefault(event["run"]["runId"], []).append(event)
    lifecycle = sorted((e[0]["job"]["name"], tuple(x["eventType"] for x in e)) for e in by_run.values())
    assert lifecycle == [
        ("corpus.dedup", ("START", "COMPLETE")),
        ("corpus.shards", ("START", "COMPLETE")),
        ("enwiki.documents", ("START", "COMPLETE")),
        ("enwiki.documents", ("START", "FAIL")),
        ("enwiki.raw", ("START", "COMPLETE")),
        ("gutenberg.documents", ("START", "COMPLETE")),
        ("gutenberg.raw", ("START", "COMPLETE")),
    ]
    assert {e["job"]["namespace"] for e in events} == {"opencorpus"}
    assert {e["producer"] for e in events} == {PRODUCER}

    # Connected: every home dataset a finished job read was written by an earlier finished job.
    namespace = home.resolve().as_uri()
    written: set[tuple[str, str]] = set()
    upstream_roots = set()
    for event in events:
        if event["eventType"] != "COMPLETE":
            continue
        for dataset in event["inputs"]:
            key = (dataset["namespace"], dataset["name"])
            if dataset["namespace"] == namespace:
                assert key in written, f"{event['job']['name']} reads {key}, which no earlier job wrote"
            else:
                upstream_roots.add(key)
        written |= {(o["namespace"], o["name"]) for o in event["outputs"]}
    assert written == {(namespace, n) for n in ("raw/gutenberg", "raw/enwiki", "documents/gutenberg", "documents/enwiki", "dedup/duplicates", "corpus/shards")}
    assert upstream_roots == {
        ("https://www.gutenberg.org", "/cache/epub/feeds/rdf-files.tar.bz2"),
        ("https://www.gutenberg.org", "/cache/epub/1342/pg1342.txt"),
        ("https://dumps.wikimedia.org", "/enwiki/20240601/enwiki-20240601-pages-articles1.xml-p1p41242.bz2"),
    }

    complete = {(e["job"]["name"], e["run"]["facets"].get("parent", {}).get("job", {}).get("name")): e for e in events if e["eventType"] == "COMPLETE"}
    raw = complete[("gutenberg.raw", "dagster")]["outputs"][0]
    assert raw["outputFacets"]["outputStatistics"]["rowCount"] == 12
    assert raw["outputFacets"]["outputStatistics"]["size"] == 40_960
    assert raw["facets"]["opencorpus"]["licenses"] == {"LicenseRef-PublicDomain": 12}
    assert raw["facets"]["opencorpus"]["outcomes"] == {"kept": 12, "skipped": 2}
    assert raw["facets"]["opencorpus"]["partition"] == "books-0001"
    assert [(f["name"], f["type"], f["ordinal_position"]) for f in raw["facets"]["schema"]["fields"]][7] == ("payload", "large_string", 8)

    docs = complete[("enwiki.documents", "build")]
    assert docs["run"]["facets"]["parent"]["run"]["runId"] == DAGSTER_RUN
    lineage = docs["outputs"][0]["facets"]["columnLineage"]
    assert set(lineage["fields"]) == set(DOCUMENT_SCHEMA.names)
    text_inputs = lineage["fields"]["text"]["inputFields"]
    assert (text_inputs[0]["name"], text_inputs[0]["field"], text_inputs[0]["transformations"][0]["type"]) == ("raw/enwiki", "payload", "DIRECT")
    assert docs["outputs"][0]["facets"]["opencorpus"]["outcomes"] == {"kept": 25, "filtered": 5}

    shards = complete[("corpus.shards", "dagster")]
    assert [i["name"] for i in shards["inputs"]] == ["documents/enwiki", "documents/gutenberg", "dedup/duplicates"]
    stats = shards["outputs"][0]["outputFacets"]["outputStatistics"]
    assert (stats["rowCount"], stats["size"], stats["fileCount"]) == (33, 123_456, 2)
    title = shards["outputs"][0]["facets"]["columnLineage"]["fields"]["title"]["inputFields"]
    assert [(i["name"], i["field"]) for i in title] == [("documents/enwiki", "title"), ("documents/gutenberg", "title")]

    (failed,) = [e for e in events if e["eventType"] == "FAIL"]
    error = failed["run"]["facets"]["errorMessage"]
    assert error["message"] == "ValueError: enwiki-20240601-pages-articles2.xml.bz2: truncated bz2 stream"
    assert error["programmingLanguage"] == "PYTHON"
    assert "raise ValueError" in error["stackTrace"]
    # START events name the datasets only; facets travel with the terminal event.
    assert all(not d.get("facets") for e in events if e["eventType"] == "START" for d in e["outputs"])


def test_default_transport_appends_valid_json_lines(tmp_path):
    home = tmp_path / "home"
    emitter = LineageEmitter.from_environment(home)
    emit_chain(emitter)
    emitter2 = LineageEmitter.from_environment(home)  # a second process appends, never truncates
    with emitter2.run(raw_job("gutenberg"), DAGSTER_RUN, [], [emitter2.datasets.raw("gutenberg")], "books-0002"):
        pass
    lines = (home / "openlineage" / "events.jsonl").read_text().splitlines()
    assert len(lines) == 16
    events = [json.loads(line) for line in lines]
    for event in events:
        validate(event)
    assert Counter(e["eventType"] for e in events) == {"START": 8, "COMPLETE": 7, "FAIL": 1}
    assert events[-1]["run"]["runId"] == LineageEmitter.derive_run_id(DAGSTER_RUN, "gutenberg.raw", "books-0002")


def test_openlineage_config_file_and_namespace(monkeypatch, tmp_path):
    with Receiver() as receiver:
        config = tmp_path / "ol.yml"
        config.write_text(f"transport:\n  type: http\n  url: {receiver.url}\n  endpoint: custom/lineage\n")
        monkeypatch.setenv("OPENLINEAGE_CONFIG", str(config))
        monkeypatch.setenv("OPENLINEAGE_NAMESPACE", "corpus-prod")
        emitter = LineageEmitter.from_environment(tmp_path / "home")
        with emitter.run(DEDUP_JOB, DAGSTER_RUN, [], [emitter.datasets.duplicates()]):
            pass
    assert receiver.paths == ["/custom/lineage", "/custom/lineage"]
    assert [(e["job"]["namespace"], e["job"]["name"]) for e in receiver.events] == [("corpus-prod", "corpus.dedup")] * 2


def test_disabled_emits_nothing_but_the_run_still_works(monkeypatch, tmp_path):
    monkeypatch.setenv("OPENLINEAGE_DISABLED", "true")
    emitter = LineageEmitter.from_environment(tmp_path / "home")
    assert not emitter.enabled
    with emitter.run(raw_job("enwiki"), DAGSTER_RUN, [], [emitter.datasets.raw("enwiki")], "p1") as run:
        run.set_output_stats(emitter.datasets.raw("enwiki"), 1, 2)
    with pytest.raises(RuntimeError, match="boom"):
        with emitter.run(raw_job("enwiki"), DAGSTER_RUN, [], [], "p1"):
            raise RuntimeError("boom")
    assert emitter.emitted == 0
    assert not (tmp_path / "home").exists()


def test_a_refusing_backend_does_not_fail_the_run(monkeypatch, tmp_path):
    with Receiver(status=400) as receiver:
        monkeypatch.setenv("OPENLINEAGE_URL", receiver.url)
        emitter = LineageEmitter.from_environment(tmp_path / "home")
        with emitter.run(SHARDS_JOB, DAGSTER_RUN, [], [emitter.datasets.shards()]) as run:
            run.set_output_stats(emitter.datasets.shards(), 5, 10)
    assert (emitter.emitted, emitter.emit_errors, len(receiver.events)) == (0, 2, 2)


def test_keyboard_interrupt_is_an_abort(tmp_path):
    emitter = LineageEmitter.from_environment(tmp_path)
    with pytest.raises(KeyboardInterrupt):
        with emitter.run(raw_job("enwiki"), DAGSTER_RUN, [], [], "p9"):
            raise KeyboardInterrupt
    events = [json.loads(x) for x in (tmp_path / "openlineage" / "events.jsonl").read_text().splitlines()]
    assert [e["eventType"] for e in events] == ["START", "ABORT"]
    assert events[1]["run"]["facets"]["errorMessage"]["message"] == "KeyboardInterrupt: "


@pytest.mark.parametrize(
    ("call", "error"),
    [
        (lambda run, d: run.set_output_stats(d.raw("x"), 1, 1), "not an output"),
        (lambda run, d: run.set_facet(d.shards(), "opencorpus", {"licenses": {}, "outcomes": {}}), "neither an input nor an output"),
        (lambda run, d: run.set_facet(d.documents("x"), "quality", {"score": 1}), "must be a DatasetFacet"),
        (lambda run, d: run.set_facet(d.documents("x"), "opencorpus", {"licences": {}}), "unexpected keyword"),
        (lambda run, d: run.set_column_lineage(d.raw("x"), documents_column_lineage(d.raw("x"))), "describes an output"),
    ],
)
def test_misuse_is_refused(tmp_path, call, error):
    emitter = LineageEmitter(None, LineageEmitter.from_environment(tmp_path).datasets)
    d = emitter.datasets
    with emitter.run(documents_job("x"), DAGSTER_RUN, [d.raw("x")], [d.documents("x")], "p") as run:
        with pytest.raises((ValueError, TypeError), match=error):
            call(run, d)


@pytest.mark.parametrize(
    ("url", "namespace", "name"),
    [
        ("https://www.gutenberg.org/cache/epub/1342/pg1342.txt", "https://www.gutenberg.org", "/cache/epub/1342/pg1342.txt"),
        ("https://data.commoncrawl.org/crawl-data/CC-MAIN-2024-10/x.warc.gz#offset=10&length=5", "https://data.commoncrawl.org", "/crawl-data/CC-MAIN-2024-10/x.warc.gz"),
        ("http://127.0.0.1:8080/dump.xml?version=2", "http://127.0.0.1:8080", "/dump.xml?version=2"),
        ("s3://commoncrawl/crawl-data/a.warc.gz", "s3://commoncrawl", "/crawl-data/a.warc.gz"),
    ],
)
def test_upstream_dataset_names(url, namespace, name):
    assert DatasetRef.from_url(url) == DatasetRef(namespace, name)


def test_names_and_run_ids(tmp_path):
    assert job_name("gutenberg", "raw") == raw_job("gutenberg") == "gutenberg.raw"
    assert job_name("corpus", "dedup") == DEDUP_JOB
    d = LineageEmitter.from_environment(tmp_path / "h").datasets
    assert d.namespace == f"file://{(tmp_path / 'h').resolve()}"
    assert [d.raw("s").name, d.documents("s").name, d.duplicates().name, d.shards().name] == [
        "raw/s", "documents/s", "dedup/duplicates", "corpus/shards"
    ]
    ids = {
        LineageEmitter.derive_run_id(DAGSTER_RUN, job, partition)
        for job in ("s.raw", "s.documents")
        for partition in ("p1", "p2", None)
    }
    assert len(ids) == 6
    assert LineageEmitter.derive_run_id(DAGSTER_RUN, "s.raw", "p1") == LineageEmitter.derive_run_id(DAGSTER_RUN, "s.raw", "p1")
    assert uuid.UUID(LineageEmitter.derive_run_id(DAGSTER_RUN, "s.raw", "p1")).version == 5
    assert uuid.UUID(LineageEmitter.derive_run_id("not-a-uuid", "s.raw", "p1")).version == 5


def test_schema_facet_keeps_nested_structs():
    from opencorpus_dagster.lineage.openlineage import schema_facet

    facet = schema_facet(pa.schema([("id", pa.string()), ("meta", pa.struct([("lang", pa.string()), ("n", pa.int32())]))]))
    (meta,) = [f for f in facet.fields if f.name == "meta"]
    assert [(f.name, f.type, f.ordinal_position) for f in meta.fields] == [("lang", "string", 1), ("n", "int32", 2)]


def _write_events(home: str, worker: int, count: int) -> None:
    emitter = LineageEmitter.from_environment(Path(home))
    wide = pa.schema([(f"column_{i:04d}_{'x' * 40}", pa.string()) for i in range(300)])  # ~38 KB per COMPLETE event
    d = emitter.datasets
    for n in range(count):
        with emitter.run(raw_job(f"w{worker}"), DAGSTER_RUN, [], [d.raw(f"w{worker}")], f"p{n}") as run:
            run.set_schema(d.raw(f"w{worker}"), wide)


def test_parallel_processes_never_interleave_lines(tmp_path):
    context = multiprocessing.get_context("fork")  # no re-import: the workers start in milliseconds
    workers = [context.Process(target=_write_events, args=(str(tmp_path), w, 10)) for w in range(4)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
        assert worker.exitcode == 0
    lines = (tmp_path / "openlineage" / "events.jsonl").read_bytes().splitlines()
    assert len(lines) == 4 * 10 * 2
    events = [json.loads(line) for line in lines]
    assert min(len(line) for line, e in zip(lines, events) if e["eventType"] == "COMPLETE") > 30_000
    assert Counter(e["job"]["name"] for e in events) == {f"w{w}.raw": 20 for w in range(4)}
