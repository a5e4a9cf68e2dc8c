"""The licence policy (allow/deny, expressions, ranks) and the licence gate on Documents."""

from __future__ import annotations

import json
from fnmatch import fnmatchcase

import pytest
import yaml
from lxml import etree
from pydantic import ValidationError

from opencorpus_dagster.licensing.gate import LicenseGate
from opencorpus_dagster.licensing.policy import (
    DEFAULT_ALLOW,
    DEFAULT_DENY,
    LicensePolicy,
    Verdict,
    permissiveness_rank,
)
from opencorpus_dagster.licensing.spdx import (
    COPYRIGHTED,
    PUBLIC_DOMAIN,
    known_license_ids,
)
from opencorpus_dagster.records import Document, Drop, Outcome, make_doc_id

SPDX_LIST = "licenses/spdx/npm-spdx-license-list-6.12.0/spdx.json"

# expression -> (allowed, reason, licence named by the verdict)
VERDICTS = [
    ("CC-BY-SA-4.0", True, "license.allowed", "CC-BY-SA-4.0"),
    ("cc-by-sa-3.0", True, "license.allowed", "CC-BY-SA-3.0"),
    ("CC-BY-4.0", True, "license.allowed", "CC-BY-4.0"),
    ("CC-BY-3.0-DE", True, "license.allowed", "CC-BY-3.0-DE"),
    ("CC0-1.0", True, "license.allowed", "CC0-1.0"),
    (PUBLIC_DOMAIN, True, "license.allowed", PUBLIC_DOMAIN),
    ("CC-PDDC", True, "license.allowed", "CC-PDDC"),
    ("MIT", True, "license.allowed", "MIT"),
    ("BSD-3-Clause", True, "license.allowed", "BSD-3-Clause"),
    ("Apache-2.0", True, "license.allowed", "Apache-2.0"),
    ("PSF-2.0", True, "license.allowed", "PSF-2.0"),
    ("Zlib", True, "license.allowed", "Zlib"),
    ("Unlicense", True, "license.allowed", "Unlicense"),
    ("GPL-2.0-or-later", True, "license.allowed", "GPL-2.0-or-later"),
    ("GPL-2.0+", True, "license.allowed", "GPL-2.0-or-later"),  # deprecated id, judged as current
    ("LGPL-2.1-only", True, "license.allowed", "LGPL-2.1-only"),
    ("AGPL-3.0-or-later", True, "license.allowed", "AGPL-3.0-or-later"),
    ("MPL-2.0", True, "license.allowed", "MPL-2.0"),
    ("EPL-2.0", True, "license.allowed", "EPL-2.0"),
    ("GFDL-1.3-or-later", True, "license.allowed", "GFDL-1.3-or-later"),
    # NonCommercial, NoDerivatives, copyrighted: denied by family
    ("CC-BY-NC-4.0", False, "license.denied", "CC-BY-NC-4.0"),
    ("CC-BY-NC-SA-2.0-UK", False, "license.denied", "CC-BY-NC-SA-2.0-UK"),
    ("CC-BY-ND-4.0", False, "license.denied", "CC-BY-ND-4.0"),
    ("CC-BY-NC-ND-3.0-IGO", False, "license.denied", "CC-BY-NC-ND-3.0-IGO"),
    ("PolyForm-Noncommercial-1.0.0", False, "license.denied", "PolyForm-Noncommercial-1.0.0"),
    ("BSD-3-Clause-No-Nuclear-License", False, "license.denied", "BSD-3-Clause-No-Nuclear-License"),
    (COPYRIGHTED, False, "license.denied", COPYRIGHTED),
    ("LicenseRef-CC-BY-NC-2.1-ES", False, "license.denied", "LicenseRef-CC-BY-NC-2.1-ES"),
    # known but not allowed
    ("Beerware", False, "license.not_in_allowlist", "Beerware"),
    ("SSPL-1.0", False, "license.not_in_allowlist", "SSPL-1.0"),
    ("LicenseRef-my-own-terms", False, "license.not_in_allowlist", "LicenseRef-my-own-terms"),
    # no licence, or not an SPDX expression
    (None, False, "license.unknown", None),
    ("", False, "license.unknown", None),
    ("NOASSERTION", False, "license.unknown", None),
    ("Some licence we never heard of", False, "license.unknown", "Some licence we never heard of"),
    ("MIT AND", False, "license.unknown", "MIT AND"),
    # OR: any allowed branch, the most permissive one named
    ("MIT OR GPL-3.0-only", True, "license.allowed", "MIT"),
    ("GPL-3.0-only OR MIT", True, "license.allowed", "MIT"),
    ("CC-BY-NC-4.0 OR CC-BY-SA-3.0", True, "license.allowed", "CC-BY-SA-3.0"),
    ("CC-BY-SA-4.0 OR CC0-1.0", True, "license.allowed", "CC0-1.0"),
    ("CC-BY-NC-4.0 OR CC-BY-ND-4.0", False, "license.denied", "CC-BY-NC-4.0 OR CC-BY-ND-4.0"),
    ("CC-BY-NC-4.0 OR Beerware", False, "license.not_in_allowlist", "CC-BY-NC-4.0 OR Beerware"),
    # AND: every part allowed; a refusal names the worst part
    ("MIT AND Apache-2.0", True, "license.allowed", "MIT AND Apache-2.0"),
    ("CC-BY-SA-4.0 AND GFDL-1.3-or-later", True, "license.allowed", "CC-BY-SA-4.0 AND GFDL-1.3-or-later"),
    ("MIT AND CC-BY-ND-4.0", False, "license.denied", "CC-BY-ND-4.0"),
    ("MIT AND Beerware", False, "license.not_in_allowlist", "Beerware"),
    ("Beerware AND CC-BY-NC-4.0", False, "license.denied", "CC-BY-NC-4.0"),
    ("(MIT OR CC-BY-NC-4.0) AND (Beerware OR Apache-2.0)", True, "license.allowed", "(MIT OR CC-BY-NC-4.0) AND (Beerware OR Apache-2.0)"),
    # WITH follows its licence
    ("GPL-2.0-or-later WITH Classpath-exception-2.0", True, "license.allowed", "GPL-2.0-or-later WITH Classpath-exception-2.0"),
    ("Beerware WITH Classpath-exception-2.0", False, "license.not_in_allowlist", "Beerware WITH Classpath-exception-2.0"),
    ("Apache-2.0 WITH LLVM-exception OR GPL-2.0-only", True, "license.allowed", "Apache-2.0 WITH LLVM-exception"),
]


