"""Where state lives: the data home and its layout, the one-build-per-home lock, atomic writes
and fsspec storage, and releases (publish in one step, diff, verify, Merkle proofs).

The lineage store is its own package (`lineage/`).
"""
