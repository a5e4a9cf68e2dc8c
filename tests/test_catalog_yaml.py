"""Hostile catalog YAML: alias bombs, anchors, oversized files are refused, naming the file."""

from __future__ import annotations

import itertools
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
from cli_runner import OPENCORPUS, REPO

from opencorpus_dagster.catalog import MAX_CATALOG_FILE_BYTES, load_catalog

VALID = (REPO / "assets" / "enwiki.yaml").read_text(encoding="utf-8")


def billion_laughs() -> str:
    """The classic YAML alias bomb: 9 levels of 9 aliases, ~9**9 (387 million) strings when expanded."""
    lols = ", ".join(['"lol"'] * 9)
    lines = [f"a: &a [{lols}]"]
    for previous, name in itertools.pairwise("abcdefghi"):
        aliases = ", ".join([f"*{previous}"] * 9)
        lines.append(f"{name}: &{name} [{aliases}]")
    return "\n".join(lines) + "\n"


MERGE_KEY = """\
base: &base
  enabled: true
name: merged
kind: mediawiki
<<: *base
"""

OVERSIZED = "name: big\nkind: mediawiki\ndescription: " + "x" * MAX_CATALOG_FILE_BYTES + "\n"


@pytest.mark.parametrize(
    ("file_name", "content", "expected_error"),
    [
        ("bomb.yaml", billion_laughs(), "line 2: YAML aliases (*a) are not allowed in catalog files"),
        ("merged.yaml", MERGE_KEY, "line 5: YAML aliases (*base) are not allowed in catalog files"),
        ("anchored.yaml", "name: &n anchored\nkind: mediawiki\n", "line 1: YAML anchors (&n) are not allowed in catalog files"),
        (
            "big.yaml",
            OVERSIZED,
            f"file is {len(OVERSIZED)} bytes, over the {MAX_CATALOG_FILE_BYTES}-byte limit for a catalog file",
        ),
        ("deep.yaml", "[" * 100_000, "not valid YAML"),
        ("enwiki.yaml", VALID, None),
    ],
)
def test_hostile_catalog_file_is_refused_quickly_and_the_rest_loads(tmp_path, file_name, content, expected_error):
    (tmp_path / file_name).write_text(content, encoding="utf-8")
    if file_name != "enwiki.yaml":
        (tmp_path / "enwiki.yaml").write_text(VALID, encoding="utf-8")

    started = time.monotonic()
    catalog = load_catalog(tmp_path)
    elapsed = time.monotonic() - started

    assert elapsed < 1.0, f"loading took {elapsed:.2f}s"
    assert [s.name for s in catalog.sources] == ["enwiki"]
    if expected_error is None:
        assert catalog.errors == ()
    else:
        assert len(catalog.errors) == 1
        assert catalog.errors[0].path == tmp_path / file_name
        assert expected_error in catalog.errors[0].message
        assert str(catalog.errors[0]).startswith(f"{tmp_path / file_name}: ")


def test_validate_command_refuses_the_bomb_and_returns(tmp_path):
    catalog = tmp_path / "catalog"
    catalog.mkdir()
    (catalog / "bomb.yaml").write_text(billion_laughs(), encoding="utf-8")
    (catalog / "enwiki.yaml").write_text(VALID, encoding="utf-8")

    started = time.monotonic()
    result = run_opencorpus_validate(catalog, tmp_path / "home")

    assert time.monotonic() - started < 60
    assert result.returncode == 1
    assert f"bad {catalog / 'bomb.yaml'}: line 2: YAML aliases (*a) are not allowed in catalog files" in result.stderr
    assert "ok  enwiki.yaml: enwiki" in result.stdout


def run_opencorpus_validate(catalog: Path, home: Path) -> subprocess.CompletedProcess:
    """`opencorpus validate --catalog CATALOG` (cli_runner.run_opencorpus adds --home, which validate has not)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_"))}
    env["DAGSTER_HOME"] = str(home / "dagster")
    return subprocess.run(
        [OPENCORPUS, "validate", "--catalog", str(catalog)],
        check=False, capture_output=True, text=True, env=env, cwd=REPO, timeout=60,
    )


def test_every_connector_module_registers_the_kind_of_its_name():
    """The catalog imports a kind's connector module by the kind's name (connectors/base.py)."""
    import pkgutil

    import opencorpus_dagster.connectors as package
    from opencorpus_dagster.connectors.base import connector_class, known_kinds

    modules = sorted(m.name for m in pkgutil.iter_modules(package.__path__) if m.name != "base")
    assert modules == ["gutenberg", "mediawiki", "ocr", "stackexchange", "textfiles", "warc"]
    assert [connector_class(name).kind for name in modules] == modules
    assert known_kinds() == modules
    with pytest.raises(KeyError, match="unknown connector kind 'base'; known kinds: gutenberg, mediawiki"):
        connector_class("base")


def test_loading_a_catalog_imports_only_the_connectors_it_names(tmp_path):
    """A build loads its catalog first: a catalog of local text files does not pay for the web,
    dump and OCR readers' libraries (about a second of every build's start-up before)."""
    (tmp_path / "notes.yaml").write_text(
        "name: notes\nkind: textfiles\noptions: {root: /srv/notes, partitions: {all: [a.txt]}}\n"
        "license: {spdx: CC0-1.0, evidence: the folder's README}\n",
        encoding="utf-8",
    )
    heavy = ["trafilatura", "wordfreq", "mwparserfromhell", "warcio", "pandas", "great_expectations", "dagster"]
    script = (
        "import sys\n"
        "from opencorpus_dagster.catalog import load_catalog\n"
        f"catalog = load_catalog({str(tmp_path)!r})\n"
        "print([s.name for s in catalog.sources], list(catalog.errors))\n"
        f"print(sorted(m for m in {heavy!r} if m in sys.modules))\n"
        "print(sorted(m.rsplit('.', 1)[1] for m in sys.modules if m.startswith('opencorpus_dagster.connectors.')))\n"
    )
    result = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, cwd=REPO, check=False)
    assert result.returncode == 0, result.stderr
    assert result.stdout.splitlines() == ["['notes'] []", "[]", "['base', 'textfiles']"]
