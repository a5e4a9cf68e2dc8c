"""opencorpus: an openly licensed, traceable text corpus, built as a Dagster code location."""
