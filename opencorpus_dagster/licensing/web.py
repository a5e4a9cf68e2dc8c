"""Licence signals in a web page, and the one licence the page is taken to carry.

`detect_page_licenses(html, page_url)` parses the page with lxml.html (which recovers from broken
markup) and collects every licence signal it finds, in document order:

- ``rel-license-link``: an ``<a>``, ``<link>`` or ``<area>`` whose ``rel`` tokens include
  ``license``. Its SPDX id comes from the ``href`` (a Creative Commons licence / public-domain
  tool URL, ``spdx.org/licenses/<id>``, a GNU licence page...); when the href names no licence
  (a site's own "licence" page), from the link's text or title naming a licence with its
  version, e.g. Wikipedia's "Creative Commons Attribution-ShareAlike License 4.0".
- ``cc-link``: any other ``<a>``/``<link>``/``<area>`` whose href (resolved against `page_url`,
  so a relative ``/licenses/by/4.0/`` on creativecommons.org counts) points at a Creative
  Commons licence or public-domain tool, including ported licences (``/licenses/by-sa/2.5/it/``)
  and archive-wrapped URLs (``web.archive.org/web/<ts>/http://creativecommons.org/...``).
- ``meta``: a ``<meta>`` (or ``<link>``/``<a>``) whose ``name``/``property``/``itemprop`` is a
  licence or rights field (``dc.rights``, ``dcterms.license``, ``license``, ``og:license``,
  ``cc:license``, ...), its ``content``/``href``/``resource`` read as a licence URL or name.
- ``json-ld``: a ``license`` key anywhere in a ``<script type="application/ld+json">`` block,
  whose value is a string, an object with ``url``/``@id``/``name``, or a list of those.

Licence URLs and names in scripts, comments or running text are not signals: they usually
describe an embedded library or image (a CSS framework's "Licence CC-BY" comment, a photo
credit), not the page.

Decision rule (the `rule` of the result):

1. If any ``rel="license"`` signal maps to an SPDX id, the page licence is that id
   (``rel-license``); if several ``rel="license"`` signals name different licences, the most
   restrictive of them (``rel-license-most-restrictive``).
2. Otherwise, if any other signal maps to an SPDX id, the most restrictive of those
   (``other-signal``, or ``other-signals-most-restrictive`` when they disagree).
3. Signals exist but none maps to an SPDX id: no licence (``unrecognised-licence-signal``).
4. No signal at all: no licence (``no-licence-signal``).

"Most restrictive" ranks an SPDX id by the strongest Creative Commons element it carries:

    ND (4)  >  NC (3)  >  SA (2)  >  BY (1)  >  CC0 / public domain (mark, PDDC) (0)

so CC-BY-NC-ND ranks 4, CC-BY-NC-SA 3, CC-BY-SA 2. Any other licence (not a CC licence, e.g.
``LicenseRef-Copyrighted``, MIT) ranks 5: its restrictions are not on this scale, so it is
never traded for a CC licence; the licence policy judges it. Between
equally restrictive licences the one signalled most often wins (a site footer repeats its
licence), then the first in document order. Every signal is returned as evidence, whichever
rule decided.

URLs and names map to SPDX through `opencorpus_dagster.licensing.spdx.normalise_license`: a
ported CC licence maps to its SPDX id when SPDX lists the port (``CC-BY-SA-3.0-DE``), otherwise
to the unported id (``/licenses/by-sa/3.0/us/`` -> ``CC-BY-SA-3.0``; the port stays visible in
the signal's `raw` href); the Public Domain Mark maps to ``LicenseRef-PublicDomain``; "All rights
reserved" in a rights field maps to ``LicenseRef-Copyrighted`` (rank 5, so it wins).
"""

from __future__ import annotations

import json
import re
from collections import Counter
from dataclasses import dataclass, field
from typing import Any, Iterator
from urllib.parse import urljoin

import lxml.etree
import lxml.html

from opencorpus_dagster.licensing.spdx import PUBLIC_DOMAIN, normalise_license

SIGNAL_KINDS = ("rel-license-link", "cc-link", "meta", "json-ld")

RULE_REL_LICENSE = "rel-license"
RULE_REL_LICENSE_MOST_RESTRICTIVE = "rel-license-most-restrictive"
RULE_OTHER_SIGNAL = "other-signal"
RULE_OTHER_SIGNALS_MOST_RESTRICTIVE = "other-signals-most-restrictive"
RULE_UNRECOGNISED = "unrecognised-licence-signal"
RULE_NO_SIGNAL = "no-licence-signal"


@dataclass(frozen=True)
class LicenseSignal:
    """One piece of licence evidence found in a page.

    `kind` is one of `SIGNAL_KINDS`; `spdx` the SPDX id it maps to (None when it names no
    licence we recognise); `raw` the href or content as written in the page; `location` where
    it was found, e.g. ``a[rel=license]``, ``link[href]``, ``meta[name=dc.rights]``.
    """

    kind: str
    spdx: str | None
    raw: str
    location: str


