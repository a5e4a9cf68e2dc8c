"""Data-quality checks over the stage tables: Great Expectations suites run in bounded memory."""
