"""The stages a record goes through, in order: raw (ingest, discovery) -> documents ->
corpus (dedup, takedowns, shards) -> the checks the corpus must pass (audit).

Plain Python over the data home and the lineage store; the Dagster assets in
`orchestration/` call them.
"""
