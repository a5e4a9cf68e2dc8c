"""A data home in object storage: `opencorpus build --home s3://bucket/corpus` against a real S3
API (moto's server, over HTTP on 127.0.0.1, reached through s3fs like any S3 endpoint).

The corpus it publishes must be the corpus a local home gets, byte for byte, and it must be
usable from the bucket alone: shards readable by pyarrow and DuckDB, and `opencorpus trace`
answering from the published lineage copy on a machine with an empty state folder.
"""

from __future__ import annotations

import json
import socket
import subprocess
import sys
import time
from pathlib import Path

import duckdb
import pyarrow.parquet as pq
import pytest
from cli_runner import build, run_opencorpus, shard_bytes, shard_name

s3fs = pytest.importorskip("s3fs", reason="s3fs is a test dependency: pip install -e '.[test]'")
pytest.importorskip("moto.server", reason="moto[server] is a test dependency: pip install -e '.[test]'")

BUCKET = "opencorpus-test"
HOME = f"s3://{BUCKET}/corpus"


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return probe.getsockname()[1]


@pytest.fixture(scope="module")
def s3_endpoint():
    """A real S3 HTTP API on loopback (moto's standalone server), with one empty bucket."""
    port = _free_port()
    server = subprocess.Popen(
        [sys.executable, "-m", "moto.server", "-H", "127.0.0.1", "-p", str(port)],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        deadline = time.monotonic() + 30
        while True:
            try:
                socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
                break
            except OSError:
                if time.monotonic() > deadline or server.poll() is not None:
                    raise RuntimeError("moto server did not start") from None
                time.sleep(0.2)
        endpoint = f"http://127.0.0.1:{port}"
        env = {
            "AWS_ACCESS_KEY_ID": "opencorpus-test",
            "AWS_SECRET_ACCESS_KEY": "opencorpus-test",
            "AWS_DEFAULT_REGION": "us-east-1",
            "AWS_ENDPOINT_URL": endpoint,
        }
        filesystem = s3fs.S3FileSystem(
            key=env["AWS_ACCESS_KEY_ID"], secret=env["AWS_SECRET_ACCESS_KEY"], endpoint_url=endpoint
        )
        filesystem.mkdir(BUCKET)
        yield env, filesystem
    finally:
        server.terminate()
        server.wait(timeout=10)


@pytest.fixture(scope="module")
def s3_build(s3_endpoint, fixture_mirror, tmp_path_factory):
    env, filesystem = s3_endpoint
    state = tmp_path_factory.mktemp("s3-state")
    run_env = {**env, "OPENCORPUS_STATE": str(state), "DAGSTER_HOME": str(state / "dagster")}
    summary = json.loads(build(HOME, fixture_mirror, env=run_env).stdout)
    return summary, state, run_env, filesystem


def _bucket_release(filesystem) -> str:
    """`<bucket>/corpus/corpus/releases/<id>/`: the current release's folder, from current.json."""
    release = json.loads(filesystem.cat_file(f"{BUCKET}/corpus/corpus/current.json"))["release"]
    return f"{BUCKET}/corpus/corpus/releases/{release}/"


def _bucket_corpus(filesystem) -> dict[str, bytes]:
    """The current release in the bucket, keyed as `shard_bytes` keys a local one."""
    prefix = _bucket_release(filesystem)
    return {
        shard_name(key[len(prefix) :]): filesystem.cat_file(key)
        for key in sorted(filesystem.find(prefix))
        if not key.endswith("/release.json")
    }


def test_the_corpus_in_the_bucket_is_the_local_corpus_byte_for_byte(s3_build, built_corpus):
    summary, _, _, filesystem = s3_build
    local_home, local_summary = built_corpus
    assert summary["records_in"] == local_summary["records_in"] == 221
    assert summary["outcomes"] == local_summary["outcomes"]
    in_bucket = _bucket_corpus(filesystem)
    assert "manifest.json" in in_bucket and "README.md" in in_bucket
    assert (
        sum(name.endswith(".parquet") for name in in_bucket)
        == len(json.loads(in_bucket["manifest.json"])["shards"])
        > 0
    )
    assert in_bucket == shard_bytes(local_home)


def test_stage_files_live_in_the_bucket_and_only_local_state_on_disk(s3_build):
    _, state, _, filesystem = s3_build
    stages = {key.split("/")[2] for key in filesystem.find(f"{BUCKET}/corpus/")}
    assert {"raw", "documents", "dedup", "corpus", "lineage", "catalog.json"} <= stages
    assert not any(name.startswith(".") and ".tmp-" in name for name in filesystem.find(f"{BUCKET}/"))
    local = {path.name for path in state.iterdir()}
    assert "dagster" in local
    assert not {"raw", "documents", "dedup", "corpus", "lineage", "lineage.duckdb"} & local


def test_shards_read_from_the_bucket_with_pyarrow_and_duckdb(s3_build):
    _, _, _, filesystem = s3_build
    folder = _bucket_release(filesystem)
    manifest = json.loads(filesystem.cat_file(f"{folder}manifest.json"))
    first = manifest["shards"][0]
    table = pq.read_table(f"{folder}{first['path']}", filesystem=filesystem)
    assert table.num_rows == first["rows"]
    connection = duckdb.connect()
    connection.register_filesystem(filesystem)
    (rows,) = connection.execute(f"SELECT count(*) FROM read_parquet('s3://{folder}shards/**/*.parquet')").fetchone()
    assert rows == manifest["totals"]["rows"] == sum(s["rows"] for s in manifest["shards"])


def test_trace_answers_from_the_lineage_in_the_bucket_on_another_machine(s3_build, tmp_path):
    _, _, run_env, filesystem = s3_build
    folder = _bucket_release(filesystem)
    manifest = json.loads(filesystem.cat_file(f"{folder}manifest.json"))
    shard = next(s for s in manifest["shards"] if s["source"] == "gutenberg")
    row = pq.read_table(f"{folder}{shard['path']}", filesystem=filesystem).slice(0, 1).to_pylist()[0]
    elsewhere = tmp_path / "fresh-state"  # nothing local: the lineage is read from the bucket
    env = {**run_env, "OPENCORPUS_STATE": str(elsewhere), "DAGSTER_HOME": str(elsewhere / "dagster")}
    traced = json.loads(
        run_opencorpus("trace", "--shard", shard["path"], "--row", "0", "--json", home=HOME, env=env).stdout
    )
    assert traced[0]["doc_id"] == row["doc_id"]
    assert traced[0]["upstream_uri"] == row["upstream_uri"]
    assert traced[0]["license"] == row["license"] == "LicenseRef-PublicDomain"
    assert not (elsewhere / "lineage").exists() and not (elsewhere / "lineage.duckdb").exists()


def test_a_local_path_and_a_file_url_name_the_same_home(tmp_path):
    from opencorpus_dagster.state.home import data_home

    assert data_home(f"file://{tmp_path}").root == data_home(str(tmp_path)).root == Path(tmp_path).resolve()
    assert not data_home(str(tmp_path)).is_remote
    remote = data_home(HOME)
    assert remote.is_remote and str(remote.root) == HOME
    assert str(remote.corpus_dir) == f"{HOME}/corpus"
    assert str(remote.lineage_dir) == f"{HOME}/lineage" and not remote.state.as_posix().startswith("s3:")
