"""Normalise an upstream licence statement to an SPDX expression.

Upstreams state licences in many shapes: SPDX ids in any case (`cc-by-sa-4.0`), deprecated ids
(`GPL-2.0+`), SPDX expressions (`MIT OR Apache-2.0`), common names (`CC BY-SA 3.0`, `Apache
License 2.0`), Creative Commons URLs (`https://creativecommons.org/licenses/by/4.0/deed.de`),
Debian short names (`GPL-2+`) and catalog rights fields such as Project Gutenberg's
`Public domain in the USA.`. `normalise_license` turns each into one SPDX expression and says
how it got there; anything it does not recognise is `None` (the policy calls that unknown).

The SPDX list used at run time is the one vendored by `license-expression` (ScanCode's
LicenseDB index), so a licence SPDX added after that release is not recognised; see
tests/test_spdx.py for the ids of the fixture list it rejects.
"""

from __future__ import annotations

import difflib
import re
from functools import lru_cache
from typing import NamedTuple

from license_expression import (
    BaseSymbol,
    ExpressionError,
    LicenseExpression,
    LicenseWithExceptionSymbol,
    Licensing,
    build_spdx_licensing,
    get_license_index,
)

PUBLIC_DOMAIN = "LicenseRef-PublicDomain"
COPYRIGHTED = "LicenseRef-Copyrighted"

_LICENSE_REF = re.compile(r"^(?:DocumentRef-[A-Za-z0-9.\-]+:)?LicenseRef-[A-Za-z0-9.\-]+$")


class NormalisedLicense(NamedTuple):
    """An SPDX expression and how the raw statement was mapped to it (for license_evidence).

    `how` starts with a stable category ("SPDX id", "SPDX expression", "deprecated SPDX id",
    "Creative Commons URL", "Creative Commons name", "licence URL", "Gutenberg rights
    statement", "alias"), optionally followed by ": " and a note.
    """

    expression: str
    how: str


# --- the SPDX licensing (license-expression's vendored list, with our own corrections) -------


@lru_cache(maxsize=1)
def spdx_licensing() -> Licensing:
    """The shared `Licensing`: SPDX ids as keys, ScanCode's aliases, plus our LicenseRefs.

    Two corrections to the vendored index: ScanCode keys a few licences under its own
    `LicenseRef-scancode-*` id although SPDX has one (`Net-SNMP`), and it files
    `LicenseRef-PublicDomain` as an alias of `LicenseRef-scancode-public-domain`; this project's
    public-domain id is `LicenseRef-PublicDomain`, so that entry is re-keyed.
    """
    index = []
    for entry in get_license_index():
        key = entry.get("spdx_license_key")
        if not key:
            continue
        aliases = list(entry.get("other_spdx_license_keys") or [])
        if key == "LicenseRef-scancode-public-domain":
            aliases = [key, *(a for a in aliases if a != PUBLIC_DOMAIN)]
            key = PUBLIC_DOMAIN
        elif key.startswith("LicenseRef-scancode-"):
            spdx_alias = next((a for a in aliases if not a.startswith("LicenseRef-")), None)
            if spdx_alias is not None:
                aliases = [key, *(a for a in aliases if a != spdx_alias)]
                key = spdx_alias
        index.append({**entry, "spdx_license_key": key, "other_spdx_license_keys": aliases})
    index.append(
        {"spdx_license_key": COPYRIGHTED, "other_spdx_license_keys": [], "is_exception": False, "is_deprecated": False}
    )
    return build_spdx_licensing(index)


@lru_cache(maxsize=1)
def known_license_ids() -> frozenset[str]:
    """Canonical keys of every licence (not exception) the shared licensing knows."""
    return frozenset(
        symbol.key for symbol in spdx_licensing().known_symbols.values() if not symbol.is_exception
    )


def is_license_ref(key: str) -> bool:
    """True for a user-defined `LicenseRef-...` (optionally `DocumentRef-...:`) id."""
    return bool(_LICENSE_REF.match(key))


