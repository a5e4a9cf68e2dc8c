"""Releases: every corpus run that changes the output publishes a new, complete release.

    <home>/corpus/releases/<id>/shards/<source>/<partition>/part-NNNNN-<sha16>.parquet
    <home>/corpus/releases/<id>/manifest.json     the shard list (deterministic: no timestamps)
    <home>/corpus/releases/<id>/README.md, croissant.json, ATTRIBUTION, charts/
    <home>/corpus/releases/<id>/release.json      the release manifest: written last
    <home>/corpus/current.json                    {"release": <id>, ...}: the pointer readers follow
    <home>/corpus/releases/current -> <id>        (local homes) a symlink for people and `load_dataset`

A release folder is a complete dataset on its own (card, Croissant and shards side by side;
`load_dataset(<folder>)` reads it). A corpus run stages its release in the next release folder
(`r000042`): the shards step writes the new shard files, links the unchanged ones to the
previous release's (hard links: no copy, no extra space) and writes `manifest.json`; the
card step writes the card and its companions; the release step writes `release.json` (the sha256
of every file of the release, the shard totals, the previous release, the corpus run's id: which
lineage it goes with) and then replaces `current.json` in one step (a rename on local disk, one
PUT in object storage). A folder without `release.json` is a release being staged or one whose
run was killed: no reader looks at it, the next run stages into it again. Readers (`trace`, the
card's `load_dataset` configs, Croissant, the UI metadata) resolve `current.json` once and read
one complete release; older releases stay readable until `opencorpus gc --keep N` removes them
(a shard's space is freed with its last link).

The symlink `releases/current` is switched right after `current.json`; a kill between the two
leaves it on the previous release, which is complete.
"""

from __future__ import annotations

import json
import os
import re
import shutil
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import sha256_file

RELEASE_FORMAT = "opencorpus-release/1"
MANIFEST_FILE = "manifest.json"
RELEASE_FILE = "release.json"
POINTER_FILE = "current.json"
CURRENT_LINK = "current"
_RELEASE_ID = re.compile(r"^r(\d{6})$")


class ReleaseNotFound(LookupError):
    """A release id that names no complete release of the home."""


def releases_dir(home: DataHome) -> Path:
    return home.corpus_dir / "releases"


def pointer_path(home: DataHome) -> Path:
    return home.corpus_dir / POINTER_FILE


def release_dir(home: DataHome, release: str) -> Path:
    if not _RELEASE_ID.match(release):
        raise ReleaseNotFound(f"{release!r} is not a release id (r followed by six digits, e.g. r000001)")
    return releases_dir(home) / release


def release_id(sequence: int) -> str:
    return f"r{sequence:06d}"


def sequence_of(release: str) -> int:
    return int(_RELEASE_ID.match(release).group(1))


def current_release(home: DataHome) -> str | None:
    """The id of the published release, from `current.json`; None before the first release."""
    pointer = pointer_path(home)
    if not pointer.is_file():
        return None
    return json.loads(pointer.read_text())["release"]


def _folders(home: DataHome) -> list[str]:
    root = releases_dir(home)
    if not root.is_dir():
        return []
    return sorted(p.name for p in root.iterdir() if _RELEASE_ID.match(p.name))


def is_complete(home: DataHome, release: str) -> bool:
    return (release_dir(home, release) / RELEASE_FILE).is_file()


def pending_release(home: DataHome) -> str | None:
    """The release being staged: the newest folder after the current release without `release.json`."""
    current = current_release(home)
    after = [r for r in _folders(home) if current is None or sequence_of(r) > sequence_of(current)]
    return after[-1] if after and not is_complete(home, after[-1]) else None


def stage_release(home: DataHome) -> str:
    """The id a corpus run stages into: the pending release, else the next free id."""
    pending = pending_release(home)
    if pending:
        return pending
    folders = _folders(home)
    return release_id(sequence_of(folders[-1]) + 1 if folders else 1)


