"""The connector contract and the registry that maps a catalog `kind:` to a connector class.

A connector knows one upstream format. It lists the upstream units of a source (one unit is
one Dagster partition: a dump file, a batch of books, a WARC file), and reads one unit into
`RawRecord`s. It never decides licences or filters; it reports what the upstream states.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import ClassVar

from pydantic import BaseModel, ConfigDict

from opencorpus_dagster.fetch import Fetcher
from opencorpus_dagster.limits import InputLimits
from opencorpus_dagster.records import Decision, RawRecord


class ConnectorOptions(BaseModel):
    """Base of every connector's `options:` model; unknown keys are errors, not defaults."""

    model_config = ConfigDict(extra="forbid")


@dataclass(frozen=True)
class Unit:
    """One upstream unit = one partition of a source: its key and the files it is read from."""

    key: str
    urls: tuple[str, ...]
    extra: dict = field(default_factory=dict, hash=False, compare=False)


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
    _load_builtin_connectors()
    try:
        return _REGISTRY[kind]
    except KeyError:
        raise KeyError(f"unknown connector kind {kind!r}; known kinds: {', '.join(sorted(_REGISTRY))}") from None


def known_kinds() -> list[str]:
    _load_builtin_connectors()
    return sorted(_REGISTRY)


def _load_builtin_connectors() -> None:
    # Importing the package imports every connector module, each of which registers itself.
    import opencorpus_dagster.connectors  # noqa: F401
