"""The dataset card's charts (publish/charts.py) on the fixture corpus.

What is drawn (`chart_data`) is compared with the test's own reading of the shard files
(pyarrow, tokens by `str.split()`) and of the lineage store; the figures are then checked
through matplotlib's own objects (bar widths, labels, texts), and the PNG files for bytes:
the same on every write, whatever the user's matplotlibrc, with no metadata chunk.
"""

from __future__ import annotations

import os
import shutil
import struct
import subprocess
import sys
import zlib
from collections import Counter

import pyarrow.parquet as pq
import pytest
from conftest import current_manifest, release_folder
from lineage_edit import copy_lineage
from upath import UPath

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.publish.card import CorpusStatistics, corpus_statistics
from opencorpus_dagster.publish.charts import (
    MAX_BARS,
    ChartData,
    SourceFunnel,
    chart_data,
    draw_licences,
    draw_outcomes,
    draw_sources,
    write_charts,
)
from opencorpus_dagster.state.home import DataHome

CHARTS = ("licences.png", "outcomes.png", "sources.png")


@pytest.fixture(scope="module")
def home(built_corpus, tmp_path_factory) -> DataHome:
    root = tmp_path_factory.mktemp("charts") / "home"
    shutil.copytree(built_corpus[0], root, symlinks=True)
    return DataHome(root)


@pytest.fixture(scope="module")
def data(home) -> ChartData:
    return chart_data(corpus_statistics(home, LineageStore.at(home.lineage_db, read_only=True)))


@pytest.fixture(scope="module")
def shard_rows(home) -> list[dict]:
    manifest = current_manifest(home)
    return [row for shard in manifest["shards"] for row in pq.read_table(release_folder(home) / shard["path"]).to_pylist()]


def lineage(home: DataHome, query: str) -> list[tuple]:
    with LineageStore.at(home.lineage_dir, read_only=True).connection() as conn:
        return conn.execute(query).fetchall()


# --- the data --------------------------------------------------------------------------------


def test_licence_and_source_bars_are_the_shards_documents_and_whitespace_tokens(data, shard_rows):
    documents, tokens = Counter(), Counter()
    by_source_documents, by_source_tokens = Counter(), Counter()
    for row in shard_rows:
        words = len(row["text"].split())
        documents[row["license"]] += 1
        tokens[row["license"]] += words
        by_source_documents[row["source"]] += 1
        by_source_tokens[row["source"]] += words
    assert data.licences == [
        ("CC-BY-SA-3.0", 94, tokens["CC-BY-SA-3.0"]),
        ("LicenseRef-PublicDomain", 1, tokens["LicenseRef-PublicDomain"]),
    ]
    assert data.sources == [("enwiki", 94, by_source_tokens["enwiki"]), ("gutenberg", 1, by_source_tokens["gutenberg"])]
    assert (data.documents, data.tokens) == (len(shard_rows), sum(tokens.values())) == (95, 649_233)


def test_funnels_are_the_lineage_stores_records_read_and_terminal_outcomes(home, data):
    query = "SELECT source, sum(records_in)::BIGINT FROM partitions WHERE stage = 'raw' GROUP BY 1"
    records_in = dict(lineage(home, query))
    outcomes: dict[str, Counter] = {}
    for source, outcome, n in lineage(home, "SELECT source, outcome, count(*) FROM outcomes GROUP BY 1, 2"):
        outcomes.setdefault(source, Counter())[outcome] = n
    assert [f.source for f in data.funnels] == ["enwiki", "gutenberg"]
    for funnel in data.funnels:
        assert funnel.records_in == records_in[funnel.source]
        assert {k: v for k, v in funnel.outcomes.items() if v} == dict(outcomes[funnel.source])
        assert funnel.steps()[-1][1] == outcomes[funnel.source]["kept"]  # conservation: the funnel ends at kept
    enwiki, gutenberg = data.funnels
    assert enwiki.steps() == [
        ("read", 206, 0), ("content", 106, 100), ("passed filters", 94, 12), ("unique", 94, 0), ("kept", 94, 0),
    ]  # fmt: skip
    assert gutenberg.steps() == [
        ("read", 15, 0), ("content", 15, 0), ("passed filters", 1, 14), ("unique", 1, 0), ("kept", 1, 0),
    ]  # fmt: skip


