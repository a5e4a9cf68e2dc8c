"""Corpus steps that cost what changed: per-shard card statistics kept under the shard's sha256
(publish/shard_stats.py) and Great Expectations suite passes kept per file (quality/suites.py).

A small real corpus: Project Gutenberg clean texts cut into ~5 KB files, three `textfiles`
partitions of one source, built with the plain stages the Dagster assets call (ingest,
documents, dedup, shards); then one partition changes and one is added.
"""

from __future__ import annotations

import dataclasses
import gzip
import json
import re
import shutil
from collections import Counter
from pathlib import Path

import duckdb
import pyarrow as pa
import pyarrow.compute as pc
import pyarrow.parquet as pq
import pytest
import yaml
from conftest import release_folder, require_fixture, shard_files

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.orchestration.build import pending_partitions
from opencorpus_dagster.publish import write_attribution, write_card, write_croissant
from opencorpus_dagster.publish.card import corpus_statistics
from opencorpus_dagster.publish.shard_stats import (
    STATS_DIR,
    TOKENS_SQL,
    counting_connection,
    shard_statistics,
    stats_path,
)
from opencorpus_dagster.quality.suites import SuiteCache, validate_documents
from opencorpus_dagster.stages.corpus import deduplicate_corpus, publish_corpus
from opencorpus_dagster.stages.documents import process_partition
from opencorpus_dagster.stages.ingest import ingest_partition
from opencorpus_dagster.stages.shards import read_manifest
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.upstream.fetch import Fetcher

BOOKS = ("10026", "10028", "10076")
CHUNK_CHARS = 5000
FILES_PER_PARTITION = 6


def _chunks(book: str) -> list[str]:
    text = gzip.decompress(require_fixture(f"gutenberg/c-w-gutenberg/clean-texts/{book}.txt.gz").read_bytes()).decode()
    chunks, current = [], ""
    for paragraph in re.split(r"\r?\n\s*\n", text):
        current += paragraph + "\n\n"
        if len(current) >= CHUNK_CHARS:
            chunks.append(current)
            current = ""
    return chunks


def _write_catalog(catalog: Path, root: Path, partitions: dict[str, list[str]]) -> None:
    catalog.mkdir(parents=True, exist_ok=True)
    spec = {
        "name": "books",
        "kind": "textfiles",
        "options": {"root": str(root), "partitions": partitions},
        "license": {"spdx": "LicenseRef-PublicDomain", "evidence": "Project Gutenberg: public domain in the USA"},
        "filters": {"quality": {"enabled": False}},
    }
    (catalog / "books.yaml").write_text(yaml.safe_dump(spec, sort_keys=False), encoding="utf-8")


def _build(catalog: Path, home: DataHome, run_id: str) -> list[str]:
    """One build with the plain stages; returns the partitions it processed."""
    sources = load_catalog(catalog).sources
    store = LineageStore.at(home.lineage_db)
    pending, _ = pending_partitions(sources, store, home, force=False)
    units = {(s.name, u.key): u for s in sources for u in s.connector.units()}
    fetcher = Fetcher(home.downloads)
    for source, key in pending:
        ingest_partition(source, units[(source.name, key)], fetcher, home, store, run_id)
        process_partition(source, key, home, store, run_id, fetcher=fetcher)
    deduplicate_corpus(home, store, run_id)
    publish_corpus(home, store, run_id)
    return [key for _, key in pending]


def _publish_card(home: DataHome) -> dict[str, bytes]:
    store = LineageStore.at(home.lineage_db, read_only=True)
    card = write_card(home, store, {"books": "Gutenberg books"})
    paths = [card, write_attribution(home, store), write_croissant(home, store)]
    charts = sorted((release_folder(home) / "charts").glob("*.png"))
    return {path.name: path.read_bytes() for path in [*paths, *charts]}


