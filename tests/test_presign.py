"""A partition run signs its documents for the corpus dedup, which takes them only when they match.

The partition run is a real Dagster run of the source's job (in process, on a temporary
instance); the corpus side is the near-duplicate index the dedup asset updates.
"""

from __future__ import annotations

import os

import numpy as np
import pyarrow as pa
import pyarrow.parquet as pq
import pytest
from conftest import REPO_ROOT
from dagster import DagsterInstance
from sensor_ticks import one_source_definitions

from opencorpus_dagster.dedup.minhash import MinHashConfig
from opencorpus_dagster.dedup.near import NearDuplicateIndex
from opencorpus_dagster.dedup.presign import presign, presigned_file, sign_documents, take_presigned
from opencorpus_dagster.state.home import DataHome

CATALOG = (REPO_ROOT / "tests" / "catalogs" / "near_duplicates" / "simplewiki_history.yaml").read_text()
SOURCE = "simplewiki_history"


@pytest.fixture
def partition_run(tmp_path, monkeypatch, fixture_mirror):
    """(home, partition key, documents file) after one partition run of the revisions source."""
    defs, _ = one_source_definitions(tmp_path, monkeypatch, fixture_mirror, SOURCE, CATALOG)
    job = defs.resolve_job_def(f"{SOURCE}_job")
    (key,) = job.partitions_def.get_partition_keys(dynamic_partitions_store=None)
    (tmp_path / "dagster").mkdir()
    result = job.execute_in_process(partition_key=key, instance=DagsterInstance.local_temp(str(tmp_path / "dagster")))
    assert result.success
    home = DataHome(tmp_path / "home")
    (documents,) = (home.root / "documents" / SOURCE).glob("*.parquet")
    return home, key, documents


def index_signatures(home: DataHome, key: str) -> tuple[list[str], np.ndarray]:
    index = NearDuplicateIndex(home).index
    table = pq.read_table(index._file("signatures", SOURCE, key))
    values = table.column("signature").combine_chunks().flatten().to_numpy()
    return table.column("doc_id").to_pylist(), values.reshape(len(table), -1)


def test_the_partition_run_leaves_its_signatures_and_the_index_takes_them_once(partition_run):
    home, key, documents = partition_run
    doc_ids, signatures = sign_documents(documents, MinHashConfig())
    assert len(doc_ids) == 13  # every revision of the fixture pages (no language/quality filter)
    left = take_presigned(home, SOURCE, key, documents, MinHashConfig())
    assert left is not None
    assert left[0] == doc_ids and np.array_equal(left[1], signatures)

    pairs, reindexed = NearDuplicateIndex(home).update()
    assert reindexed == [(SOURCE, key)]
    assert not presigned_file(home, SOURCE, key).exists()  # consumed
    keys, indexed = index_signatures(home, key)
    assert keys == [f"{SOURCE}|{key}|{d}" for d in doc_ids] and np.array_equal(indexed, signatures)
    # Revisions of one page are near duplicates of each other, and only of each other.
    table = pq.read_table(documents, columns=["doc_id", "source_record_id"])
    page = {d: r.split("@")[0] for d, r in zip(table["doc_id"].to_pylist(), table["source_record_id"].to_pylist(), strict=True)}
    assert len(pairs) >= 4
    assert all(page[a.split("|")[2]] == page[b.split("|")[2]] for a, b, _ in pairs)


def test_matching_signatures_are_used_as_found_and_stale_ones_are_not(partition_run):
    home, key, documents = partition_run
    doc_ids, signatures = sign_documents(documents, MinHashConfig())
    # Signatures that differ from what signing gives, under the documents file's current stamp:
    # the index holding them shows it took the partition run's file instead of signing.
    file = presigned_file(home, SOURCE, key)
    table = pq.read_table(file)
    swapped = signatures[::-1].copy()
    column = pa.FixedSizeListArray.from_arrays(pa.array(swapped.ravel()), swapped.shape[1])
    pq.write_table(table.set_column(1, "signature", column).replace_schema_metadata(table.schema.metadata), file)
    NearDuplicateIndex(home).update()
    assert np.array_equal(index_signatures(home, key)[1], swapped)

    # The same file once the documents file is rewritten (new modification time): not taken.
    presign(home, SOURCE, key, documents)
    pq.write_table(pq.read_table(file).set_column(1, "signature", column).replace_schema_metadata(table.schema.metadata), file)
    stat = documents.stat()
    os.utime(documents, ns=(stat.st_atime_ns, stat.st_mtime_ns + 1_000_000_000))
    assert take_presigned(home, SOURCE, key, documents, MinHashConfig()) is None
    NearDuplicateIndex(home).update()
    assert np.array_equal(index_signatures(home, key)[1], signatures)
    assert not file.exists()

    # Nor signatures made with another MinHash configuration.
    presign(home, SOURCE, key, documents, MinHashConfig(num_perm=64))
    assert take_presigned(home, SOURCE, key, documents, MinHashConfig()) is None
    assert take_presigned(home, SOURCE, key, documents, MinHashConfig(num_perm=64)) is not None


def test_signatures_of_a_partition_without_documents_are_removed(partition_run):
    home, key, documents = partition_run
    presign(home, "retired_source", "old/partition", documents)
    assert presigned_file(home, "retired_source", "old/partition").is_file()  # a safe file name
    NearDuplicateIndex(home).update()
    assert list((home.dedup_dir / "presigned").rglob("*.parquet")) == []
