"""Check a copy of a release against its manifests, and prove one record's inclusion.

`verify_copy` takes a corpus folder as published (`releases/<id>/`, `shards/`; a download or a
mirror of `<home>/corpus`), or one release folder of it, and checks, for the release:

- every file `release.json` lists (manifest, card, Croissant, ATTRIBUTION, charts) has its sha256;
- every shard the manifest lists that is present has its size and sha256, and the Merkle root
  of its (doc_id, content_sha256) rows equals the manifest's (the rows are read, not trusted);
- the manifest's release root is the root over its shard roots, and `release.json` says the same.

With `subset=True`, shards that are absent are listed and not a failure (a partial download).

`prove` builds the inclusion proof of a doc_id in a release (merkle.py: `verify_proof` checks it
with hashlib alone); for a record no longer published it says which release it left and the
lineage decision that removed it.
"""

from __future__ import annotations

import json
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.shards import shard_paths
from opencorpus_dagster.state import merkle, releases
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import duckdb_connect, parquet_file, sha256_file

_SHARD_PATH = re.compile(r"^shards/[A-Za-z0-9][A-Za-z0-9._@+=-]*/[A-Za-z0-9][A-Za-z0-9._@+=-]*/[A-Za-z0-9][A-Za-z0-9._-]*\.parquet$")


@dataclass
class Verification:
    release: str
    folder: Path
    checked: list[str] = field(default_factory=list)  # shard paths verified
    absent: list[str] = field(default_factory=list)
    problems: list[dict[str, str]] = field(default_factory=list)  # {"path", "problem"}

    @property
    def ok(self) -> bool:
        return not self.problems


def locate(folder: Path, release: str | None = None) -> tuple[Path, Path]:
    """(corpus folder, release folder) for a corpus folder or a release folder given by a user."""
    folder = Path(folder)
    if (folder / releases.RELEASE_FILE).is_file():
        return folder.parent.parent, folder
    if release is None:
        pointer = folder / releases.POINTER_FILE
        if not pointer.is_file():
            raise FileNotFoundError(f"{folder}: neither a release folder (release.json) nor a corpus folder (current.json); give --release")
        release = json.loads(pointer.read_text())["release"]
    found = folder / "releases" / release
    if not (found / releases.RELEASE_FILE).is_file():
        raise FileNotFoundError(f"{found}: no release.json (not a complete release)")
    return folder, found


def shard_root(path: Path) -> str:
    """The Merkle root of a shard file's rows, reading only its doc_id and content_sha256."""
    table = parquet_file(path).read(columns=["doc_id", "content_sha256"])
    return merkle.rows_root(zip(table.column("doc_id").to_pylist(), table.column("content_sha256").to_pylist(), strict=True))


def verify_copy(folder: Path, release: str | None = None, subset: bool = False) -> Verification:
    _, release_folder = locate(folder, release)
    record = json.loads((release_folder / releases.RELEASE_FILE).read_text())
    result = Verification(record["release"], release_folder)
    for relative, digest in sorted(record["files"].items()):
        if relative.startswith("/") or ".." in relative.split("/"):
            result.problems.append({"path": relative, "problem": "names a file outside the release folder"})
            continue
        path = release_folder / relative
        if not path.is_file():
            result.problems.append({"path": f"releases/{result.release}/{relative}", "problem": "missing"})
        elif sha256_file(path) != digest:
            result.problems.append({"path": f"releases/{result.release}/{relative}", "problem": "sha256 differs from release.json"})
    manifest = json.loads((release_folder / releases.MANIFEST_FILE).read_text())
    roots = [shard.get("merkle_root", "") for shard in manifest["shards"]]
    if merkle.release_root(roots) != manifest.get("merkle_root") or record.get("merkle_root") != manifest.get("merkle_root"):
        result.problems.append({"path": f"releases/{result.release}/manifest.json", "problem": "release Merkle root does not match its shard roots"})
    for shard in manifest["shards"]:
        if not _SHARD_PATH.match(shard["path"]):  # a copy's manifest is not trusted to name files
            result.problems.append({"path": shard["path"], "problem": "not a shard path of a release (shards/<source>/<partition>/<file>.parquet)"})
            continue
        path = release_folder / shard["path"]
        if not path.is_file():
            if subset:
                result.absent.append(shard["path"])
            else:
                result.problems.append({"path": shard["path"], "problem": "missing"})
            continue
        if path.stat().st_size != shard["bytes"] or sha256_file(path) != shard["sha256"]:
            result.problems.append({"path": shard["path"], "problem": f"sha256 differs from the manifest ({shard['sha256'][:16]}...)"})
        elif shard_root(path) != shard.get("merkle_root"):
            result.problems.append({"path": shard["path"], "problem": "rows do not give the manifest's Merkle root"})
        result.checked.append(shard["path"])
    if subset and not result.checked:
        result.problems.append({"path": str(release_folder / "shards"), "problem": "none of the release's shards is present"})
    return result


