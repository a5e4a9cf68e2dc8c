"""Deduplication: exact groups, MinHash-LSH near duplicates, clusters and keepers."""
