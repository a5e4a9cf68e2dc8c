"""The licence gate: a documents-stage step that normalises a record's licence and judges it.

It runs before text extraction, so a record whose licence is refused costs nothing more.
"""

from __future__ import annotations

import dataclasses

from opencorpus_dagster.licensing.policy import UNKNOWN, LicensePolicy
from opencorpus_dagster.licensing.spdx import normalise_license
from opencorpus_dagster.records import Document, Drop, Outcome

EVIDENCE_SEPARATOR = "; "


class LicenseGate:
    """Normalise `doc.license` (the raw upstream statement) to SPDX, then apply the policy.

    Kept: a copy of the document with `license` set to the SPDX expression and
    `license_evidence` extended by how it was normalised (and which branch of an OR the policy
    chose). Refused: `Drop(FILTERED, reason, value, detail)` with reason `license.denied`,
    `license.not_in_allowlist` or `license.unknown`, value the SPDX expression (or the raw
    statement when it could not be normalised, None when there was none) and detail the
    evidence so far.
    """

    name = "license"

    def __init__(self, policy: LicensePolicy) -> None:
        self.policy = policy

    def __call__(self, doc: Document) -> Document | Drop:
        raw = doc.license
        if raw is None or not raw.strip():
            return Drop(Outcome.FILTERED, UNKNOWN, None, _join("no licence found", doc.license_evidence))
        normalised = normalise_license(raw)
        if normalised is None:
            detail = _join(f"unrecognised licence statement {raw!r}", doc.license_evidence)
            return Drop(Outcome.FILTERED, UNKNOWN, raw, detail)
        expression = normalised.expression
        statement = raw.strip()
        mapped = expression if statement == expression else f"{statement!r} -> {expression}"
        step = f"{normalised.how}: {mapped}"
        evidence = _join(doc.license_evidence, step)
        verdict = self.policy.judge(expression)
        if not verdict.allowed:
            return Drop(Outcome.FILTERED, verdict.reason, verdict.license or expression, evidence)
        if verdict.license != expression:
            evidence = _join(evidence, f"policy chose {verdict.license}")
        return dataclasses.replace(doc, license=expression, license_evidence=evidence)


def _join(*parts: str | None) -> str:
    return EVIDENCE_SEPARATOR.join(p for p in parts if p)


__all__ = ["LicenseGate"]
