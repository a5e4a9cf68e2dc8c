"""One URL policy for every URL the catalog names or an upstream listing points at.

URLs come from outside: the catalog (a file anyone may send as a pull request) and upstream
listings (`warc.paths`, a Wikimedia index and its `dumpstatus.json`, a feed). Nothing in them may
decide which local file is read or where a file is written. So every such URL is normalised and
checked once, by the same rules, before it is fetched, mapped to a mirror or to the download
cache:

- `url.scheme`: http or https only (local files only for the `textfiles` kind, inside its
  declared root: `local_path_under`);
- `url.userinfo`: no `user:password@` (credentials do not belong in a catalog or a listing, and
  `https://good.example@evil.example/` is a classic way to disguise a host);
- `url.host`: a DNS name or an IP literal;
- `url.climbs_above_root`: dot segments (`.`, `..`, also percent-encoded) are resolved as RFC 3986
  section 5.2.4 says, and a path that climbs above its root (`/` of the host, or the folder of
  the listing it is relative to) is refused;
- `url.encoded_separator`: a path segment that decodes to `/`, `\\` or NUL (it would split into
  other folders once decoded for a file name);
- `url.undeclared_host`: a URL from a listing must be on a host the source declares (by default
  the listing's own host);
- `url.malformed`, `url.too_long`, `url.control_chars`: not a URL.

A refusal is a `UrlRefused` naming the rule, where the URL came from (the listing and line),
and the URL cut to a few hundred characters (a hostile line can be megabytes long).
"""

from __future__ import annotations

import os
import re
from collections.abc import Iterable
from pathlib import Path
from urllib.parse import unquote, urlsplit, urlunsplit

from opencorpus_dagster.upstream.limits import clip

ALLOWED_SCHEMES = ("http", "https")
MAX_URL_CHARS = 8192  # far above any real dump or crawl URL; browsers cap around 2,000 to 64K
_CONTROL = re.compile(r"[\x00-\x20\x7f]")
_LABEL = r"[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?"
_HOST = re.compile(rf"{_LABEL}(?:\.{_LABEL})*\.?")
_IPV6 = re.compile(r"[0-9a-f:.]+(?:%[0-9a-z]+)?")


class UrlRefused(ValueError):
    """A URL the policy refuses; `rule` names the rule (`url.scheme`, ...).

    A ValueError, so a pydantic validator of the catalog can raise it as it is; the fetcher
    raises it too, and whoever handles a failed fetch handles it beside `FetchError`.
    """

    def __init__(self, rule: str, url: str, problem: str, where: str = ""):
        self.rule = rule
        self.url = url
        self.problem = problem
        self.where = where
        prefix = f"{where}: " if where else ""
        super().__init__(f"{prefix}{clip(url)!r} refused ({rule}): {problem}")

    def at(self, where: str) -> UrlRefused:
        """The same refusal, saying where the URL came from (`listing URL, line N`)."""
        return UrlRefused(self.rule, self.url, self.problem, where)


def normalise_url(url: str) -> str:
    """`url` in canonical form (scheme and host lower case, dot segments resolved, no fragment),
    or `UrlRefused` when a rule of the module docstring refuses it.

    A URL that needs no change comes back as the same string.
    """
    if len(url) > MAX_URL_CHARS:
        raise UrlRefused("url.too_long", url, f"longer than {MAX_URL_CHARS:,} characters")
    if _CONTROL.search(url):
        raise UrlRefused("url.control_chars", url, "contains whitespace or control characters")
    try:
        parts = urlsplit(url)
        port = parts.port
    except ValueError as error:
        raise UrlRefused("url.malformed", url, str(error)) from None
    scheme = parts.scheme.lower()
    if scheme not in ALLOWED_SCHEMES:
        shown = f"scheme {parts.scheme!r}" if parts.scheme else "no scheme"
        raise UrlRefused("url.scheme", url, f"{shown}; only {' and '.join(ALLOWED_SCHEMES)} URLs are read")
    if "@" in parts.netloc:
        raise UrlRefused("url.userinfo", url, "user name or password in the URL")
    host = _checked_host(url, parts.hostname or "")
    netloc = (f"[{host}]" if ":" in host else host) + (f":{port}" if port is not None else "")
    path = _resolve_dot_segments(url, parts.path)
    normalised = urlunsplit((scheme, netloc, path, parts.query, ""))
    return url if normalised == url.split("#", 1)[0] and not parts.fragment else normalised


def normalise_template(template: str, placeholder: str = "{id}") -> str:
    """`normalise_url` for a URL template such as `https://host/{id}/pg{id}.txt`."""
    stand_in = "0placeholder0"
    return normalise_url(template.replace(placeholder, stand_in)).replace(stand_in, placeholder)


def resolve_listed(line: str, base: str) -> str:
    """A listing's line as a URL: absolute as it is, else relative to `base` (a folder URL), and
    refused when it climbs above `base`. Both normalised; raises `UrlRefused`."""
    if urlsplit(line).scheme:
        return normalise_url(line)
    base = normalise_url(base if base.endswith("/") else base + "/")
    return require_under(normalise_url(base + line.lstrip("/")), base)


