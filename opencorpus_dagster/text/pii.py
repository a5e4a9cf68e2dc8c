"""Regex-based PII redaction: e-mail addresses, IP addresses, phone numbers, payment cards, IBANs.

No model, nothing downloaded. Each kind is one pattern plus, where a pattern alone would be too
loose, a check on the match (Luhn for cards, mod-97 for IBANs, `ipaddress` for IPs). Precision
is preferred to recall: a corpus loses little from a missed phone number in a forum post and a
lot from years, ISBNs, prices and version numbers turned into `<PHONE>`.

What each kind matches (and deliberately does not):

- `email` -> `<EMAIL>`: `local@domain.tld` with an alphabetic TLD of 2-24 letters.
- `ip_address` -> `<IP_ADDRESS>`: dotted-quad IPv4 with octets 0-255 and IPv6 (full or `::`
  compressed, at least three groups and a digit, checked by `ipaddress`). Not redacted: part of a
  longer dotted run (`27:1.0.1.1.5.8.41.1` in a URL), preceded by "version"/"v" (`v1.2.3.4`), and
  addresses that identify nobody: private, loopback, link-local, multicast, reserved and
  documentation ranges (`192.168.0.1`, `127.0.0.1`, `192.0.2.1`, `2001:db8::1`), i.e. only
  `ipaddress`'s `is_global`, non-multicast addresses are redacted. Also kept: quads of single
  digits (`1.5.0.9`, mostly versions; the public ones are resolvers like `8.8.8.8`), numbered
  headings (`12.6.2.1.` at a line start, `Section 6.2.4.3`). `1.2.3` is not an address.
- `phone` -> `<PHONE>`: international numbers written with a leading `+` and country code
  (8-15 digits in all, E.164's maximum), and NANP numbers with separators, `(212) 555-0123`,
  `212-555-0123`, `1-800-555-0123` (area code and exchange start with 2-9). Not matched: bare
  digit runs (years, page numbers, postcodes, ISBNs, dates), and national formats without `+`
  outside NANP (e.g. French `03 87 63 83 41`), which collide with tables of numbers.
- `credit_card` -> `<CREDIT_CARD>`: 13-19 digits, optionally in space/dash groups, with a Visa,
  Mastercard, Amex, Discover, JCB or Diners prefix and a valid Luhn checksum.
- `iban` -> `<IBAN>`: country code, check digits, 11-30 alphanumerics (optionally in groups of
  four), total length 15-34, valid ISO 13616 mod-97 checksum.
"""

from __future__ import annotations

import ipaddress
import re
from collections.abc import Callable, Iterable, Iterator
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field

from opencorpus_dagster.records import Document, Drop

PiiKind = Literal["email", "iban", "credit_card", "ip_address", "phone"]
# Application order matters: e-mails first (their domains contain dots and digits), then the
# checksummed kinds, then IPs, then phones (the loosest pattern, so it sees the fewest digits).
PII_KINDS: tuple[PiiKind, ...] = ("email", "iban", "credit_card", "ip_address", "phone")

PLACEHOLDERS: dict[str, str] = {
    "email": "<EMAIL>",
    "iban": "<IBAN>",
    "credit_card": "<CREDIT_CARD>",
    "ip_address": "<IP_ADDRESS>",
    "phone": "<PHONE>",
}

_EMAIL = re.compile(
    r"(?<![\w.+%-])[A-Za-z0-9](?:[A-Za-z0-9._%+-]{0,62}[A-Za-z0-9_%+-])?"
    r"@(?:[A-Za-z0-9](?:[A-Za-z0-9-]{0,61}[A-Za-z0-9])?\.)+[A-Za-z]{2,24}(?![\w-])"
)

_OCTET = r"(?:25[0-5]|2[0-4]\d|1\d\d|[1-9]?\d)"
# Not inside a longer dotted run: no word char or dot before, no word char or ".<alnum>" after.
_IPV4 = re.compile(rf"(?<![\w.]){_OCTET}(?:\.{_OCTET}){{3}}(?!\w|\.\w)")
_IPV6 = re.compile(
    r"(?<![\w:.])(?:[0-9A-Fa-f]{1,4}:|:){1,7}(?::|:?[0-9A-Fa-f]{1,4})"
    rf"(?:\.{_OCTET}){{0,3}}(?![\w:]|\.\w)"
)
# Dotted quads that are version or section numbers, not addresses, by what precedes them.
_NOT_ADDRESS_BEFORE = re.compile(
    r"(?i)(?:\bv|\bversion|\bver\.?|\brelease|\brev\.?|\bsection|\bchapter|\bsec\.|§)\s*$"
)