@pytest.mark.parametrize(
    ("outcomes", "steps"),
    [
        (
            {"kept": 50, "filtered": 20, "duplicate": 10, "quarantined": 5, "removed": 3, "skipped": 12},
            [("read", 100, 0), ("content", 83, 17), ("passed filters", 63, 20), ("unique", 53, 10), ("kept", 50, 3)],
        ),
        (
            {"kept": 100, "filtered": 0, "duplicate": 0, "quarantined": 0, "removed": 0, "skipped": 0},
            [("read", 100, 0), ("content", 100, 0), ("passed filters", 100, 0), ("unique", 100, 0), ("kept", 100, 0)],
        ),
        (
            {"kept": 0, "filtered": 0, "duplicate": 0, "quarantined": 0, "removed": 100, "skipped": 0},
            [("read", 100, 0), ("content", 100, 0), ("passed filters", 100, 0), ("unique", 100, 0), ("kept", 0, 100)],
        ),
    ],
)
def test_funnel_steps_take_out_each_outcome_in_stage_order(outcomes, steps):
    assert SourceFunnel("s", 100, outcomes).steps() == steps


# --- the drawings, read back from matplotlib's objects ----------------------------------------------


def bars(axes) -> list[float]:
    return [patch.get_width() for patch in axes.patches]


def texts(axes) -> list[str]:
    return [text.get_text() for text in axes.texts]


def test_licence_chart_draws_document_and_token_shares(data):
    by_documents, by_tokens = draw_licences(data).axes
    (_, _, pd_tokens), (_, _, sa_tokens) = data.licences[1], data.licences[0]
    assert [label.get_text() for label in by_documents.get_yticklabels()] == ["CC-BY-SA-3.0", "LicenseRef-PublicDomain"]
    assert bars(by_documents) == pytest.approx([100 * 94 / 95, 100 * 1 / 95])
    assert texts(by_documents) == ["98.9% (94)", "1.1% (1)"]
    assert bars(by_tokens) == pytest.approx([100 * sa_tokens / data.tokens, 100 * pd_tokens / data.tokens])
    assert texts(by_tokens) == [f"67.3% ({sa_tokens:,})", f"32.7% ({pd_tokens:,})"]
    assert by_tokens.get_title(loc="left") == "Share of tokens"
    assert by_tokens.figure.get_suptitle() == "Licences of the 95 documents (tokens: whitespace-separated words)"
    assert by_documents.yaxis_inverted()  # the largest share on top


def test_sources_chart_draws_documents_and_tokens(data):
    documents, tokens = draw_sources(data).axes
    assert [label.get_text() for label in documents.get_yticklabels()] == ["enwiki", "gutenberg"]
    assert bars(documents) == [94, 1]
    assert bars(tokens) == [t for _, _, t in data.sources]
    assert texts(tokens) == [f"{t:,}" for _, _, t in data.sources]
    assert tokens.figure.get_suptitle() == "Documents and tokens (whitespace-separated words) per source (2 sources)"


def test_outcome_chart_draws_one_funnel_per_source(data):
    enwiki, gutenberg = draw_outcomes(data).axes
    assert enwiki.get_title(loc="left") == "enwiki\n94 of 206 records kept (45.6%)"
    assert gutenberg.get_title(loc="left") == "gutenberg\n1 of 15 records kept (6.7%)"
    assert bars(enwiki) == [206, 106, 94, 94, 94]
    assert texts(enwiki) == ["206", "106", "−100 skipped/quarantined", "94", "−12 filtered", "94", "94"]
    assert bars(gutenberg) == [15, 15, 1, 1, 1]
    # Centred: each bar starts where it leaves equal room on both sides of the widest.
    assert [patch.get_x() for patch in gutenberg.patches] == [0, 0, 7, 7, 7]


def test_a_large_funnel_prints_three_significant_digits():
    outcomes = {"kept": 2_800_678, "filtered": 2_100_508, "duplicate": 1_400_339, "quarantined": 3, "removed": 17,
                "skipped": 2_100_489}  # fmt: skip
    funnel = SourceFunnel("crawl", sum(outcomes.values()), outcomes)
    (axes,) = draw_outcomes(ChartData([], [funnel], [], 0, 0)).axes
    assert axes.get_title(loc="left") == "crawl\n2.8M of 8.4M records kept (33.3%)"
    assert texts(axes) == [
        "8.4M", "6.3M", "−2.1M skipped/quarantined", "4.2M", "−2.1M filtered", "2.8M", "−1.4M duplicate",
        "2.8M", "−17 removed",
    ]  # fmt: skip


