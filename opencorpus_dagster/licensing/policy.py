"""The licence policy: which SPDX licences may enter the corpus, and why a record may not.

A policy is an allowlist and a denylist of SPDX ids or glob-like family patterns (`CC-BY-SA-*`,
`*-NC-*`), matched case-insensitively. Precedence, from strongest: an exact id in `deny`, an
exact id in `allow`, a pattern in `deny`, a pattern in `allow`; anything else is not in the
allowlist. So a source can allow one licence the default denies by family
(`allow: [CC-BY-NC-4.0]`) or deny one the default allows (`deny: [GFDL-1.3-invariants-only]`).

Expressions: `A OR B` is allowed when any branch is (the verdict names the most permissive
allowed branch), `A AND B` only when every part is, `A WITH exception` follows `A`.
"""

from __future__ import annotations

import difflib
import re
from collections.abc import Iterable
from dataclasses import dataclass
from fnmatch import fnmatchcase, translate
from functools import lru_cache

from license_expression import AND, OR, LicenseSymbol, LicenseWithExceptionSymbol
from pydantic import BaseModel, ConfigDict, Field, field_validator

from opencorpus_dagster.licensing.spdx import (
    COPYRIGHTED,
    PUBLIC_DOMAIN,
    is_license_ref,
    known_license_ids,
    normalise_license,
    parse_expression,
)

ALLOWED = "license.allowed"
DENIED = "license.denied"
UNKNOWN = "license.unknown"
NOT_IN_ALLOWLIST = "license.not_in_allowlist"

# How bad a failing reason is: an AND reports its worst part, an OR its least bad branch (the
# one a source could most easily allow).
_SEVERITY = {NOT_IN_ALLOWLIST: 1, UNKNOWN: 2, DENIED: 3}

# Licence families by permissiveness (the rank dedup uses to pick a keeper). The default
# allowlist is the union of ranks 0-2; rank 3 is everything else.
PUBLIC_DOMAIN_FAMILY = (
    PUBLIC_DOMAIN, "LicenseRef-PublicDomain-*", "CC0-1.0", "CC-PDDC", "CC-PDM-1.0", "PDDL-1.0", "Unlicense",
)  # fmt: skip
PERMISSIVE_FAMILY = (
    "CC-BY-*", "MIT", "MIT-0", "0BSD", "BSD-*", "Apache-2.0", "Apache-1.1", "ISC", "Zlib",
    "zlib-acknowledgement", "PSF-2.0", "Python-2.0", "BSL-1.0", "X11", "NCSA", "UPL-1.0", "BlueOak-1.0.0",
    "ODC-By-1.0", "CDLA-Permissive-*", "OGL-UK-*", "OGL-Canada-2.0", "etalab-2.0", "DL-DE-BY-2.0",
    "DL-DE-ZERO-2.0", "W3C", "W3C-*", "Unicode-3.0", "Unicode-DFS-*", "PostgreSQL", "curl", "WTFPL",
)  # fmt: skip
COPYLEFT_FAMILY = (
    "CC-BY-SA-*", "CC-SA-1.0", "GPL-*", "LGPL-*", "AGPL-*", "MPL-*", "EPL-*", "EUPL-*", "GFDL-*", "ODbL-1.0",
    "CDLA-Sharing-1.0", "OSL-*", "CECILL-*", "Artistic-2.0", "CDDL-*", "LPPL-1.3c", "OFL-1.1",
)  # fmt: skip
DEFAULT_ALLOW = [*PUBLIC_DOMAIN_FAMILY, *PERMISSIVE_FAMILY, *COPYLEFT_FAMILY]
DEFAULT_DENY = [
    "*-NC-*",  # NonCommercial: a model trained on it cannot be used commercially without doubt
    "*-ND-*",  # NoDerivatives
    "NCGL-UK-*",
    "PolyForm-Noncommercial-*",
    "BSD-3-Clause-No-Military-License",  # field-of-use restrictions
    "BSD-3-Clause-No-Nuclear-License*",
    COPYRIGHTED,
    "LicenseRef-Copyright-*",  # in copyright by a record's finding: a US renewal (renewals.py)
]

_ENTRY = re.compile(r"^[A-Za-z0-9.+\-*:]+$")


@dataclass(frozen=True)
class Verdict:
    """The policy's answer for one expression.

    `reason` is one of `license.allowed`, `license.denied`, `license.unknown`,
    `license.not_in_allowlist`. `license` is what the verdict is about: the chosen branch of an
    allowed OR, the worst part of a refused AND, otherwise the whole normalised expression;
    None when there was none.
    """

    allowed: bool
    reason: str
    license: str | None


