"""SPDX normalisation of upstream licence statements, cross-checked against the fixtures' SPDX list."""

from __future__ import annotations

import json
from pathlib import Path

import pytest
import yaml
from lxml import etree

from opencorpus_dagster.licensing.spdx import (
    COPYRIGHTED,
    PUBLIC_DOMAIN,
    NormalisedLicense,
    normalise_license,
)

SPDX_LIST = "licenses/spdx/npm-spdx-license-list-6.12.0/spdx.json"
LICENSEE_FIXTURES = "licenses/licensee-fixtures/fixtures/fixtures.yml"
CC_INDEXES = ("webarchive/cc_license_index.json", "html_extraction/cc_license_index.json")


def _spdx_list(fixtures_dir: Path) -> dict[str, dict]:
    return json.loads((fixtures_dir / SPDX_LIST).read_text(encoding="utf-8"))


# -- a table of raw statements ------------------------------------------------------------------

# raw statement -> (expected SPDX expression, expected start of `how`)
STATEMENTS = [
    # SPDX ids and expressions, any case
    ("CC-BY-SA-4.0", "CC-BY-SA-4.0", "SPDX id"),
    ("cc-by-sa-4.0", "CC-BY-SA-4.0", "SPDX id"),
    ("  mit  ", "MIT", "SPDX id"),
    ("MIT OR Apache-2.0", "MIT OR Apache-2.0", "SPDX expression"),
    ("mit or apache-2.0", "MIT OR Apache-2.0", "SPDX expression"),
    ("(MIT AND BSD-3-Clause) OR GPL-3.0-or-later", "(MIT AND BSD-3-Clause) OR GPL-3.0-or-later", "SPDX expression"),
    ("GPL-2.0-or-later WITH Classpath-exception-2.0", "GPL-2.0-or-later WITH Classpath-exception-2.0", "SPDX expression"),
    ("LicenseRef-PublicDomain", PUBLIC_DOMAIN, "SPDX id"),
    ("LicenseRef-my-own-terms", "LicenseRef-my-own-terms", "SPDX id"),
    ("Net-SNMP", "Net-SNMP", "SPDX id"),  # ScanCode keys it LicenseRef-scancode-net-snmp
    # deprecated ids -> current ids
    ("GPL-2.0+", "GPL-2.0-or-later", "SPDX id: GPL-2.0+ is deprecated"),
    ("GPL-2.0", "GPL-2.0-only", "SPDX id: GPL-2.0 is deprecated"),
    ("gpl-2.0+ with classpath-exception-2.0", "GPL-2.0-or-later WITH Classpath-exception-2.0", "SPDX expression:"),
    ("LGPL-2.1+ OR MIT", "LGPL-2.1-or-later OR MIT", "SPDX expression:"),
    ("GPL-2.0-with-classpath-exception", "GPL-2.0-only WITH Classpath-exception-2.0", "SPDX expression:"),
    ("MIT OR GPL-3.0-with-GCC-exception", "MIT OR GPL-3.0-only WITH GCC-exception-3.1", "SPDX expression:"),
    ("StandardML-NJ", "SMLNJ", "SPDX id:"),
    # Creative Commons names
    ("CC BY-SA 3.0", "CC-BY-SA-3.0", "Creative Commons name"),
    ("CC BY 4.0", "CC-BY-4.0", "Creative Commons name"),
    ("CC BY-NC-ND 4.0", "CC-BY-NC-ND-4.0", "Creative Commons name"),
    ("CC-BY-SA 3.0 DE", "CC-BY-SA-3.0-DE", "Creative Commons name"),
    ("Creative Commons Attribution-ShareAlike 4.0 International", "CC-BY-SA-4.0", "Creative Commons name"),
    ("Creative Commons Attribution-ShareAlike 3.0 Unported License", "CC-BY-SA-3.0", "Creative Commons name"),
    ("Creative Commons Attribution-NonCommercial-NoDerivatives 4.0 International License", "CC-BY-NC-ND-4.0", "Creative Commons name"),
    ("Creative Commons Attribution-NoDerivs 3.0", "CC-BY-ND-3.0", "Creative Commons name"),
    ("Creative Commons Attribution 4.0", "CC-BY-4.0", "Creative Commons name"),
    ("CC0", "CC0-1.0", "Creative Commons name"),
    ("CC0 1.0 Universal", "CC0-1.0", "Creative Commons name"),
    ("Creative Commons Zero v1.0 Universal", "CC0-1.0", "Creative Commons name"),
    ("CC BY-SA 2.5 ES", "CC-BY-SA-2.5", "Creative Commons name: SPDX has no id for the ES port"),
    # other common names
    ("Apache License 2.0", "Apache-2.0", "alias"),
    ("Apache License, Version 2.0", "Apache-2.0", "alias"),
    ("Apache 2.0", "Apache-2.0", "alias"),
    ("The MIT License", "MIT", "alias"),
    ("Expat", "MIT", "alias"),
    ("BSD 3-Clause", "BSD-3-Clause", "alias"),
    ("New BSD License", "BSD-3-Clause", "alias"),
    ("MPL 2.0", "MPL-2.0", "alias"),
    ("Python Software Foundation License", "PSF-2.0", "alias"),
    ("The Unlicense", "Unlicense", "alias"),
    ("public domain", PUBLIC_DOMAIN, "alias"),
    ("Public Domain", PUBLIC_DOMAIN, "alias"),
    ("All rights reserved", COPYRIGHTED, "alias"),
    ("GPLv3", "GPL-3.0-only", "alias"),
    ("GPLv2+", "GPL-2.0-or-later", "alias"),
    ("GNU General Public License v3.0 or later", "GPL-3.0-or-later", "alias"),
    ("GNU General Public License, version 2", "GPL-2.0-only", "alias"),
    ("GNU Lesser General Public License v2.1 or later", "LGPL-2.1-or-later", "alias"),
    ("GNU Free Documentation License 1.3", "GFDL-1.3-only", "alias"),
    ("GFDL-1.2+", "GFDL-1.2-or-later", "SPDX id: GFDL-1.2+ is deprecated"),
    ("GFDL-1.3", "GFDL-1.3-only", "SPDX id: GFDL-1.3 is deprecated"),
    ("GNU FDL v1.3+", "GFDL-1.3-or-later", "alias"),
    ("GPL-2+", "GPL-2.0-or-later", "alias"),  # Debian's short name (debian-reference copyright)
    ("LGPL-3", "LGPL-3.0-only", "alias"),
    # Creative Commons URLs
    ("https://creativecommons.org/licenses/by-nc-sa/2.0/uk/", "CC-BY-NC-SA-2.0-UK", "Creative Commons URL"),
    ("https://creativecommons.org/licenses/by-sa/2.0/uk/deed.en_GB", "CC-BY-SA-2.0-UK", "Creative Commons URL"),
    ("http://creativecommons.org/licenses/by/3.0/us/legalcode", "CC-BY-3.0-US", "Creative Commons URL"),
    ("https://creativecommons.org/licenses/by-sa/3.0/fr/", "CC-BY-SA-3.0", "Creative Commons URL: SPDX has no id for the FR port"),
    ("//creativecommons.org/licenses/by/4.0/deed.de", "CC-BY-4.0", "Creative Commons URL"),
    ("https://www.creativecommons.org/licenses/by-sa/4.0?ref=footer", "CC-BY-SA-4.0", "Creative Commons URL"),
    ("https://creativecommons.org/licenses/by-nd-nc/1.0/", "CC-BY-NC-ND-1.0", "Creative Commons URL"),
    ("https://creativecommons.org/publicdomain/zero/1.0/", "CC0-1.0", "Creative Commons URL"),
    ("http://creativecommons.org/publicdomain/zero/1.0/legalcode.txt", "CC0-1.0", "Creative Commons URL"),
    ("https://creativecommons.org/publicdomain/mark/1.0/", PUBLIC_DOMAIN, "Creative Commons URL: Public Domain Mark"),
    ("https://creativecommons.org/licenses/publicdomain/", "CC-PDDC", "Creative Commons URL"),
    ("https://creativecommons.org/licenses/by/2.1/es/", "LicenseRef-CC-BY-2.1-ES", "Creative Commons URL: SPDX has no id"),
    # other licence URLs
    ("https://www.apache.org/licenses/LICENSE-2.0", "Apache-2.0", "licence URL"),
    ("https://opensource.org/licenses/MIT", "MIT", "licence URL"),
    ("https://spdx.org/licenses/CC-BY-4.0.html", "CC-BY-4.0", "licence URL"),
    ("https://www.gnu.org/licenses/gpl-3.0.html", "GPL-3.0-only", "licence URL"),
    ("https://www.gnu.org/licenses/old-licenses/lgpl-2.1.html", "LGPL-2.1-only", "licence URL"),
    # Project Gutenberg RDF rights statements
    ("Public domain in the USA.", PUBLIC_DOMAIN, "Gutenberg rights statement: public domain in the USA per Project Gutenberg"),
    ("Copyrighted. Read the copyright notice inside this book for details.", COPYRIGHTED, "Gutenberg rights statement"),
]


