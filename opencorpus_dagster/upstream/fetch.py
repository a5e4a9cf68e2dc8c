"""Fetch upstream files to local disk: mirrors, retries with backoff, sha256 of every file.

Every upstream URL can be redirected to a mirror, which is how tests and air-gapped users run
the same catalog:

- a directory laid out as `<host>/<path>` (`/srv/mirror/www.gutenberg.org/cache/epub/...`);
- a base URL serving that same layout (`http://127.0.0.1:8000/` + `<host>/<path>`);
- a per-host base URL, `HOST=BASE` (`dumps.wikimedia.org=https://mirror.example/wikimedia`),
  which replaces scheme and host and keeps the path.

A URL whose path ends in `/` names a directory index (an HTML listing such as
`https://dumps.wikimedia.org/hywiki/`); in a mirror directory and in the download cache it is
the file `index.html` inside that directory, the layout `wget --mirror` writes. A mirror base
URL is asked for the directory itself, and its server answers with the index.

Several mirrors may be given; the first that has the file wins, and upstream is never asked
when a mirror is set (an offline run must not leak to the network).

Every URL goes through the URL policy (`url_policy`) before anything is read: http(s) only, no
credentials, dot segments resolved and no climb above the host's root. The mirror file and the
download-cache file of a URL are derived from its normalised form and checked to stay under
their folder (the cache after resolving symlinks: it is the folder this program writes into).
Local files are read only for a caller that names the folder they must be in (`local_root`).
"""

from __future__ import annotations

import hashlib
import logging
import os
import time
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from email.utils import parsedate_to_datetime
from glob import escape as glob_escape
from pathlib import Path
from urllib.parse import unquote, urlsplit

import httpx

from opencorpus_dagster.state.atomic import process_alive
from opencorpus_dagster.upstream.url_policy import UrlRefused, is_local, local_path_under, normalise_url, safe_child

log = logging.getLogger(__name__)

MIRROR_ENV = "OPENCORPUS_MIRROR"
_CHUNK = 1 << 20


class FetchError(Exception):
    """The file could not be fetched; the message names the URL and every place tried."""


class NotFound(FetchError):
    """No mirror and no upstream has the file (HTTP 404 / missing path)."""


@dataclass(frozen=True)
class FetchedFile:
    url: str  # the upstream URL as the catalog names it
    path: Path  # where the bytes are on local disk
    sha256: str
    size: int
    fetched_from: str  # the mirror path / URL or upstream URL actually read
    retrieved_at: str  # ISO-8601 UTC


@dataclass(frozen=True)
class Mirror:
    """One mirror: a directory or base URL with `<host>/<path>` layout, or a host-specific base."""

    base: str
    host: str | None = None  # set: replaces this host only, path kept as is

    @classmethod
    def parse(cls, spec: str) -> Mirror:
        spec = spec.strip()
        host, sep, base = spec.partition("=")
        if sep and "/" not in host and ":" not in host:
            return cls(base=base.rstrip("/"), host=host)
        return cls(base=spec.rstrip("/"))

    @property
    def is_url(self) -> bool:
        return urlsplit(self.base).scheme in ("http", "https")

    def locate(self, url: str) -> str | None:
        """Where this mirror keeps `url` (a path or URL), or None if it does not cover it.

        Raises `UrlRefused` for a URL the policy refuses; a directory mirror's file is checked to
        stay inside the mirror's folder (lexically: the links a mirror's keeper put in it, as
        the fixture mirror has, are followed).
        """
        url = normalise_url(url)
        parts = urlsplit(url)
        if self.host is not None:
            if parts.hostname != self.host:
                return None
            relative = parts.path.lstrip("/")
        else:
            relative = f"{parts.hostname}/{parts.path.lstrip('/')}"
        if self.is_url:
            return f"{self.base}/{relative}" + (f"?{parts.query}" if parts.query else "")
        segments = [unquote(segment) for segment in _directory_index_file(relative).split("/")]
        if parts.query:  # `wget --mirror` keeps the query in the file name; a "/" in it is no folder
            segments[-1] += "?" + parts.query.replace("/", "%2F")
        return str(safe_child(Path(self.base), segments, resolve=False))


def _directory_index_file(relative: str) -> str:
    """The local file that stands for a relative URL path: itself, or `index.html` for a directory.

    A directory index cannot be stored under the directory's own name: the files it lists
    (`hywiki/20230501/...`) live in that directory.
    """
    return relative + "index.html" if relative == "" or relative.endswith("/") else relative


