"""A local (or mirrored) collection of plain-text files (kind `textfiles`).

Each file is one record; the files are grouped into named partitions in the catalog. The
collection states no licence per file: declare it in the catalog entry's `license:` block
(with the evidence), or the licence gate removes the records as `license.unknown`.
"""

from __future__ import annotations

import zlib
from collections.abc import Iterator
from pathlib import Path, PurePosixPath
from typing import Self
from urllib.parse import urlsplit

from pydantic import Field, model_validator

from opencorpus_dagster.connectors.base import (
    Connector,
    LocalRootOptions,
    Unit,
    UnreadableInput,
    register,
)
from opencorpus_dagster.records import Decision, Outcome, PayloadType, RawRecord
from opencorpus_dagster.state.home import check_partition_key
from opencorpus_dagster.upstream.compression import read_decompressed_bytes
from opencorpus_dagster.upstream.fetch import Fetcher, NotFound
from opencorpus_dagster.upstream.limits import LimitExceeded, limit_records, over_limit
from opencorpus_dagster.upstream.url_policy import UrlRefused


@register
class TextFilesConnector(Connector):
    kind = "textfiles"
    unit_listing_options = ("partitions",)

    class Options(LocalRootOptions):
        """`partitions`: partition key -> files, each an http(s) URL or a local file inside `root`
        (a path relative to it, or an absolute path or `file:` URL under it); `root`: the
        absolute local folder the collection is in (needed for local files, and the only folder
        they are read from: a symlink out of it is refused too); `encoding` of the files."""

        partitions: dict[str, list[str]] = Field(min_length=1)
        encoding: str = "utf-8"

        @model_validator(mode="after")
        def _files_are_allowed(self) -> Self:
            for key, files in self.partitions.items():
                check_partition_key(key)
                if not files:
                    raise ValueError(f"partition {key!r} lists no files")
                files[:] = [self.checked_file(file) for file in files]
            return self

    def units(self) -> list[Unit]:
        return [Unit(key, tuple(files)) for key, files in sorted(self.options.partitions.items())]

    def read(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        """One record per file; a file over `limits.record_bytes` decompressed is quarantined
        (`limits.record_bytes`) having read at most that plus one byte."""
        yield from limit_records(self._read_files(unit, fetcher), self.limits.records_per_unit, f"textfiles unit {unit.key}")

    def _read_files(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        root = Path(self.options.root) if self.options.root else None
        for url in unit.urls:
            record_id = PurePosixPath(urlsplit(url).path).name
            try:
                fetched = fetcher.fetch(url, local_root=root)
            except NotFound as error:
                yield Decision(record_id, url, Outcome.QUARANTINED, "raw", "textfiles.missing", None, str(error))
                continue
            except UrlRefused as refusal:  # a link inside root that points out of it
                yield Decision(record_id, url, Outcome.QUARANTINED, "raw", refusal.rule, None, str(refusal))
                continue
            try:
                data = read_decompressed_bytes(fetched.path, self.limits.record_bytes, "record_bytes")
            except LimitExceeded as error:
                yield over_limit(record_id, url, error, f"file {record_id}")
                continue
            except (OSError, EOFError, zlib.error) as error:
                raise UnreadableInput(url, f"cannot be decompressed: {error}") from error
            try:
                text = data.decode(self.options.encoding).lstrip("\ufeff")
            except UnicodeDecodeError as error:
                yield Decision(record_id, url, Outcome.QUARANTINED, "raw", "textfiles.undecodable", error.start, str(error))
                continue
            yield RawRecord(
                source_record_id=record_id,
                upstream_uri=url,
                payload=text,
                payload_type=PayloadType.TEXT,
                url=url if urlsplit(url).scheme in ("http", "https") else None,
                title=PurePosixPath(urlsplit(url).path).stem,
                attribution=url,
                metadata={"file_sha256": fetched.sha256},
            )
