"""End to end: `opencorpus build` on the default catalog against the fixture mirror.

Runs the real console script (Dagster, DuckDB, pyarrow, the connectors) in subprocesses, each
with its own data home and Dagster instance.
"""

from __future__ import annotations

import io
import json
import os
import shutil
import subprocess
import sys
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from cli_runner import OPENCORPUS, REPO, build, run_opencorpus, shard_bytes, shard_name
from conftest import current_manifest, release_folder, shard_path
from dagster import DagsterInstance, RunsFilter

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.lineage.trace import trace_shard_row
from opencorpus_dagster.stages.audit import (
    conservation_problems,
    manifest_mismatches,
    repeated_doc_ids,
)
from opencorpus_dagster.state.home import DataHome

ENWIKI_PARTITION = "enwiki-latest-pages-articles1.xml-p000000010p000030302"
TABLES_DUMP = "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles2.xml-p000030304p000088444.bz2"


@pytest.fixture(scope="module")
def built(built_corpus):
    return built_corpus


def test_summary_equals_lineage_store(built):
    home, summary = built
    store = LineageStore.at(home / "lineage", read_only=True)
    with store.connection() as conn:
        records_in = conn.execute("SELECT sum(records_in) FROM partitions WHERE stage = 'raw'").fetchone()[0]
        outcomes = dict(conn.execute("SELECT outcome, count(*) FROM outcomes GROUP BY 1").fetchall())
        shard_rows = conn.execute("SELECT count(*) FROM shard_rows").fetchone()[0]
    assert summary["records_in"] == records_in
    assert summary["outcomes"] == outcomes
    assert sum(outcomes.values()) == records_in
    assert outcomes["kept"] == shard_rows
    assert summary["failed"] == []
    assert len(summary["processed"]) == 10  # 9 Gutenberg batches + 1 enwiki dump
    # The enwiki fixture: 206 pages, 100 of them redirects (skipped with their own outcome).
    assert store.outcome_counts("enwiki").get("skipped", 0) >= 100


def test_every_shard_row_traces_to_a_licensed_upstream_record(built):
    home, _ = built
    store = LineageStore.at(home / "lineage", read_only=True)
    manifest = current_manifest(home)
    assert manifest["totals"]["rows"] > 0
    for shard in manifest["shards"]:
        with duckdb.connect() as conn:
            rows = conn.execute(
                "SELECT doc_id, license, upstream_uri FROM read_parquet(?, file_row_number = true) ORDER BY file_row_number",
                [str(release_folder(home) / shard["path"])],
            ).fetchall()
        assert len(rows) == shard["rows"]
        for row_number, (doc_id, license, upstream_uri) in enumerate(rows):
            (trace,) = trace_shard_row(store, shard["path"], row_number)
            assert trace["doc_id"] == doc_id
            assert trace["outcome"] == "kept"
            assert trace["license"] == license and license
            assert trace["license_evidence"]
            assert trace["upstream_uri"] == upstream_uri
            assert trace["upstream_file"]["sha256"] and len(trace["upstream_file"]["sha256"]) == 64
            assert trace["attribution"]


def test_licences_in_the_fixture_corpus(built):
    home, _ = built
    manifest = current_manifest(home)
    licenses = manifest["totals"]["licenses"]
    # Moby Dick is the only fixture book with an RDF record; the others have no licence evidence.
    assert licenses.get("LicenseRef-PublicDomain") == 1
    assert set(licenses) <= {"LicenseRef-PublicDomain", "CC-BY-SA-3.0", "CC-BY-SA-4.0"}
    store = LineageStore.at(home / "lineage", read_only=True)
    with store.connection() as conn:
        unknown = conn.execute(
            "SELECT count(*) FROM outcomes WHERE source = 'gutenberg' AND reason = 'license.unknown'"
        ).fetchone()[0]
    assert unknown == 14