def staged_for_card(home: DataHome) -> str:
    """The release the card step writes into: the one the shards step staged, else a new one
    staged with the current release's manifest (a card-only change, e.g. new catalog
    descriptions, is a new release too; unchanged, it is not published)."""
    pending = pending_release(home)
    if pending:
        return pending
    current = current_release(home)
    if current is None:
        raise FileNotFoundError(f"{pointer_path(home)}: nothing staged or published; materialise corpus/shards first")
    staged = stage_release(home)
    manifest = (release_dir(home, current) / MANIFEST_FILE).read_text()
    write_text_atomically(release_dir(home, staged) / MANIFEST_FILE, manifest)
    return staged


def card_release(home: DataHome) -> str:
    """Where a card is written when no release is named: the release being staged, else the
    current one (rewriting a published release's card: its release.json then no longer matches,
    which `opencorpus verify` reports). The pipeline always names the staged release."""
    release = pending_release(home) or current_release(home)
    if release is None:
        raise FileNotFoundError(f"{pointer_path(home)}: no release; build the corpus first (opencorpus build)")
    return release


def manifest_path(home: DataHome, release: str | None = None) -> Path | None:
    """`manifest.json` of `release` (default: the current one); None when nothing was published."""
    release = release or current_release(home)
    return release_dir(home, release) / MANIFEST_FILE if release else None


def read_manifest(home: DataHome, release: str | None = None) -> dict | None:
    """The shard list of `release` (default: the current release); None before the first release."""
    path = manifest_path(home, release)
    if path is None:
        return None
    if not path.is_file():
        raise ReleaseNotFound(f"release {release} has no manifest ({path})")
    return json.loads(path.read_text())


def read_release(home: DataHome, release: str) -> dict:
    path = release_dir(home, release) / RELEASE_FILE
    if not path.is_file():
        known = ", ".join(r["release"] for r in list_releases(home)) or "none"
        raise ReleaseNotFound(f"no complete release {release} in {home.root} (releases: {known})")
    return json.loads(path.read_text())


def list_releases(home: DataHome) -> list[dict]:
    """The `release.json` of every complete release, oldest first, with `current` set on one."""
    current = current_release(home)
    found = []
    for release in _folders(home):
        path = release_dir(home, release) / RELEASE_FILE
        if path.is_file():
            found.append({**json.loads(path.read_text()), "current": release == current})
    return found


def release_files(folder: Path) -> dict[str, str]:
    """Relative path -> sha256 of every file of a release folder but `release.json` and the
    shards (`manifest.json` holds their sha256, and its own is here)."""
    if not folder.is_dir():
        return {}
    files = {}
    for path in sorted(folder.rglob("*")):
        relative = path.relative_to(folder).as_posix()
        if relative.startswith("shards/") or relative == RELEASE_FILE or path.name.startswith("."):
            continue
        if path.is_file():
            files[relative] = sha256_file(path)
    return files


@dataclass
class Published:
    release: str
    new: bool  # False: the staged files equal the current release's, which stays current
    manifest: dict


def commit_release(home: DataHome, run_id: str, now: datetime | None = None) -> Published:
    """Publish the staged release: `release.json` last, then switch `current.json`.

    When the staged files are byte-identical to the current release's, the staging folder is
    removed and the current release stays (a corpus run that changed nothing publishes nothing).
    """
    staged = pending_release(home)
    current = current_release(home)
    if staged is None:
        raise ReleaseNotFound(f"nothing staged under {releases_dir(home)}: the shards step has not run")
    folder = release_dir(home, staged)
    files = release_files(folder)
    if MANIFEST_FILE not in files:
        raise ReleaseNotFound(f"{folder}: staged release has no {MANIFEST_FILE}")
    if current and files == release_files(release_dir(home, current)) and _shards_intact(home, current):
        _remove_folder(folder)
        return Published(current, False, read_manifest(home, current))
    manifest = json.loads((folder / MANIFEST_FILE).read_text())
    record = {
        "format": RELEASE_FORMAT,
        "release": staged,
        "previous": current,
        "published_at": (now or datetime.now(UTC)).replace(microsecond=0).isoformat(),
        "corpus_run_id": run_id,
        "files": files,
        "totals": manifest["totals"],
        **({"merkle_root": manifest["merkle_root"]} if "merkle_root" in manifest else {}),
    }
    write_text_atomically(folder / RELEASE_FILE, json.dumps(record, indent=2, sort_keys=True) + "\n")
    point_to(home, staged)
    return Published(staged, True, manifest)


