"""MinHash signatures of a documents partition, computed by that partition's own run.

Signing is most of what the near-duplicate index costs per document, and the corpus run that
keeps the index is one process after every partition run. So a partition run signs the
documents file it has just published (on as many workers as run partitions) into

    <home>/dedup/presigned/<source>/<partition>.parquet    doc_id, signature

stamped with the documents file's size and modification time and with the MinHash config. The
corpus dedup takes the signatures from there instead of signing again when both still match, and
removes the file once its index holds them. A missing, stale or unreadable file only means the
corpus run signs that partition itself: the index is the same either way.
"""

from __future__ import annotations

import json
from pathlib import Path
from urllib.parse import quote, unquote

import numpy as np
import pyarrow as pa

from opencorpus_dagster.dedup.minhash import MinHashConfig, compute_signatures
from opencorpus_dagster.state.atomic import write_parquet_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import modified_stamp, parquet_file, read_parquet

SIGN_BATCH_ROWS = 1024
_STAMP_KEY = b"opencorpus.documents_stamp"
_CONFIG_KEY = b"opencorpus.minhash_config"


def sign_documents(path: Path, config: MinHashConfig) -> tuple[list[str], np.ndarray]:
    """(doc_ids, signatures) of the documents file at `path`, in file order."""
    doc_ids: list[str] = []
    signatures: list[np.ndarray] = []
    for batch in parquet_file(path).iter_batches(batch_size=SIGN_BATCH_ROWS, columns=["doc_id", "text"]):
        doc_ids.extend(batch.column("doc_id").to_pylist())
        signatures.append(compute_signatures(batch.column("text").to_pylist(), config))
    if not signatures:
        return doc_ids, np.zeros((0, config.num_perm), config.signature_dtype)
    return doc_ids, np.concatenate(signatures)


def presigned_file(home: DataHome, source: str, partition: str) -> Path:
    return home.dedup_dir / "presigned" / quote(source, safe="") / f"{quote(partition, safe='')}.parquet"


def _config_text(config: MinHashConfig) -> bytes:
    return json.dumps(config.model_dump(), sort_keys=True).encode()


def presign(home: DataHome, source: str, partition: str, path: Path, config: MinHashConfig | None = None) -> int:
    """Sign the documents file `path` of (`source`, `partition`) for the next corpus dedup;
    the number of documents signed."""
    config = config or MinHashConfig()
    stamp = modified_stamp(path)  # before reading: a file rewritten meanwhile no longer matches
    doc_ids, signatures = sign_documents(path, config)
    flat = pa.array(np.ascontiguousarray(signatures).ravel())
    table = pa.table(
        {
            "doc_id": pa.array(doc_ids, pa.string()),
            "signature": pa.FixedSizeListArray.from_arrays(flat, config.num_perm),
        }
    )
    metadata = {_STAMP_KEY: stamp.encode(), _CONFIG_KEY: _config_text(config)}
    write_parquet_atomically(table.replace_schema_metadata(metadata), presigned_file(home, source, partition))
    return len(doc_ids)


def take_presigned(
    home: DataHome, source: str, partition: str, path: Path, config: MinHashConfig
) -> tuple[list[str], np.ndarray] | None:
    """The signatures a partition run left for the documents file `path` as it is now, made
    with `config`; None when there are none that match (then sign it with `sign_documents`)."""
    file = presigned_file(home, source, partition)
    try:
        table = read_parquet(file)
    except (FileNotFoundError, pa.ArrowInvalid, OSError):
        return None
    metadata = table.schema.metadata or {}
    if metadata.get(_STAMP_KEY) != modified_stamp(path).encode() or metadata.get(_CONFIG_KEY) != _config_text(config):
        return None
    signatures = table.column("signature").combine_chunks()
    values = signatures.flatten().to_numpy(zero_copy_only=False).astype(config.signature_dtype, copy=False)
    return table.column("doc_id").to_pylist(), values.reshape(len(table), config.num_perm)


def discard_presigned(home: DataHome, source: str, partition: str) -> None:
    """Remove the partition's presigned file (its index holds the signatures, or it is gone)."""
    presigned_file(home, source, partition).unlink(missing_ok=True)


def discard_orphans(home: DataHome, partitions: set[tuple[str, str]]) -> None:
    """Remove the presigned files of partitions not in `partitions` (documents gone)."""
    for file in (home.dedup_dir / "presigned").glob("*/*.parquet"):
        if (unquote(file.parent.name), unquote(file.name[: -len(".parquet")])) not in partitions:
            file.unlink(missing_ok=True)