# Deprecated compound ids that the lexer cannot read as one symbol (ScanCode files them as
# exceptions); SPDX replaced each with `<licence> WITH <exception>`.
_DEPRECATED_WITH_IDS = {
    "GPL-2.0-with-autoconf-exception": "GPL-2.0-only WITH Autoconf-exception-2.0",
    "GPL-2.0-with-bison-exception": "GPL-2.0-only WITH Bison-exception-2.2",
    "GPL-2.0-with-classpath-exception": "GPL-2.0-only WITH Classpath-exception-2.0",
    "GPL-2.0-with-font-exception": "GPL-2.0-only WITH Font-exception-2.0",
    "GPL-2.0-with-GCC-exception": "GPL-2.0-only WITH GCC-exception-2.0",
    "GPL-3.0-with-autoconf-exception": "GPL-3.0-only WITH Autoconf-exception-3.0",
    "GPL-3.0-with-GCC-exception": "GPL-3.0-only WITH GCC-exception-3.1",
    "eCos-2.0": "GPL-2.0-or-later WITH eCos-exception-2.0",
}
_DEPRECATED_WITH_PATTERN = re.compile(
    r"(?<![A-Za-z0-9.+\-])("
    + "|".join(re.escape(k) for k in sorted(_DEPRECATED_WITH_IDS, key=len, reverse=True))
    + r")(?![A-Za-z0-9.+\-])",
    re.IGNORECASE,
)
_DEPRECATED_WITH_LOOKUP = {k.casefold(): v for k, v in _DEPRECATED_WITH_IDS.items()}


def parse_expression(expression: str) -> LicenseExpression | None:
    """Parse an SPDX expression (any case, deprecated ids allowed) into a license-expression tree.

    Returns None when the text is not a valid expression or names a licence that is neither a
    known SPDX id nor a `LicenseRef-`. Never raises.
    """
    parsed, problems = _parse_checked(expression)
    return None if problems else parsed


def spdx_expression_problems(expression: str) -> list[str]:
    """Why `expression` is not a valid SPDX expression: one message per problem, [] when valid.

    Every licence and exception id is checked against the SPDX licence list (any case;
    deprecated ids are accepted, as SPDX keeps them on the list); `LicenseRef-...` ids are
    allowed. An unknown id gets the closest known ids as a suggestion:
    `'CC-BY-SA-9.9' is not on the SPDX licence list (did you mean CC-BY-SA-4.0?)`. Never raises.
    """
    return _parse_checked(expression)[1]


def _parse_checked(expression: str) -> tuple[LicenseExpression | None, list[str]]:
    # Licensing.validate() would say the same, but it raises AttributeError on some syntax
    # errors ("MIT AND": license-expression 30.4 reads ExpressionError.token_string, which only
    # its parse errors have), so parse and list the unknown keys here.
    text = _DEPRECATED_WITH_PATTERN.sub(lambda m: f"({_DEPRECATED_WITH_LOOKUP[m.group(1).casefold()]})", expression)
    licensing = spdx_licensing()
    try:
        parsed = licensing.parse(text, validate=False, strict=True)
    except ExpressionError as error:
        return None, [f"{expression!r} is not a valid SPDX expression: {error}"]
    except Exception:  # the lexer raises bare errors on some garbage (stray quotes, lone operators)
        return None, [f"{expression!r} is not a valid SPDX expression"]
    if parsed is None:
        return None, ["an SPDX expression is required; it is empty"]
    unknown = [key for key in licensing.unknown_license_keys(parsed) if not is_license_ref(key)]
    return parsed, [f"{key!r} is not on the SPDX licence list{_closest_ids(key)}" for key in unknown]


def _closest_ids(key: str) -> str:
    """` (did you mean A or B?)` naming the known SPDX ids closest to `key`, or ``."""
    by_folded = {known.casefold(): known for known in _known_keys()}
    close = difflib.get_close_matches(key.casefold(), by_folded, n=2, cutoff=0.8)
    return f" (did you mean {' or '.join(by_folded[c] for c in close)}?)" if close else ""