def mirrors_from(specs: Sequence[str] | str | None) -> list[Mirror]:
    """Mirrors from CLI values or the `OPENCORPUS_MIRROR` variable (comma separated)."""
    if specs is None:
        specs = os.environ.get(MIRROR_ENV, "")
    if isinstance(specs, str):
        specs = [s for s in specs.split(",") if s.strip()]
    return [Mirror.parse(s) for s in specs]


class Fetcher:
    """Streams files to `cache_dir/<host>/<path>` (atomic rename) and hashes them.

    Local inputs (file:// URLs, plain paths, mirror directories) are read in place, not copied.
    """

    def __init__(
        self,
        cache_dir: Path,
        mirrors: Sequence[Mirror] = (),
        *,
        attempts: int = 4,
        backoff_seconds: float = 0.5,
        timeout_seconds: float = 60.0,
        reuse_cached: bool = True,
    ):
        self.cache_dir = Path(cache_dir)
        self.mirrors = list(mirrors)
        self.attempts = attempts
        self.backoff_seconds = backoff_seconds
        self.timeout = httpx.Timeout(timeout_seconds, connect=min(timeout_seconds, 15.0))
        self.reuse_cached = reuse_cached

    # -- public --------------------------------------------------------------------------

    def fetch(self, url: str, refresh: bool = False, *, local_root: Path | None = None) -> FetchedFile:
        """Make `url` available on local disk; raises `NotFound` / `FetchError` naming the URL,
        `UrlRefused` when the URL policy refuses it.

        A downloaded file is reused from the cache unless `refresh` (listings that grow upstream).
        A local file (`file:` URL or path) is read only when `local_root` is given and the file,
        symlinks resolved, is inside it.
        """
        if is_local(url):
            if local_root is None:
                raise UrlRefused("url.scheme", url, "a local file; only http and https URLs are read here")
            return self._local(url, local_path_under(url, local_root))
        url = normalise_url(url)
        if self.mirrors:
            return self._from_mirrors(url, refresh)
        return self._download(url, url, refresh)

    def fetch_range(self, url: str, offset: int, length: int) -> bytes:
        """The bytes `[offset, offset+length)` of `url` (http or https), from a mirror if one is set."""
        for location in self._candidates(url):
            if urlsplit(location).scheme in ("http", "https"):
                headers = {"Range": f"bytes={offset}-{offset + length - 1}"}
                with self._client() as client:
                    response = self._request_with_retries(client, location, headers=headers)
                    if response is None:
                        continue
                    data = response.read()
                    if response.status_code == 200:  # server ignored the range
                        data = data[offset : offset + length]
                    return data
            path = Path(location)
            if path.is_file():
                with open(path, "rb") as handle:
                    handle.seek(offset)
                    return handle.read(length)
        raise NotFound(f"{url}: not found (tried {', '.join(self._candidates(url))})")

    # -- internals -----------------------------------------------------------------------

    def _client(self) -> httpx.Client:
        """An HTTP client that follows redirects only to URLs the URL policy accepts (a server
        must not send the fetcher to `file:`, `ftp:` or a URL with credentials)."""
        return httpx.Client(
            timeout=self.timeout,
            follow_redirects=True,
            max_redirects=10,
            event_hooks={"response": [_refuse_bad_redirect]},
        )

    def _candidates(self, url: str) -> list[str]:
        url = normalise_url(url)
        located = [m.locate(url) for m in self.mirrors]
        return [loc for loc in located if loc] if self.mirrors else [url]

    def _local(self, url: str, path: Path) -> FetchedFile:
        if not path.is_file():
            raise NotFound(f"{url}: no such file {path}")
        digest, size = _hash_file(path)
        return FetchedFile(url, path, digest, size, str(path), _now())

    def _from_mirrors(self, url: str, refresh: bool = False) -> FetchedFile:
        tried = []
        for mirror in self.mirrors:
            location = mirror.locate(url)
            if location is None:
                continue
            tried.append(location)
            if mirror.is_url:
                try:
                    return self._download(url, location, refresh)
                except NotFound:
                    continue
            elif Path(location).is_file():
                fetched = self._local(url, Path(location))
                return FetchedFile(url, fetched.path, fetched.sha256, fetched.size, location, fetched.retrieved_at)
        if not tried:
            raise NotFound(f"{url}: no configured mirror covers this host")
        raise NotFound(f"{url}: not in any mirror (tried {', '.join(tried)})")

    def _cache_path(self, url: str) -> Path:
        """`cache_dir/<host>/<path>` of a normalised URL, checked to stay inside `cache_dir`
        with symlinks resolved. A name too long for the file system is replaced by its hash."""
        parts = urlsplit(url)
        segments = [unquote(segment) for segment in _directory_index_file(parts.path.lstrip("/")).split("/")]
        if parts.query:
            segments[-1] += "_" + hashlib.sha256(parts.query.encode()).hexdigest()[:12]
        segments = [_fitting_name(segment) for segment in segments if segment]
        return safe_child(self.cache_dir, [parts.hostname or "unknown-host", *segments], resolve=True)

    def _download(self, url: str, location: str, refresh: bool = False) -> FetchedFile:
        """Stream `location` into the cache as `url`'s copy, unless the cached copy may be used.

        Without `refresh` a cached copy is used as it is. With `refresh` it is revalidated: the
        request carries the ETag / Last-Modified the server sent with it, and a `304 Not
        Modified` answer keeps the cached bytes (a 100 MB feed that has not changed is not
        downloaded again at every sensor tick).
        """
        target = self._cache_path(url)
        sidecar = target.with_name(target.name + ".sha256")
        cached = _CachedCopy.read(sidecar) if self.reuse_cached and target.is_file() else None
        if cached is not None and not refresh:
            return FetchedFile(url, target, cached.sha256, target.stat().st_size, cached.source, cached.retrieved_at)
        validators = cached.conditional_headers() if cached is not None and cached.source == location else {}
        target.parent.mkdir(parents=True, exist_ok=True)
        _remove_stale_partials(target)
        partial = target.with_name(target.name + f".part-{os.getpid()}")
        with self._client() as client:
            last_error: Exception | None = None
            for attempt in range(self.attempts):
                try:
                    digest, size, headers = self._stream_once(client, location, partial, validators)
                    break
                except _NotModified:
                    partial.unlink(missing_ok=True)
                    log.info("fetch %s: not modified since %s, cached copy kept", location, cached.retrieved_at)
                    return FetchedFile(
                        url, target, cached.sha256, target.stat().st_size, cached.source, cached.retrieved_at
                    )
                except NotFound:
                    partial.unlink(missing_ok=True)
                    raise
                except (httpx.TransportError, _RetryableStatus) as error:
                    partial.unlink(missing_ok=True)
                    last_error = error
                    log.warning("fetch %s failed (attempt %d/%d): %s", location, attempt + 1, self.attempts, error)
                    time.sleep(self.backoff_seconds * 2**attempt)
            else:
                raise FetchError(f"{url}: failed after {self.attempts} attempts from {location}: {last_error}")
        os.replace(partial, target)
        copy = _CachedCopy(digest, _now(), location, headers.get("etag", ""), _strong_last_modified(headers))
        copy.write(sidecar)
        return FetchedFile(url, target, digest, size, location, copy.retrieved_at)

    def _stream_once(
        self, client: httpx.Client, location: str, partial: Path, validators: dict[str, str]
    ) -> tuple[str, int, httpx.Headers]:
        hasher = hashlib.sha256()
        size = 0
        with client.stream("GET", location, headers=validators) as response:
            if response.status_code == 304 and validators:
                raise _NotModified
            _raise_for_status(location, response)
            with open(partial, "wb") as out:
                for chunk in response.iter_bytes(_CHUNK):
                    hasher.update(chunk)
                    size += len(chunk)
                    out.write(chunk)
        return hasher.hexdigest(), size, response.headers

    def _request_with_retries(self, client: httpx.Client, location: str, headers: dict) -> httpx.Response | None:
        for attempt in range(self.attempts):
            try:
                response = client.get(location, headers=headers)
                _raise_for_status(location, response)
                return response
            except NotFound:
                return None
            except (httpx.TransportError, _RetryableStatus) as error:
                log.warning("fetch %s failed (attempt %d/%d): %s", location, attempt + 1, self.attempts, error)
                time.sleep(self.backoff_seconds * 2**attempt)
        raise FetchError(f"{location}: failed after {self.attempts} attempts")