@pytest.mark.parametrize(("expression", "allowed", "reason", "license"), VERDICTS, ids=[str(r[0]) for r in VERDICTS])
def test_default_policy_verdicts(expression, allowed, reason, license):
    assert LicensePolicy().judge(expression) == Verdict(allowed, reason, license)


RANKS = [
    (PUBLIC_DOMAIN, 0),
    ("CC0-1.0", 0),
    ("CC-PDDC", 0),
    ("Unlicense", 0),
    ("CC-BY-4.0", 1),
    ("CC-BY-3.0-US", 1),
    ("MIT", 1),
    ("BSD-2-Clause", 1),
    ("Apache-2.0", 1),
    ("CC-BY-SA-4.0", 2),
    ("CC-BY-SA-2.0-UK", 2),
    ("GPL-3.0-or-later", 2),
    ("GFDL-1.3-only", 2),
    ("MPL-2.0", 2),
    ("CC-BY-NC-4.0", 3),
    ("CC-BY-NC-SA-4.0", 3),
    ("CC-BY-ND-4.0", 3),
    (COPYRIGHTED, 3),
    ("Beerware", 3),
    ("not a licence", 3),
    (None, 3),
    ("MIT OR GPL-3.0-only", 1),
    ("CC-BY-SA-4.0 OR CC0-1.0", 0),
    ("MIT AND GPL-3.0-only", 2),
    ("CC0-1.0 AND CC-BY-NC-4.0", 3),
    ("GPL-2.0-only WITH Classpath-exception-2.0", 2),
]


@pytest.mark.parametrize(("expression", "rank"), RANKS, ids=[str(r[0]) for r in RANKS])
def test_permissiveness_rank(expression, rank):
    assert permissiveness_rank(expression) == rank


def test_creative_commons_ids_of_the_spdx_list(fixtures_dir):
    """Cross-check the default policy against every CC id of the SPDX list in the fixtures."""
    ids = json.loads((fixtures_dir / SPDX_LIST).read_text(encoding="utf-8"))
    policy = LicensePolicy()
    cc = sorted(k for k in ids if k.startswith("CC"))
    denied = {k for k in cc if "-NC" in k or "-ND" in k}
    assert len(cc) == 55 and len(denied) == 29
    verdicts = {k: policy.judge(k) for k in cc}
    assert {k for k, v in verdicts.items() if not v.allowed} == denied
    assert {v.reason for k, v in verdicts.items() if k in denied} == {"license.denied"}
    assert {k: permissiveness_rank(k) for k in cc if k not in denied and k.startswith("CC-BY-SA")} == {
        k: 2 for k in cc if k.startswith("CC-BY-SA")
    }