@pytest.fixture(scope="module")
def corpus(tmp_path_factory):
    """(home, catalog, text folder, partitions) after three builds: the first with p0-p2, the
    second with p1 changed (one file fewer) and p3 added. Statistics are recorded after each."""
    work = tmp_path_factory.mktemp("incremental")
    text = work / "text"
    text.mkdir()
    names = []
    for book in BOOKS:
        for number, chunk in enumerate(_chunks(book)[:8]):
            (text / f"{book}-{number:02d}.txt").write_text(chunk, encoding="utf-8")
            names.append(f"{book}-{number:02d}.txt")
    partitions = {f"p{i}": names[i * FILES_PER_PARTITION : (i + 1) * FILES_PER_PARTITION] for i in range(4)}
    home, catalog = DataHome(work / "home"), work / "catalog"
    _write_catalog(catalog, text, {k: partitions[k] for k in ("p0", "p1", "p2")})
    assert _build(catalog, home, "first") == ["p0", "p1", "p2"]
    first_manifest = read_manifest(home)
    first = shard_statistics(home, first_manifest, shard_files(home))
    _publish_card(home)
    again = shard_statistics(home, first_manifest, shard_files(home))
    grown = {**{k: partitions[k] for k in ("p0", "p2", "p3")}, "p1": partitions["p1"][:-1]}
    _write_catalog(catalog, text, grown)
    assert _build(catalog, home, "second") == ["p1", "p3"]
    second_manifest = read_manifest(home)
    second = shard_statistics(home, second_manifest, shard_files(home))
    return {
        "home": home,
        "first_manifest": first_manifest,
        "first": first,
        "again": again,
        "second_manifest": second_manifest,
        "second": second,
    }


def _partition_of(shard_path: str) -> str:
    return Path(shard_path).parent.name


def test_each_shard_is_read_once_and_only_new_or_changed_shards_are_read(corpus):
    first, again, second = corpus["first"], corpus["again"], corpus["second"]
    assert sorted(_partition_of(p) for p in first.computed) == ["p0", "p1", "p2"]
    assert again.computed == ()  # the card written in between found every shard's statistics
    old = {e["path"]: e["sha256"] for e in corpus["first_manifest"]["shards"]}
    new = {e["path"]: e["sha256"] for e in corpus["second_manifest"]["shards"]}
    # p1 changed (a file fewer: a new shard, another sha256) and p3 is new: only they are read.
    assert sorted(_partition_of(p) for p in second.computed) == ["p1", "p3"]
    assert all(new[p] not in old.values() for p in second.computed)
    unchanged = [p for p in new if p not in second.computed]
    assert sorted(_partition_of(p) for p in unchanged) == ["p0", "p2"]
    assert all(old[p] == new[p] for p in unchanged)
    # One statistics file per shard ever published, named by its sha256.
    home = corpus["home"]
    kept = sorted(p.stem for p in (home.corpus_dir / STATS_DIR).glob("*.json"))
    assert kept == sorted(set(old.values()) | set(new.values()))


def test_statistics_are_the_shards_own_figures(corpus):
    """Documents and tokens per shard, counted here with pyarrow and str.split()."""
    home = corpus["home"]
    for shard in corpus["second"].shards:
        table = pq.read_table(release_folder(home) / shard.path)
        tokens = sum(len(text.split()) for text in table["text"].to_pylist())
        assert sum(g[4] for g in shard.groups) == table.num_rows > 0
        assert sum(g[5] for g in shard.groups) == tokens
        assert {(g[0], g[1]) for g in shard.groups} == {("books", "LicenseRef-PublicDomain")}
        languages = Counter(pc.fill_null(table["language"], "").to_pylist())
        assert {g[2] or "": g[4] for g in shard.groups} == dict(languages)