class RecordingFetcher:
    """Wraps a Fetcher and remembers every file fetched (for the lineage store, for discovery)."""

    def __init__(self, fetcher: Fetcher):
        self._fetcher = fetcher
        self.fetched: list[FetchedFile] = []

    def __getattr__(self, name: str):
        return getattr(self._fetcher, name)  # cache_dir, mirrors, ...: as the wrapped fetcher

    def fetch(self, url: str, refresh: bool = False, *, local_root: Path | None = None) -> FetchedFile:
        fetched = self._fetcher.fetch(url, refresh, local_root=local_root)
        self.fetched.append(fetched)
        return fetched

    def fetch_range(self, url: str, offset: int, length: int) -> bytes:
        return self._fetcher.fetch_range(url, offset, length)

    def retrieved_at(self, upstream_uri: str) -> str | None:
        base = upstream_uri.split("#", 1)[0]
        for fetched in reversed(self.fetched):
            if fetched.url == base:
                return fetched.retrieved_at
        return self.fetched[-1].retrieved_at if self.fetched else None


class _RetryableStatus(Exception):
    pass


class _NotModified(Exception):
    """The server answered 304 to a conditional request: the cached copy is current."""


@dataclass(frozen=True)
class _CachedCopy:
    """The sidecar of a cached download (`<file>.sha256`): tab-separated sha256, retrieval time,
    where it was read from, and the validators the server sent (ETag, Last-Modified)."""

    sha256: str
    retrieved_at: str
    source: str
    etag: str = ""
    last_modified: str = ""

    @classmethod
    def read(cls, sidecar: Path) -> _CachedCopy | None:
        if not sidecar.is_file():
            return None
        fields = sidecar.read_text().rstrip("\n").split("\t")
        if len(fields) < 3:
            return None  # damaged: download again
        return cls(*fields[:5])

    def write(self, sidecar: Path) -> None:
        sidecar.write_text(f"{self.sha256}\t{self.retrieved_at}\t{self.source}\t{self.etag}\t{self.last_modified}")

    def conditional_headers(self) -> dict[str, str]:
        headers = {}
        if self.etag:
            headers["If-None-Match"] = self.etag
        if self.last_modified:
            headers["If-Modified-Since"] = self.last_modified
        return headers