class LicensePolicy(BaseModel):
    """Allow/deny lists of SPDX ids and family patterns; embeddable in catalog YAML.

    Entries are validated on construction: an exact id must be a known SPDX id or a
    `LicenseRef-`, a pattern must match at least one known id, else ValueError naming it.
    Exact ids are stored in their canonical spelling (`gpl-2.0+` -> `GPL-2.0-or-later`).
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    allow: list[str] = Field(default_factory=lambda: list(DEFAULT_ALLOW))
    deny: list[str] = Field(default_factory=lambda: list(DEFAULT_DENY))

    @field_validator("allow", "deny")
    @classmethod
    def _canonical_entries(cls, entries: list[str]) -> list[str]:
        return [_canonical_entry(entry) for entry in entries]

    def merged(self, allow: Iterable[str] = (), deny: Iterable[str] = ()) -> LicensePolicy:
        """This policy plus a source's additions (e.g. `PolicyOverrides.allow/.deny`).

        An exact id the source allows leaves this policy's deny list, and one it denies leaves
        the allow list, so the source's word wins. Raises ValueError for an invalid entry or an
        id the source both allows and denies.
        """
        add_allow = [_canonical_entry(e) for e in allow]
        add_deny = [_canonical_entry(e) for e in deny]
        both = {e.casefold() for e in add_allow} & {e.casefold() for e in add_deny}
        if both:
            raise ValueError(f"{sorted(both)} is both allowed and denied")
        allowed = {e.casefold() for e in add_allow}
        denied = {e.casefold() for e in add_deny}
        return LicensePolicy(
            allow=_unique([e for e in self.allow if e.casefold() not in denied] + add_allow),
            deny=_unique([e for e in self.deny if e.casefold() not in allowed] + add_deny),
        )

    def judge(self, expression: str | None) -> Verdict:
        """Verdict for an SPDX expression (as set by the licence gate). Never raises."""
        return _judge(tuple(self.allow), tuple(self.deny), expression)

    def allowed_ids(self, ids: Iterable[str]) -> frozenset[str]:
        """The ids among `ids` (plain SPDX ids, as `known_license_ids()` lists them, or
        LicenseRefs) whose verdict is allowed: `judge(i).allowed` for each, without parsing
        each id as an expression."""
        lists = _Lists(tuple(self.allow), tuple(self.deny))
        return frozenset(i for i in ids if i.strip().upper() not in _NO_LICENCE and lists.judge_key(i).allowed)


_NO_LICENCE = ("", "NOASSERTION", "NONE")


@lru_cache(maxsize=16384)
def _judge(allow: tuple[str, ...], deny: tuple[str, ...], expression: str | None) -> Verdict:
    # Cached here rather than on the model, so that two equal policies stay equal.
    if expression is None or expression.strip().upper() in _NO_LICENCE:
        return Verdict(False, UNKNOWN, None)
    parsed = parse_expression(expression)
    if parsed is None:
        return Verdict(False, UNKNOWN, expression)
    return _judge_node(parsed, _Lists(allow, deny))


@dataclass(frozen=True)
class _Lists:
    allow: tuple[str, ...]
    deny: tuple[str, ...]

    def judge_key(self, key: str) -> Verdict:
        if key not in known_license_ids() and not is_license_ref(key):
            return Verdict(False, UNKNOWN, key)
        deny, allow = _entries(self.deny), _entries(self.allow)
        exact = key.casefold()
        if exact in deny.exact:
            return Verdict(False, DENIED, key)
        if exact in allow.exact:
            return Verdict(True, ALLOWED, key)
        if deny.matches(key):
            return Verdict(False, DENIED, key)
        if allow.matches(key):
            return Verdict(True, ALLOWED, key)
        return Verdict(False, NOT_IN_ALLOWLIST, key)


@dataclass(frozen=True)
class _Entries:
    """One list's exact ids (casefolded) and its patterns as one compiled regular expression."""

    exact: frozenset[str]
    patterns: re.Pattern[str] | None

    def matches(self, key: str) -> bool:
        """Whether any pattern matches `key` (`_matches`, for all of them at once)."""
        return self.patterns is not None and self.patterns.match(key.upper()) is not None