def test_many_licences_end_in_one_bar_for_the_rest_and_long_names_are_clipped():
    stats = CorpusStatistics(documents=235, tokens=2350)
    licences = {f"LicenseRef-L{i:02d}": (20 - i, 10 * (20 - i)) for i in range(20)}
    licences["LicenseRef-" + "x" * 60] = (25, 250)
    stats.by_license = licences
    data = chart_data(stats)
    assert [label for label, _, _ in data.licences][:2] == ["LicenseRef-" + "x" * 60, "LicenseRef-L00"]
    by_documents, _ = draw_licences(data).axes
    labels = [label.get_text() for label in by_documents.get_yticklabels()]
    assert len(labels) == MAX_BARS
    assert labels[0] == "LicenseRef-" + "x" * 28 + "…"
    assert labels[-1] == "7 other licences"
    assert bars(by_documents)[-1] == pytest.approx(100 * sum(range(1, 8)) / 235)


def test_an_empty_corpus_still_gets_its_charts(tmp_path):
    written = write_charts(tmp_path, chart_data(CorpusStatistics()))
    assert [path.name for path in written] == list(CHARTS)
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in written)


# --- the files ----------------------------------------------------------------------------------


def png_chunks(data: bytes) -> list[tuple[bytes, bytes]]:
    assert data[:8] == b"\x89PNG\r\n\x1a\n"
    chunks, offset = [], 8
    while offset < len(data):
        (length,) = struct.unpack(">I", data[offset : offset + 4])
        kind, body = data[offset + 4 : offset + 8], data[offset + 8 : offset + 8 + length]
        (crc,) = struct.unpack(">I", data[offset + 8 + length : offset + 12 + length])
        assert crc == zlib.crc32(kind + body)
        chunks.append((kind, body))
        offset += 12 + length
    return chunks


def test_charts_are_byte_identical_on_rewrite_without_metadata_or_temporaries(home, data):
    first = {path.name: path.read_bytes() for path in write_charts(release_folder(home), data)}
    second = {path.name: path.read_bytes() for path in write_charts(release_folder(home), data)}
    assert list(first) == list(CHARTS) and first == second
    for name, content in first.items():
        kinds = [kind for kind, _ in png_chunks(content)]
        assert b"tEXt" not in kinds and b"iTXt" not in kinds and b"tIME" not in kinds, name
        width, height = struct.unpack(">II", png_chunks(content)[0][1][:8])
        assert width == 1000 and 150 < height < 2000, (name, width, height)
    assert sorted(p.name for p in (release_folder(home) / "charts").iterdir()) == list(CHARTS)


def test_a_users_matplotlibrc_does_not_change_the_bytes(home, data, tmp_path):
    """Another process, with a matplotlibrc that changes fonts, colours, dpi and the backend."""
    config = tmp_path / "mplconfig"
    config.mkdir()
    (config / "matplotlibrc").write_text(
        "backend: svg\nfont.size: 23\nfont.family: serif\naxes.facecolor: red\nsavefig.dpi: 300\n"
        "figure.figsize: 3, 3\naxes.spines.top: True\n"
    )
    expected = {path.name: path.read_bytes() for path in write_charts(release_folder(home), data)}
    other = DataHome(tmp_path / "other")
    shutil.copytree(home.corpus_dir, other.corpus_dir, symlinks=True)
    shutil.rmtree(release_folder(other) / "charts")
    copy_lineage(home, other)
    script = (
        "import sys\n"
        "from pathlib import Path\n"
        "from opencorpus_dagster.state.home import DataHome\n"
        "from opencorpus_dagster.lineage.store import LineageStore\n"
        "from opencorpus_dagster.publish.card import corpus_statistics\n"
        "from opencorpus_dagster.publish.charts import chart_data, write_charts\n"
        "import matplotlib; assert matplotlib.rcParams['font.size'] == 23\n"
        "home = DataHome(Path(sys.argv[1]))\n"
        "stats = corpus_statistics(home, LineageStore.at(home.lineage_db, read_only=True))\n"
        "write_charts(Path(sys.argv[2]), chart_data(stats))\n"
    )
    env = {**os.environ, "MPLCONFIGDIR": str(config)}
    command = [sys.executable, "-c", script, str(other.root), str(release_folder(other))]
    result = subprocess.run(command, capture_output=True, text=True, env=env, timeout=300)
    assert result.returncode == 0, result.stderr
    assert {name: (release_folder(other) / "charts" / name).read_bytes() for name in CHARTS} == expected


def test_charts_are_published_to_an_fsspec_home(data):
    folder = UPath("memory://card-charts/home/corpus/releases/r000001")
    written = write_charts(folder, data)
    assert [str(path) for path in written] == [str(folder / "charts" / name) for name in CHARTS]
    assert all(path.read_bytes().startswith(b"\x89PNG") for path in written)
    assert sorted(path.name for path in (folder / "charts").iterdir()) == list(CHARTS)
