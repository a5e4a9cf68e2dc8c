"""Materialisation metadata a person can read at a glance in the Dagster UI."""

from __future__ import annotations

from collections.abc import Mapping

import pyarrow as pa
from dagster import MetadataValue, TableColumn, TableRecord, TableSchema

from opencorpus_dagster.publish.markdown import markdown_code, markdown_text


def counts_table(title: str, counts: Mapping[str, int | float], total: int | None = None) -> MetadataValue:
    """A two-column markdown table, largest first."""
    lines = [f"| {title} | count |", "|---|---:|"]
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        share = f" ({value / total:.1%})" if total else ""
        lines.append(f"| {markdown_text(str(key))} | {value}{share} |")
    return MetadataValue.md("\n".join(lines))


def rules_table(stats: pa.Table) -> MetadataValue:
    """Per rule: records removed, records measured, and the measured value's distribution."""
    lines = ["| rule | removed | measured | min | p05 | median | p95 | max |", "|---|---:|---:|---:|---:|---:|---:|---:|"]
    for row in sorted(stats.to_pylist(), key=lambda r: (-r["removed"], r["rule"])):
        numbers = " | ".join("" if row[k] is None else f"{row[k]:.3g}" for k in ("minimum", "p05", "median", "p95", "maximum"))
        lines.append(f"| {markdown_code(row['rule'])} | {row['removed']} | {row['measured']} | {numbers} |")
    return MetadataValue.md("\n".join(lines))


# The UI renders a table metadata value in full; past this many shards it shows the first ones
# (the `shards` entry beside it counts them all; manifest.json lists them all).
MAX_SHARD_ROWS = 500
SHARDS_SCHEMA = TableSchema(
    columns=[
        # What a reader scans first comes first; the long path and hash last (the UI scrolls).
        TableColumn("source", "string"),
        TableColumn("partition", "string"),
        TableColumn("rows", "int"),
        TableColumn("licences", "string", description="SPDX expression: rows"),
        TableColumn("bytes", "int"),
        TableColumn("sha256", "string"),
        TableColumn("path", "string", description="relative to the corpus folder, as in manifest.json"),
        TableColumn("trace", "string", description="the command that traces the shard's first row"),
    ]
)


def shards_table(shards: list[dict]) -> MetadataValue:
    """One row per shard of the manifest, with the `opencorpus trace` command of its first row."""
    records = [
        TableRecord(
            {
                "source": shard["source"],
                "partition": shard["partition"],
                "rows": shard["rows"],
                "licences": ", ".join(f"{licence}: {rows}" for licence, rows in shard["licenses"].items()),
                "bytes": shard["bytes"],
                "sha256": shard["sha256"],
                "path": shard["path"],
                "trace": f"opencorpus trace --shard {shard['path']} --row 0",
            }
        )
        for shard in shards[:MAX_SHARD_ROWS]
    ]
    return MetadataValue.table(records=records, schema=SHARDS_SCHEMA)