@lru_cache(maxsize=1)
def _known_keys() -> tuple[str, ...]:
    return tuple(sorted(symbol.key for symbol in spdx_licensing().known_symbols.values()))


def _parse_spdx(raw: str) -> NormalisedLicense | None:
    parsed = parse_expression(raw)
    if parsed is None:
        return None
    rendered = parsed.render()
    compound = not isinstance(parsed, BaseSymbol) or isinstance(parsed, LicenseWithExceptionSymbol)
    category = "SPDX expression" if compound else "SPDX id"
    if _canonical_spelling(rendered) != _canonical_spelling(raw):
        # Case alone is not worth a note; a replaced deprecated id or alias is.
        return NormalisedLicense(rendered, f"{category}: {raw} is deprecated or an alias, replaced by {rendered}")
    return NormalisedLicense(rendered, category)


def _canonical_spelling(expression: str) -> str:
    return re.sub(r"[\s()]+", " ", expression).strip().casefold()


# --- Project Gutenberg catalog rights statements -----------------------------------------------

_GUTENBERG_RIGHTS = {
    "public domain in the usa": NormalisedLicense(
        PUBLIC_DOMAIN, "Gutenberg rights statement: public domain in the USA per Project Gutenberg"
    ),
    "copyrighted. read the copyright notice inside this book for details": NormalisedLicense(
        COPYRIGHTED, "Gutenberg rights statement: copyrighted, terms only in the book's own notice"
    ),
}


# --- Creative Commons URLs and names ----------------------------------------------------------

_CC_ELEMENT_ORDER = ("BY", "NC", "ND", "SA")
_CC_URL = re.compile(r"^(?:https?:)?(?://)?(?:www\.)?creativecommons\.org/(?P<path>[^?#]*)", re.IGNORECASE)
_CC_VERSION = re.compile(r"^v?(\d+\.\d+)$")
_CC_PAGE = re.compile(r"^(?:legalcode|deed|rdf)(?:[.\-_].*)?$|^index\..*$", re.IGNORECASE)


def _cc_licence(elements: set[str], version: str, jurisdiction: str | None, source: str) -> NormalisedLicense | None:
    """SPDX id for a CC licence from its elements, version and port (two-letter code or IGO)."""
    if "ND" in elements and "SA" in elements:
        return None  # no such licence: NoDerivatives and ShareAlike exclude each other
    base = "CC-" + "-".join(e for e in _CC_ELEMENT_ORDER if e in elements) + f"-{version}"
    known = known_license_ids()
    if jurisdiction:
        ported = f"{base}-{jurisdiction.upper()}"
        if ported in known:
            return NormalisedLicense(ported, source)
        if base in known:
            return NormalisedLicense(
                base, f"{source}: SPDX has no id for the {jurisdiction.upper()} port; mapped to the unported licence"
            )
        return NormalisedLicense(f"LicenseRef-{ported}", f"{source}: SPDX has no id for this licence")
    if base in known:
        return NormalisedLicense(base, source)
    return NormalisedLicense(f"LicenseRef-{base}", f"{source}: SPDX has no id for this licence")


def _from_cc_url(raw: str) -> NormalisedLicense | None:
    match = _CC_URL.match(raw)
    if match is None:
        return None
    source = "Creative Commons URL"
    segments = [s for s in match.group("path").split("/") if s]
    while segments and _CC_PAGE.match(segments[-1]):
        segments.pop()  # deed.de, legalcode, legalcode.txt, rdf: the licence is the folder
    if len(segments) >= 2 and segments[0].casefold() == "publicdomain":
        kind = segments[1].casefold()
        if kind == "zero" and segments[2:3] == ["1.0"]:
            return NormalisedLicense("CC0-1.0", source)
        if kind == "mark":
            # The Public Domain Mark labels a work as already free of copyright; it is not a licence.
            return NormalisedLicense(PUBLIC_DOMAIN, f"{source}: Public Domain Mark")
        return None
    if len(segments) < 2 or segments[0].casefold() != "licenses":
        return None
    if segments[1].casefold() == "publicdomain":
        return NormalisedLicense("CC-PDDC", source)
    elements = {e.upper() for e in segments[1].split("-")}
    if not elements or not elements <= set(_CC_ELEMENT_ORDER) or len(segments) < 3:
        return None
    version = _CC_VERSION.match(segments[2])
    if version is None:
        return None
    jurisdiction = segments[3] if len(segments) >= 4 else None
    if jurisdiction is not None and not re.fullmatch(r"[A-Za-z]{2,3}", jurisdiction):
        return None
    return _cc_licence(elements, version.group(1), jurisdiction, source)