# Speed: Python's `re` tries a pattern at every position unless the pattern starts with a
# literal or a character class, which it then finds with a C scan. So the patterns below
# consume their first character before the "not preceded by" lookbehind: `\d(?<![\w-]\d)` is
# `(?<![\w-])\d`, two to fifty times faster on prose (tests/test_pii.py checks both forms find
# the same matches). Those that start with a common character (e-mail, IP addresses) are only
# run near the character every match holds (`_near`).

# +CC then up to 6 groups of digits separated by a space, dot or dash, the first group
# possibly in parentheses: +352 26203652, +44 (0)20 7946 0000, +1-202-555-0173.
_PHONE_INTL = re.compile(r"\+(?<![\w+]\+)[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){1,6}(?![\w+]|[.-]\d)")
# NANP with mandatory separators: (212) 555-0123, 212-555-0123, 212.555.0123, 1-800-555-0123.
# The first character decides the branch: "1" (country code), "(" or an area code digit.
_PHONE_NANP = re.compile(
    r"[(1-9](?<![\w+.-][(1-9])"
    r"(?:(?<=1)[ .-](?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])|(?<=\()[2-9]\d{2}\) ?|(?<=[2-9])\d{2}[ .-])"
    r"[2-9]\d{2}[.-]\d{4}(?![\w-]|\.\d)"
)

_CARD = re.compile(r"\d(?<![\w-]\d)(?:[ -]?\d){12,18}(?![\w-])")
_CARD_PREFIX = re.compile(r"4|5[1-5]|2[2-7]|3[47]|6011|65|64[4-9]|35|30[0-5]|36|38")

_IBAN = re.compile(r"[A-Z](?<![\w-][A-Z])[A-Z]\d{2}(?: ?[A-Z0-9]){11,30}(?![\w-])")

_SPACE = re.compile(r"\s")
# A window scanned around an anchor runs to the first whitespace at least this many characters
# past it, so that dense anchors (a table of decimal numbers) share windows instead of each
# paying a window of its own.
_WINDOW = 64


def _near(pattern: re.Pattern[str], anchor: str, reach: int) -> Callable[[str], Iterator[re.Match[str]]]:
    """`pattern.finditer`, for a pattern whose matches hold no whitespace and a match of `anchor`
    at most `reach` characters after their start: only windows of the text around anchors are
    scanned. The same matches: a window ends at a whitespace (which no match holds and every
    lookahead here treats as it treats the end of the text) and starts `reach` before its first
    anchor (lookbehinds see the text before that)."""
    anchor_pattern = re.compile(anchor)

    def finditer(text: str) -> Iterator[re.Match[str]]:
        pos = 0
        while (found := anchor_pattern.search(text, pos)) is not None:
            space = _SPACE.search(text, found.end() + _WINDOW)
            end = space.start() if space is not None else len(text)
            yield from pattern.finditer(text, max(pos, found.start() - reach), end)
            pos = end

    return finditer


def _luhn_ok(digits: str) -> bool:
    total = 0
    for i, ch in enumerate(reversed(digits)):
        d = int(ch)
        if i % 2:
            d = d * 2 - 9 if d > 4 else d * 2
        total += d
    return total % 10 == 0


def _redact_card(match: re.Match[str]) -> bool:
    raw = match.group()
    digits = re.sub(r"[ -]", "", raw)
    separators = set(re.findall(r"[ -]", raw))
    return (
        13 <= len(digits) <= 19
        and len(separators) <= 1  # one consistent separator, as cards are printed
        and _CARD_PREFIX.match(digits) is not None
        and _luhn_ok(digits)
    )


def _redact_iban(match: re.Match[str]) -> bool:
    compact = match.group().replace(" ", "")
    if not 15 <= len(compact) <= 34:
        return False
    rearranged = compact[4:] + compact[:4]
    number = "".join(str(int(ch, 36)) for ch in rearranged)
    return int(number) % 97 == 1


def _redact_ip(match: re.Match[str]) -> bool:
    candidate = match.group()
    if ":" in candidate:
        groups = [g for g in candidate.split(":") if g]
        if len(groups) < 3 or not any(ch.isdigit() for ch in candidate):
            return False
    try:
        address = ipaddress.ip_address(candidate)
    except ValueError:
        return False
    if not address.is_global or address.is_multicast:
        return False
    if address.version == 4:
        octets = candidate.split(".")
        # 1.5.0.9, 6.2.4.1: versions and section numbers; the few public addresses of this
        # shape are well-known resolvers (1.1.1.1, 8.8.8.8, 9.9.9.9), which identify nobody.
        if all(len(octet) == 1 for octet in octets):
            return False
        text = match.string
        line_start = text.rfind("\n", 0, match.start()) + 1
        # "12.6.2.1. Compile and install": a numbered heading at the start of a line.
        if not text[line_start : match.start()].strip() and text[match.end() : match.end() + 1] == ".":
            return False
    before = match.string[max(0, match.start() - 12) : match.start()]
    return _NOT_ADDRESS_BEFORE.search(before) is None