@pytest.mark.parametrize(("raw", "expected", "how"), STATEMENTS, ids=[row[0] for row in STATEMENTS])
def test_statement_normalises_to_spdx(raw, expected, how):
    result = normalise_license(raw)
    assert result is not None, f"{raw!r} was not recognised"
    assert result.expression == expected
    assert result.how.startswith(how), result.how


UNRECOGNISED = [
    None,
    "",
    "   ",
    "foo bar",
    "GPL-2.0-or-lather",
    "MIT AND (BSD-3-Clause OR foo)",  # one unknown part sinks the expression
    "MIT AND",
    "(MIT",
    '"',
    "CC BY-SA",  # no version: not one licence
    "Creative Commons Attribution-ShareAlike-ish 4.0",
    "https://creativecommons.org/licenses/by-sa/",
    "https://creativecommons.org/licenses/by-nd-sa/4.0/",  # NoDerivatives excludes ShareAlike
    "https://creativecommons.org/about/",
    "https://www.gnu.org/licenses/gpl.html",  # "the latest version"
    "https://example.org/licenses/by/4.0/",
    # the first line of real Debian `License:` paragraphs (python3.11-doc-subset/copyright):
    "Permission is hereby granted, free of charge, to any person obtaining",
    "Redistribution and use in source and binary forms, with or without",
]