def _refuse_bad_redirect(response: httpx.Response) -> None:
    if response.has_redirect_location:
        target = str(response.url.join(response.headers["location"]))
        try:
            normalise_url(target)
        except UrlRefused as refusal:
            raise refusal.at(f"redirect from {response.url}") from None


def _raise_for_status(location: str, response: httpx.Response) -> None:
    status = response.status_code
    if status == 404 or status == 410:
        raise NotFound(f"{location}: HTTP {status}")
    if status == 429 or status >= 500:
        raise _RetryableStatus(f"HTTP {status}")
    if status >= 400:
        raise FetchError(f"{location}: HTTP {status}")


def _strong_last_modified(headers: httpx.Headers) -> str:
    """The Last-Modified header, when it may validate a later request; else "".

    Last-Modified has one-second resolution: a file changed again within the second the copy
    was served would keep its date and be answered 304. So, as RFC 9110 section 8.8.2.2 says,
    the date counts only when it is at least one second before the response's Date.
    """
    try:
        modified = parsedate_to_datetime(headers.get("last-modified", ""))
        served = parsedate_to_datetime(headers.get("date", ""))
    except (TypeError, ValueError):
        return ""
    return headers["last-modified"] if (served - modified).total_seconds() >= 1 else ""


_MAX_NAME_BYTES = 200  # file systems allow 255; room is left for `.sha256` and `.part-<pid>`


def _fitting_name(segment: str) -> str:
    """A path segment as a file name: as it is, or its sha256 when too long for the file system."""
    if len(segment.encode("utf-8", "surrogateescape")) <= _MAX_NAME_BYTES:
        return segment
    return "long-name-" + hashlib.sha256(segment.encode("utf-8", "surrogateescape")).hexdigest()


def _remove_stale_partials(target: Path) -> None:
    """Delete `<target>.part-<pid>` files of downloads whose process is gone (killed, crashed);
    a live process's partial file is left to it. Only the target's own folder is looked at (a
    download must not walk the cache)."""
    for partial in target.parent.glob(f"{glob_escape(target.name)}.part-*"):
        pid = partial.name.rsplit("-", 1)[-1]
        if pid.isdigit() and not process_alive(int(pid)):
            partial.unlink(missing_ok=True)


def _hash_file(path: Path) -> tuple[str, int]:
    hasher = hashlib.sha256()
    size = 0
    with open(path, "rb") as handle:
        while chunk := handle.read(_CHUNK):
            hasher.update(chunk)
            size += len(chunk)
    return hasher.hexdigest(), size


def _now() -> str:
    return datetime.now(UTC).replace(microsecond=0).isoformat()
