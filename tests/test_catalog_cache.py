"""The catalog's cross-process cache (catalog.py): a parsed file kept as JSON data, never code.

Each load below starts from an empty in-process cache, as a new `opencorpus` process would.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest
from cli_runner import REPO

from opencorpus_dagster import catalog
from opencorpus_dagster.catalog import CACHE_ENV, load_source_file

ENWIKI = (REPO / "assets" / "enwiki.yaml").read_text(encoding="utf-8")


@pytest.fixture
def cache(tmp_path, monkeypatch) -> Path:
    folder = tmp_path / "cache"
    monkeypatch.setenv(CACHE_ENV, str(folder))
    return folder


def load_fresh(path: Path):
    catalog._LOADED.clear()  # a new process: only the disk cache is left
    return load_source_file(path)


def test_a_parsed_file_is_kept_as_json_and_gives_the_same_source(tmp_path, cache, monkeypatch):
    path = tmp_path / "enwiki.yaml"
    path.write_text(ENWIKI, encoding="utf-8")
    parsed = load_fresh(path)
    (kept,) = cache.glob("*.json")
    assert oct(cache.stat().st_mode & 0o777) == "0o700"
    data = json.loads(kept.read_text(encoding="utf-8"))
    assert data["key"][0] == str(path.absolute())
    assert data["data"]["name"] == "enwiki" and data["data"]["kind"] == "mediawiki"

    # The next process reads the JSON, not the YAML: a YAML parser that fails proves it.
    monkeypatch.setattr(catalog, "_read_catalog_yaml", lambda _: pytest.fail("the YAML was parsed again"))
    again = load_fresh(path)
    assert again.spec.model_dump(mode="json") == parsed.spec.model_dump(mode="json")
    assert again.partition_fingerprint(next(iter(again.connector.units()))) == parsed.partition_fingerprint(
        next(iter(parsed.connector.units()))
    )


def test_an_edited_file_is_parsed_again(tmp_path, cache):
    path = tmp_path / "enwiki.yaml"
    path.write_text(ENWIKI, encoding="utf-8")
    load_fresh(path)
    path.write_text(ENWIKI.replace("description:", "description: edited,", 1), encoding="utf-8")
    assert load_fresh(path).spec.description.startswith("edited,")
    assert len(list(cache.glob("*.json"))) == 2


def test_data_json_would_change_is_not_kept(tmp_path, cache):
    # An integer key: JSON would give back a string, and validation
    # must see what the file says.
    path = tmp_path / "enwiki.yaml"
    path.write_text(ENWIKI + "1: one\n", encoding="utf-8")
    with pytest.raises(catalog.CatalogFileError):
        load_fresh(path)  # an unknown field, whatever its type: the error is the file's
    assert not cache.exists() or not list(cache.glob("*.json"))


def test_a_cache_folder_others_can_write_is_not_read(tmp_path, cache, monkeypatch):
    path = tmp_path / "enwiki.yaml"
    path.write_text(ENWIKI, encoding="utf-8")
    load_fresh(path)
    (kept,) = cache.glob("*.json")
    # Someone else's data under this file's key, in a folder the group can write: ignored.
    planted = json.loads(kept.read_text(encoding="utf-8"))
    planted["data"]["description"] = "planted"
    kept.write_text(json.dumps(planted), encoding="utf-8")
    os.chmod(cache, 0o770)
    assert load_fresh(path).spec.description.startswith("English Wikipedia")
    # The same planted file in the owner's own folder is read: the permissions made the difference.
    os.chmod(cache, 0o700)
    kept.write_text(json.dumps(planted), encoding="utf-8")
    assert load_fresh(path).spec.description == "planted"


def test_off_keeps_nothing(tmp_path, monkeypatch):
    monkeypatch.setenv(CACHE_ENV, "off")
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    path = tmp_path / "enwiki.yaml"
    path.write_text(ENWIKI, encoding="utf-8")
    assert load_fresh(path).name == "enwiki"
    assert not (tmp_path / "xdg").exists()


def test_the_least_recently_used_files_go_when_the_cache_outgrows_its_budget(tmp_path, cache, monkeypatch):
    # Each edit of a catalog file (and each new version of the code) adds a file; the folder is
    # pruned after each write, the files read last kept first.
    versions = [ENWIKI.replace("description:", f"description: edit {n},", 1) for n in range(4)]
    path = tmp_path / "enwiki.yaml"
    kept_for = {}
    for n, text in enumerate(versions[:3]):
        path.write_text(text, encoding="utf-8")
        load_fresh(path)
        (kept_for[n],) = set(cache.glob("*.json")) - set(kept_for.values())
        os.utime(kept_for[n], ns=(10**18 + n * 10**9,) * 2)  # written in this order, a second apart
    size = kept_for[0].stat().st_size
    monkeypatch.setattr(catalog, "CACHE_BYTES", 3 * size + size // 2)  # room for three files of this size

    path.write_text(versions[0], encoding="utf-8")  # the oldest file is read: it becomes the newest
    parse = catalog._read_catalog_yaml
    monkeypatch.setattr(catalog, "_read_catalog_yaml", lambda _: pytest.fail("the YAML was parsed again"))
    assert load_fresh(path).spec.description.startswith("edit 0,")
    monkeypatch.setattr(catalog, "_read_catalog_yaml", parse)

    path.write_text(versions[3], encoding="utf-8")  # a fourth file: one of the others must go
    assert load_fresh(path).spec.description.startswith("edit 3,")
    left = set(cache.glob("*.json"))
    assert len(left) == 3
    assert kept_for[1] not in left  # the least recently used
    assert {kept_for[0], kept_for[2]} <= left