def test_trace_cli_prints_upstream_licence_and_decisions(built):
    home, _ = built
    manifest = current_manifest(home)
    shard = next(s for s in manifest["shards"] if s["source"] == "enwiki")
    result = run_opencorpus("trace", "--shard", shard["path"], "--row", "0", home=home)
    assert "upstream uri: https://dumps.wikimedia.org/enwiki/latest/" in result.stdout
    assert "#page=" in result.stdout and "licence: CC-BY-SA-" in result.stdout
    assert "dedup: kept" in result.stdout
    listing = run_opencorpus("trace", "--source", "gutenberg", home=home)
    assert shard_path(home, "gutenberg", "02000-02999") in listing.stdout


def test_corpus_invariants_hold(built):
    home, _ = built
    store = LineageStore.at(home / "lineage", read_only=True)
    assert conservation_problems(store) == []
    assert manifest_mismatches(DataHome(home)) == []
    assert repeated_doc_ids(DataHome(home)) == []


def test_shards_are_readable_by_pandas_and_duckdb(built):
    import pandas

    home, _ = built
    manifest = current_manifest(home)
    frame = pandas.read_parquet([str(release_folder(home) / s["path"]) for s in manifest["shards"]])
    assert len(frame) == manifest["totals"]["rows"]
    assert frame["doc_id"].is_unique
    assert frame["text"].str.len().min() > 0


def test_two_builds_from_scratch_are_byte_identical(built, tmp_path, fixture_mirror):
    home, _ = built
    other = tmp_path / "home2"
    build(other, fixture_mirror)
    assert shard_bytes(other) == shard_bytes(home)


def test_a_new_upstream_unit_is_the_only_partition_processed(tmp_path, fixture_mirror):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog / "enwiki.yaml")
    home = tmp_path / "home"
    first = json.loads(build(home, fixture_mirror, catalog).stdout)
    assert first["processed"] == [f"enwiki/{ENWIKI_PARTITION}"]
    raw = home / "raw" / "enwiki" / f"{ENWIKI_PARTITION}.parquet"
    before = (raw.stat().st_mtime_ns, raw.read_bytes())
    shards_before = shard_bytes(home)

    text = (catalog / "enwiki.yaml").read_text()
    (catalog / "enwiki.yaml").write_text(text.replace("  namespaces:", f"    - {TABLES_DUMP}\n  namespaces:"))
    second = json.loads(build(home, fixture_mirror, catalog).stdout)
    new_partition = "enwiki-latest-pages-articles2.xml-p000030304p000088444"
    assert second["processed"] == [f"enwiki/{new_partition}"]
    assert second["unchanged"] == [f"enwiki/{ENWIKI_PARTITION}"]
    assert (raw.stat().st_mtime_ns, raw.read_bytes()) == before  # not re-read, not rewritten
    after = shard_bytes(home)
    assert any(path.startswith(f"shards/enwiki/{new_partition}/") for path in after)
    # The second dump repeats one page (id 316) at a newer revision: that record supersedes the
    # old one, so the old partition's shard is rewritten without it and with nothing else changed.
    old_shard = release_folder(home) / shard_path(home, "enwiki", ENWIKI_PARTITION)
    with duckdb.connect() as conn:
        superseded = conn.execute("SELECT doc_id, reason FROM read_parquet(?)", [str(home / "dedup/duplicates.parquet")]).fetchall()
        ids_after = {r[0] for r in conn.execute("SELECT doc_id FROM read_parquet(?)", [str(old_shard)]).fetchall()}
    ((superseded_id, reason),) = superseded
    assert reason == "dedup.superseded"
    old_rows = pq.read_table(io.BytesIO(shards_before[f"shards/enwiki/{ENWIKI_PARTITION}/part-00000.parquet"]))
    assert ids_after == set(old_rows["doc_id"].to_pylist()) - {superseded_id}
    store = LineageStore.at(home / "lineage", read_only=True)
    with store.connection() as conn:
        fetched = conn.execute("SELECT partition, count(*) FROM fetches GROUP BY 1 ORDER BY 1").fetchall()
    assert fetched == [(ENWIKI_PARTITION, 1), (new_partition, 1)]