def test_gnu_ids_of_the_spdx_list_are_allowed(fixtures_dir):
    ids = json.loads((fixtures_dir / SPDX_LIST).read_text(encoding="utf-8"))
    gnu = [k for k in ids if k.startswith(("GPL-", "LGPL-", "AGPL-", "GFDL-"))]
    assert len(gnu) == 58
    refused = {k: v for k in gnu if not (v := LicensePolicy().judge(k)).allowed}
    # The deprecated compound ids normalise to `GPL-x WITH <exception>`, which follows GPL-x.
    assert refused == {}


def test_default_lists_are_valid_and_match_known_ids():
    known = known_license_ids()
    policy = LicensePolicy()
    assert policy.allow == DEFAULT_ALLOW and policy.deny == DEFAULT_DENY
    for entry in DEFAULT_ALLOW + DEFAULT_DENY:
        if "*" not in entry:
            assert entry in known, entry


# -- per-source overrides ----------------------------------------------------------------------


MERGES = [
    # (allow, deny, expression, allowed, reason)
    (["CC-BY-NC-4.0"], [], "CC-BY-NC-4.0", True, "license.allowed"),  # exact allow beats a deny pattern
    (["CC-BY-NC-4.0"], [], "CC-BY-NC-3.0", False, "license.denied"),  # ...for that id only
    (["CC-BY-NC-*"], [], "CC-BY-NC-3.0", False, "license.denied"),  # a pattern does not beat a deny pattern
    ([], ["GFDL-1.3-only"], "GFDL-1.3-only", False, "license.denied"),
    ([], ["GFDL-1.3-only"], "GFDL-1.2-only", True, "license.allowed"),
    ([], ["GPL-*"], "GPL-3.0-only", False, "license.denied"),
    ([], ["GPL-*"], "LGPL-2.1-only", True, "license.allowed"),
    (["Beerware"], [], "Beerware", True, "license.allowed"),
    (["beerware"], [], "Beerware", True, "license.allowed"),  # entries are case-insensitive
    (["LicenseRef-my-own-terms"], [], "LicenseRef-my-own-terms", True, "license.allowed"),
    (["LicenseRef-Copyrighted"], [], COPYRIGHTED, True, "license.allowed"),
    ([], ["MIT"], "MIT OR Apache-2.0", True, "license.allowed"),
    ([], ["MIT"], "MIT AND Apache-2.0", False, "license.denied"),
    (["GPL-2.0+"], ["CC-BY-SA-*"], "CC-BY-SA-4.0 OR GPL-2.0-or-later", True, "license.allowed"),
]


@pytest.mark.parametrize(("allow", "deny", "expression", "allowed", "reason"), MERGES)
def test_merged_overrides(allow, deny, expression, allowed, reason):
    base = LicensePolicy()
    merged = base.merged(allow, deny)
    verdict = merged.judge(expression)
    assert (verdict.allowed, verdict.reason) == (allowed, reason)
    assert base == LicensePolicy()  # the default is not changed


def test_merged_canonicalises_and_moves_exact_ids():
    merged = LicensePolicy().merged(["cc-by-nc-4.0", "GPL-2.0+"], ["gfdl-1.3-only"])
    assert merged.allow[-2:] == ["CC-BY-NC-4.0", "GPL-2.0-or-later"]
    assert merged.deny[-1] == "GFDL-1.3-only"
    assert "CC-BY-NC-4.0" not in merged.deny
    twice = merged.merged(["CC-BY-NC-4.0"], [])
    assert twice.allow.count("CC-BY-NC-4.0") == 1


BAD_ENTRIES = [
    (["CC-BY-SA-4.O"], [], "'CC-BY-SA-4.O' is not a known SPDX licence id; did you mean 'CC-BY-SA-4.0'?"),
    (["FOO-*"], [], "pattern 'FOO-*' matches no known SPDX licence"),
    (["CC BY-SA 4.0"], [], "'CC BY-SA 4.0' is not an SPDX id or pattern"),
    (["MIT OR Apache-2.0"], [], "'MIT OR Apache-2.0' is not an SPDX id or pattern"),
    ([""], [], "'' is not an SPDX id or pattern"),
    (["MIT"], ["mit"], "['mit'] is both allowed and denied"),
]


