"""Shared test fixtures: the real data in ../shared/fixtures.

Outside CI a missing fixtures folder skips the tests that need it, with the reason; in CI
(`CI=true`) it is a failure, because a green run that tested nothing proves nothing.
"""

from __future__ import annotations

import io
import os
from http.server import SimpleHTTPRequestHandler
from pathlib import Path

import pytest

REPO_ROOT = Path(__file__).resolve().parent.parent
FIXTURES = (REPO_ROOT / ".." / "shared" / "fixtures").resolve()


@pytest.fixture(scope="session", autouse=True)
def _user_caches_of_the_session(tmp_path_factory):
    """The catalog's parsed-file cache and the language model's cache in folders of the test
    session (and of the CLI processes it starts), not the user's ~/.cache."""
    for variable, name in (("OPENCORPUS_CATALOG_CACHE", "catalog-cache"), ("OPENCORPUS_MODEL_CACHE", "model-cache")):
        if variable not in os.environ:
            folder = tmp_path_factory.mktemp(name)
            folder.chmod(0o700)
            os.environ[variable] = str(folder)


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


class _MirrorHandler(SimpleHTTPRequestHandler):
    """Static files with single-range `Range: bytes=a-b` support (as Common Crawl's server has)."""

    def log_message(self, *args):  # keep test output quiet
        pass

    def send_head(self):
        spec = self.headers.get("Range")
        if not spec or not spec.startswith("bytes="):
            return super().send_head()
        path = self.translate_path(self.path)
        try:
            handle = open(path, "rb")
        except OSError:
            self.send_error(404)
            return None
        size = os.fstat(handle.fileno()).st_size
        first, _, last = spec[len("bytes="):].partition("-")
        start, end = int(first), min(int(last) if last else size - 1, size - 1)
        handle.seek(start)
        body = handle.read(end - start + 1)
        handle.close()
        self.send_response(206)
        self.send_header("Content-Type", "application/octet-stream")
        self.send_header("Content-Range", f"bytes {start}-{end}/{size}")
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()

        return io.BytesIO(body)


@pytest.fixture(scope="session")
def http_mirror(fixture_mirror):
    """The fixture mirror served over real HTTP on 127.0.0.1; yields its base URL."""
    import functools
    import threading
    from http.server import ThreadingHTTPServer

    server = ThreadingHTTPServer(("127.0.0.1", 0), functools.partial(_MirrorHandler, directory=str(fixture_mirror)))
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()


@pytest.fixture(scope="session")
def built_corpus(tmp_path_factory, fixture_mirror):
    """The default catalog built once by the real `opencorpus build` against the fixture mirror.

    Shared by several test modules: treat it as read-only (copy it to change it). Returns the
    data home and the build summary (`--json`).
    """
    import json

    from cli_runner import build

    home = tmp_path_factory.mktemp("built-corpus")
    return home, json.loads(build(home, fixture_mirror).stdout)


# -- releases: where a test finds what the last build published --------------------------


def _data_home(home):
    from opencorpus_dagster.state.home import DataHome

    return home if isinstance(home, DataHome) else DataHome(Path(home))


def release_folder(home) -> Path:
    """The folder of the current release of `home` (a path or a DataHome)."""
    from opencorpus_dagster.state import releases

    data = _data_home(home)
    current = releases.current_release(data)
    assert current, f"{data.root}: nothing published (no corpus/current.json)"
    return releases.release_dir(data, current)


def current_manifest(home) -> dict:
    """manifest.json of the current release of `home`."""
    import json

    return json.loads((release_folder(home) / "manifest.json").read_text())


def shard_file(home, source: str, partition: str, index: int = 0) -> Path:
    """The file of a group's `index`-th shard in the current release."""
    return release_folder(home) / shard_path(home, source, partition, index)


def shard_files(home) -> list[Path]:
    """Every shard file of the current release, in manifest order."""
    return [release_folder(home) / s["path"] for s in current_manifest(home)["shards"]]


def shard_path(home, source: str, partition: str, index: int = 0) -> str:
    """The manifest path (`shards/<source>/<partition>/part-NNNNN-<sha>.parquet`) of a group's
    `index`-th shard in the current release: file names carry their content's digest."""
    prefix = f"shards/{source}/{partition}/part-{index:05d}-"
    (path,) = [s["path"] for s in current_manifest(home)["shards"] if s["path"].startswith(prefix)]
    return path


RIGHTS_SETTINGS = """\
summary:
  provider: Example Lab (contact rights@example.org)
  provider_contact: rights@example.org
  models: [example-lm-1.0]
  placed_on_market: 2026-09-01
"""


@pytest.fixture(scope="session")
def rights_catalog(tmp_path_factory) -> Path:
    """The fixture catalog with every kind of source the training-content summary splits: the
    default `assets/` (wiki, books) and `tests/catalogs/web` (web captures, forum), plus a
    `_corpus.yaml` naming the provider and model."""
    import shutil

    catalog = tmp_path_factory.mktemp("rights-catalog")
    for path in [*(REPO_ROOT / "assets").glob("*.yaml"), *(REPO_ROOT / "tests" / "catalogs" / "web").glob("*.yaml")]:
        shutil.copy(path, catalog / path.name)
    (catalog / "_corpus.yaml").write_text(RIGHTS_SETTINGS)
    return catalog


@pytest.fixture(scope="session")
def built_rights_corpus(tmp_path_factory, fixture_mirror, rights_catalog):
    """`rights_catalog` built once by the real `opencorpus build` (read-only for the tests);
    returns the data home. Shared by tests/test_training_summary.py and tests/test_lookup.py."""
    from cli_runner import build

    home = tmp_path_factory.mktemp("rights-corpus")
    build(home, fixture_mirror, rights_catalog)
    return home


TAKEN_DOWN_URL = "https://soldaini.net/"


@pytest.fixture(scope="session")
def taken_down_rights_corpus(tmp_path_factory, fixture_mirror, rights_catalog, built_rights_corpus):
    """A copy of `built_rights_corpus` rebuilt after a takedown of TAKEN_DOWN_URL."""
    import shutil

    from cli_runner import build

    from opencorpus_dagster.stages.takedown import add_takedown

    home = tmp_path_factory.mktemp("rights-takedown") / "home"
    shutil.copytree(built_rights_corpus, home, symlinks=True, ignore=shutil.ignore_patterns("dagster"))
    add_takedown(home, "url", TAKEN_DOWN_URL, "publisher request #7", "rights@soldaini.net")
    build(home, fixture_mirror, rights_catalog)
    return home