@dataclass
class PageLicense:
    """The licence a page is taken to carry (None if none), the rule that chose it, all signals."""

    license: str | None
    rule: str
    signals: list[LicenseSignal] = field(default_factory=list)

    @property
    def evidence(self) -> str:
        """One line for `Document.license_evidence`: the rule and the signal(s) that decided."""
        if self.license is None:
            return self.rule
        from_rel = self.rule in (RULE_REL_LICENSE, RULE_REL_LICENSE_MOST_RESTRICTIVE)
        first = next(
            s
            for s in self.signals
            if s.spdx == self.license and (s.kind == "rel-license-link") == from_rel
        )
        return f"{self.rule}: {first.location} {first.raw}"


def detect_page_licenses(html: str | bytes, page_url: str | None = None) -> PageLicense:
    """Collect the licence signals of one HTML page and decide its licence (see module doc).

    `html` is the page as bytes (lxml sniffs the ``<meta charset>``) or text; `page_url` is used
    to resolve relative hrefs. Never raises on bad markup: an empty or unparseable page has no
    signals (rule ``no-licence-signal``).
    """
    root = _parse_html(html)
    if root is None:
        return PageLicense(None, RULE_NO_SIGNAL, [])
    signals = list(_collect_signals(root, page_url))
    return _decide(signals)


# --- parsing ---------------------------------------------------------------------------------


def _parse_html(html: str | bytes) -> lxml.html.HtmlElement | None:
    if isinstance(html, str):
        # lxml refuses str input that carries an XML encoding declaration; bytes are fine.
        html = html.encode("utf-8")
        parser = lxml.html.HTMLParser(encoding="utf-8")
    else:
        parser = None
    if not html.strip():
        return None
    try:
        return lxml.html.document_fromstring(html, parser=parser)
    except (lxml.etree.ParserError, ValueError):
        return None


_LINK_TAGS = {"a", "link", "area"}
_RIGHTS_FIELDS = {
    "license",
    "licence",
    "rights",
    "dc.rights",
    "dc.license",
    "dc.rights.license",
    "dcterms.rights",
    "dcterms.license",
    "dc:rights",
    "dc:license",
    "dcterms:rights",
    "dcterms:license",
    "dct:license",
    "dct:rights",
    "og:license",
    "cc:license",
    "schema:license",
    "xhv:license",
}


def _collect_signals(root: lxml.html.HtmlElement, page_url: str | None) -> Iterator[LicenseSignal]:
    for element in root.iter("a", "link", "area", "meta", "script"):
        tag = element.tag
        if tag in _LINK_TAGS:
            signal = _link_signal(element, tag, page_url)
            if signal is not None:
                yield signal
                continue
        if tag == "script":
            if (element.get("type") or "").strip().lower() == "application/ld+json":
                yield from _json_ld_signals(element.text or "")
            continue
        yield from _rights_field_signals(element, tag, page_url)


def _link_signal(element: Any, tag: str, page_url: str | None) -> LicenseSignal | None:
    href = (element.get("href") or "").strip()
    rel_tokens = (element.get("rel") or "").lower().split()
    if "license" in rel_tokens:
        spdx = _spdx_from_url(_absolute(href, page_url))
        if spdx is None:
            # A rel=license link to the site's own licence page: its text may still name
            # the licence with its version (Wikipedia's footer does).
            spdx = _spdx_from_licence_name(element.text_content() or "") or _spdx_from_licence_name(
                element.get("title") or ""
            )
        return LicenseSignal("rel-license-link", spdx, href, f"{tag}[rel=license]")
    if href and _CC_URL.search(_absolute(href, page_url)):
        return LicenseSignal("cc-link", _spdx_from_url(_absolute(href, page_url)), href, f"{tag}[href]")
    return None


def _rights_field_signals(element: Any, tag: str, page_url: str | None) -> Iterator[LicenseSignal]:
    for attribute in ("name", "property", "itemprop"):
        field_name = (element.get(attribute) or "").strip().lower()
        if field_name not in _RIGHTS_FIELDS:
            continue
        value = element.get("content") or element.get("href") or element.get("resource")
        if value is None or not value.strip():
            return
        value = value.strip()
        spdx = _spdx_from_url(_absolute(value, page_url)) or _spdx_from_licence_name(value)
        yield LicenseSignal("meta", spdx, value, f"{tag}[{attribute}={field_name}]")
        return