@lru_cache(maxsize=256)
def _entries(entries: tuple[str, ...]) -> _Entries:
    # Judging every known id one pattern at a time cost 0.2 s of each validating process.
    patterns = [translate(entry.upper()) for entry in entries if "*" in entry]
    return _Entries(
        frozenset(entry.casefold() for entry in entries if "*" not in entry),
        re.compile("|".join(f"(?:{pattern})" for pattern in patterns)) if patterns else None,
    )


def _judge_node(node, lists: _Lists) -> Verdict:
    if isinstance(node, LicenseWithExceptionSymbol):
        base = lists.judge_key(node.license_symbol.key)
        return Verdict(base.allowed, base.reason, node.render())
    if isinstance(node, LicenseSymbol):
        return lists.judge_key(node.key)
    verdicts = [_judge_node(arg, lists) for arg in node.args]
    if isinstance(node, OR):
        allowed = [v for v in verdicts if v.allowed]
        if allowed:
            return min(allowed, key=lambda v: permissiveness_rank(v.license))
        return Verdict(False, min((v.reason for v in verdicts), key=_SEVERITY.__getitem__), node.render())
    if isinstance(node, AND):
        failing = [v for v in verdicts if not v.allowed]
        if not failing:
            return Verdict(True, ALLOWED, node.render())
        return max(failing, key=lambda v: _SEVERITY[v.reason])  # names the part that sinks it
    return Verdict(False, UNKNOWN, node.render())  # not produced by the SPDX grammar


def permissiveness_rank(expression: str | None) -> int:
    """0 public domain / CC0, 1 permissive attribution-only, 2 share-alike / copyleft, 3 other.

    For dedup keeper selection: lower is better. `A OR B` takes the best branch, `A AND B` the
    worst part, `A WITH e` its licence; NonCommercial/NoDerivatives and unknown text are 3.
    """
    if not expression:
        return 3
    parsed = parse_expression(expression)
    return 3 if parsed is None else _rank_node(parsed)


def _rank_node(node) -> int:
    if isinstance(node, LicenseWithExceptionSymbol):
        return _rank_key(node.license_symbol.key)
    if isinstance(node, LicenseSymbol):
        return _rank_key(node.key)
    ranks = [_rank_node(arg) for arg in node.args]
    return min(ranks) if isinstance(node, OR) else max(ranks)


def _rank_key(key: str) -> int:
    if any(_matches(key, pattern) for pattern in DEFAULT_DENY):
        return 3
    # Copyleft before permissive: the permissive family's `CC-BY-*` also matches `CC-BY-SA-*`.
    for rank, family in ((0, PUBLIC_DOMAIN_FAMILY), (2, COPYLEFT_FAMILY), (1, PERMISSIVE_FAMILY)):
        if any(_matches(key, pattern) for pattern in family):
            return rank
    return 3


def _matches(key: str, pattern: str) -> bool:
    return fnmatchcase(key.upper(), pattern.upper())


def _canonical_entry(entry: str) -> str:
    """An allow/deny entry checked and spelled canonically; ValueError naming it otherwise."""
    if not isinstance(entry, str) or not _ENTRY.match(entry.strip()):
        raise ValueError(f"{entry!r} is not an SPDX id or pattern (letters, digits, . + - and *)")
    return _canonical_spelling(entry.strip())


@lru_cache(maxsize=4096)
def _canonical_spelling(entry: str) -> str:
    """`_canonical_entry` of a well-formed entry, once per process: every catalog load checks
    each source's policy, and a pattern is tried against every SPDX id (0.1 s per load)."""
    known = known_license_ids()
    if "*" in entry:
        if entry.upper().startswith("LICENSEREF-") or any(_matches(k, entry) for k in known):
            return entry
        raise ValueError(f"pattern {entry!r} matches no known SPDX licence")
    if is_license_ref(entry):
        return entry
    normalised = normalise_license(entry)
    if normalised is not None and normalised.expression in known:
        return normalised.expression
    close = difflib.get_close_matches(entry, sorted(known), n=1)
    hint = f"; did you mean {close[0]!r}?" if close else ""
    raise ValueError(f"{entry!r} is not a known SPDX licence id{hint}")


def _unique(entries: list[str]) -> list[str]:
    seen: set[str] = set()
    return [e for e in entries if not (e.casefold() in seen or seen.add(e.casefold()))]


__all__ = [
    "ALLOWED",
    "DEFAULT_ALLOW",
    "DEFAULT_DENY",
    "DENIED",
    "NOT_IN_ALLOWLIST",
    "UNKNOWN",
    "LicensePolicy",
    "Verdict",
    "permissiveness_rank",
]
