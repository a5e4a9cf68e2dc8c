"""Hostile catalog YAML: alias bombs, anchors, oversized files are refused, naming the file."""

from __future__ import annotations

import itertools
import os
import subprocess
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
