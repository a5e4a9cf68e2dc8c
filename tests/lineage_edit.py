"""Edit a copy of a home's lineage as DuckDB tables (the store itself is immutable files).

`edited_lineage(source_home, copy_home)` yields a read-write DuckDB connection on a database
file made by `LineageStore.publish_copy` (real tables, the `outcomes` view); on leaving, the
edited tables become the copy's lineage store (`LineageStore.replace_all`).
"""

from __future__ import annotations

import contextlib
import tempfile
from collections.abc import Iterator
from pathlib import Path

import duckdb

from opencorpus_dagster.lineage.store import TABLES, LineageStore
from opencorpus_dagster.state.home import DataHome


@contextlib.contextmanager
def edited_lineage(source: DataHome, copy: DataHome) -> Iterator[duckdb.DuckDBPyConnection]:
    with tempfile.TemporaryDirectory(prefix="lineage-edit-") as scratch:
        database = Path(scratch) / "lineage.duckdb"
        LineageStore.at(source.lineage_dir, read_only=True).publish_copy(database)
        with duckdb.connect(str(database)) as conn:
            yield conn
            tables = {name: conn.sql(f"SELECT * FROM {name}").to_arrow_table() for name in TABLES}
        LineageStore.at(copy.lineage_dir).replace_all(tables)


def copy_lineage(source: DataHome, copy: DataHome) -> None:
    """The copy's lineage store holds the same rows as the source's."""
    with edited_lineage(source, copy):
        pass