class NotInRelease(LookupError):
    """The doc_id is in no shard of the release (and, for `prove`, was never published)."""


def prove(home: DataHome, doc_id: str, release: str | None = None, store: LineageStore | None = None) -> dict[str, Any]:
    """The inclusion proof of `doc_id` in `release` (default: the current one).

    Not in it: {"included": False, "last_release": the newest earlier release that had it,
    "left_in": the release after it, "decision": the lineage's terminal decision}; raises
    NotInRelease when no release ever had it.
    """
    release = release or releases.current_release(home)
    if release is None:
        raise NotInRelease("nothing published yet")
    found = _find(home, release, doc_id)
    if found is None:
        return _absence(home, doc_id, release, store)
    manifest = releases.read_manifest(home, release)
    index, row = found
    shard = manifest["shards"][index]
    table = parquet_file(releases.release_dir(home, release) / shard["path"]).read(columns=["doc_id", "content_sha256"])
    leaves = [merkle.leaf(d, c) for d, c in zip(table.column("doc_id").to_pylist(), table.column("content_sha256").to_pylist(), strict=True)]
    shard_roots = [bytes.fromhex(s["merkle_root"]) for s in manifest["shards"]]
    return {
        "included": True,
        "release": release,
        "doc_id": doc_id,
        "content_sha256": table.column("content_sha256")[row].as_py(),
        "shard": shard["path"],
        "row": row,
        "shard_path": merkle.path_to_root(leaves, row),
        "shard_root": shard["merkle_root"],
        "release_path": merkle.path_to_root(shard_roots, index),
        "release_root": manifest["merkle_root"],
    }


def _find(home: DataHome, release: str, doc_id: str) -> tuple[int, int] | None:
    """(shard index in the manifest, row) of doc_id in `release`, or None."""
    files = shard_paths(home, release)
    if not files:
        return None
    with duckdb_connect(home.root) as connection:
        hit = connection.execute(
            "SELECT filename, file_row_number FROM read_parquet(?, filename = true, file_row_number = true) WHERE doc_id = ? LIMIT 1",
            [files, doc_id],
        ).fetchone()
    return (files.index(hit[0]), int(hit[1])) if hit else None


def _absence(home: DataHome, doc_id: str, release: str, store: LineageStore | None) -> dict[str, Any]:
    history = [r["release"] for r in releases.list_releases(home)]
    earlier = [r for r in history if releases.sequence_of(r) < releases.sequence_of(release)]
    last = next((r for r in reversed(earlier) if _find(home, r, doc_id) is not None), None)
    if last is None:
        raise NotInRelease(f"{doc_id} is in no release up to {release}")
    left_in = history[history.index(last) + 1]
    decision = None
    if store is not None:
        with store.connection() as conn:
            row = conn.execute(
                "SELECT source, partition, stage, outcome, reason, value, detail, decided_at, run_id FROM outcomes WHERE doc_id = ?",
                [doc_id],
            ).fetchone()
        if row:
            names = ("source", "partition", "stage", "outcome", "reason", "value", "detail", "decided_at", "run_id")
            decision = dict(zip(names, row, strict=True))
    return {"included": False, "release": release, "doc_id": doc_id, "last_release": last, "left_in": left_in, "decision": decision}