def require_under(url: str, root: str) -> str:
    """`url` (normalised) when it is `root` or inside it (same scheme and host, path below);
    else `UrlRefused("url.climbs_above_root")`."""
    url_parts, root_parts = urlsplit(url), urlsplit(root)
    folder = root_parts.path if root_parts.path.endswith("/") else root_parts.path.rsplit("/", 1)[0] + "/"
    same_site = (url_parts.scheme, url_parts.netloc) == (root_parts.scheme, root_parts.netloc)
    if not same_site or not (url_parts.path + "/").startswith(folder):
        raise UrlRefused("url.climbs_above_root", url, f"outside {clip(root)}")
    return url


def require_host(url: str, hosts: Iterable[str]) -> str:
    """`url` when its host is one of `hosts` (lower case); else `UrlRefused("url.undeclared_host")`."""
    allowed = sorted({host.lower() for host in hosts})
    host = host_of(url)
    if host not in allowed:
        declared = ", ".join(allowed) or "none"
        raise UrlRefused("url.undeclared_host", url, f"host {host!r} is not declared by the source ({declared})")
    return url


def host_of(url: str) -> str:
    return (urlsplit(url).hostname or "").lower()


def is_local(url: str) -> bool:
    """True for a `file:` URL or a plain path (no scheme; a Windows drive letter counts as none)."""
    scheme = urlsplit(url).scheme
    return scheme == "file" or scheme == "" or (len(scheme) == 1 and scheme.isalpha())


def local_path_text(url: str) -> str:
    """The path a `file:` URL or a plain path names, as text (not resolved, not checked)."""
    return unquote(urlsplit(url).path) if url.startswith("file:") else url


def local_path_under(url: str, root: Path) -> Path:
    """The local file a `file:` URL or path names, resolved (symlinks included) and required to
    be inside `root` (itself resolved); raises `UrlRefused("url.outside_root")` otherwise. A
    relative path is taken relative to `root`."""
    parts = urlsplit(url)
    raw = local_path_text(url)
    if parts.scheme == "file" and parts.netloc not in ("", "localhost"):
        raise UrlRefused("url.outside_root", url, f"file URL on host {parts.netloc!r}; only local files are read")
    if "\x00" in raw:
        raise UrlRefused("url.control_chars", url, "NUL in a file path")
    root = Path(root).resolve()
    path = (root / raw).resolve()
    if not path.is_relative_to(root):
        raise UrlRefused("url.outside_root", url, f"not inside the declared root {root}")
    return path


def safe_child(root: Path, relative_parts: Iterable[str], *, resolve: bool) -> Path:
    """`root` joined with already-checked segments, verified to stay inside `root`: lexically,
    and with `resolve` after resolving symlinks too (for folders this program writes into)."""
    candidate = Path(root).joinpath(*relative_parts)
    base = Path(root).resolve() if resolve else Path(root).absolute()
    check = candidate.resolve() if resolve else Path(os.path.normpath(candidate.absolute()))
    if not check.is_relative_to(base) or check == base:
        raise UrlRefused("url.climbs_above_root", str(candidate), f"outside {base}")
    return candidate


def _checked_host(url: str, host: str) -> str:
    if not host:
        raise UrlRefused("url.host", url, "no host")
    if ":" in host:  # an IPv6 literal (urlsplit already took the brackets off)
        if not _IPV6.fullmatch(host):
            raise UrlRefused("url.host", url, f"not an IPv6 address: {clip(host)!r}")
        return host
    try:
        host = host.encode("idna").decode("ascii").lower()  # a non-ASCII name in its DNS form
    except UnicodeError:
        raise UrlRefused("url.host", url, f"not a valid host name: {clip(host)!r}") from None
    if not _HOST.fullmatch(host):
        raise UrlRefused("url.host", url, f"not a valid host name: {clip(host)!r}")
    return host


def _resolve_dot_segments(url: str, path: str) -> str:
    """RFC 3986 `remove_dot_segments` on an absolute path, refusing a climb above `/`.

    Segments are compared decoded (`%2e%2E` is `..` to many servers and to `unquote`), and a
    segment that decodes to a separator is refused: once decoded for a file name it would
    open other folders.
    """
    if not path:
        return path
    segments = path.split("/")[1:]
    kept: list[str] = []
    for index, segment in enumerate(segments):
        decoded = unquote(segment)
        if any(char in decoded for char in "/\\\x00"):
            raise UrlRefused("url.encoded_separator", url, f"path segment {clip(segment)!r} decodes to a separator")
        last = index == len(segments) - 1
        if decoded == ".":
            if last:
                kept.append("")
            continue
        if decoded == "..":
            if not kept or kept == [""]:
                raise UrlRefused("url.climbs_above_root", url, "the path climbs above the host's root")
            kept.pop()
            if last:
                kept.append("")
            continue
        kept.append(segment)
    return "/" + "/".join(kept)