def test_truncated_dump_fails_its_partition_only(tmp_path, fixture_mirror):
    mirror = tmp_path / "mirror"
    shutil.copytree(fixture_mirror, mirror, symlinks=True)
    dump = mirror / "dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles2.xml-p000030304p000088444.bz2"
    data = dump.read_bytes()
    dump.unlink()
    dump.write_bytes(data[: len(data) // 2])
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    text = (REPO / "assets" / "enwiki.yaml").read_text()
    (catalog / "enwiki.yaml").write_text(text.replace("  namespaces:", f"    - {TABLES_DUMP}\n  namespaces:"))
    home = tmp_path / "home"
    result = build(home, mirror, catalog, check=False)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    (failure,) = summary["failed"]
    assert "enwiki-latest-pages-articles2.xml-p000030304p000088444" in failure
    assert "articles2.xml-p000030304p000088444.bz2" in failure  # names the file
    assert summary["processed"] == [f"enwiki/{ENWIKI_PARTITION}"]
    assert not (home / "raw" / "enwiki" / "enwiki-latest-pages-articles2.xml-p000030304p000088444.parquet").exists()
    manifest = current_manifest(home)
    assert [s["partition"] for s in manifest["shards"]] == [ENWIKI_PARTITION]
    assert summary["outcomes"]["kept"] == manifest["totals"]["rows"] > 0


def test_catalog_with_a_typo_is_reported_and_the_rest_builds(tmp_path, fixture_mirror):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog / "enwiki.yaml")
    (catalog / "gutenberg.yaml").write_text((REPO / "assets" / "gutenberg.yaml").read_text().replace("options:", "optoins:"))
    home = tmp_path / "home"
    env = {k: v for k, v in os.environ.items() if not k.startswith("OPENCORPUS_")}
    validate = subprocess.run([OPENCORPUS, "validate", "--catalog", str(catalog)], capture_output=True, text=True, env=env)
    assert validate.returncode == 1
    assert "gutenberg.yaml: optoins: unknown field; did you mean 'options'?" in validate.stderr
    assert "ok  enwiki.yaml" in validate.stdout
    result = build(home, fixture_mirror, catalog, check=False)
    assert "skipping invalid catalog file" in result.stderr and "optoins" in result.stderr
    summary = json.loads(result.stdout)
    # The valid source's partitions are processed; nothing is published while a file is invalid
    # (its records would silently leave the corpus), and the build says so with its exit code.
    assert result.returncode == 1
    assert summary["processed"] == [f"enwiki/{ENWIKI_PARTITION}"]
    catalog_error, corpus = summary["failed"]
    assert catalog_error.startswith("catalog: ") and "gutenberg.yaml: optoins: unknown field" in catalog_error
    assert corpus == "corpus: not published while catalog files are invalid; the published corpus is unchanged"
    assert not (home / "corpus" / "current.json").exists()


def test_rerun_after_a_kill_mid_shard_gives_the_same_shards(built, tmp_path, fixture_mirror):
    home, _ = built
    reference = shard_bytes(home)
    work = tmp_path / "home"
    shutil.copytree(home, work)
    # What a SIGKILL during shard writing leaves: a temporary file, a half-written shard, and a
    # staged release whose manifest does not describe the files; and a file damaged on disk.
    shard = release_folder(work) / shard_path(work, "enwiki", ENWIKI_PARTITION)
    (shard.parent / ".part-00000.parquet.tmp-4242").write_bytes(shard.read_bytes()[:1000])
    staged = work / "corpus" / "releases" / "r000002"
    staged.mkdir()
    (staged / "manifest.json").write_text('{"shards": [')
    shard.write_bytes(shard.read_bytes()[: len(shard.read_bytes()) // 2])
    build(work, fixture_mirror)
    assert shard_bytes(work) == reference


def test_takedown_of_one_url_rewrites_only_its_shard_and_stays_down(built, tmp_path, fixture_mirror):
    home, _ = built
    work = tmp_path / "home"
    shutil.copytree(home, work)
    before = shard_bytes(work)
    store = LineageStore.at(work / "lineage", read_only=True)
    with store.connection() as conn:
        (url,) = conn.execute(
            "SELECT r.url FROM raw_records r JOIN outcomes o USING (source, partition, doc_id) "
            "WHERE r.source = 'enwiki' AND o.outcome = 'kept' ORDER BY r.url LIMIT 1"
        ).fetchone()
    run_opencorpus("takedown", "add", "--url", url, "--reason", "rights holder request #1", home=work)
    summary = json.loads(build(work, fixture_mirror).stdout)
    assert summary["outcomes"]["removed"] == 1
    after = shard_bytes(work)
    changed = sorted(path for path in before if before[path] != after.get(path))
    enwiki_shard = shard_path(work, "enwiki", ENWIKI_PARTITION)
    # The affected shard and the files that describe the corpus change; the other shard keeps its bytes.
    assert [p for p in changed if p.startswith("shards/")] == [shard_name(enwiki_shard)]
    assert after["shards/gutenberg/02000-02999/part-00000.parquet"] == before["shards/gutenberg/02000-02999/part-00000.parquet"]
    # The unchanged shard is the same file in both releases (a hard link), the changed one is new.
    book = shard_path(work, "gutenberg", "02000-02999")
    assert (work / "corpus/releases/r000001" / book).samefile(work / "corpus/releases/r000002" / book)
    trace = run_opencorpus("trace", "--url", url, home=work).stdout
    assert "outcome: removed" in trace and "takedown: removed [takedown:url]" in trace and "rights holder request #1" in trace
    audit = json.loads(run_opencorpus("takedown", "audit", "--json", home=work).stdout)
    assert audit[-1]["records"] == 1 and enwiki_shard in audit[-1]["shards_changed"]
    # A forced rebuild re-reads every upstream unit: the page comes back from the dump and is removed again.
    again = json.loads(build(work, fixture_mirror, REPO / "assets", "--force").stdout)
    assert again["outcomes"]["removed"] == 1
    with duckdb.connect() as conn:
        shards = [str(release_folder(work) / s["path"]) for s in current_manifest(work)["shards"]]
        assert conn.execute("SELECT count(*) FROM read_parquet(?) WHERE url = ?", [shards, url]).fetchone()[0] == 0


def source_outputs(home: Path, source: str) -> dict:
    """Everything the pipeline keeps about one source: files' bytes and lineage rows."""
    files = [
        *sorted((home / "documents" / source).glob("*.parquet")),
        *sorted((home / "raw" / source).glob("*.parquet")),
        *sorted((home / "corpus" / "shards" / source).rglob("*.parquet")),
        *sorted((home / "dedup" / "minhash").glob(f"*/{source}/*.parquet")),
    ]
    store = LineageStore.at(home / "lineage", read_only=True)
    with store.connection() as conn:
        tables = {
            table: conn.execute(f"SELECT * FROM {table} WHERE source = ? ORDER BY ALL", [source]).fetchall()
            for table in ("decisions", "raw_records", "documents", "fetches", "shards")
        }
        tables["shard_rows"] = conn.execute(
            "SELECT * FROM shard_rows WHERE shard LIKE ? ORDER BY ALL", [f"shards/{source}/%"]
        ).fetchall()
    return {"files": {str(f.relative_to(home)): f.read_bytes() for f in files}, **tables}


def test_backfill_of_one_source_leaves_the_others_byte_identical(built, tmp_path, fixture_mirror):
    home, _ = built
    work = tmp_path / "home"
    shutil.copytree(home, work)
    before = source_outputs(work, "gutenberg")
    assert before["files"] and before["decisions"] and before["shard_rows"]
    enwiki_runs = source_outputs(work, "enwiki")["decisions"]
    result = run_opencorpus("backfill", "enwiki", "--mirror", str(fixture_mirror), "--json", home=work)
    summary = json.loads(result.stdout)
    assert summary["processed"] == [f"enwiki/{ENWIKI_PARTITION}"]
    assert source_outputs(work, "gutenberg") == before
    after_enwiki = source_outputs(work, "enwiki")["decisions"]
    assert {row[10] for row in after_enwiki if row[5] == "raw"} != {row[10] for row in enwiki_runs if row[5] == "raw"}  # re-run


def test_a_failed_expectation_stops_the_shards(built, tmp_path, fixture_mirror):
    home, _ = built
    work = tmp_path / "home"
    shutil.copytree(home, work)
    # A record that slipped past the licence gate (a bug, a hand edit): its licence is NC.
    documents = work / "documents" / "enwiki" / f"{ENWIKI_PARTITION}.parquet"
    table = pq.read_table(documents)
    licenses = table.column("license").to_pylist()
    licenses[7] = "CC-BY-NC-4.0"
    pq.write_table(table.set_column(table.schema.get_field_index("license"), "license", pa.array(licenses)), documents)
    shutil.rmtree(work / "corpus")
    result = build(work, fixture_mirror, check=False)
    assert result.returncode == 1
    summary = json.loads(result.stdout)
    (failure,) = summary["failed"]
    message, log = failure.split(" (log: ")
    assert message == "corpus: blocking check(s) failed: corpus/dedup:documents_expectations (downstream assets not materialised)"
    # The log names the failed expectation and the offending licence.
    log_text = Path(log.split(";")[0]).read_text()
    assert "check corpus/dedup:documents_expectations failed (ERROR)" in log_text
    assert "CC-BY-NC-4.0" in log_text
    assert not (work / "corpus" / "current.json").exists()
    assert not list(work.glob("corpus/releases/*/release.json"))


def test_a_build_with_nothing_changed_skips_the_corpus_run_until_a_takedown(built, tmp_path, fixture_mirror):
    home, _ = built
    work = tmp_path / "home"
    shutil.copytree(home, work)
    before = shard_bytes(work)

    def corpus_runs() -> int:
        with DagsterInstance.from_config(str(work / "dagster")) as instance:
            return len(instance.get_run_records(filters=RunsFilter(job_name="corpus_job")))

    runs = corpus_runs()
    noop = json.loads(build(work, fixture_mirror).stdout)
    assert (noop["processed"], noop["failed"], noop["corpus_unchanged"]) == ([], [], True)
    assert corpus_runs() == runs  # no corpus run at all
    assert shard_bytes(work) == before
    assert noop["shards_total"] == current_manifest(work)["totals"]["shards"]

    run_opencorpus("takedown", "add", "--domain", "en.wikipedia.org", "--reason", "test", home=work)
    applied = json.loads(build(work, fixture_mirror).stdout)
    assert (applied["corpus_unchanged"], corpus_runs()) == (False, runs + 1)
    assert applied["outcomes"]["removed"] > noop["outcomes"].get("removed", 0)
    # A shard that no longer matches the manifest is not "unchanged" either.
    shard = release_folder(work) / current_manifest(work)["shards"][0]["path"]
    shard.write_bytes(shard.read_bytes()[:100])
    repaired = json.loads(build(work, fixture_mirror).stdout)
    assert (repaired["corpus_unchanged"], corpus_runs()) == (False, runs + 2)


WORKERS_SCRIPT = """
import gc, json, multiprocessing
from opencorpus_dagster.definitions import build_definitions
from opencorpus_dagster.orchestration import build

pool = build._partition_pool(2, 2, build_definitions())
frozen_here = gc.get_freeze_count()
frozen_in_workers = sorted({pool.submit(gc.get_freeze_count).result() for _ in range(4)})
build._stop_workers(pool)
print(json.dumps([frozen_here, frozen_in_workers, gc.get_freeze_count(), len(multiprocessing.active_children())]))
"""


def test_partition_workers_leave_the_builds_objects_to_it_and_are_stopped_with_them_unfrozen(tmp_path):
    # A forked worker's collections would write to every object it inherited, copying the pages
    # it shares with the build; and while a worker lives, each page the build writes is copied.
    env = {**os.environ, "DAGSTER_HOME": str(tmp_path / "dagster"), "OPENCORPUS_HOME": str(tmp_path / "home")}
    done = subprocess.run(
        [sys.executable, "-c", WORKERS_SCRIPT], check=False, capture_output=True, text=True, env=env, timeout=300
    )
    assert done.returncode == 0, done.stderr
    frozen_here, frozen_in_workers, frozen_after, children_after = json.loads(done.stdout.strip().splitlines()[-1])
    assert frozen_here > 100_000  # Dagster's definitions, Great Expectations, the language model...
    # What each worker inherited stays outside its collections (less the few objects it freed).
    assert all(0.99 * frozen_here < count <= frozen_here for count in frozen_in_workers)
    assert (frozen_after, children_after) == (0, 0)