def _redact_phone(match: re.Match[str]) -> bool:
    digits = sum(ch.isdigit() for ch in match.group())
    return 8 <= digits <= 15


def _always(match: re.Match[str]) -> bool:
    return True


_Finder = Callable[[str], Iterator[re.Match[str]]]
_Accept = Callable[[re.Match[str]], bool]

_MATCHERS: dict[str, tuple[tuple[re.Pattern[str], _Finder, _Accept], ...]] = {
    # Reach: an e-mail's "@" comes after a local part of at most 64 characters; an IPv4
    # address's first "digit.digit" starts after at most 2 more digits of its first octet; an
    # IPv6 address's first colon after at most 4 hex digits.
    "email": ((_EMAIL, _near(_EMAIL, "@", 64), _always),),
    "iban": ((_IBAN, _IBAN.finditer, _redact_iban),),
    "credit_card": ((_CARD, _CARD.finditer, _redact_card),),
    "ip_address": ((_IPV4, _near(_IPV4, r"\d\.\d", 2), _redact_ip), (_IPV6, _near(_IPV6, ":", 4), _redact_ip)),
    "phone": ((_PHONE_INTL, _PHONE_INTL.finditer, _redact_phone), (_PHONE_NANP, _PHONE_NANP.finditer, _redact_phone)),
}


_IBAN_START = re.compile(r"[A-Z]{2}\d\d")
_DIGITS = "0123456789"


def _could_match(pattern: re.Pattern[str], text: str, digits: int) -> bool:
    """False when no match of `pattern` in `text` could pass its check: a necessary condition
    (a character every accepted match holds, or its least number of digits) tested with C
    string scans, so most documents skip most patterns without running them."""
    if pattern is _EMAIL:
        return "@" in text
    if pattern is _IBAN:
        return digits >= 2 and _IBAN_START.search(text) is not None
    if pattern is _CARD:
        return digits >= 13
    if pattern is _IPV4:
        return digits >= 4 and "." in text
    if pattern is _IPV6:
        return digits >= 1 and ":" in text
    if pattern is _PHONE_INTL:
        return digits >= 8 and "+" in text
    if pattern is _PHONE_NANP:
        return digits >= 10
    return True


def redact_pii(text: str, kinds: tuple[str, ...] | list[str] = PII_KINDS) -> tuple[str, dict[str, int]]:
    """(`text` with every detected PII span of `kinds` replaced by its placeholder, count of
    replacements per kind; kinds with no match are absent). Never raises."""
    counts: dict[str, int] = {}
    # Placeholders hold no digit, so the count taken before any replacement bounds every later one.
    digits = sum(map(text.count, _DIGITS))
    for kind in PII_KINDS:
        if kind not in kinds:
            continue
        placeholder = PLACEHOLDERS[kind]
        for pattern, finditer, accept in _MATCHERS[kind]:
            if not _could_match(pattern, text, digits):
                continue
            text, n = _substitute(text, finditer(text), accept, placeholder)
            if n:
                counts[kind] = counts.get(kind, 0) + n
    return text, counts


def _substitute(text: str, matches: Iterable[re.Match[str]], accept: _Accept, placeholder: str) -> tuple[str, int]:
    """(`text` with the accepted `matches` replaced by `placeholder`, how many), as
    `pattern.sub` with a function that returns rejected matches unchanged."""
    pieces: list[str] = []
    last = 0
    for match in matches:
        if accept(match):
            pieces += (text[last : match.start()], placeholder)
            last = match.end()
    if not pieces:
        return text, 0
    pieces.append(text[last:])
    return "".join(pieces), len(pieces) // 2


class PiiConfig(BaseModel):
    """`filters.pii` in a source's catalog YAML."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    kinds: list[PiiKind] = Field(default_factory=lambda: list(PII_KINDS))


class RedactPii:
    """Step: replace PII in `doc.text` with placeholders; counts in `doc.metadata["pii"]`.

    `doc.metadata["pii"]` is `{kind: n}` for the kinds found (empty dict when none). Never drops.
    """

    name = "pii"  # the step name in decisions and run metadata

    def __init__(self, config: PiiConfig | None = None) -> None:
        self.config = config or PiiConfig()
        self._kinds = tuple(self.config.kinds)

    def __call__(self, doc: Document) -> Document | Drop:
        doc.text, doc.metadata["pii"] = redact_pii(doc.text, self._kinds)
        return doc