_CC_PHRASES = [
    (r"creative\s+commons", "cc"),
    (r"attribution", "by"),
    (r"non\s*commercial", "nc"),
    (r"no\s*deriv(?:ative)?s?", "nd"),
    (r"share\s*alike", "sa"),
    (r"public\s+domain\s+mark", "pdm"),
    (r"public\s+domain\s+dedication\s+and\s+certification", "pddc"),
    (r"england\s+(?:and|&)\s+wales", "uk"),
    (r"united\s+states", "us"),
]
_CC_JURISDICTIONS = {
    "germany": "DE", "austria": "AT", "australia": "AU", "netherlands": "NL", "france": "FR",
    "japan": "JP", "igo": "IGO", "de": "DE", "at": "AT", "au": "AU", "nl": "NL", "fr": "FR",
    "jp": "JP", "uk": "UK", "us": "US",
}  # fmt: skip
_CC_FILLER = {"license", "licence", "international", "unported", "generic", "universal", "public", "version", "the"}


def _from_cc_name(raw: str) -> NormalisedLicense | None:
    text = raw.casefold()
    for pattern, token in _CC_PHRASES:
        text = re.sub(rf"\b{pattern}\b", f" {token} ", text)
    tokens = re.sub(r"[\s,\-_/()]+", " ", text).split()
    if not tokens or tokens[0] not in ("cc", "cc0"):
        return None
    source = "Creative Commons name"
    elements: set[str] = set()
    version = jurisdiction = None
    special = "zero" if tokens[0] == "cc0" else None
    for token in tokens[1:]:
        if token in ("by", "nc", "nd", "sa"):
            elements.add(token.upper())
        elif token in ("zero", "cc0", "pdm", "pddc"):
            special = token
        elif (match := _CC_VERSION.match(token)) is not None:
            version = match.group(1)
        elif version is not None and token in _CC_JURISDICTIONS:
            jurisdiction = _CC_JURISDICTIONS[token]
        elif version is not None and jurisdiction is None and re.fullmatch(r"[a-z]{2}", token):
            jurisdiction = token.upper()  # a port's country code, as in CC's own "CC BY 3.0 ES"
        elif token not in _CC_FILLER:
            return None  # a word we do not understand: better unknown than wrong
    if special is not None:
        if elements:
            return None
        if special in ("zero", "cc0") and version in (None, "1.0"):
            return NormalisedLicense("CC0-1.0", source)
        if special == "pdm":
            return NormalisedLicense(PUBLIC_DOMAIN, f"{source}: Public Domain Mark")
        if special == "pddc":
            return NormalisedLicense("CC-PDDC", source)
        return None
    if not elements or version is None:
        return None  # "CC BY-SA" without a version does not name one licence
    return _cc_licence(elements, version, jurisdiction, source)


# --- other licence URLs -------------------------------------------------------------------------