@pytest.mark.parametrize("raw", UNRECOGNISED)
def test_unrecognised_statement_is_none(raw):
    assert normalise_license(raw) is None


def test_result_is_a_named_tuple():
    result = normalise_license("CC-BY-4.0")
    assert result == NormalisedLicense("CC-BY-4.0", "SPDX id")
    expression, how = result
    assert (expression, how) == ("CC-BY-4.0", "SPDX id")


# -- the SPDX list in the fixtures ---------------------------------------------------------------

# Deprecated ids in the SPDX 3.28 list and the current expression each normalises to.
DEPRECATED = {
    "AGPL-1.0": "AGPL-1.0-only",
    "AGPL-3.0": "AGPL-3.0-only",
    "BSD-2-Clause-FreeBSD": "BSD-2-Clause-Views",
    "BSD-2-Clause-NetBSD": "BSD-2-Clause",
    "GFDL-1.1": "GFDL-1.1-only",
    "GFDL-1.2": "GFDL-1.2-only",
    "GFDL-1.3": "GFDL-1.3-only",
    "GPL-1.0": "GPL-1.0-only",
    "GPL-1.0+": "GPL-1.0-or-later",
    "GPL-2.0": "GPL-2.0-only",
    "GPL-2.0+": "GPL-2.0-or-later",
    "GPL-2.0-with-GCC-exception": "GPL-2.0-only WITH GCC-exception-2.0",
    "GPL-2.0-with-autoconf-exception": "GPL-2.0-only WITH Autoconf-exception-2.0",
    "GPL-2.0-with-bison-exception": "GPL-2.0-only WITH Bison-exception-2.2",
    "GPL-2.0-with-classpath-exception": "GPL-2.0-only WITH Classpath-exception-2.0",
    "GPL-2.0-with-font-exception": "GPL-2.0-only WITH Font-exception-2.0",
    "GPL-3.0": "GPL-3.0-only",
    "GPL-3.0+": "GPL-3.0-or-later",
    "GPL-3.0-with-GCC-exception": "GPL-3.0-only WITH GCC-exception-3.1",
    "GPL-3.0-with-autoconf-exception": "GPL-3.0-only WITH Autoconf-exception-3.0",
    "LGPL-2.0": "LGPL-2.0-only",
    "LGPL-2.0+": "LGPL-2.0-or-later",
    "LGPL-2.1": "LGPL-2.1-only",
    "LGPL-2.1+": "LGPL-2.1-or-later",
    "LGPL-3.0": "LGPL-3.0-only",
    "LGPL-3.0+": "LGPL-3.0-or-later",
    "Nunit": "zlib-acknowledgement",
    "StandardML-NJ": "SMLNJ",
    "bzip2-1.0.5": "bzip2-1.0.6",
    "eCos-2.0": "GPL-2.0-or-later WITH eCos-exception-2.0",
}

