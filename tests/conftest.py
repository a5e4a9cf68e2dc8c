"""Shared test fixtures: the real data in ../shared/fixtures.

Outside CI a missing fixtures folder skips the tests that need it, with the reason; in CI
(`CI=true`) it is a failure, because a green run that tested nothing proves nothing.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = (REPO_ROOT / ".." / "shared" / "fixtures").resolve()


def require_fixture(relative: str) -> Path:
    """Path of a fixture file or folder; skips (or fails in CI) when it is not there."""
    path = FIXTURES / relative
    if not path.exists():
        message = f"fixture {path} not found (tests read ../shared/fixtures beside the repository)"
        if os.environ.get("CI", "").lower() == "true":
            pytest.fail(message)
        pytest.skip(message)
    return path


@pytest.fixture(scope="session")
def fixtures_dir() -> Path:
    return require_fixture("")


@pytest.fixture(scope="session")
def fixture_mirror(tmp_path_factory, fixtures_dir) -> Path:
    """../shared/fixtures laid out as an upstream mirror directory (`<host>/<path>` symlinks)."""
    from fixture_mirror import build_fixture_mirror

    return build_fixture_mirror(tmp_path_factory.mktemp("mirror"), fixtures_dir)
