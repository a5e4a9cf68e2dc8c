"""What is published beside the shards: the dataset card, the ATTRIBUTION file, Croissant metadata.

Every file is derived from the corpus as built (the manifest, the shard Parquet files and the
lineage store), never from numbers typed in, and written under a temporary name and renamed,
so a reader sees the previous file or the new one, never half of one. The same corpus gives
byte-identical files: nothing here reads the clock.

    <home>/corpus/README.md      Hugging Face dataset card (YAML header + Markdown)   card.py
    <home>/corpus/ATTRIBUTION    plain-text attribution list                          attribution.py
    <home>/corpus/croissant.json Croissant 1.0 JSON-LD                                croissant.py
"""

from __future__ import annotations

import os
from collections.abc import Iterable
from pathlib import Path


def write_text_atomically(path: Path, chunks: Iterable[str]) -> Path:
    """Write `chunks` (UTF-8, "\\n" newlines) to a temporary sibling of `path`, then rename it.

    Chunks are written as they come, so a long file (ATTRIBUTION of a large corpus) is never
    held in memory. A failure leaves `path` as it was and removes the temporary file.
    """
    path.parent.mkdir(parents=True, exist_ok=True)
    temporary = path.with_name(f".{path.name}.tmp-{os.getpid()}")
    try:
        with open(temporary, "w", encoding="utf-8", newline="\n") as handle:
            for chunk in chunks:
                handle.write(chunk)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, path)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise
    return path


from opencorpus_dagster.publish.attribution import write_attribution  # noqa: E402
from opencorpus_dagster.publish.card import write_card  # noqa: E402
from opencorpus_dagster.publish.croissant import write_croissant  # noqa: E402

__all__ = ["write_attribution", "write_card", "write_croissant", "write_text_atomically"]
