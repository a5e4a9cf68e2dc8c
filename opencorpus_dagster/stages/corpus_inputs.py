"""What the corpus run reads, as one digest: a build with nothing new skips the corpus run.

The corpus assets (takedown, dedup, shards, card) are a function of the documents files of every
partition, the takedown list, the catalog (sources and their settings), the settings that shape
the published files and the code. `opencorpus build` records the digest of those after a corpus
run that succeeded with every check passed (`<state>/corpus-inputs.json`); the next build whose
partitions are all unchanged compares, and when nothing differs and every shard of the published
manifest is still there (same size), it does not run the corpus job again. Without this a no-op
build re-deduplicated, re-validated every documents file and re-read every shard for the card:
work in proportion to the corpus, for nothing.

The digest stats files (one per partition, one per shard), it does not read them: a documents file
rewritten in place changes its size or modification time.
"""

from __future__ import annotations

import hashlib
import json
import os
from pathlib import Path

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.shards import read_manifest, release_shards
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.releases import current_release

RECORD_FILE = "corpus-inputs.json"
# Settings read from the environment by the corpus assets (orchestration/resources.py, publish/release.py).
SETTINGS = ("OPENCORPUS_MAX_SHARD_BYTES", "OPENCORPUS_BASE_URL")
_PACKAGE = Path(__file__).resolve().parents[1]  # the whole opencorpus_dagster package


def corpus_inputs_digest(sources, store: LineageStore, home) -> str | None:
    """The digest of everything the corpus run reads; None when the published corpus is not
    intact (no manifest, a shard missing or of another size), so the run must happen."""
    manifest = read_manifest(home)
    if manifest is None:
        return None
    for shard, path in zip(manifest["shards"], release_shards(home), strict=True):
        if not path.is_file() or path.stat().st_size != shard["bytes"]:
            return None
    digest = hashlib.sha256()
    digest.update(f"release {current_release(home)}\n".encode())
    for source in sorted(sources, key=lambda s: s.name):
        digest.update(f"source {source.name} {source.fingerprint}\n".encode())
    for (source, partition), fingerprint in sorted(store.partition_fingerprints("documents").items()):
        digest.update(f"documents {source} {partition} {fingerprint} {_stat(home.documents_path(source, partition))}\n".encode())
    digest.update(f"takedowns {_stat(home.takedowns)}\n".encode())
    for name in SETTINGS:
        digest.update(f"setting {name}={os.environ.get(name, '')}\n".encode())
    for module in sorted(_PACKAGE.rglob("*.py")):
        digest.update(f"code {module.relative_to(_PACKAGE)} {module.stat().st_mtime_ns} {module.stat().st_size}\n".encode())
    digest.update(f"manifest {json.dumps(manifest['totals'], sort_keys=True)}\n".encode())
    return digest.hexdigest()


def recorded_digest(state: Path) -> str | None:
    try:
        return json.loads((state / RECORD_FILE).read_text()).get("digest")
    except (OSError, ValueError, AttributeError):
        return None


def record_digest(state: Path, digest: str, run_id: str) -> None:
    write_text_atomically(state / RECORD_FILE, json.dumps({"digest": digest, "run_id": run_id}, sort_keys=True) + "\n")


def forget_digest(state: Path) -> None:
    """After a corpus run that failed: the next build must run it again."""
    try:
        (state / RECORD_FILE).unlink()
    except FileNotFoundError:
        pass


def _stat(path) -> str:
    try:
        info = path.stat()
    except (OSError, FileNotFoundError):
        return "missing"
    modified = getattr(info, "st_mtime_ns", None) or getattr(info, "st_mtime", None)
    return f"{info.st_size}:{modified}"
