"""Publisher reservations against text-and-data mining and AI crawling, for one web page.

`detect_optout(html, headers, page_url, robots, tdmrep)` reports the first opt-out signal that
applies to the page, or None. The signals, checked in this order:

1. TDM Reservation Protocol (W3C TDMRep, CG final report): the site's ``/.well-known/
   tdmrep.json`` rule for the page's path (signal ``tdmrep-json``), then the ``tdm-reservation``
   HTTP header, then ``<meta name="tdm-reservation">`` (both signal ``tdm-reservation``). As the
   spec's "processing priority" says, each later technique supersedes an earlier one, and one
   that is absent does not reset the value: ``tdmrep.json`` reserving ``/`` with a page header
   ``tdm-reservation: 0`` is not reserved. Only the value ``1`` reserves; ``0`` does not; any
   other value is a protocol error and counts as unset. ``tdm-policy`` alone is not a
   reservation. Several header values or meta tags: any valid ``1`` reserves (conservative).
2. ``noai`` in ``<meta name="robots">`` or an ``X-Robots-Tag`` header (signal ``noai``), the
   DeviantArt-style directive. ``noimageai`` alone does not opt the *text* out.
3. robots.txt disallowing the page's path to any AI crawler in
   `opencorpus_dagster.licensing.ai_crawlers.AI_USER_AGENTS` (signal ``robots-ai``), including
   through the catch-all ``User-agent: *`` group: an AI crawler that honours robots.txt may not
   fetch the page either way.

Opt-out applies whatever licence the page carries; ordering against licence decisions is the
caller's business. The reason to record is `OptOut.reason`, ``opt-out:<signal>``.

robots.txt is read with protego (RFC 9309 matching: ``*``/``$`` wildcards, longest match, allow
wins ties, group merging, Google's tolerance of directive typos and missing colons); the stdlib
``urllib.robotparser`` has no wildcards, takes the first match instead of the longest, and
matches user agents by substring. Before protego sees the file we keep only the user-agent,
allow and disallow lines, because protego ends a user-agent group at any other record
(``Crawl-delay``, ``Content-Signal``...), whereas RFC 9309 section 2.2.4 says such records "MUST
NOT interfere" with the groups: ``User-agent: a / Crawl-delay: 5 / User-agent: b / Disallow: /``
disallows ``/`` to both a and b. protego also lets a group's value match at a token boundary
inside a longer token (a ``google`` group binds ``Google-Agent``): stricter than RFC 9309's token
equality, which errs on the side of the opt-out.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from urllib.parse import urlsplit

import lxml.etree
import lxml.html
from protego import Protego

from opencorpus_dagster.licensing.ai_crawlers import AI_USER_AGENTS

SIGNAL_TDM_RESERVATION = "tdm-reservation"
SIGNAL_TDMREP_JSON = "tdmrep-json"
SIGNAL_ROBOTS_AI = "robots-ai"
SIGNAL_NOAI = "noai"


@dataclass(frozen=True)
class OptOut:
    """An opt-out that applies to a page: which `signal`, and the `evidence` as found."""

    signal: str
    evidence: str

    @property
    def reason(self) -> str:
        """The decision reason to record, e.g. ``opt-out:tdm-reservation``."""
        return f"opt-out:{self.signal}"


# --- robots.txt ------------------------------------------------------------------------------

# Directive spellings read as user-agent / allow / disallow. Beyond the RFC 9309 names these are
# the typos Google's open-source parser accepts (robots.cc) plus the ones crawler-commons' test
# suite expects to be honoured ("desallow", "useg-agent").
_ROBOTS_DIRECTIVES = {
    "user-agent": "user-agent",
    "useragent": "user-agent",
    "user agent": "user-agent",
    "useg-agent": "user-agent",
    "allow": "allow",
    "disallow": "disallow",
    "dissallow": "disallow",
    "dissalow": "disallow",
    "disalow": "disallow",
    "diasllow": "disallow",
    "disallaw": "disallow",
    "desallow": "disallow",
}
_BOMS = ((b"\xef\xbb\xbf", "utf-8"), (b"\xff\xfe", "utf-16-le"), (b"\xfe\xff", "utf-16-be"))


class RobotsPolicy:
    """The access rules of one robots.txt, asked about AI crawlers."""

    def __init__(self, rules: Protego, agents: frozenset[str]):
        self._rules = rules
        self._agents = agents  # user-agent values named in the file, lowercased
        self._ai_candidates = self._ai_crawlers_to_ask()

    @classmethod
    def parse(cls, robots_txt: str | bytes) -> RobotsPolicy:
        """Parse a robots.txt body. Bytes are decoded by BOM (UTF-8/16), else as UTF-8.

        Never raises on content: unreadable lines are ignored, as RFC 9309 asks.
        """
        text = _decode_robots(robots_txt) if isinstance(robots_txt, bytes) else robots_txt
        text = text.lstrip("\ufeff")
        lines: list[str] = []
        agents: set[str] = set()
        for line in re.split(r"\r\n|\r|\n", text):
            directive = _robots_directive(line)
            if directive is None:
                continue
            key, value = directive
            if key == "user-agent":
                agents.add(value.lower())
            lines.append(f"{key}: {value}")
        return cls(Protego.parse("\n".join(lines)), frozenset(agents))

    def allows(self, url_or_path: str, user_agent: str) -> bool:
        """Whether `user_agent` may fetch `url_or_path` (a full URL or a path with query)."""
        return self._rules.can_fetch(_as_url(url_or_path), user_agent)

    def has_group_for(self, user_agent: str) -> bool:
        """Whether the file names `user_agent` in a user-agent line of its own."""
        return user_agent.lower() in self._agents

    def disallows_ai(self, url_or_path: str) -> str | None:
        """The AI crawler token the path is disallowed to, or None if every AI crawler may fetch it.

        Crawlers the file names in their own group are asked first (in `AI_USER_AGENTS` order),
        so the answer points at the group that opted out; otherwise the first AI crawler (in
        list order) that falls into a disallowing catch-all (``*``) group.
        """
        url = _as_url(url_or_path)
        for user_agent in self._ai_candidates:
            if not self._rules.can_fetch(url, user_agent):
                return user_agent
        return None

    def _ai_crawlers_to_ask(self) -> list[str]:
        """AI crawlers whose answer can differ: the named ones, those a named value could match
        as a substring, then one representative of all that fall to the catch-all group (they
        share its rules, so one question answers for all: 166 questions would cost ~5 ms a
        page on a long robots.txt)."""
        named = [ua for ua in AI_USER_AGENTS if self.has_group_for(ua)]
        specific_values = [agent for agent in self._agents if agent != "*"]
        # protego matches a group's value inside a longer token ("google" in "google-extended"):
        # a plain substring test over-approximates that, which only costs extra questions.
        possibly_specific = [
            ua
            for ua in AI_USER_AGENTS
            if not self.has_group_for(ua) and any(value in ua.lower() for value in specific_values)
        ]
        catch_all = [ua for ua in AI_USER_AGENTS if ua not in named and ua not in possibly_specific]
        return named + possibly_specific + catch_all[:1]


def _decode_robots(body: bytes) -> str:
    for bom, encoding in _BOMS:
        if body.startswith(bom):
            return body[len(bom) :].decode(encoding, errors="replace")
    return body.decode("utf-8", errors="replace")


def _robots_directive(line: str) -> tuple[str, str] | None:
    line = line.split("#", 1)[0].strip()
    if not line:
        return None
    if ":" in line:
        key, value = line.split(":", 1)
        canonical = _ROBOTS_DIRECTIVES.get(" ".join(key.lower().split()))
        if canonical is not None:
            return canonical, value.strip()
    # No colon ("Disallow /x", "useragent bot4"): the first one or two words may be the key.
    words = line.split()
    for count in (2, 1):
        canonical = _ROBOTS_DIRECTIVES.get(" ".join(words[:count]).lower().rstrip(":"))
        if canonical is not None and len(words) > count:
            return canonical, " ".join(words[count:])
    return None


def _as_url(url_or_path: str) -> str:
    if url_or_path.startswith("/"):
        return "http://robots.invalid" + url_or_path
    return url_or_path


# --- TDMRep ----------------------------------------------------------------------------------


@dataclass(frozen=True)
class TdmRepRule:
    """One rule of a tdmrep.json: a location pattern and its reservation (1, 0 or None=unset)."""

    location: str
    reservation: int | None
    policy: str | None = None

    def matches(self, path: str) -> bool:
        """Robots-style match of `location` against a URL path (with query): prefix match,
        ``*`` any characters, a final ``$`` anchors the end; case sensitive; percent-escapes of
        unreserved characters decoded on both sides before comparing (TDMRep section 3.1)."""
        return _location_regex(self.location).match(_normalise_percent(path)) is not None


@dataclass(frozen=True)
class TdmRepPolicy:
    """A site's ``/.well-known/tdmrep.json``: its rules in file order, and what was wrong with it.

    `problems` lists rules that were skipped (no location) or a file that was not a JSON array;
    per the spec, an unusable file means the origin does not implement the protocol.
    """

    rules: tuple[TdmRepRule, ...]
    problems: tuple[str, ...] = ()

    @classmethod
    def parse(cls, json_text: str | bytes) -> TdmRepPolicy:
        """Parse tdmrep.json content. Never raises: bad content yields no rules and a problem."""
        try:
            data = json.loads(json_text)
        except ValueError as error:
            return cls((), (f"not JSON: {error}",))
        if not isinstance(data, list):
            return cls((), (f"not a JSON array but {type(data).__name__}",))
        rules: list[TdmRepRule] = []
        problems: list[str] = []
        for index, entry in enumerate(data):
            location = entry.get("location") if isinstance(entry, dict) else None
            if not isinstance(location, str) or not location:
                problems.append(f"rule {index}: no location")
                continue
            policy = entry.get("tdm-policy")
            rules.append(
                TdmRepRule(
                    location,
                    _reservation_value(entry.get("tdm-reservation")),
                    policy if isinstance(policy, str) else None,
                )
            )
        return cls(tuple(rules), tuple(problems))

    def rule_for(self, path: str) -> TdmRepRule | None:
        """The first rule whose location matches `path` ("the most specific match is the first
        in sequence"), or None: then tdm-reservation is unset for the path."""
        for rule in self.rules:
            if rule.matches(path):
                return rule
        return None


def _reservation_value(value: object) -> int | None:
    """1 or 0 from a tdm-reservation value (JSON number or header/meta text); else None."""
    if isinstance(value, bool):
        return None
    if isinstance(value, int) and value in (0, 1):
        return value
    if isinstance(value, str) and value.strip() in ("0", "1"):
        return int(value.strip())
    return None


_UNRESERVED = re.compile(r"%([0-9A-Fa-f]{2})")


def _normalise_percent(path: str) -> str:
    def fix(match: re.Match[str]) -> str:
        char = chr(int(match.group(1), 16))
        if char.isascii() and (char.isalnum() or char in "-._~"):
            return char
        return "%" + match.group(1).upper()

    return _UNRESERVED.sub(fix, path)


def _location_regex(location: str) -> re.Pattern[str]:
    pattern = _normalise_percent(location)
    anchored = pattern.endswith("$")
    if anchored:
        pattern = pattern[:-1]
    regex = ".*".join(re.escape(part) for part in pattern.split("*"))
    return re.compile(regex + (r"\Z" if anchored else ""))


# --- the page --------------------------------------------------------------------------------


def detect_optout(
    html: str | bytes | None,
    headers: Mapping[str, str] | None,
    page_url: str | None,
    robots: RobotsPolicy | None = None,
    tdmrep: TdmRepPolicy | None = None,
) -> OptOut | None:
    """The first opt-out signal that applies to the page (order in the module doc), or None.

    `headers` are the page's HTTP response headers (any case); `robots` and `tdmrep` the site's
    parsed robots.txt and tdmrep.json, if fetched. Path-based checks (tdmrep.json, robots.txt)
    need `page_url`; without it they are skipped. Never raises on bad HTML.
    """
    header_values = _header_values(headers)
    path = _path_of(page_url)
    meta = _page_meta(html)

    reserved: tuple[int, str, str] | None = None  # (value, signal, evidence); later overrides
    if tdmrep is not None and path is not None:
        rule = tdmrep.rule_for(path)
        if rule is not None and rule.reservation is not None:
            reserved = (
                rule.reservation,
                SIGNAL_TDMREP_JSON,
                f'tdmrep.json location "{rule.location}" tdm-reservation {rule.reservation}',
            )
    header_reservation = _combined_reservation(header_values.get("tdm-reservation", []))
    if header_reservation is not None:
        reserved = (
            header_reservation,
            SIGNAL_TDM_RESERVATION,
            f"HTTP header tdm-reservation: {header_reservation}",
        )
    meta_values = meta.get("tdm-reservation", []) + meta.get("tdm:reservation", [])
    meta_reservation = _combined_reservation(meta_values)
    if meta_reservation is not None:
        reserved = (
            meta_reservation,
            SIGNAL_TDM_RESERVATION,
            f'<meta name="tdm-reservation" content="{meta_reservation}">',
        )
    if reserved is not None and reserved[0] == 1:
        return OptOut(reserved[1], reserved[2])

    for value in meta.get("robots", []):
        if "noai" in _robots_directives(value):
            return OptOut(SIGNAL_NOAI, f'<meta name="robots" content="{value}">')
    for value in header_values.get("x-robots-tag", []):
        if "noai" in _robots_directives(value):
            return OptOut(SIGNAL_NOAI, f"HTTP header X-Robots-Tag: {value}")

    if robots is not None and path is not None:
        user_agent = robots.disallows_ai(path)
        if user_agent is not None:
            group = "" if robots.has_group_for(user_agent) else " (no group of its own: the catch-all rules)"
            return OptOut(SIGNAL_ROBOTS_AI, f"robots.txt disallows {path} to {user_agent}{group}")
    return None


def _header_values(headers: Mapping[str, str] | None) -> dict[str, list[str]]:
    values: dict[str, list[str]] = {}
    for name, value in (headers or {}).items():
        values.setdefault(name.strip().lower(), []).append(str(value))
    return values


def _combined_reservation(values: list[str]) -> int | None:
    # A header may repeat or carry a comma-joined list; any valid 1 reserves.
    parsed = [_reservation_value(part) for value in values for part in value.split(",")]
    valid = [value for value in parsed if value is not None]
    if not valid:
        return None
    return max(valid)


def _robots_directives(value: str) -> set[str]:
    # "noai, noimageai" or user-agent scoped "otherbot: noindex, noai".
    directives = set()
    for part in value.split(","):
        directives.add(part.rsplit(":", 1)[-1].strip().lower())
    return directives


_OPTOUT_META_NAMES = ("tdm-reservation", "tdm:reservation", "robots")


def _page_meta(html: str | bytes | None) -> dict[str, list[str]]:
    """Contents of the page's opt-out meta tags by lowercased name."""
    if not html:
        return {}
    probe = html.lower() if isinstance(html, bytes) else html.lower().encode("utf-8", "replace")
    # Parsing is the expensive part and almost no page carries these tags.
    if b"tdm" not in probe and b"noai" not in probe:
        return {}
    if isinstance(html, str):
        html = html.encode("utf-8")
        parser = lxml.html.HTMLParser(encoding="utf-8")
    else:
        parser = None
    try:
        root = lxml.html.document_fromstring(html, parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return {}
    found: dict[str, list[str]] = {}
    for element in root.iter("meta"):
        name = (element.get("name") or element.get("property") or "").strip().lower()
        if name in _OPTOUT_META_NAMES:
            found.setdefault(name, []).append((element.get("content") or "").strip())
    return found


def _path_of(page_url: str | None) -> str | None:
    if not page_url:
        return None
    try:
        parts = urlsplit(page_url)
    except ValueError:
        return None
    path = parts.path or "/"
    return f"{path}?{parts.query}" if parts.query else path
