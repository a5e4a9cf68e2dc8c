"""Lineage: the DuckDB store, record traces, reports and OpenLineage events."""