def _shards_intact(home: DataHome, release: str) -> bool:
    """Every shard of `release` is there at its size (a damaged current release is replaced by the
    staged one, whose files were written again, even when the staged files are the same)."""
    folder = release_dir(home, release)
    for shard in (read_manifest(home, release) or {"shards": []})["shards"]:
        path = folder / shard["path"]
        if not path.is_file() or path.stat().st_size != shard["bytes"]:
            return False
    return True


def point_to(home: DataHome, release: str) -> None:
    """Make `release` (complete) the current one: `current.json` in one step, then the symlink."""
    record = read_release(home, release)
    pointer = {"release": release, "release_sha256": sha256_file(release_dir(home, release) / RELEASE_FILE)}
    write_text_atomically(pointer_path(home), json.dumps({**pointer, "published_at": record["published_at"]}, sort_keys=True) + "\n")
    if not home.is_remote:
        link = releases_dir(home) / CURRENT_LINK
        temporary = link.with_name(f".{CURRENT_LINK}.tmp-{os.getpid()}")
        temporary.unlink(missing_ok=True)
        temporary.symlink_to(release)
        if link.is_dir() and not link.is_symlink():
            shutil.rmtree(link)  # a copy of the home made without keeping links: a stale copy of a release
        os.replace(temporary, link)


def _remove_folder(folder: Path) -> None:
    if hasattr(folder, "fs"):  # fsspec (UPath)
        folder.fs.rm(folder.path, recursive=True)
    else:
        shutil.rmtree(folder)


@dataclass
class Collected:
    releases: list[str]
    shards: list[str]  # shard files (manifest paths) that no remaining release lists: their space is freed
    bytes: int


def listed_sha256(home: DataHome) -> set[str]:
    """The sha256 of every shard a release folder on disk lists (complete or staged)."""
    return {
        shard["sha256"]
        for release in _folders(home)
        for path in (release_dir(home, release) / MANIFEST_FILE,)
        if path.is_file()
        for shard in json.loads(path.read_text())["shards"]
    }


def _listed(home: DataHome, release: str) -> dict[str, int]:
    path = release_dir(home, release) / MANIFEST_FILE
    if not path.is_file():
        return {}
    return {s["path"]: s["bytes"] for s in json.loads(path.read_text())["shards"]}


def collect_garbage(home: DataHome, keep: int, dry_run: bool = False) -> Collected:
    """Remove all but the newest `keep` complete releases (never the current one) and abandoned
    staging folders older than the current release. Take the home lock first: a build stages
    meanwhile. Shards shared with a kept release are hard links: only the others free space."""
    if keep < 1:
        raise ValueError("--keep must be at least 1 (the current release is always kept)")
    current = current_release(home)
    complete = [r["release"] for r in list_releases(home)]
    kept = set(complete[-keep:]) | ({current} if current else set())
    pending = pending_release(home)
    doomed = [r for r in _folders(home) if r not in kept and r != pending]
    remaining: set[str] = set()
    for release in kept | ({pending} if pending else set()):
        remaining.update(_listed(home, release))
    freed: dict[str, int] = {}
    for release in doomed:
        freed.update({path: size for path, size in _listed(home, release).items() if path not in remaining})
    if not dry_run:
        for release in doomed:
            _remove_folder(release_dir(home, release))
    return Collected(doomed, sorted(freed), sum(freed.values()))