def _json_ld_signals(text: str) -> Iterator[LicenseSignal]:
    text = text.strip()
    # Some CMSs wrap JSON-LD in CDATA or HTML comment markers.
    for marker in ("<![CDATA[", "]]>", "<!--", "-->"):
        text = text.replace(marker, "")
    try:
        data = json.loads(text)
    except ValueError:
        return
    for value in _json_ld_license_values(data):
        spdx = _spdx_from_url(value) or _spdx_from_licence_name(value)
        yield LicenseSignal("json-ld", spdx, value, "script[type=application/ld+json]")


def _json_ld_license_values(node: Any) -> Iterator[str]:
    if isinstance(node, list):
        for item in node:
            yield from _json_ld_license_values(item)
    elif isinstance(node, dict):
        for key, value in node.items():
            if isinstance(key, str) and key.rsplit(":", 1)[-1].lower() == "license":
                yield from _json_ld_licence_strings(value)
            else:
                yield from _json_ld_license_values(value)


def _json_ld_licence_strings(value: Any) -> Iterator[str]:
    if isinstance(value, str):
        if value.strip():
            yield value.strip()
    elif isinstance(value, list):
        for item in value:
            yield from _json_ld_licence_strings(item)
    elif isinstance(value, dict):
        for key in ("url", "@id", "id", "name"):
            if isinstance(value.get(key), str) and value[key].strip():
                yield value[key].strip()
                return


def _absolute(href: str, page_url: str | None) -> str:
    if page_url and href and "://" not in href[:12]:
        try:
            return urljoin(page_url, href)
        except ValueError:
            return href
    return href


# --- decision --------------------------------------------------------------------------------


def _decide(signals: list[LicenseSignal]) -> PageLicense:
    rel = [s.spdx for s in signals if s.kind == "rel-license-link" and s.spdx]
    if rel:
        chosen = _most_restrictive(rel)
        rule = RULE_REL_LICENSE if len(set(rel)) == 1 else RULE_REL_LICENSE_MOST_RESTRICTIVE
        return PageLicense(chosen, rule, signals)
    other = [s.spdx for s in signals if s.kind != "rel-license-link" and s.spdx]
    if other:
        chosen = _most_restrictive(other)
        rule = RULE_OTHER_SIGNAL if len(set(other)) == 1 else RULE_OTHER_SIGNALS_MOST_RESTRICTIVE
        return PageLicense(chosen, rule, signals)
    if signals:
        return PageLicense(None, RULE_UNRECOGNISED, signals)
    return PageLicense(None, RULE_NO_SIGNAL, signals)


def restrictiveness(spdx_id: str) -> int:
    """Rank of an SPDX id: ND 4 > NC 3 > SA 2 > BY 1 > CC0/public domain 0; anything else 5."""
    upper = spdx_id.upper()
    if upper in ("CC0-1.0", "CC-PDM-1.0", "CC-PDDC", PUBLIC_DOMAIN.upper()):
        return 0
    cc = re.fullmatch(r"(?:LICENSEREF-)?CC-((?:BY|NC|ND|SA)(?:-(?:BY|NC|ND|SA))*)-\d\.\d(?:-[A-Z]+)?", upper)
    if cc is None:
        return 5
    elements = set(cc.group(1).split("-"))
    for rank, element in ((4, "ND"), (3, "NC"), (2, "SA"), (1, "BY")):
        if element in elements:
            return rank
    return 5


def _most_restrictive(ids: list[str]) -> str:
    counts = Counter(ids)
    first_seen = {spdx: i for i, spdx in reversed(list(enumerate(ids)))}
    return max(counts, key=lambda spdx: (restrictiveness(spdx), counts[spdx], -first_seen[spdx]))


# --- licence URL / name -> SPDX (licensing/spdx.py) -------------------------------------------

# A link counts as a `cc-link` when a CC licence or public-domain tool URL appears anywhere in its
# href, so archive-wrapped links (web.archive.org/web/<ts>/http://creativecommons.org/...) count.
_CC_URL = re.compile(r"\bcreativecommons\.org/(?:licenses|publicdomain)/", re.IGNORECASE)
_LONGEST_LICENCE_NAME = 200  # longer text is a sentence or paragraph, not a licence name


def _spdx_from_url(url: str) -> str | None:
    """SPDX id for a licence URL (CC licence / public-domain tool, spdx.org, gnu.org, ...)."""
    match = _CC_URL.search(url)
    if match is not None:
        url = "https://" + url[match.start() :]
    elif "://" not in url:
        return None
    normalised = normalise_license(url)
    return normalised.expression if normalised is not None else None


def _spdx_from_licence_name(text: str) -> str | None:
    """SPDX id for a licence named in words ("Creative Commons Attribution-ShareAlike License
    4.0", "CC BY-NC-ND 3.0 DE", "CC0 1.0"); a name without a version names no licence."""
    text = " ".join(text.split())
    if not text or len(text) > _LONGEST_LICENCE_NAME:
        return None
    normalised = normalise_license(text)
    return normalised.expression if normalised is not None else None
