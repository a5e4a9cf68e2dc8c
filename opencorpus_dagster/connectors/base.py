"""The connector contract and the registry that maps a catalog `kind:` to a connector class.

A connector knows one upstream format. It lists the upstream units of a source (one unit is
one Dagster partition: a dump file, a batch of books, a WARC file), and reads one unit into
`RawRecord`s. It never decides licences or filters; it reports what the upstream states.
"""

from __future__ import annotations

import functools
import importlib
import os
import pkgutil
from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Annotated, ClassVar

from pydantic import AfterValidator, BaseModel, ConfigDict, field_validator

from opencorpus_dagster.records import Decision, RawRecord
from opencorpus_dagster.upstream.fetch import Fetcher
from opencorpus_dagster.upstream.limits import InputLimits
from opencorpus_dagster.upstream.url_policy import is_local, local_path_text, normalise_template, normalise_url

# Option types for URLs the catalog names: checked by the URL policy when the catalog is
# validated (http/https, no credentials, no climb above the root), kept in normalised form.
UpstreamUrl = Annotated[str, AfterValidator(normalise_url)]
UrlTemplate = Annotated[str, AfterValidator(normalise_template)]  # with an `{id}` placeholder


class ConnectorOptions(BaseModel):
    """Base of every connector's `options:` model; unknown keys are errors, not defaults."""

    model_config = ConfigDict(extra="forbid")


class LocalRootOptions(ConnectorOptions):
    """Options of a connector that reads a local collection: `root`, the absolute folder its local
    files must be in (the only folder they are read from). `checked_file` admits an http(s) URL
    (normalised) or a local file under `root`."""

    root: str | None = None

    @field_validator("root")
    @classmethod
    def _absolute_root(cls, root: str | None) -> str | None:
        if root is None:
            return None
        path = Path(local_path_text(root))
        if not path.is_absolute():
            raise ValueError(f"root must be an absolute folder path or file: URL, got {root!r}")
        return os.path.normpath(path)

    def checked_file(self, file: str) -> str:
        if self.root is not None and ":" not in file and os.sep == "/":
            # A plain POSIX path (no scheme): the common case, listed 100,000 times by a large
            # catalog, which every build loads. The same lexical check as below, without urlsplit
            # and PurePath; anything it does not admit takes the general path (and its message).
            if file and file[0] != "/" and ".." not in file:
                return file  # relative without `..`: under root whatever it names
            candidate = os.path.normpath(os.path.join(self.root, file))
            if candidate == self.root or candidate.startswith(self.root.rstrip("/") + "/"):
                return file
        if not is_local(file):
            return normalise_url(file)
        if self.root is None:
            raise ValueError(f"{file!r} is a local file: declare the folder it is in as `root`")
        if not Path(os.path.normpath(Path(self.root) / local_path_text(file))).is_relative_to(self.root):
            raise ValueError(f"{file!r} is outside root {self.root!r} (url.outside_root)")
        return file


@dataclass(frozen=True)
class Unit:
    """One upstream unit = one partition of a source: its key and the files it is read from."""

    key: str
    urls: tuple[str, ...]
    extra: dict = field(default_factory=dict, hash=False, compare=False)


MAX_REFUSALS_SHOWN = 20
# A listing (warc.paths, a dump index page, dumpstatus.json, ...) is read whole or line by line;
# the largest real one, Common Crawl's warc.paths, is ~10 MB decompressed.
MAX_LISTING_BYTES = 256 << 20


def refused_unit(key: str, where: str, refusals: list[str], count: int | None = None) -> Unit:
    """The unit that stands for what an upstream listing named and the URL policy refused.

    Its partition fails with the refusals in its message (the first `MAX_REFUSALS_SHOWN`, and
    how many there were: `count`, when more were seen than kept), without `Connector.read`
    being called, so a refusal shows where failures show (the build summary, the Dagster UI)
    and the rest of the listing is read as usual.
    """
    shown = {"listing": where, "count": count or len(refusals), "refusals": refusals[:MAX_REFUSALS_SHOWN]}
    return Unit(key=key, urls=(), extra={"refused": shown})


