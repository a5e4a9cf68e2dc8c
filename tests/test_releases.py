"""Releases: published in one step, old ones readable until gc, diffs, copies verified, proofs.

Every build here is the real `opencorpus build` on the fixture mirror (enwiki dump only, so the
loop of kills stays short); checks read the files as a user would.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import subprocess
import time
from pathlib import Path

import duckdb
import pytest
from cli_runner import OPENCORPUS, REPO, build, clean_environment, run_opencorpus
from conftest import current_manifest, release_folder

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.lineage.trace import trace_shard_row
from opencorpus_dagster.stages.shards import shard_paths
from opencorpus_dagster.state import merkle, releases
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.verification import verify_copy

ENWIKI_PARTITION = "enwiki-latest-pages-articles1.xml-p000000010p000030302"


def verify(*args: str, check: bool = True) -> subprocess.CompletedProcess:
    """`opencorpus verify ARGS` (it reads a folder, not a data home)."""
    result = subprocess.run([OPENCORPUS, "verify", *args], capture_output=True, text=True, timeout=600)
    if check:
        assert result.returncode == 0, result.stderr
    return result


def enwiki_catalog(tmp_path: Path) -> Path:
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    shutil.copy(REPO / "assets" / "enwiki.yaml", catalog / "enwiki.yaml")
    return catalog


@pytest.fixture(scope="module")
def two_releases(tmp_path_factory, fixture_mirror):
    """An enwiki home with two releases: r000001 as built, r000002 after a takedown of one page."""
    root = tmp_path_factory.mktemp("releases")
    catalog = enwiki_catalog(root)
    home = root / "home"
    build(home, fixture_mirror, catalog)
    first = current_manifest(home)
    with duckdb.connect() as conn:
        (doc_id, url) = conn.execute(
            "SELECT doc_id, url FROM read_parquet(?) ORDER BY doc_id LIMIT 1",
            [[str(release_folder(home) / s["path"]) for s in first["shards"]]],
        ).fetchone()
    run_opencorpus("takedown", "add", "--url", url, "--reason", "rights holder request #7", home=home)
    build(home, fixture_mirror, catalog)
    return home, catalog, doc_id, url


def test_each_changing_build_publishes_a_release_and_keeps_the_old_one(two_releases):
    home, _, doc_id, _ = two_releases
    listed = json.loads(run_opencorpus("releases", "--json", home=home).stdout)
    assert [(r["release"], r["current"]) for r in listed] == [("r000001", False), ("r000002", True)]
    assert listed[1]["rows"] == listed[0]["rows"] - 1
    data = DataHome(home)
    assert json.loads((home / "corpus" / "current.json").read_text())["release"] == "r000002"
    assert os.readlink(home / "corpus" / "releases" / "current") == "r000002"
    # The old release is complete and readable: its manifest's files are all there and verify.
    old = verify_copy(home / "corpus", "r000001")
    assert old.ok and len(old.checked) == len(releases.read_manifest(data, "r000001")["shards"])
    old_ids = {row[0] for row in duckdb.sql(f"SELECT doc_id FROM read_parquet({shard_paths(data, 'r000001')})").fetchall()}
    assert doc_id in old_ids
    # The current release's card reads its own shards with `datasets`, through the `current` link too.
    import datasets

    for folder in (release_folder(home), home / "corpus" / "releases" / "current"):
        rows = datasets.load_dataset(str(folder), split="train")
        assert rows.num_rows == listed[1]["rows"] and doc_id not in set(rows["doc_id"])


def test_a_build_that_changes_nothing_publishes_no_release(two_releases, tmp_path, fixture_mirror):
    home, catalog, _, _ = two_releases
    work = tmp_path / "home"
    shutil.copytree(home, work, symlinks=True)
    build(work, fixture_mirror, catalog, "--force")  # every partition re-read: same records
    assert [r["release"] for r in releases.list_releases(DataHome(work))] == ["r000001", "r000002"]
    assert not (work / "corpus" / "releases" / "r000003").exists()


def test_diff_lists_exactly_the_taken_down_record_with_its_reason(two_releases):
    home, _, doc_id, url = two_releases
    changes = json.loads(run_opencorpus("diff", "r000001", "r000002", "--json", home=home).stdout)
    assert [(c["change"], c["why"], c["source"], c["doc_id"], c["stage"], c["outcome"]) for c in changes] == [
        ("removed", "takedown", "enwiki", doc_id, "takedown", "removed")
    ]
    assert "rights holder request #7" in changes[0]["detail"]
    assert changes[0]["shard"].startswith(f"shards/enwiki/{ENWIKI_PARTITION}/part-00000-")
    assert (home / "corpus" / "releases" / "r000001" / changes[0]["shard"]).is_file()
    back = json.loads(run_opencorpus("diff", "r000002", "r000001", "--json", home=home).stdout)
    assert [(c["change"], c["doc_id"]) for c in back] == [("added", doc_id)]
    same = run_opencorpus("diff", "r000002", "r000002", home=home, check=False)
    assert same.returncode == 6 and "no record differs" in same.stderr
    unknown = run_opencorpus("diff", "r000001", "r000009", home=home, check=False)
    assert unknown.returncode == 2 and "no complete release r000009" in unknown.stderr


def test_verify_passes_on_a_copy_and_names_the_shard_with_one_changed_byte(two_releases, tmp_path):
    home, _, _, _ = two_releases
    copy = tmp_path / "download"
    shutil.copytree(home / "corpus", copy, symlinks=True)
    ok = verify(str(copy), "--json")
    result = json.loads(ok.stdout)
    assert result["ok"] and result["release"] == "r000002" and len(result["checked"]) == len(current_manifest(home)["shards"])
    # A subset: one shard downloaded out of the release's, verified on its own.
    shard = current_manifest(home)["shards"][0]["path"]
    partial = tmp_path / "partial"
    shutil.copytree(copy / "releases" / "r000002", partial / "releases" / "r000002", ignore=shutil.ignore_patterns("*.parquet"))
    (partial / "releases" / "r000002" / Path(shard).parent).mkdir(parents=True, exist_ok=True)
    shutil.copy(copy / "releases" / "r000002" / shard, partial / "releases" / "r000002" / shard)
    subset = json.loads(verify(str(partial / "releases" / "r000002"), "--subset", "--json").stdout)
    assert subset["ok"] and subset["checked"] == [shard]
    # One byte changed in the middle of the shard.
    target = copy / "releases" / "r000002" / shard
    data = bytearray(target.read_bytes())
    data[len(data) // 2] ^= 0x01
    target.write_bytes(bytes(data))
    bad = verify(str(copy), check=False)
    assert bad.returncode == 1
    assert f"opencorpus: {shard}: sha256 differs from the manifest" in bad.stderr


def test_inclusion_proof_verifies_with_the_documented_function(two_releases):
    home, _, removed_id, _ = two_releases
    manifest = current_manifest(home)
    with duckdb.connect() as conn:
        (doc_id, content) = conn.execute(
            "SELECT doc_id, content_sha256 FROM read_parquet(?) ORDER BY doc_id DESC LIMIT 1",
            [[str(release_folder(home) / s["path"]) for s in manifest["shards"]]],
        ).fetchone()
    proof = json.loads(run_opencorpus("prove", "--doc-id", doc_id, home=home).stdout)
    assert proof["included"] and proof["release_root"] == manifest["merkle_root"] and proof["content_sha256"] == content
    assert merkle.verify_proof(proof)
    assert not merkle.verify_proof({**proof, "content_sha256": "0" * 64})  # a changed row
    assert not merkle.verify_proof({**proof, "doc_id": removed_id})
    # The removed record: not in r000002, last in r000001, removed by the takedown.
    gone = run_opencorpus("prove", "--doc-id", removed_id, home=home)
    absence = json.loads(gone.stdout)
    assert (absence["included"], absence["last_release"], absence["left_in"]) == (False, "r000001", "r000002")
    assert (absence["decision"]["stage"], absence["decision"]["outcome"]) == ("takedown", "removed")
    # In the release it was in, its proof verifies against that release's root.
    old = json.loads(run_opencorpus("prove", "--doc-id", removed_id, "--release", "r000001", home=home).stdout)
    assert merkle.verify_proof(old) and old["release_root"] == releases.read_release(DataHome(home), "r000001")["merkle_root"]


def test_gc_keeps_the_newest_releases_and_the_shards_they_list(two_releases, tmp_path):
    home, _, _, _ = two_releases
    work = tmp_path / "home"
    shutil.copytree(home, work, symlinks=True)
    data = DataHome(work)
    old_only = {s["path"] for s in releases.read_manifest(data, "r000001")["shards"]} - {
        s["path"] for s in releases.read_manifest(data, "r000002")["shards"]
    }
    assert len(old_only) == 1  # the shard the takedown rewrote
    (old_sha,) = [s["sha256"] for s in releases.read_manifest(data, "r000001")["shards"] if s["path"] in old_only]
    kept_stats = {p.stem for p in (work / "corpus" / "stats").glob("*.json")}
    assert old_sha in kept_stats  # the card's statistics of every shard ever published
    dry = json.loads(run_opencorpus("gc", "--keep", "1", "--dry-run", "--json", home=work).stdout)
    assert (dry["releases"], set(dry["shards"])) == (["r000001"], old_only)
    assert (work / "corpus" / "releases" / "r000001").is_dir()
    run_opencorpus("gc", "--keep", "1", home=work)
    assert [r["release"] for r in releases.list_releases(data)] == ["r000002"]
    assert not (work / "corpus" / "releases" / "r000001").exists()
    assert verify_copy(work / "corpus").ok
    # The statistics of the removed shard go with it; the listed shards' stay.
    listed = {s["sha256"] for s in releases.read_manifest(data, "r000002")["shards"]}
    assert {p.stem for p in (work / "corpus" / "stats").glob("*.json")} == kept_stats - {old_sha} == listed


def _trace_every_row(home: Path) -> int:
    """Trace every row of the current release from its shard file; returns the rows traced."""
    data = DataHome(home)
    store = LineageStore.at(data.lineage_db, read_only=True)
    rows = 0
    for shard in current_manifest(home)["shards"]:
        ids = duckdb.sql(f"SELECT doc_id FROM read_parquet('{release_folder(home) / shard['path']}')").fetchall()
        for row, (doc_id,) in enumerate(ids):
            (trace,) = trace_shard_row(store, shard["path"], row, data)
            assert trace["doc_id"] == doc_id
            rows += 1
    return rows


def test_a_build_killed_at_any_point_leaves_a_complete_release(tmp_path, fixture_mirror):
    catalog = enwiki_catalog(tmp_path)
    home = tmp_path / "home"
    build(home, fixture_mirror, catalog)
    first_rows = current_manifest(home)["totals"]["rows"]
    # A change for every later build to publish: one page taken down.
    store = LineageStore.at(home / "lineage", read_only=True)
    with store.connection() as conn:
        (url,) = conn.execute("SELECT url FROM raw_records r JOIN outcomes o USING (source, partition, doc_id) "
                              "WHERE o.outcome = 'kept' ORDER BY url LIMIT 1").fetchone()  # fmt: skip
    del store
    run_opencorpus("takedown", "add", "--url", url, "--reason", "kill loop", home=home)

    command = [OPENCORPUS, "build", "--catalog", str(catalog), "--mirror", str(fixture_mirror), "--json", "--home", str(home)]
    environment = clean_environment(home)
    # How long a build that publishes takes, measured on a copy; kills are spread over it.
    probe = tmp_path / "probe"
    shutil.copytree(home, probe, symlinks=True)
    started = time.monotonic()
    subprocess.run([*command[:-1], str(probe)], env=clean_environment(probe), capture_output=True, check=True, timeout=600)
    duration = time.monotonic() - started
    assert releases.current_release(DataHome(probe)) == "r000002"

    outcomes = []
    for step in range(1, 13):
        delay = duration * (0.3 + 0.7 * step / 13)
        process = subprocess.Popen(command, env=environment, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, start_new_session=True)
        try:
            process.wait(timeout=delay)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.wait()
        current = releases.current_release(DataHome(home))
        outcomes.append(current)
        check = verify_copy(home / "corpus")
        assert check.ok, (step, delay, check.problems)
        traced = _trace_every_row(home)
        assert traced == current_manifest(home)["totals"]["rows"] == (first_rows if current == "r000001" else first_rows - 1)
        if current != "r000001":
            break  # published: the next kill would have nothing left to interrupt
    # Killed before publishing at least once; a rerun completes the release.
    assert outcomes[0] == "r000001", outcomes
    summary = json.loads(subprocess.run(command, env=environment, capture_output=True, text=True, check=True, timeout=600).stdout)
    assert summary["failed"] == [] and summary["release"] == "r000002"
    assert current_manifest(home)["totals"]["rows"] == first_rows - 1
    assert verify_copy(home / "corpus").ok and _trace_every_row(home) == first_rows - 1


def test_verify_does_not_follow_a_manifest_out_of_the_release(two_releases, tmp_path):
    home, _, _, _ = two_releases
    copy = tmp_path / "download"
    shutil.copytree(home / "corpus", copy, symlinks=True)
    manifest_file = copy / "releases" / "r000002" / "manifest.json"
    manifest = json.loads(manifest_file.read_text())
    manifest["shards"][0]["path"] = "shards/../../../../../etc/passwd"
    manifest_file.write_text(json.dumps(manifest))
    result = verify_copy(copy)
    assert not result.ok and result.checked == []
    assert {"path": "shards/../../../../../etc/passwd", "problem": "not a shard path of a release (shards/<source>/<partition>/<file>.parquet)"} in result.problems
    assert {"path": "releases/r000002/manifest.json", "problem": "sha256 differs from release.json"} in result.problems