_LICENCE_URLS = [
    (re.compile(r"^(?:https?://)?(?:www\.)?spdx\.org/licenses/([A-Za-z0-9.+\-]+?)(?:\.html|\.json)?/?$", re.I), None),
    (re.compile(r"^(?:https?://)?(?:www\.)?opensource\.org/licenses?/([A-Za-z0-9.+\-]+?)(?:\.php|\.html)?/?$", re.I), None),
    (re.compile(r"^(?:https?://)?(?:www\.)?apache\.org/licenses/LICENSE-2\.0(?:\.txt|\.html)?/?$", re.I), "Apache-2.0"),
    (re.compile(r"^(?:https?://)?(?:www\.)?gnu\.org/licenses/old-licenses/((?:a|l)?gpl|fdl)-(\d\.\d)(?:\.html|\.txt|\.en\.html)?$", re.I), "gnu"),
    (re.compile(r"^(?:https?://)?(?:www\.)?gnu\.org/licenses/((?:a|l)?gpl|fdl)-?(\d\.\d|\d)?(?:\.html|\.txt|\.en\.html)?$", re.I), "gnu"),
]  # fmt: skip


def _from_licence_url(raw: str) -> NormalisedLicense | None:
    for pattern, target in _LICENCE_URLS:
        match = pattern.match(raw)
        if match is None:
            continue
        if target is None:
            key = match.group(1)
            key = {"mit-license": "MIT", "bsd-license": "BSD-2-Clause"}.get(key.casefold(), key)
            found = _parse_spdx(key) or _from_alias(key)
            return NormalisedLicense(found.expression, "licence URL") if found else None
        if target == "gnu":
            family, version = match.group(1).casefold(), match.group(2)
            if version is None:
                return None  # the unversioned page is "the latest version": not one licence
            found = _gnu_licence(family, version, or_later=False)
            return NormalisedLicense(found, "licence URL") if found else None
        return NormalisedLicense(target, "licence URL")
    return None


# --- GNU licences by name (Debian short names, "GPLv2+", "GNU General Public License v3.0") --

_GNU_NAME = re.compile(
    r"^(?:gnu\s*)?"
    r"(?P<family>agpl|lgpl|gpl|gfdl|fdl|affero general public|lesser general public|library general public"
    r"|general public|free documentation)"
    r"(?:\s*license)?[\s,\-]*(?:version|ver\.?|v)?\s*(?P<version>\d(?:\.\d)?)"
    r"\s*(?P<later>\+|(?:-|\s)*or(?:\s+any)?[\s\-]*later(?:\s+version)?|-?only)?$",
    re.IGNORECASE,
)
_GNU_FAMILIES = {
    "agpl": "AGPL", "affero general public": "AGPL", "lgpl": "LGPL", "lesser general public": "LGPL",
    "library general public": "LGPL", "gpl": "GPL", "general public": "GPL", "gfdl": "GFDL",
    "fdl": "GFDL", "free documentation": "GFDL",
}  # fmt: skip


def _gnu_licence(family: str, version: str, or_later: bool) -> str | None:
    prefix = _GNU_FAMILIES[family.casefold()]
    if "." not in version:
        version = f"{version}.0"
    key = f"{prefix}-{version}-{'or-later' if or_later else 'only'}"
    return key if key in known_license_ids() else None


def _from_gnu_name(raw: str) -> NormalisedLicense | None:
    match = _GNU_NAME.match(raw.strip().rstrip("."))
    if match is None:
        return None
    later = match.group("later") or ""
    key = _gnu_licence(match.group("family"), match.group("version"), or_later="later" in later.casefold() or "+" in later)
    return NormalisedLicense(key, f"alias: {raw}") if key else None


# --- other common names -----------------------------------------------------------------------