@pytest.mark.parametrize(("allow", "deny", "message"), BAD_ENTRIES)
def test_invalid_override_entries_raise(allow, deny, message):
    with pytest.raises(ValueError) as raised:
        LicensePolicy().merged(allow, deny)
    assert message in str(raised.value)


def plainly_allowed(policy: LicensePolicy, key: str) -> bool:
    """The precedence of the module docstring, one entry at a time, for a plain known id."""
    exact = [e for e in policy.deny if "*" not in e], [e for e in policy.allow if "*" not in e]
    patterns = [e for e in policy.deny if "*" in e], [e for e in policy.allow if "*" in e]
    for denied, entries, match in (
        (True, exact[0], lambda e: e.casefold() == key.casefold()),
        (False, exact[1], lambda e: e.casefold() == key.casefold()),
        (True, patterns[0], lambda e: fnmatchcase(key.upper(), e.upper())),
        (False, patterns[1], lambda e: fnmatchcase(key.upper(), e.upper())),
    ):
        if any(match(e) for e in entries):
            return not denied
    return False


@pytest.mark.parametrize(
    ("allow", "deny"),
    [
        ([], []),
        (["CC-BY-NC-4.0", "LicenseRef-*"], ["GFDL-1.3-invariants-only", "gpl-*"]),
        (["*"], ["*-NC-*", "MIT"]),
    ],
)
def test_allowed_ids_are_the_ids_each_judged_allowed(allow, deny):
    policy = LicensePolicy().merged(allow=allow, deny=deny)
    ids = known_license_ids() | {PUBLIC_DOMAIN}
    allowed = policy.allowed_ids(ids)
    assert allowed == {i for i in ids if policy.judge(i).allowed}
    assert allowed == {i for i in ids if plainly_allowed(policy, i)}
    assert 0 < len(allowed) < len(ids)


def test_policy_embedded_in_yaml():
    document = yaml.safe_load("allow: [CC0-1.0, 'CC-BY-*']\ndeny: ['*-NC-*']\n")
    policy = LicensePolicy.model_validate(document)
    assert policy.judge("CC-BY-4.0") == Verdict(True, "license.allowed", "CC-BY-4.0")
    assert policy.judge("CC-BY-NC-4.0").reason == "license.denied"
    assert policy.judge("MIT").reason == "license.not_in_allowlist"
    assert LicensePolicy.model_validate(policy.model_dump()) == policy
    with pytest.raises(ValidationError) as typo:
        LicensePolicy.model_validate({"allow": ["MIT"], "denny": ["GPL-*"]})
    assert "denny" in str(typo.value) and "Extra inputs are not permitted" in str(typo.value)
    with pytest.raises(ValidationError) as bad_id:
        LicensePolicy.model_validate({"allow": ["MIT-1.0"]})
    assert "'MIT-1.0' is not a known SPDX licence id" in str(bad_id.value)


# -- the licence gate on Documents --------------------------------------------------------------


def _document(license: str | None, evidence: str | None = None, record_id: str = "1") -> Document:
    return Document(
        doc_id=make_doc_id("test", record_id),
        source="test",
        source_record_id=record_id,
        upstream_uri=f"https://example.org/record/{record_id}",
        url=None,
        title="A title",
        text="Some text.",
        language=None,
        license=license,
        license_evidence=evidence,
        attribution=None,
    )


KEPT = [
    # raw statement, evidence before, licence after, evidence after
    ("CC-BY-SA-4.0", "dump declaration", "CC-BY-SA-4.0", "dump declaration; SPDX id: CC-BY-SA-4.0"),
    ("cc-by-sa-3.0", None, "CC-BY-SA-3.0", "SPDX id: 'cc-by-sa-3.0' -> CC-BY-SA-3.0"),
    (
        "https://creativecommons.org/licenses/by/4.0/",
        'rel="license" link',
        "CC-BY-4.0",
        "rel=\"license\" link; Creative Commons URL: 'https://creativecommons.org/licenses/by/4.0/' -> CC-BY-4.0",
    ),
    (
        "Public domain in the USA.",
        "Gutenberg RDF dcterms:rights",
        PUBLIC_DOMAIN,
        "Gutenberg RDF dcterms:rights; Gutenberg rights statement: public domain in the USA per Project Gutenberg:"
        " 'Public domain in the USA.' -> LicenseRef-PublicDomain",
    ),
    (
        "MIT OR GPL-3.0-only",
        None,
        "MIT OR GPL-3.0-only",
        "SPDX expression: MIT OR GPL-3.0-only; policy chose MIT",
    ),
    (
        "GPL-2+",
        "debian/copyright",
        "GPL-2.0-or-later",
        "debian/copyright; alias: GPL-2+: 'GPL-2+' -> GPL-2.0-or-later",
    ),
]


