"""Materialisation metadata a person can read at a glance in the Dagster UI."""

from __future__ import annotations

from collections.abc import Mapping

from dagster import MetadataValue


def counts_table(title: str, counts: Mapping[str, int | float], total: int | None = None) -> MetadataValue:
    """A two-column markdown table, largest first."""
    lines = [f"| {title} | count |", "|---|---:|"]
    for key, value in sorted(counts.items(), key=lambda kv: (-kv[1], kv[0])):
        share = f" ({value / total:.1%})" if total else ""
        lines.append(f"| {key} | {value}{share} |")
    return MetadataValue.md("\n".join(lines))
