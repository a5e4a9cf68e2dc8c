"""The language model's cache: decompressed once, then mapped; the same scores bit for bit;
anything odd in the cache is a miss, never a different model."""

from __future__ import annotations

import hashlib
import os
import subprocess
import sys

import numpy as np
import pytest
from py3langid.langid import MODEL_FILE, LanguageIdentifier
from test_language import mixed_script_strings

from opencorpus_dagster.text.language import new_identifier
from opencorpus_dagster.text.language_model import CACHE_ENV, FORMAT, ModelArrays, load_model, model_path

TEXTS = [
    "The quick brown fox jumps over the lazy dog, twice on Sundays.",
    "Le renard brun rapide saute par-dessus le chien paresseux.",
    "Быстрая коричневая лиса прыгает через ленивую собаку.",
    "敏捷的棕色狐狸跳过了懒狗。",
    "Η γρήγορη καφέ αλεπού πηδάει πάνω από τον τεμπέλη σκύλο.",
    "तेज़ भूरी लोमड़ी आलसी कुत्ते के ऊपर कूदती है।",
    "",
    "1234 5678",
    *mixed_script_strings(300),
]


@pytest.fixture
def cache(tmp_path, monkeypatch):
    folder = tmp_path / "models"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def entry_of(folder):
    (entry,) = [path for path in folder.iterdir() if not path.name.startswith(".")]
    return entry


def mapped(model: ModelArrays) -> bool:
    return isinstance(model.ptc, np.memmap) and isinstance(model.nextmove, np.memmap)


def assert_same_model(model: ModelArrays, reference: ModelArrays) -> None:
    for name, value, expected in zip(ModelArrays._fields, model, reference, strict=True):
        if name == "classes":
            assert value == expected
        else:
            assert value.dtype == expected.dtype and np.array_equal(value, expected), name


def test_the_second_load_maps_the_cache_and_scores_bit_for_bit_as_py3langid(cache):
    first = load_model()
    assert not mapped(first)
    assert sorted(path.name for path in entry_of(cache).iterdir()) == [
        "classes.npy", "nextmove.npy", "out_feat.npy", "pc.npy", "ptc.npy", "row.npy"
    ]
    second = load_model()
    assert mapped(second)
    assert_same_model(second, first)
    assert second.ptc.dtype == np.float32 and second.ptc.shape[1] == len(second.classes) == 142

    stock = LanguageIdentifier.from_model_file(MODEL_FILE, norm_probs=True)
    ours = new_identifier(second)
    for text in TEXTS:
        assert ours._decide(text).tobytes() == stock._decide(text).tobytes(), text[:80]
        assert ours.classify(text) == stock.classify(text)
    assert [ours.classify(text)[0] for text in TEXTS[:6]] == ["en", "fr", "ru", "zh", "el", "hi"]


def truncate(entry):
    entry.joinpath("ptc.npy").write_bytes(entry.joinpath("ptc.npy").read_bytes()[:4096])


def row_out_of_range(entry):
    rows = np.load(entry / "row.npy")
    np.save(entry / "row.npy", np.full_like(rows, 60000))


@pytest.mark.parametrize(
    "damage",
    [
        pytest.param(truncate, id="truncated"),
        pytest.param(lambda entry: np.save(entry / "pc.npy", np.zeros(141, dtype=np.float32)), id="wrong-shape"),
        pytest.param(row_out_of_range, id="row-out-of-range"),
        pytest.param(lambda entry: np.save(entry / "ptc.npy", np.zeros((4, 142), dtype=np.float16)), id="wrong-type"),
        pytest.param(lambda entry: entry.joinpath("out_feat.npy").unlink(), id="missing-file"),
        pytest.param(lambda entry: entry.joinpath("classes.npy").write_bytes(b"not numpy"), id="not-npy"),
    ],
)
def test_a_damaged_entry_is_a_miss_and_is_written_again(cache, damage):
    reference = load_model()
    damage(entry_of(cache))
    again = load_model()
    assert not mapped(again)
    assert_same_model(again, reference)
    repaired = load_model()
    assert mapped(repaired)
    assert_same_model(repaired, reference)


def test_a_cache_others_can_write_is_neither_read_nor_written(cache):
    cache.mkdir(mode=0o700)
    cache.chmod(0o777)
    model = load_model()
    assert not mapped(model)
    assert list(cache.iterdir()) == []
    cache.chmod(0o700)
    load_model()
    entry = entry_of(cache)
    entry.chmod(0o757)  # the entry itself writable by others
    assert not mapped(load_model())


def test_off_writes_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    monkeypatch.setenv(CACHE_ENV, "off")
    model = load_model()
    assert not mapped(model) and len(model.classes) == 142
    assert not (tmp_path / "xdg").exists()


def test_a_killed_writers_temporary_folder_is_removed_a_live_ones_kept(cache):
    ended = [sys.executable, "-c", "import os; print(os.getpid())"]
    dead = subprocess.run(ended, capture_output=True, text=True, check=True)
    cache.mkdir(mode=0o700)
    abandoned = cache / f".py3langid-x-v1.tmp-{dead.stdout.strip()}"
    running = cache / f".py3langid-x-v1.tmp-{os.getppid()}"
    for folder in (abandoned, running):
        folder.mkdir()
        (folder / "ptc.npy").write_bytes(b"half written")
    load_model()
    assert not abandoned.exists()
    assert running.exists()
    assert mapped(load_model())


def test_entries_of_other_models_go_but_the_last_used_ones(cache):
    cache.mkdir(mode=0o700)
    stale = []
    for n in range(3):  # what other versions of the model left, the oldest first
        entry = cache / f"py3langid-{n:064x}-v1"
        entry.mkdir(mode=0o700)
        (entry / "ptc.npy").write_bytes(b"x")
        os.utime(entry, ns=(10**18 + n * 10**9,) * 2)
        stale.append(entry)
    load_model()  # a miss: this model's entry is written, the two entries used last are kept
    assert sorted(path.name for path in cache.iterdir()) == sorted([entry_of_model(cache).name, stale[2].name])
    assert mapped(load_model())


def entry_of_model(folder):
    with open(model_path(), "rb") as handle:
        return folder / f"py3langid-{hashlib.file_digest(handle, 'sha256').hexdigest()}-v{FORMAT}"
