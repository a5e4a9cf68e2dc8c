"""OpenLineage events of a real build, received over loopback HTTP and validated against the spec."""

from __future__ import annotations

import shutil
from collections import Counter

from cli_runner import REPO, build
from conftest import current_manifest
from test_openlineage import Receiver, validate


def test_a_build_emits_a_connected_valid_graph(tmp_path, fixture_mirror):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog / "enwiki.yaml")
    with Receiver() as receiver:
        build(tmp_path / "home", fixture_mirror, catalog, env={"OPENLINEAGE_URL": receiver.url})
    events = receiver.events
    assert not (tmp_path / "home" / "openlineage").exists()  # the configured transport, not the file
    states = Counter((e["job"]["name"], e["eventType"]) for e in events)
    jobs = ["enwiki.raw", "enwiki.documents", "corpus.takedown", "corpus.dedup", "corpus.shards"]
    for job in ("enwiki.raw", "enwiki.documents", "corpus.dedup", "corpus.shards"):
        assert states[(job, "START")] == 1 and states[(job, "COMPLETE")] == 1, (job, states)
    assert all(e["job"]["name"] in jobs for e in events)
    for event in events:
        validate(event)

    complete = {e["job"]["name"]: e for e in events if e["eventType"] == "COMPLETE"}
    outputs = {job: {(d["namespace"], d["name"]) for d in e["outputs"]} for job, e in complete.items()}
    inputs = {job: {(d["namespace"], d["name"]) for d in e["inputs"]} for job, e in complete.items()}
    produced = set().union(*outputs.values())
    # Every input of a pipeline job is the output of an earlier one, except the upstream dump file.
    for job in ("enwiki.documents", "corpus.dedup", "corpus.shards"):
        assert inputs[job] <= produced, job
    ((namespace, name),) = inputs["enwiki.raw"]
    assert (namespace, name) == ("https://dumps.wikimedia.org", "/enwiki/latest/enwiki-latest-pages-articles1.xml-p000000010p000030302.bz2")

    manifest = current_manifest(tmp_path / "home")
    (shards,) = complete["corpus.shards"]["outputs"]
    assert shards["outputFacets"]["outputStatistics"]["rowCount"] == manifest["totals"]["rows"]
    assert shards["facets"]["opencorpus"]["licenses"] == manifest["totals"]["licenses"]
    assert {f["name"] for f in shards["facets"]["schema"]["fields"]} >= {"doc_id", "text", "license", "upstream_uri"}
    (documents,) = complete["enwiki.documents"]["outputs"]
    lineage = documents["facets"]["columnLineage"]["fields"]["text"]["inputFields"]
    assert {"namespace": lineage[0]["namespace"], "name": "raw/enwiki", "field": "payload"}.items() <= lineage[0].items()
