"""What is published beside the shards: the dataset card, the ATTRIBUTION file, Croissant metadata.

Every file is derived from the corpus as built (the manifest, the shard Parquet files and the
lineage store), never from numbers typed in, and written under a temporary name and renamed,
so a reader sees the previous file or the new one, never half of one. The same corpus gives
byte-identical files: nothing here reads the clock.

    <home>/corpus/README.md      Hugging Face dataset card (YAML header + Markdown)   card.py
    <home>/corpus/charts/*.png   the card's charts (licences, outcomes, sources)      charts.py
    <home>/corpus/ATTRIBUTION    plain-text attribution list                          attribution.py
    <home>/corpus/croissant.json Croissant 1.0 JSON-LD                                croissant.py

Version, release date, creators, citation and base URL, shared by the card and Croissant:
release.py.
"""

from __future__ import annotations

from opencorpus_dagster.publish.attribution import write_attribution
from opencorpus_dagster.publish.card import write_card
from opencorpus_dagster.publish.croissant import write_croissant

__all__ = ["write_attribution", "write_card", "write_croissant"]
