"""The members the corpus dedup loaded, kept for the next run with their documents file's stamp.

A member (`exact.Member`) includes the length of its text, and reading it means reading the
text column of its partition's documents file: DuckDB cannot push a key filter into a Parquet
scan. The members of the corpus's clusters sit in most partitions, so every corpus run read
the whole corpus's text (1 s at 100K documents) to load the same members again. Here a member
whose documents file has the stamp it had when the member was read (size and modification
time, as the near-duplicate index decides which partitions changed) is taken from the file
`members.parquet`; the others are read from their own partitions' files only. The file then
holds exactly the members this run used. It is a cache: unreadable, it is ignored.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import pyarrow as pa

from opencorpus_dagster.dedup.exact import Member, load_members, partition_of
from opencorpus_dagster.state.atomic import write_parquet_atomically
from opencorpus_dagster.state.storage import modified_stamp, read_cached_table

MEMBERS_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition", pa.string()),
        ("doc_id", pa.string()),
        ("source_record_id", pa.string()),
        ("upstream_uri", pa.string()),
        ("license", pa.string()),
        ("content_sha256", pa.string()),
        ("text_length", pa.int64()),
        ("stamp", pa.string()),  # `modified_stamp` of the documents file it was read from
    ]
)


class MemberCache:
    """`load(keys)` as `exact.load_members`, from `path` where the documents file is unchanged.

    `files` maps (source, partition) to the partition's documents file.
    """

    def __init__(self, path: Path, files: Mapping[tuple[str, str], Path]):
        self.path = path
        self._files = dict(files)
        self._stamps: dict[tuple[str, str], str] = {}
        self._kept = self._read()
        self._used: dict[str, tuple[Member, str]] = {}

    def load(self, keys: set[str]) -> dict[str, Member]:
        found: dict[str, Member] = {}
        missing = set()
        for key in keys:
            kept = self._kept.get(key)
            if kept is not None and kept[1] is not None and kept[1] == self._stamp(partition_of(key)):
                found[key] = kept[0]
            else:
                missing.add(key)
        parts = {partition_of(key) for key in missing}
        stamps = {part: self._stamp(part) for part in parts}  # before the read: a later rewrite is not taken for this one
        read = load_members([str(self._files[part]) for part in sorted(parts) if part in self._files], missing)
        for key, member in read.items():
            self._used[key] = (member, stamps[partition_of(key)])
        for key, member in found.items():
            self._used[key] = (member, self._kept[key][1])
        return {**found, **read}

    def save(self) -> None:
        """Keep the members this run used (and only them) for the next run."""
        rows = [
            {
                "source": m.source,
                "partition": m.partition,
                "doc_id": m.doc_id,
                "source_record_id": m.source_record_id,
                "upstream_uri": m.upstream_uri,
                "license": m.license,
                "content_sha256": m.content_sha256,
                "text_length": m.text_length,
                "stamp": stamp,
            }
            for _, (m, stamp) in sorted(self._used.items())
        ]
        self.path.parent.mkdir(parents=True, exist_ok=True)
        write_parquet_atomically(pa.Table.from_pylist(rows, schema=MEMBERS_SCHEMA), self.path)

    def _stamp(self, part: tuple[str, str]) -> str | None:
        if part not in self._stamps:
            path = self._files.get(part)
            try:
                self._stamps[part] = modified_stamp(path) if path is not None else None
            except OSError:
                self._stamps[part] = None
        return self._stamps[part]

    def _read(self) -> dict[str, tuple[Member, str]]:
        kept = {}
        for row in read_cached_table(self.path, MEMBERS_SCHEMA).to_pylist():
            stamp = row.pop("stamp")
            member = Member(**row)
            kept[member.key] = (member, stamp)
        return kept