# Ids of the SPDX 3.28 list that license-expression 30.4.4's vendored ScanCode index does not
# know (added to SPDX after that index, or filed by ScanCode as an exception): they normalise
# to None, so the policy calls them unknown until license-expression catches up.
REJECTED_BY_LICENSE_EXPRESSION = {
    "ALGLIB-Documentation", "Advanced-Cryptics-Dictionary", "BOLA-1.1", "BSD-3-Clause-Tso",
    "BSD-Mark-Modifications", "Buddy", "CAPEC-tou", "ESA-PL-permissive-2.4", "ESA-PL-strong-copyleft-2.4",
    "ESA-PL-weak-copyleft-2.4", "HPND-SMC", "HPND-sell-variant-critical-systems", "ISO-permission",
    "MIT-STK", "MMPL-1.0.1", "MPL-2.0-no-copyleft-exception", "NIST-PD-TNT", "OSC-1.0", "OSSP",
    "OpenMDW-1.0", "ParaType-Free-Font-1.3", "SGMLUG-PM", "TekHVC", "UnRAR", "Vixie-Cron", "WTFNMFPL",
    "WordNet", "X11-no-permit-persons", "hyphen-bulgarian",
}  # fmt: skip


def test_every_spdx_list_id_normalises_to_itself(fixtures_dir):
    ids = _spdx_list(fixtures_dir)
    assert len(ids) == 727
    unchanged, replaced, rejected = set(), {}, set()
    for spdx_id in ids:
        for spelling in (spdx_id, spdx_id.lower(), spdx_id.upper()):
            result = normalise_license(spelling)
            if result is None:
                rejected.add(spelling)
            elif result.expression == spdx_id:
                unchanged.add(spdx_id)
            else:
                replaced[spelling] = result.expression
    expected_rejected = {s for i in REJECTED_BY_LICENSE_EXPRESSION for s in (i, i.lower(), i.upper())}
    expected_replaced = {s: new for old, new in DEPRECATED.items() for s in (old, old.lower(), old.upper())}
    assert rejected == expected_rejected
    assert replaced == expected_replaced
    assert unchanged == set(ids) - set(DEPRECATED) - REJECTED_BY_LICENSE_EXPRESSION
    assert len(unchanged) == 727 - 30 - 29


def test_deprecated_replacements_are_current_spdx_ids(fixtures_dir):
    ids = _spdx_list(fixtures_dir)
    for old, new in DEPRECATED.items():
        assert old in ids
        licence = new.split(" WITH ")[0]
        assert licence in ids and licence not in DEPRECATED, (old, new)
        assert normalise_license(new).expression == new


@pytest.mark.parametrize("spdx_id", sorted(REJECTED_BY_LICENSE_EXPRESSION))
def test_rejected_ids_are_in_the_fixture_list(fixtures_dir, spdx_id):
    assert spdx_id in _spdx_list(fixtures_dir)


def test_creative_commons_names_and_urls_of_the_spdx_list(fixtures_dir):
    """Every CC entry of the SPDX list: its full name and its legal-code URL give its id."""
    entries = {k: v for k, v in _spdx_list(fixtures_dir).items() if k.startswith("CC")}
    assert len(entries) == 55
    by_name = {k: getattr(normalise_license(v["name"]), "expression", None) for k, v in entries.items()}
    by_url = {k: getattr(normalise_license(v["url"]), "expression", None) for k, v in entries.items()}
    # The Public Domain Mark labels a work as public domain; it is not a licence.
    assert by_name.pop("CC-PDM-1.0") == PUBLIC_DOMAIN
    assert by_url.pop("CC-PDM-1.0") == PUBLIC_DOMAIN
    assert by_name == {k: k for k in by_name}
    assert by_url == {k: k for k in by_url}


# -- licensee fixtures ---------------------------------------------------------------------------

# licensee key -> SPDX id (licensee keys are lower-cased SPDX ids, some deprecated).
LICENSEE_KEYS = {
    "agpl-3.0": "AGPL-3.0-only", "apache-2.0": "Apache-2.0", "artistic-2.0": "Artistic-2.0",
    "bsd-2-clause": "BSD-2-Clause", "bsd-3-clause": "BSD-3-Clause", "bsl-1.0": "BSL-1.0",
    "cc-by-4.0": "CC-BY-4.0", "cc-by-sa-4.0": "CC-BY-SA-4.0", "cc0-1.0": "CC0-1.0", "epl-1.0": "EPL-1.0",
    "eupl-1.2": "EUPL-1.2", "gfdl-1.3": "GFDL-1.3-only", "gpl-2.0": "GPL-2.0-only", "gpl-3.0": "GPL-3.0-only",
    "lgpl-2.1": "LGPL-2.1-only", "lgpl-3.0": "LGPL-3.0-only", "mit": "MIT", "mpl-2.0": "MPL-2.0",
    "unlicense": "Unlicense", "vim": "Vim",
}  # fmt: skip