def refusal_message(unit: Unit) -> str | None:
    """What a `refused_unit` stands for, as a one-paragraph message; None for any other unit."""
    refused = unit.extra.get("refused")
    if not refused:
        return None
    more = refused["count"] - len(refused["refusals"])
    tail = f"; and {more} more" if more > 0 else ""
    return f"{refused['listing']}: {refused['count']} URL(s) refused by the URL policy: {'; '.join(refused['refusals'])}{tail}"


class UnreadableInput(Exception):
    """An input file cannot be read at all (truncated archive, not XML, wrong encoding).

    Fails the whole partition; the message names the file and what was wrong.
    """

    def __init__(self, location: str, problem: str):
        super().__init__(f"{location}: {problem}")
        self.location = location
        self.problem = problem


class Connector(ABC):
    """Subclass, set `kind` and `Options`, and decorate with `@register`."""

    kind: ClassVar[str]
    # The kind of text it yields (book, encyclopedia, forum, web, ...): the quality defaults a
    # catalog entry of this kind inherits (text/quality_defaults.py); None: declared per entry
    # or the neutral "general".
    content_kind: ClassVar[str | None] = None
    Options: ClassVar[type[ConnectorOptions]] = ConnectorOptions
    # Options that only list upstream units: adding a unit must not make the others stale.
    unit_listing_options: ClassVar[tuple[str, ...]] = ()

    def __init__(self, options: ConnectorOptions, limits: InputLimits | None = None):
        self.options = options
        # How much one file, record or line of this source may hold (the catalog's `limits:`).
        self.limits = limits or InputLimits()

    def processing_options(self) -> dict:
        """The options that change how every unit is read (all but the unit listing)."""
        return self.options.model_dump(mode="json", exclude=set(self.unit_listing_options))

    @abstractmethod
    def units(self) -> list[Unit]:
        """The upstream units declared in the catalog entry, in a stable order."""

    def discovers(self) -> bool:
        """True when the catalog entry asks for units listed upstream (a listing, a feed)."""
        return False

    def discover_units(self, fetcher: Fetcher) -> list[Unit]:
        """Declared units plus those listed upstream now (through the mirror-aware fetcher)."""
        return self.units()

    def listing_is_slow(self) -> bool:
        """True when listing upstream can outlast a sensor evaluation (Dagster's default
        timeout is 60 s): the discovery sensor then has the listing made in a run of its own."""
        return False

    @abstractmethod
    def read(self, unit: Unit, fetcher: Fetcher) -> Iterator[RawRecord | Decision]:
        """Stream the records of one unit.

        Yields a `RawRecord` per content record, or a `Decision` (outcome `skipped` or
        `quarantined`) for an upstream record that is not content or cannot be parsed.
        Raises `UnreadableInput` when a file of the unit cannot be read at all.
        """


_REGISTRY: dict[str, type[Connector]] = {}


def register(cls: type[Connector]) -> type[Connector]:
    """Class decorator: make `cls` available under its `kind` name in the catalog."""
    if cls.kind in _REGISTRY and _REGISTRY[cls.kind] is not cls:
        raise ValueError(f"connector kind {cls.kind!r} registered twice")
    _REGISTRY[cls.kind] = cls
    return cls


def connector_class(kind: str) -> type[Connector]:
    if kind not in _REGISTRY and kind in _builtin_modules():
        # A built-in kind lives in the module of its name: a catalog of web sources never
        # imports the OCR or dump readers (a second of start-up for every build otherwise).
        importlib.import_module(f"opencorpus_dagster.connectors.{kind}")
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown connector kind {kind!r}; known kinds: {', '.join(known_kinds())}") from None


def known_kinds() -> list[str]:
    for module in _builtin_modules():
        importlib.import_module(f"opencorpus_dagster.connectors.{module}")
    return sorted(_REGISTRY)


@functools.cache
def _builtin_modules() -> frozenset[str]:
    """The connector modules of this package (each registers the kind of its name)."""
    import opencorpus_dagster.connectors as package

    return frozenset(module.name for module in pkgutil.iter_modules(package.__path__) if module.name != "base")