def test_tokens_are_counted_as_str_split_counts_them(tmp_path):
    """Every character Python calls whitespace separates tokens, and nothing else does: a word
    joined by each of them, runs of them, texts of only whitespace, other scripts, a null."""
    spaces = [chr(c) for c in range(0x110000) if chr(c).isspace()]
    near_spaces = ["\u200b", "\u180e", "\ufeff", "\u00ad", "_", "\x00"]  # not whitespace in Python
    texts = [f"word{s}word" for s in spaces + near_spaces]
    texts += ["".join(spaces), "", " a  b\t\u3000c\u2029", "Ελληνικά και 中文文本 עברית", "x" * 5000]
    table = pa.table({"text": pa.array([*texts, None], pa.string())})
    path = tmp_path / "texts.parquet"
    pq.write_table(table, path, row_group_size=7)  # row groups of 7: the function is called on several chunks
    with counting_connection(path) as connection:
        counts = [n for (n,) in connection.execute(f"SELECT {TOKENS_SQL} FROM read_parquet(?)", [str(path)]).fetchall()]
    assert counts == [len(t.split()) for t in texts] + [None]
    assert counts[: len(spaces)] == [2] * len(spaces) and counts[len(spaces) : len(texts) - 5] == [1] * len(near_spaces)


def test_card_from_kept_statistics_is_byte_identical_to_a_card_from_scratch(corpus, tmp_path):
    home = corpus["home"]
    incremental = _publish_card(home)  # p0 and p2 from kept statistics, p1 and p3 counted once
    assert shard_statistics(home, read_manifest(home), shard_files(home)).computed == ()
    scratch = DataHome(tmp_path / "home")
    shutil.copytree(home.root, scratch.root, symlinks=True)
    shutil.rmtree(scratch.corpus_dir / STATS_DIR)
    for name in ("README.md", "ATTRIBUTION", "croissant.json"):
        (release_folder(scratch) / name).unlink()
    from_scratch = _publish_card(scratch)
    names = ["ATTRIBUTION", "README.md", "croissant.json", "licences.png", "outcomes.png", "sources.png"]
    assert sorted(from_scratch) == names
    assert from_scratch == incremental
    # And the figures are the shards': documents and tokens over every listed shard.
    files = [str(path) for path in shard_files(home)]
    with duckdb.connect() as connection:
        texts = [t for (t,) in connection.execute("SELECT text FROM read_parquet(?)", [files]).fetchall()]
    stats = corpus_statistics(home, LineageStore.at(home.lineage_db, read_only=True))
    assert (stats.documents, stats.tokens) == (len(texts), sum(len(t.split()) for t in texts))
    assert stats.by_source == {"books": (len(texts), sum(len(t.split()) for t in texts))}


def test_a_damaged_or_foreign_statistics_file_is_recomputed(corpus, tmp_path):
    home = DataHome(tmp_path / "home")
    shutil.copytree(corpus["home"].root, home.root, symlinks=True)
    manifest = read_manifest(home)
    first, second = manifest["shards"][0], manifest["shards"][1]
    stats_path(home, first["sha256"]).write_text("{not json", encoding="utf-8")
    # Another shard's statistics under this shard's name: never trusted.
    stats_path(home, second["sha256"]).write_text(
        stats_path(home, manifest["shards"][2]["sha256"]).read_text(encoding="utf-8"), encoding="utf-8"
    )
    result = shard_statistics(home, manifest, shard_files(home))
    assert sorted(result.computed) == sorted([first["path"], second["path"]])
    assert json.loads(stats_path(home, second["sha256"]).read_text())["sha256"] == second["sha256"]
    with pytest.raises(ValueError, match="not a sha256"):
        stats_path(home, "../../etc/passwd")


# --- the expectation suites ---------------------------------------------------------------------