def test_licensee_fixture_keys(fixtures_dir):
    fixtures = yaml.safe_load((fixtures_dir / LICENSEE_FIXTURES).read_text(encoding="utf-8"))
    keys = {entry["key"] for entry in fixtures.values() if entry and entry.get("key")}
    spdx_by_lower = {k.lower(): k for k in _spdx_list(fixtures_dir)}
    # Every key is an SPDX id (cross-checked against the list) except licensee's own markers.
    assert {k for k in keys if k not in spdx_by_lower} == {"other", "no-license"}
    assert keys - {"other", "no-license"} == set(LICENSEE_KEYS)
    for key in keys - {"other", "no-license"}:
        listed = spdx_by_lower[key]
        assert LICENSEE_KEYS[key] == DEPRECATED.get(listed, listed)
        assert normalise_license(key).expression == LICENSEE_KEYS[key], key
    assert normalise_license("other") is None
    assert normalise_license("no-license") is None


# -- Creative Commons links in the web fixtures ----------------------------------------------------

# Every distinct CC link in the two cc_license_index.json files, with the SPDX id derived by hand.
CC_LINKS = {
    "licenses/by/2.0": "CC-BY-2.0",
    "licenses/by/2.5": "CC-BY-2.5",
    "licenses/by/3.0": "CC-BY-3.0",
    "licenses/by/4.0": "CC-BY-4.0",
    "licenses/by-sa/2.0": "CC-BY-SA-2.0",
    "licenses/by-sa/3.0": "CC-BY-SA-3.0",
    "licenses/by-sa/4.0": "CC-BY-SA-4.0",
    "licenses/by-nc-nd/3.0": "CC-BY-NC-ND-3.0",
    "licenses/by-nc-nd/4.0": "CC-BY-NC-ND-4.0",
    "licenses/by-nc-sa/2.0": "CC-BY-NC-SA-2.0",
    "licenses/by-nc-sa/3.0": "CC-BY-NC-SA-3.0",
    "licenses/by-nc-sa/4.0": "CC-BY-NC-SA-4.0",
    "publicdomain/mark/1.0": PUBLIC_DOMAIN,
}


@pytest.mark.parametrize("index", CC_INDEXES)
def test_cc_links_of_the_web_fixtures(fixtures_dir, index):
    entries = json.loads((fixtures_dir / index).read_text(encoding="utf-8"))
    links = [link for entry in entries for link in entry["cc_links"]]
    assert links and set(links) <= set(CC_LINKS)
    for link in links:
        for url in (f"https://creativecommons.org/{link}/", f"http://creativecommons.org/{link}"):
            result = normalise_license(url)
            assert result is not None and result.expression == CC_LINKS[link], url
            assert result.how.startswith("Creative Commons URL")


def test_cc_link_counts_across_fixtures(fixtures_dir):
    links = [
        link
        for index in CC_INDEXES
        for entry in json.loads((fixtures_dir / index).read_text(encoding="utf-8"))
        for link in entry["cc_links"]
    ]
    assert len(links) == 42
    assert set(links) == set(CC_LINKS)
    spdx = [normalise_license(f"https://creativecommons.org/{link}/").expression for link in links]
    assert spdx.count("CC-BY-3.0") == 8 and spdx.count("CC-BY-SA-3.0") == 8 and spdx.count(PUBLIC_DOMAIN) == 1


# -- catalog rights fields of the Gutenberg and Debian fixtures ----------------------------------


def test_gutenberg_rdf_rights(fixtures_dir):
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    rights = []
    for rdf in sorted((fixtures_dir / "gutenberg/c-w-gutenberg/rdf").rglob("*.rdf")):
        tree = etree.parse(str(rdf), parser)
        rights += tree.xpath("//dcterms:rights/text()", namespaces={"dcterms": "http://purl.org/dc/terms/"})
    assert rights == ["Public domain in the USA."] * 6
    for statement in rights:
        assert normalise_license(statement) == NormalisedLicense(
            PUBLIC_DOMAIN, "Gutenberg rights statement: public domain in the USA per Project Gutenberg"
        )


def test_debian_copyright_short_name(fixtures_dir):
    copyright_file = (fixtures_dir / "debian/debian-reference-en/copyright").read_text(encoding="utf-8")
    names = [line.split(":", 1)[1].strip() for line in copyright_file.splitlines() if line.startswith("License:")]
    assert names[0] == "GPL-2+"
    assert normalise_license(names[0]).expression == "GPL-2.0-or-later"
