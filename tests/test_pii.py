"""PII redaction on real text: Stack Exchange post bodies, the Debian Reference, Python docs."""

from __future__ import annotations

import gzip
import random
import re
from functools import cache

import pytest
from conftest import require_fixture
from lxml import etree, html

from opencorpus_dagster.records import Document
from opencorpus_dagster.text import pii
from opencorpus_dagster.text.pii import PII_KINDS, PLACEHOLDERS, PiiConfig, RedactPii, redact_pii


@cache
def beer_posts() -> dict[str, str]:
    """Post id -> body as plain text, parsed without entity expansion."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    path = require_fixture("stackexchange/beer.stackexchange.com-2017-03/Posts.xml.gz")
    with gzip.open(path) as f:
        root = etree.parse(f, parser).getroot()
    return {
        row.get("Id"): html.fromstring(row.get("Body")).text_content()
        for row in root.iter("row")
        if (row.get("Body") or "").strip()
    }


@cache
def debian_reference() -> str:
    path = require_fixture("debian/debian-reference-en/debian-reference.en.txt.gz")
    return gzip.open(path, "rt", encoding="utf-8").read()


def excerpt(text: str, start: str, end: str) -> str:
    """From the first `start` through the next `end`, inclusive."""
    i = text.index(start)
    return text[i : text.index(end, i + len(start)) + len(end)]


def make_doc(text: str) -> Document:
    return Document(
        doc_id="d", source="fixture", source_record_id="r", upstream_uri="u", url=None,
        title=None, text=text, language="en", license=None, license_evidence=None,
        attribution=None,
    )


def test_brewery_list_post_redacted_exactly():
    # beer.stackexchange post 4528: brewery addresses with e-mails and Luxembourg phone numbers.
    text, counts = redact_pii(beer_posts()["4528"])
    assert counts == {"email": 2, "phone": 2}
    assert excerpt(text, "Walsheimer Sudhaus", "<EMAIL>") == (
        "Walsheimer Sudhaus Microbrewery\nwalsheimer-sudhaus.de\nFacebook: walsheimbrauerei\n<EMAIL>"
    )
    assert excerpt(text, "Brasserie Bofferding", "Homepage") == (
        "Brasserie Bofferding \nBd J.F. Kennedy 2,\n4901 Bascharage.\nEmail: <EMAIL>\nHomepage"
    )
    assert excerpt(text, "Go Ten Café", "goten.lu") == (
        "Go Ten Café\nType: Bar (6 taps, 8 bottles)\n10, rue du Marché-aux-Herbes\n"
        "Luxembourg, Luxembourg L-1728   \n<PHONE>\nwww.goten.lu"
    )
    assert excerpt(text, "15 - 17, rue Munster", "www.liquid") == (
        "15 - 17, rue Munster, Grund\nLuxembourg, Luxembourg\n<PHONE>\nwww.liquid"
    )
    # Postcodes, house numbers and quantities in the same post are not phone numbers.
    for kept in ("66123 Saarbrücken.", "Landstraße 3-9,", "Annual production: 23,000 hl",
                 "Jury, France 57245", "http://www.bofferding.lu/"):
        assert kept in text


@pytest.mark.parametrize(
    ("source", "start", "end", "expected", "counts"),
    [
        # Real public addresses in ping output are redacted (IPv4 and IPv6).
        ("debref", "PING  (", "(1500)", "PING  (<IP_ADDRESS>) 1472(1500)", {"ip_address": 1}),
        ("debref", "from mirror-csail.debian.org (", "icmp_seq=1",
         "from mirror-csail.debian.org (<IP_ADDRESS>): icmp_seq=1", {"ip_address": 1}),
        # Numbered headings and multicast addresses are not personal.
        ("debref", "6.2.4.1.", "exim4", "6.2.4.1.\xa0The configuration of exim4", {}),
        ("debref", "link-local multicast address", '251"',
         'link-local multicast address "224.0.0.251"', {}),
        # A URL whose query holds a dotted run longer than an IPv4 address (post 468).
        ("se:468", "node=27:", "div8", "node=27:1.0.1.1.5.8.41.1&rgn=div8", {}),
    ],
)
def test_ip_addresses(source, start, end, expected, counts):
    text = debian_reference() if source == "debref" else beer_posts()[source.split(":")[1]]
    piece = excerpt(text, start, end)
    redacted, found = redact_pii(piece)
    assert (redacted, found) == (expected, counts)


@pytest.mark.parametrize(
    ("text", "expected", "counts"),
    [
        # Python's re docs (re.rst.txt) example phone book: NANP with dots.
        ("Ross McFluff: 834.345.1254 155 Elm Street", "Ross McFluff: <PHONE> 155 Elm Street",
         {"phone": 1}),
        ("call (212) 555-0123 or 1-800-555-0199", "call <PHONE> or <PHONE>", {"phone": 2}),
        ("+44 20 7946 0958", "<PHONE>", {"phone": 1}),
        # Not phones: years, ISBN, date stamps, page ranges, time-zone offsets, format specs.
        ("brewed since 1516, reprinted 1913", "brewed since 1516, reprinted 1913", {}),
        ("ISBN 978-0-306-40615-7", "ISBN 978-0-306-40615-7", {}),
        ("ct-ptb-dark-lord-day-st-0327-20150328-story.html",
         "ct-ptb-dark-lord-day-st-0327-20150328-story.html", {}),
        ("pp. 123-456", "pp. 123-456", {}),
        ("Sat, 23 Aug 2003 08:30:15 +0200", "Sat, 23 Aug 2003 08:30:15 +0200", {}),
        ("in the form '+000000120'.", "in the form '+000000120'.", {}),
        # Versions and private addresses are not IPs; 1.2.3 is not even a candidate.
        ("Thunderbird 1.5.0.9 (X11/20061227)", "Thunderbird 1.5.0.9 (X11/20061227)", {}),
        ("version 10.2.30.4", "version 10.2.30.4", {}),
        ("ssh 192.168.1.20 or 127.0.0.1, release 1.2.3", "ssh 192.168.1.20 or 127.0.0.1, release 1.2.3", {}),
        ("host has address 123.234.123.89", "host has address <IP_ADDRESS>", {"ip_address": 1}),
        # Cards need a known prefix and a Luhn checksum; IBANs their mod-97 checksum.
        ("card 4111 1111 1111 1111 expires", "card <CREDIT_CARD> expires", {"credit_card": 1}),
        ("card 4111 1111 1111 1112 expires", "card 4111 1111 1111 1112 expires", {}),
        ("0.37444887175646646", "0.37444887175646646", {}),
        ("IBAN GB82 WEST 1234 5698 7654 32.", "IBAN <IBAN>.", {"iban": 1}),
        ("IBAN GB82 WEST 1234 5698 7654 33.", "IBAN GB82 WEST 1234 5698 7654 33.", {}),
        ("mail tjh@cryptsoft.com.", "mail <EMAIL>.", {"email": 1}),
    ],
)
def test_patterns(text, expected, counts):
    assert redact_pii(text) == (expected, counts)


def test_kinds_select_what_is_redacted():
    post = beer_posts()["4528"]
    doc = RedactPii(PiiConfig(kinds=["email"]))(make_doc(post))
    assert doc.metadata["pii"] == {"email": 2}
    assert "+352 26203652" in doc.text
    assert "info@walsheim-brauerei.de" not in doc.text


def test_step_records_empty_counts_when_clean():
    doc = RedactPii()(make_doc(beer_posts()["1"]))
    assert doc.metadata["pii"] == {}
    assert doc.text == beer_posts()["1"]


def test_unknown_kind_is_a_config_error():
    with pytest.raises(ValueError):
        PiiConfig(kinds=["ssn"])


# Each pattern as it reads most plainly, the "not preceded by" lookbehind first, run over the
# whole text by `re.sub`: what redact_pii's faster forms and anchored scans must reproduce.
PLAIN_PATTERNS = {
    "_PHONE_INTL": r"(?<![\w+])\+[1-9]\d{0,2}(?:[ .-]?\(?\d{1,5}\)?){1,6}(?![\w+]|[.-]\d)",
    "_PHONE_NANP": r"(?<![\w+.-])(?:1[ .-])?(?:\([2-9]\d{2}\) ?|[2-9]\d{2}[ .-])[2-9]\d{2}[.-]\d{4}(?![\w-]|\.\d)",
    "_CARD": r"(?<![\w-])\d(?:[ -]?\d){12,18}(?![\w-])",
    "_IBAN": r"(?<![\w-])[A-Z]{2}\d{2}(?: ?[A-Z0-9]){11,30}(?![\w-])",
}


def plainly_redacted(text: str) -> tuple[str, dict[str, int]]:
    plain = {getattr(pii, name): re.compile(pattern) for name, pattern in PLAIN_PATTERNS.items()}
    counts: dict[str, int] = {}
    for kind in PII_KINDS:
        for pattern, _finditer, accept in pii._MATCHERS[kind]:
            accepted = [match for match in plain.get(pattern, pattern).finditer(text) if accept(match)]
            text = plain.get(pattern, pattern).sub(lambda m, kind=kind: PLACEHOLDERS[kind] if accept(m) else m.group(), text)
            if accepted:
                counts[kind] = counts.get(kind, 0) + len(accepted)
    return text, counts


# Pieces that make and break every kind: digits around the octet and area-code limits,
# separators, the anchors (@ . : + parentheses), letters before and after (ASCII, accented,
# underscore), and kinds of whitespace the anchored scans stop at.
PIECES = [
    "1", "2", "07", "23", "199", "255", "256", "8", "555", "0123", "4111", "1111", "5698", "7654",
    ".", ".", "-", "-", " ", " ", "\n", "\t", "\xa0", "\u2028", "(", ")", "+", "+44", "@", ":", "::",
    "a", "Z", "é", "_", "%", "GB82", "WEST", "x.org", "mail", "v", "version ", "section ",
    "2001:db8", "fe80", "abcd", "8.8.8.8", "93.184.216.34", "tjh@cryptsoft.com", "212", "1-800",
    "GB82 WEST 1234 5698 7654 32", "4111 1111 1111 1111",
]


def candidate(rng: random.Random) -> str:
    """Something shaped like one kind of PII, sometimes broken: the string each kind's pattern
    and anchored scan must agree on, at any length its parts can have."""
    digits = lambda n: "".join(rng.choices("0123456789", k=n))  # noqa: E731
    hexes = lambda n: "".join(rng.choices("0123456789abcdefABCDEF", k=n))  # noqa: E731
    kind = rng.randrange(5)
    if kind == 0:
        return ".".join(str(rng.choice([rng.randint(0, 9), rng.randint(10, 99), rng.randint(100, 255), 256])) for _ in range(rng.choice([3, 4, 4, 4, 5])))
    if kind == 1:
        return rng.choice([":", "::"]).join(hexes(rng.randint(1, 4)) for _ in range(rng.randint(2, 8)))
    if kind == 2:
        local = "".join(rng.choices("abcXYZ019._%+-", k=rng.randint(1, 70)))
        return f"{local}@{rng.choice(['x', 'mail.ex-ample', '9'])}.{rng.choice(['org', 'de', 'c', 'museum'])}"
    if kind == 3:
        return rng.choice(["+", "", "1-", "1 ", "("]) + digits(rng.randint(1, 3)) + rng.choice([") ", ")", "-", ".", " "]) + digits(3) + rng.choice(["-", ".", " "]) + digits(4)
    return rng.choice(["4", "5", "37", "GB82 WEST ", "DE"]) + rng.choice([" ", "-", ""]).join(digits(4) for _ in range(rng.randint(2, 5)))


def test_the_fast_scans_redact_what_the_plain_patterns_redact():
    texts = list(beer_posts().values())[:400] + debian_reference().split("\n\n")[:3000]
    rng = random.Random(20261201)
    texts += ["".join(rng.choice(PIECES) if rng.random() < 0.7 else candidate(rng) for _ in range(rng.randint(1, 30))) for _ in range(20_000)]
    differing = [text for text in texts if redact_pii(text) != plainly_redacted(text)]
    assert differing == []
    # The generated texts reach every kind, so the comparison is not over empty results.
    found = {kind for text in texts for kind in redact_pii(text)[1]}
    assert found == set(PII_KINDS)