_ALIASES = {
    PUBLIC_DOMAIN: ["public domain", "public-domain", "pd", "public domain worldwide", "publicdomain"],
    COPYRIGHTED: ["copyrighted", "all rights reserved", "(c) all rights reserved"],
    "MIT": ["mit", "mit license", "expat", "expat license", "mit/expat"],
    "Apache-2.0": ["apache 2", "apache 2.0", "apache2", "apache license 2.0", "apache license version 2.0",
                   "apache license v2.0", "apache software license 2.0", "asl 2.0", "alv2"],
    "BSD-2-Clause": ["bsd 2-clause", "bsd-2", "simplified bsd", "simplified bsd license", "freebsd license",
                     "bsd 2-clause simplified license"],
    "BSD-3-Clause": ["bsd 3-clause", "bsd-3", "new bsd", "new bsd license", "modified bsd license",
                     "revised bsd license", "bsd 3-clause new or revised license"],
    "ISC": ["isc license"],
    "Zlib": ["zlib license", "zlib/libpng license"],
    "PSF-2.0": ["psf", "psf license", "psf-2", "python software foundation license",
                "python software foundation license version 2"],
    "Unlicense": ["the unlicense", "unlicense"],
    "MPL-2.0": ["mpl 2", "mpl 2.0", "mozilla public license 2.0", "mozilla public license version 2.0"],
    "EPL-1.0": ["eclipse public license 1.0"],
    "EPL-2.0": ["epl 2", "eclipse public license 2.0", "eclipse public license version 2.0"],
    "BSL-1.0": ["boost software license 1.0", "boost license"],
    "ODbL-1.0": ["odbl", "open database license", "open data commons open database license"],
    "OGL-UK-3.0": ["open government licence v3.0", "open government licence version 3.0"],
    "WTFPL": ["do what the fuck you want to public license"],
}  # fmt: skip


def _alias_key(text: str) -> str:
    text = text.casefold().replace("licence", "license")
    text = re.sub(r"^the\s+", "", text)
    text = re.sub(r"[,;:()\"']+", " ", text)
    text = re.sub(r"\bversion\b", "version", text)
    return re.sub(r"\s+", " ", text).strip(" .")


_ALIAS_LOOKUP = {_alias_key(name): spdx for spdx, names in _ALIASES.items() for name in names}


def _from_alias(raw: str) -> NormalisedLicense | None:
    if raw.count("(") != raw.count(")"):
        return None  # a broken expression, not a name
    spdx = _ALIAS_LOOKUP.get(_alias_key(raw))
    if spdx is not None:
        return NormalisedLicense(spdx, f"alias: {raw}")
    # "Apache 2.0", "MPL 2.0", "EPL 1.0": an SPDX id spelled with spaces.
    hyphenated = re.sub(r"\s+", "-", raw.strip())
    if hyphenated != raw.strip() and re.fullmatch(r"[A-Za-z0-9.+\-]+", hyphenated):
        parsed = parse_expression(hyphenated)
        if parsed is not None and isinstance(parsed, BaseSymbol) and not is_license_ref(parsed.render()):
            return NormalisedLicense(parsed.render(), f"alias: {raw}")
    return None


# --- entry point ---------------------------------------------------------------------------------


@lru_cache(maxsize=8192)
def normalise_license(raw: str | None) -> NormalisedLicense | None:
    """The SPDX expression an upstream licence statement stands for, and how it was mapped.

    Tries, in order: Gutenberg rights statements, Creative Commons and other licence URLs,
    SPDX ids/expressions (any case; deprecated ids replaced by current ones), CC names,
    GNU licence names, common aliases. Returns None for None, blank or unrecognised text;
    never raises. Cached: upstreams repeat the same few statements millions of times.
    """
    if raw is None:
        return None
    text = re.sub(r"\s+", " ", raw).strip()
    if not text:
        return None
    gutenberg = _GUTENBERG_RIGHTS.get(text.casefold().rstrip(". "))
    if gutenberg is not None:
        return gutenberg
    if "://" in text or text.casefold().startswith(("www.", "creativecommons.org", "//")):
        return _from_cc_url(text) or _from_licence_url(text)
    return _parse_spdx(text) or _from_cc_name(text) or _from_gnu_name(text) or _from_alias(text)


__all__ = [
    "COPYRIGHTED",
    "PUBLIC_DOMAIN",
    "NormalisedLicense",
    "is_license_ref",
    "known_license_ids",
    "normalise_license",
    "parse_expression",
    "spdx_expression_problems",
    "spdx_licensing",
]