@pytest.mark.parametrize(("raw", "evidence", "license", "evidence_after"), KEPT, ids=[r[0] for r in KEPT])
def test_gate_keeps_allowed_documents(raw, evidence, license, evidence_after):
    doc = _document(raw, evidence)
    result = LicenseGate(LicensePolicy())(doc)
    assert isinstance(result, Document)
    assert (result.license, result.license_evidence) == (license, evidence_after)
    assert (result.doc_id, result.text, result.title) == (doc.doc_id, "Some text.", "A title")
    assert (doc.license, doc.license_evidence) == (raw, evidence)  # the input is not changed


DROPPED = [
    # raw statement, evidence before, reason, value, detail
    (None, None, "license.unknown", None, "no licence found"),
    ("  ", "page had no rel=license", "license.unknown", None, "no licence found; page had no rel=license"),
    (
        "Some licence we never heard of",
        "catalog rights field",
        "license.unknown",
        "Some licence we never heard of",
        "unrecognised licence statement 'Some licence we never heard of'; catalog rights field",
    ),
    (
        "https://creativecommons.org/licenses/by-nc-sa/4.0/",
        'rel="license" link',
        "license.denied",
        "CC-BY-NC-SA-4.0",
        "rel=\"license\" link; Creative Commons URL: 'https://creativecommons.org/licenses/by-nc-sa/4.0/' -> CC-BY-NC-SA-4.0",
    ),
    (
        "Copyrighted. Read the copyright notice inside this book for details.",
        None,
        "license.denied",
        COPYRIGHTED,
        "Gutenberg rights statement: copyrighted, terms only in the book's own notice:"
        " 'Copyrighted. Read the copyright notice inside this book for details.' -> LicenseRef-Copyrighted",
    ),
    ("Beerware", None, "license.not_in_allowlist", "Beerware", "SPDX id: Beerware"),
    ("MIT AND CC-BY-ND-4.0", None, "license.denied", "CC-BY-ND-4.0", "SPDX expression: MIT AND CC-BY-ND-4.0"),
]


@pytest.mark.parametrize(("raw", "evidence", "reason", "value", "detail"), DROPPED, ids=[str(r[0]) for r in DROPPED])
def test_gate_drops_refused_documents(raw, evidence, reason, value, detail):
    result = LicenseGate(LicensePolicy())(_document(raw, evidence))
    assert result == Drop(outcome=Outcome.FILTERED, reason=reason, value=value, detail=detail)


def test_gate_uses_the_source_policy():
    doc = _document("https://creativecommons.org/licenses/by-nc/4.0/")
    assert LicenseGate(LicensePolicy())(doc).reason == "license.denied"
    allowed = LicenseGate(LicensePolicy().merged(["CC-BY-NC-4.0"], []))(doc)
    assert isinstance(allowed, Document) and allowed.license == "CC-BY-NC-4.0"
    assert LicenseGate.name == "license"


def test_gate_on_gutenberg_rdf_rights(fixtures_dir):
    """The rights field of the six real Gutenberg RDF records, through the gate."""
    parser = etree.XMLParser(resolve_entities=False, no_network=True, load_dtd=False)
    gate = LicenseGate(LicensePolicy())
    kept = []
    for rdf in sorted((fixtures_dir / "gutenberg/c-w-gutenberg/rdf").rglob("*.rdf")):
        book = rdf.parent.name
        rights = etree.parse(str(rdf), parser).xpath(
            "string(//dcterms:rights)", namespaces={"dcterms": "http://purl.org/dc/terms/"}
        )
        result = gate(_document(rights, f"Gutenberg RDF pg{book}.rdf dcterms:rights", record_id=book))
        assert isinstance(result, Document), result
        kept.append((book, result.license))
    assert kept == [(b, PUBLIC_DOMAIN) for b in ("14287", "23962", "2701", "30929", "5", "50405")]
