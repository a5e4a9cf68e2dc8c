"""py3langid's model, decompressed once per machine and then read memory-mapped.

The py3langid wheel ships its model as an xz-compressed npz (4.5 MB; 68 MB decompressed), and
py3langid decompresses it in every process that loads it: 0.5-1.2 s of CPU that every build,
and every command or worker process that identifies a language, paid before its first
document. `load_model` keeps the arrays, decompressed and with the class-by-feature table
already widened to float32 (what `language._Identifier` scores with), as `.npy` files in the
user's cache, and maps them: a few milliseconds, and the pages are shared by every process
that maps them.

An entry is the folder `<cache>/py3langid-<sha256 of the model file>-v<FORMAT>/`, written under
a temporary name and renamed into place in one step, so it is whole or absent. It is read
only from a folder `user_cache.trusted` accepts and when its arrays fit together as a model
does (shapes, types, every state's row and feature in range); anything else is a miss, and
the model is read from the wheel. The cache is `$XDG_CACHE_HOME/opencorpus/models`, or the
folder in OPENCORPUS_MODEL_CACHE ("off": no cache).
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import shutil
from pathlib import Path
from typing import NamedTuple

import numpy as np
from py3langid import modelio
from py3langid.langid import MODEL_DIR, MODEL_FILE

from opencorpus_dagster.state.atomic import TEMPORARY_PATTERN, left_by_dead_writer, temporary_sibling
from opencorpus_dagster.state.user_cache import cache_folder, trusted

CACHE_ENV = "OPENCORPUS_MODEL_CACHE"  # a folder, or "off"; default $XDG_CACHE_HOME/opencorpus/models
FORMAT = 1  # bump when what an entry holds changes
ROW = 256  # transitions per automaton row (one per byte value)
KEEP_ENTRIES = 2  # models kept (two environments with different py3langid versions do not take turns)


class ModelArrays(NamedTuple):
    ptc: np.ndarray  # (features, classes) float32: log P(feature | class)
    pc: np.ndarray  # (classes,) float32: log P(class)
    classes: list[str]
    nextmove: np.ndarray  # uint32, distinct automaton rows of ROW next states each
    row: np.ndarray  # uint16 or uint32, per state: its row in `nextmove`
    out_feat: np.ndarray  # int32, per state: the feature it emits, or -1


_FILES = ("ptc", "pc", "classes", "nextmove", "row", "out_feat")


def model_path() -> Path:
    return Path(MODEL_DIR) / MODEL_FILE


def load_model(path: Path | None = None) -> ModelArrays:
    """The arrays of the model file `path` (default: the one py3langid ships), from the cache
    when it holds them, else read from the file (and cached)."""
    path = path or model_path()
    folder = cache_folder(CACHE_ENV, "models")
    entry = None
    if folder is not None:
        with open(path, "rb") as handle:
            digest = hashlib.file_digest(handle, "sha256").hexdigest()
        entry = folder / f"py3langid-{digest}-v{FORMAT}"
        cached = _read_entry(folder, entry)
        if cached is not None:
            return cached
    arrays = _from_model_file(path)
    if entry is not None:
        _write_entry(folder, entry, arrays)
    return arrays


def _from_model_file(path: Path) -> ModelArrays:
    ptc, pc, classes, nextmove, row, out_feat = modelio.load_model(path)
    return ModelArrays(
        ptc=np.asarray(ptc, dtype=np.float32),
        pc=np.asarray(pc, dtype=np.float32),
        classes=list(classes),
        nextmove=np.asarray(nextmove, dtype=np.uint32),
        row=np.asarray(row),
        out_feat=np.asarray(out_feat, dtype=np.int32),
    )


def _read_entry(folder: Path, entry: Path) -> ModelArrays | None:
    files = {name: entry / f"{name}.npy" for name in _FILES}
    if not entry.is_dir() or not trusted(folder) or not trusted(entry, *files.values()):
        return None
    try:
        loaded = {name: np.load(file, mmap_mode="r", allow_pickle=False) for name, file in files.items()}
        arrays = ModelArrays(**{**loaded, "pc": np.array(loaded["pc"]), "classes": loaded["classes"].tolist()})
    except (OSError, ValueError):
        return None
    if not _consistent(arrays):
        return None
    with contextlib.suppress(OSError):
        os.utime(entry)  # used: kept when a newer model's entry is written (`KEEP_ENTRIES`)
    return arrays


def _consistent(arrays: ModelArrays) -> bool:
    """Whether the arrays fit together as a model: what a truncated or foreign entry would not."""
    ptc, pc, classes, nextmove, row, out_feat = arrays
    features, labels = ptc.shape if ptc.ndim == 2 else (0, 0)
    return (
        ptc.dtype == np.float32
        and labels > 0
        and pc.dtype == np.float32
        and pc.shape == (labels,)
        and len(classes) == labels
        and all(isinstance(label, str) for label in classes)
        and nextmove.dtype == np.uint32
        and nextmove.ndim == 1
        and len(nextmove) > 0
        and len(nextmove) % ROW == 0
        and row.dtype in (np.uint16, np.uint32)
        and row.ndim == 1
        and out_feat.dtype == np.int32
        and out_feat.shape == row.shape
        and len(row) > 0
        and int(row.max()) < len(nextmove) // ROW
        and int(nextmove.max()) < len(row)
        and int(out_feat.max()) < features
        and int(out_feat.min()) >= -1
    )


def _write_entry(folder: Path, entry: Path, arrays: ModelArrays) -> None:
    """Write `entry` in one step (a temporary folder renamed); a cache that cannot be written is no cache."""
    temporary = temporary_sibling(entry)
    try:
        folder.mkdir(mode=0o700, parents=True, exist_ok=True)
        if not trusted(folder):
            return
        _remove_abandoned(folder)
        if entry.exists():
            if _read_entry(folder, entry) is not None:
                return  # another process wrote it since this one looked
            shutil.rmtree(entry)  # inconsistent: replaced
        temporary.mkdir(mode=0o700)
        for name, value in zip(_FILES, arrays, strict=True):
            with open(temporary / f"{name}.npy", "wb") as handle:
                np.save(handle, np.asarray(value), allow_pickle=False)
                handle.flush()
                os.fsync(handle.fileno())
        os.rename(temporary, entry)
        _remove_unused(folder)
    except OSError:
        return  # another process renamed its copy first, a full disk, a read-only home: no cache
    finally:
        shutil.rmtree(temporary, ignore_errors=True)


def _remove_unused(folder: Path) -> None:
    """All but the KEEP_ENTRIES entries used last: what another version of the model left (93 MB each)."""
    entries = sorted(folder.glob("py3langid-*"), key=lambda entry: entry.stat().st_mtime_ns, reverse=True)
    for entry in entries[KEEP_ENTRIES:]:
        shutil.rmtree(entry, ignore_errors=True)


def _remove_abandoned(folder: Path) -> None:
    """The temporary folders of writers that were killed (their pid ends the name)."""
    for temporary in folder.glob(TEMPORARY_PATTERN):
        if left_by_dead_writer(temporary):
            shutil.rmtree(temporary, ignore_errors=True)