def test_suite_passes_are_kept_per_file_and_a_changed_file_is_validated_again(corpus, tmp_path):
    home = DataHome(tmp_path / "home")
    shutil.copytree(corpus["home"].root, home.root, symlinks=True, ignore=shutil.ignore_patterns("suite-passes"))
    source = load_catalog(_catalog_of(corpus)).source("books")
    files = sorted((home.root / "documents" / "books").glob("*.parquet"))
    assert [f.stem for f in files] == ["p0", "p1", "p2", "p3"]
    cache = SuiteCache(tmp_path / "passes")

    first = validate_documents(source, files, cache)
    assert first.success and first.rows_clean
    assert [Path(p).stem for p in first.rows_read_from] == ["p0", "p1", "p2", "p3"]
    second = validate_documents(source, files, cache)
    assert second.success and second.rows_read_from == ()  # every file's rows passed before
    assert second.rows == first.rows > 0

    # p2 rewritten with the same rows: another identity, read again; the others are not.
    table = pq.read_table(files[2])
    pq.write_table(table, files[2], compression="snappy")
    third = validate_documents(source, files, cache)
    assert third.success and [Path(p).stem for p in third.rows_read_from] == ["p2"]

    # Another policy (a source that also denies the public domain) is another scope: all read.
    stricter = source.policy.merged(deny=["LicenseRef-PublicDomain"])
    other = dataclasses.replace(source, policy=stricter)
    fourth = validate_documents(other, files, cache)
    assert not fourth.success and len(fourth.rows_read_from) == 4


def test_a_failing_file_fails_on_every_run_and_is_never_kept_as_a_pass(corpus, tmp_path):
    home = DataHome(tmp_path / "home")
    shutil.copytree(corpus["home"].root, home.root, symlinks=True, ignore=shutil.ignore_patterns("suite-passes"))
    source = load_catalog(_catalog_of(corpus)).source("books")
    files = sorted((home.root / "documents" / "books").glob("*.parquet"))
    cache = SuiteCache(tmp_path / "passes")
    assert validate_documents(source, files, cache).success
    kept = sorted(p.name for p in cache.folder.iterdir())
    assert len(kept) == 4

    # p1 now holds a record under a licence the policy refuses (as if it slipped past the gate).
    table = pq.read_table(files[1])
    licences = table["license"].to_pylist()
    licences[0] = "CC-BY-NC-4.0"
    table = table.set_column(table.schema.get_field_index("license"), "license", pa.array(licences, pa.string()))
    pq.write_table(table, files[1])
    for _ in range(2):
        result = validate_documents(source, files, cache)
        assert not result.success and not result.rows_clean
        (failure,) = result.failed
        assert (failure.column, failure.unexpected_count) == ("license", 1)
        assert failure.unexpected_examples == ["CC-BY-NC-4.0"]
        assert [Path(p).stem for p in result.rows_read_from] == ["p1"]
    assert sorted(p.name for p in cache.folder.iterdir()) == kept  # nothing added for p1


def _catalog_of(corpus) -> Path:
    return corpus["home"].root.parent / "catalog"


def test_statistics_are_kept_in_an_object_storage_home(corpus):
    """An fsspec home: the shards are read through fsspec, the statistics PUT beside them."""
    from upath import UPath

    local = corpus["home"]
    manifest = read_manifest(local)
    remote = DataHome(UPath("memory://incremental-stats/home"))
    files = [remote.corpus_dir / entry["path"] for entry in manifest["shards"]]
    for path, local_file in zip(files, shard_files(local), strict=True):
        path.write_bytes(local_file.read_bytes())
    first = shard_statistics(remote, manifest, files)
    assert sorted(first.computed) == sorted(e["path"] for e in manifest["shards"])
    assert sorted(p.name for p in (remote.corpus_dir / STATS_DIR).iterdir()) == sorted(
        f"{e['sha256']}.json" for e in manifest["shards"]
    )
    again = shard_statistics(remote, manifest, files)
    assert again.computed == () and again.shards == shard_statistics(local, manifest, shard_files(local)).shards


