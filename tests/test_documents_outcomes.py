"""The documents stage decides the same as before the speed work of issue 16 (step order, one-pass
quality measures, PII scan): every record's outcome, reason and value, and for kept documents
their language, title, page metadata, measured quality values and final text, on the fixture
catalogs (the default `assets/`, `tests/catalogs/web`) and a WARC of the fixture
`html_extraction` pages.

The reference, `tests/data/documents_outcomes.tsv`, was written by this module's `__main__`
with the code as it was before the change (commit 31e5f5f) and is reviewed like code: a line that
changes is a decision that changed. Recording rather than keeping a copy of the old code as a
"reference implementation": the old code is what users ran, and a second copy of the steps in
the repository would drift. Regenerate only for a reviewed behaviour change:

    .venv/bin/python tests/test_documents_outcomes.py > tests/data/documents_outcomes.tsv

Kept documents carry a digest (sha256, first 16 hex digits) of their final text and one of their
language, title, page hints and quality values, so the file stays small and diffs stay one line
per record.
"""

from __future__ import annotations

import hashlib
import json
import sys
import tempfile
from pathlib import Path

from conftest import require_fixture
from fixture_mirror import FIXTURE_HOST, FIXTURES, build_fixture_mirror
from html_pages_warc import write_html_pages_warc

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.stages.documents import documents_from_raw, run_steps, steps_for
from opencorpus_dagster.stages.ingest import ingest_partition
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.upstream.fetch import Fetcher, Mirror

ROOT = Path(__file__).resolve().parent.parent
REFERENCE = Path(__file__).parent / "data" / "documents_outcomes.tsv"
PAGES_WARC = f"{FIXTURE_HOST}/html_extraction/pages.warc.gz"
HEADER = "source\tpartition\tdoc_id\toutcome\treason\tvalue\ttext_sha256\tdescription_sha256"


def _digest(value: str) -> str:
    return hashlib.sha256(value.encode("utf-8")).hexdigest()[:16]


def documents_outcomes(workdir: Path, fixtures: Path = FIXTURES) -> list[str]:
    """One TSV line per record of the documents stage, over the fixture catalogs, in order."""
    mirror = build_fixture_mirror(workdir / "mirror", fixtures)
    write_html_pages_warc(fixtures, mirror / PAGES_WARC)
    pages_catalog = workdir / "pages-catalog"
    pages_catalog.mkdir()
    (pages_catalog / "html_pages.yaml").write_text(
        "name: html_pages\nkind: warc\ndescription: the fixture html_extraction pages\n"
        f"options:\n  warcs: [https://{PAGES_WARC}]\n"
        # Pages that state no licence would be refused before extraction; this one is declared
        # so that every page goes through extraction, language and quality.
        "license: {spdx: CC-BY-4.0, evidence: test stand-in for pages without a licence}\n"
        "filters:\n  language: {allowed: [en]}\n"
    )
    home = DataHome(workdir / "home")
    store = LineageStore.at(home.lineage_db)
    fetcher = Fetcher(home.downloads, [Mirror(base=str(mirror))])
    lines = [HEADER]
    for catalog_dir in (ROOT / "assets", ROOT / "tests" / "catalogs" / "web", pages_catalog):
        catalog = load_catalog(catalog_dir)
        assert not catalog.errors, catalog.errors
        for source in catalog.sources:
            for unit in source.connector.units():
                ingest_partition(source, unit, fetcher, home, store, "reference")
                raw_path = home.raw_path(source.name, unit.key)
                steps = steps_for(source, fetcher, raw_path)
                for raw_doc in documents_from_raw(source, raw_path):
                    doc, drop, _ = run_steps(raw_doc, steps)
                    if drop is not None:
                        value = "" if drop.value is None else str(drop.value)
                        outcome = [drop.outcome.value, drop.reason, value, "", ""]
                    else:
                        described = {
                            "language": doc.language,
                            "title": doc.title,
                            "page": doc.metadata.get("page"),
                            "quality": doc.metadata.get("quality"),
                            "pii": doc.metadata.get("pii"),
                        }
                        outcome = ["kept", "", "", _digest(doc.text), _digest(json.dumps(described, sort_keys=True))]
                    lines.append("\t".join([source.name, unit.key, raw_doc.doc_id, *outcome]))
    return lines


def test_documents_stage_decides_as_recorded(tmp_path):
    fixtures = require_fixture("")
    actual = documents_outcomes(tmp_path, fixtures)
    expected = REFERENCE.read_text().splitlines()
    assert actual[0] == expected[0]
    assert len(actual) == len(expected), f"{len(actual) - 1} records, {len(expected) - 1} recorded"
    changed = [(e, a) for e, a in zip(expected, actual, strict=True) if e != a]
    assert not changed, f"{len(changed)} records decided differently; first: {changed[:3]}"
    kept = sum(line.split("\t")[3] == "kept" for line in actual[1:])
    assert kept > 100  # the comparison covers kept documents, not only drops


if __name__ == "__main__":
    with tempfile.TemporaryDirectory() as tmp:
        sys.stdout.write("\n".join(documents_outcomes(Path(tmp))) + "\n")
