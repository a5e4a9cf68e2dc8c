"""The `corpus/catalog` asset: the loaded catalog, with invalid files reported in the UI.

Every source's raw asset (which reads its catalog entry) and the card (owners, descriptions)
depend on it, so the graph shows what a catalog change reaches.
"""


import json

from dagster import (
    AssetCheckResult,
    AssetCheckSpec,
    AssetsDefinition,
    MaterializeResult,
    MetadataValue,
    asset,
)

from opencorpus_dagster.catalog import Catalog
from opencorpus_dagster.orchestration.assets import CATALOG_KEY, CORPUS_GROUP
from opencorpus_dagster.orchestration.resources import CorpusSettings
from opencorpus_dagster.state.atomic import write_text_atomically


def catalog_asset(catalog: Catalog) -> AssetsDefinition:
    errors = [str(e) for e in catalog.errors]
    listing = "\n".join(f"- `{s.name}` ({s.spec.kind}): {s.spec.description.strip() or s.path.name}" for s in catalog.sources)
    problems = "\n".join(f"- INVALID {e}" for e in errors)
    description = f"Source catalog in {catalog.directory}.\n\n{listing}" + (f"\n\n**Not loaded:**\n{problems}" if problems else "")

    @asset(
        key=CATALOG_KEY,
        group_name=CORPUS_GROUP,
        description=description,
        check_specs=[AssetCheckSpec("catalog_valid", asset=CATALOG_KEY, description="every file in assets/ is a valid source")],
        kinds={"yaml"},
    )
    def catalog_snapshot(corpus: CorpusSettings) -> MaterializeResult:
        home = corpus.data_home()
        snapshot = {
            "directory": str(catalog.directory),
            "sources": {s.name: {"kind": s.spec.kind, "fingerprint": s.fingerprint, "file": str(s.path)} for s in catalog.sources},
            "errors": errors,
        }
        write_text_atomically(home.root / "catalog.json", json.dumps(snapshot, indent=2, sort_keys=True) + "\n")
        return MaterializeResult(
            metadata={"sources": len(catalog.sources), "invalid_files": MetadataValue.json(errors)},
            check_results=[AssetCheckResult(check_name="catalog_valid", passed=not errors, metadata={"errors": MetadataValue.json(errors)})],
        )

    return catalog_snapshot