def test_shard_suite_passes_follow_an_unchanged_shard_into_the_next_release(corpus, tmp_path):
    """A release folder hard-links the shards that did not change: their rows are not validated again."""
    from opencorpus_dagster.quality.suites import validate_shards
    from opencorpus_dagster.state import releases

    home = corpus["home"]
    sources = load_catalog(_catalog_of(corpus)).sources
    first_release, second_release = [r["release"] for r in releases.list_releases(home)][-2:]
    first = [releases.release_dir(home, first_release) / e["path"] for e in corpus["first_manifest"]["shards"]]
    second = [releases.release_dir(home, second_release) / e["path"] for e in corpus["second_manifest"]["shards"]]
    cache = SuiteCache(tmp_path / "passes")
    assert validate_shards(sources, first, cache).success
    result = validate_shards(sources, second, cache)
    new = {Path(e["path"]).name for e in corpus["second_manifest"]["shards"]} - {
        Path(e["path"]).name for e in corpus["first_manifest"]["shards"]
    }
    assert result.success and len(new) == 2  # p1 changed, p3 is new
    assert sorted(Path(p).name for p in result.rows_read_from) == sorted(new)
    assert result.rows == sum(e["rows"] for e in corpus["second_manifest"]["shards"])


def test_a_source_without_language_identification_passes_both_suites_without_a_language(corpus, tmp_path):
    """`filters.language.enabled: false` leaves `language` null: the documents and shards suites
    then skip their not-null expectation for it (both used to fail on every such file)."""
    from opencorpus_dagster.quality.suites import validate_shards
    from opencorpus_dagster.state import releases

    home = corpus["home"]
    source = load_catalog(_catalog_of(corpus)).source("books")
    off = dataclasses.replace(
        source,
        filters=source.filters.model_copy(update={"language": source.filters.language.model_copy(update={"enabled": False})}),
    )
    release = releases.release_dir(home, releases.list_releases(home)[-1]["release"])
    for original, validate in (
        (sorted((home.root / "documents" / "books").glob("*.parquet"))[0], validate_documents),
        (release / corpus["second_manifest"]["shards"][0]["path"], lambda s, f, c: validate_shards([s], f, c)),
    ):
        table = pq.read_table(original)
        column = table.schema.get_field_index("language")
        unlabelled = tmp_path / f"unlabelled-{original.name}"
        pq.write_table(table.set_column(column, "language", pa.nulls(len(table), pa.string())), unlabelled)
        cache = SuiteCache(tmp_path / f"passes-{original.name}")
        strict = validate(source, [unlabelled], cache)
        assert [(f.type, f.column, f.unexpected_count) for f in strict.failed] == [
            ("expect_column_values_to_not_be_null", "language", len(table))
        ]
        relaxed = validate(off, [unlabelled], cache)
        assert relaxed.success and relaxed.rows == len(table) > 0
        assert any("language_identified is None" in skipped for skipped in relaxed.skipped)


def test_shards_written_by_several_threads_are_the_shards_one_thread_writes(corpus, tmp_path):
    """Changed groups are compressed in threads while the next is read: the same files, names
    and manifest (entries in group order) as one writer gives, with groups split in several
    shards and more groups than writers."""
    from opencorpus_dagster.stages import shards as shards_module
    from opencorpus_dagster.state import releases

    written = {}
    for writers in (1, 3):
        home = DataHome(tmp_path / f"writers-{writers}")
        shutil.copytree(corpus["home"].root / "documents", home.root / "documents")
        groups = [
            shards_module.ShardGroup(path.parent.name, path.stem, path)
            for path in sorted((home.root / "documents").glob("*/*.parquet"))
        ]
        report = shards_module.write_shards(home, groups, None, max_shard_bytes=8_000, writers=writers)
        folder = releases.release_dir(home, report.release)
        written[writers] = (
            report.manifest,
            {e["path"]: (folder / e["path"]).read_bytes() for e in report.manifest["shards"]},
            report.written,
        )
    (manifest, files, paths), (threaded_manifest, threaded_files, threaded_paths) = written[1], written[3]
    assert len({e["partition"] for e in manifest["shards"]}) == 4 and len(manifest["shards"]) > 8
    assert [(e["source"], e["partition"]) for e in manifest["shards"]] == sorted(
        (e["source"], e["partition"]) for e in manifest["shards"]
    )
    assert threaded_manifest == manifest and threaded_files == files and threaded_paths == paths
    with pytest.raises(ValueError, match="writers must be at least 1"):
        shards_module.write_shards(DataHome(tmp_path / "none"), groups, None, writers=0)
