"""The source catalog: one YAML file per source in `assets/`, validated on load.

Validation is strict (`extra="forbid"` everywhere, connector options validated by the
connector's own model, SPDX ids checked against the SPDX licence list), and every error names
the file, the field, what was given and what was expected. A file's sections are validated
independently, so one reading reports every error of the file, not only the first. One bad
file does not stop the others from loading: `load_catalog` returns the good sources and the
errors side by side, so the UI still shows the rest of the catalog.
"""

from __future__ import annotations

import difflib
import functools
import hashlib
import json
import os
import sys
from collections.abc import Iterable
from dataclasses import dataclass, field
from datetime import date
from pathlib import Path
from typing import Any

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from opencorpus_dagster.connectors.base import (
    Connector,
    Unit,
    connector_class,
    known_kinds,
)
from opencorpus_dagster.licensing.policy import LicensePolicy
from opencorpus_dagster.licensing.renewals import RenewalsConfig
from opencorpus_dagster.licensing.spdx import spdx_expression_problems
from opencorpus_dagster.state.atomic import published
from opencorpus_dagster.state.user_cache import cache_folder, prune, trusted
from opencorpus_dagster.text.extraction_options import ExtractionOptions
from opencorpus_dagster.text.filters_config import FiltersConfig, with_kind_defaults
from opencorpus_dagster.text.quality_defaults import known_kinds as known_content_kinds
from opencorpus_dagster.upstream.limits import InputLimits

CATALOG_ENV = "OPENCORPUS_CATALOG"
DEFAULT_CATALOG_DIR = Path(__file__).resolve().parent.parent / "assets"


class LicenseDeclaration(BaseModel):
    """A licence the source itself declares for all of its records (a dump's terms)."""

    model_config = ConfigDict(extra="forbid")

    spdx: str = Field(description="SPDX expression, e.g. CC-BY-SA-4.0")
    evidence: str = Field(description="where the declaration comes from (terms page, dump notice)")

    @field_validator("spdx")
    @classmethod
    def _on_the_spdx_list(cls, value: str) -> str:
        # A made-up id (CC-BY-SA-9.9) would make every record of the source `license.unknown`.
        problems = spdx_expression_problems(value)
        if problems:
            raise ValueError("; ".join(problems))
        return value


class PolicyOverrides(BaseModel):
    """Per-source additions to the default licence policy."""

    model_config = ConfigDict(extra="forbid")

    allow: list[str] = []
    deny: list[str] = []


class SourceSpec(BaseModel):
    """One `assets/<name>.yaml` file."""

    model_config = ConfigDict(extra="forbid")

    name: str = Field(pattern=r"^[a-z][a-z0-9_]{0,62}$", description="lowercase letters, digits, _")
    kind: str
    description: str = ""
    owners: list[str] = []
    tags: dict[str, str] = {}
    # book | encyclopedia | forum | web | print | general: picks the quality defaults
    # (text/quality_defaults.py); None inherits the connector's.
    content_kind: str | None = None
    enabled: bool = True
    options: dict[str, Any] = {}
    license: LicenseDeclaration | None = None
    policy: PolicyOverrides = PolicyOverrides()
    # Optional licence step: US public domain by non-renewal, from these renewal files.
    us_renewals: RenewalsConfig | None = None
    filters: dict[str, Any] = {}
    extraction: dict[str, Any] = {}
    # Part of `Source.fingerprint` (the spec dump keeps it): a record over a limit is quarantined.
    limits: InputLimits = InputLimits()


class TrainingSummarySettings(BaseModel):
    """`summary:` in the catalog's `_corpus.yaml`: what the training-content summary (EU AI Act
    Art. 53(1)(d) template, rights/training_summary.py) needs and the data cannot tell."""

    model_config = ConfigDict(extra="forbid")

    provider: str | None = None  # the model provider's name (template 1.1)
    provider_contact: str | None = None
    authorised_representative: str | None = None
    models: list[str] = []  # versioned model name(s) trained on the corpus (template 1.2)
    model_dependencies: str | None = None
    placed_on_market: date | None = None  # date of placement of the model on the Union market
    # An SME may list the top 5% of domains (at most 1,000) instead of the top 10% (template 2.3).
    sme: bool = False


class CorpusSettingsSpec(BaseModel):
    """`<catalog>/_corpus.yaml`: settings of the corpus as a whole (not a source)."""

    model_config = ConfigDict(extra="forbid")

    summary: TrainingSummarySettings = TrainingSummarySettings()


# Not a source: a leading underscore is not a valid source name, so no source can take it.
CORPUS_SETTINGS_FILE = "_corpus.yaml"


@dataclass(frozen=True)
class Source:
    """A validated catalog entry with its connector instantiated."""

    spec: SourceSpec
    path: Path
    connector: Connector
    policy: LicensePolicy
    filters: Any  # FiltersConfig, the kind's defaults applied
    extraction: Any  # ExtractionOptions (HTML main-text extraction)
    content_kind: str = "general"  # declared, or inherited from the connector

    @property
    def name(self) -> str:
        return self.spec.name

    @property
    def fingerprint(self) -> str:
        """Hash of the settings that change how every partition is processed.

        The list of upstream units is left out: listing one more unit must not make the other
        partitions stale.
        """
        shared = self.spec.model_dump(mode="json", exclude={"description", "owners", "tags", "enabled", "options"})
        shared["options"] = self.connector.processing_options()
        # The filters as resolved (kind defaults, model defaults): a changed default re-processes.
        shared["resolved_filters"] = self.filters.model_dump(mode="json")
        return _short_hash(shared)

    def partition_fingerprint(self, unit: Unit) -> str:
        """Hash of what one partition's output depends on: the shared settings and its unit."""
        return _short_hash([self.fingerprint, unit.key, list(unit.urls), unit.extra])


def _short_hash(data: object) -> str:
    return hashlib.sha256(json.dumps(data, sort_keys=True, default=str).encode()).hexdigest()[:16]


@dataclass(frozen=True)
class CatalogProblem:
    """One error in a catalog file: the field's dotted path ("options.dumps.0"; "" for the file
    as a whole, e.g. unreadable YAML) and what is wrong with it."""

    field: str
    message: str

    def __str__(self) -> str:
        return f"{self.field}: {self.message}" if self.field else self.message


@dataclass(frozen=True)
class CatalogError:
    """An invalid catalog file: every problem found in it, and all of them as one message."""

    path: Path
    message: str
    problems: tuple[CatalogProblem, ...] = ()

    def __str__(self) -> str:
        return f"{self.path}: {self.message}"

    def lines(self) -> list[str]:
        """One `PATH: field: problem` line per problem."""
        return [f"{self.path}: {problem}" for problem in self.problems] or [str(self)]


@dataclass(frozen=True)
class Catalog:
    directory: Path
    sources: tuple[Source, ...]
    errors: tuple[CatalogError, ...]
    settings: CorpusSettingsSpec = field(default_factory=CorpusSettingsSpec)

    def source(self, name: str) -> Source:
        for source in self.sources:
            if source.name == name:
                return source
        known = ", ".join(s.name for s in self.sources) or "none"
        raise KeyError(f"no source named {name!r} in {self.directory} (sources: {known})")


class CatalogFileError(Exception):
    """One catalog file is invalid; `problems` says where and what was expected, each one."""

    def __init__(self, *problems: CatalogProblem | str) -> None:
        self.problems = tuple(p if isinstance(p, CatalogProblem) else CatalogProblem("", p) for p in problems)
        super().__init__("; ".join(str(p) for p in self.problems))


def catalog_dir(explicit: str | Path | None = None) -> Path:
    return Path(explicit or os.environ.get(CATALOG_ENV) or DEFAULT_CATALOG_DIR).resolve()


def load_catalog(directory: str | Path | None = None) -> Catalog:
    """Load every `*.yaml` / `*.yml` in the catalog directory, in name order.

    Never raises for a bad source file: its error is returned in `Catalog.errors`.
    Raises FileNotFoundError when the directory itself does not exist.
    """
    directory = catalog_dir(directory)
    if not directory.is_dir():
        raise FileNotFoundError(f"catalog directory {directory} does not exist")
    sources: list[Source] = []
    errors: list[CatalogError] = []
    seen: dict[str, Path] = {}
    files = sorted(p for p in directory.iterdir() if p.suffix in (".yaml", ".yml") and p.is_file())
    settings = CorpusSettingsSpec()
    for path in files:
        if path.name == CORPUS_SETTINGS_FILE:
            try:
                settings = load_corpus_settings_file(path)
            except CatalogFileError as error:
                errors.append(CatalogError(path, str(error), error.problems))
            continue
        try:
            source = load_source_file(path)
        except CatalogFileError as error:
            errors.append(CatalogError(path, str(error), error.problems))
            continue
        if source.name in seen:
            duplicate = CatalogProblem("name", f"source {source.name!r} is already defined in {seen[source.name]}")
            errors.append(CatalogError(path, str(duplicate), (duplicate,)))
            continue
        seen[source.name] = path
        if source.spec.enabled:
            sources.append(source)
    return Catalog(directory, tuple(sources), tuple(errors), settings)


def load_corpus_settings_file(path: Path) -> CorpusSettingsSpec:
    """Parse and validate `_corpus.yaml`; raises CatalogFileError naming each bad field
    (`summary.placed_on_market: Input should be a valid date ... (got 'soon')`)."""
    data = _read_catalog_yaml(path)
    if data is None:
        return CorpusSettingsSpec()
    if not isinstance(data, dict):
        raise CatalogFileError(f"expected a mapping of fields (summary), got {type(data).__name__}")
    problems: list[CatalogProblem] = []
    settings = _validated(CorpusSettingsSpec, data, "", problems)
    if problems:
        raise CatalogFileError(*problems)
    return settings


def load_corpus_settings(directory: str | Path | None = None) -> CorpusSettingsSpec:
    """The catalog's corpus settings (defaults when it has no `_corpus.yaml`); raises
    CatalogFileError when the file is invalid."""
    path = catalog_dir(directory) / CORPUS_SETTINGS_FILE
    return load_corpus_settings_file(path) if path.is_file() else CorpusSettingsSpec()


# Sources already loaded in this process, by (path, sha256 of the file's bytes). A build loads
# the catalog three times (the definitions for Dagster, the build's plan, the code location);
# validating a source that lists 100,000 files costs seconds each time. A file's Source is a
# function of its path and bytes alone (the checks on listed files are lexical), so an unchanged
# file is parsed once. Invalid files are not kept: their error is found again.
_LOADED: dict[tuple[str, str], Source] = {}
_MAX_LOADED = 512


def load_source_file(path: Path) -> Source:
    """Parse and validate one catalog file (once per process for the same path and bytes).

    Raises CatalogFileError with every problem of the file, each naming its field and what was
    expected: the top-level fields, the name, the kind, the connector's options, the policy,
    the filters and the extraction settings are each checked even when another one is wrong.
    """
    key = _content_key(path)
    if key is not None and key in _LOADED:
        return _LOADED[key]
    data = _parsed_from_disk_cache(key)
    if data is None:
        data = _read_catalog_yaml(path)
        _parsed_to_disk_cache(key, data)
    source = _source_from_data(path, data)
    if key is not None:
        if len(_LOADED) >= _MAX_LOADED:
            _LOADED.clear()
        _LOADED[key] = source
    return source


def _content_key(path: Path) -> tuple[str, str] | None:
    """(absolute path, sha256 of the bytes), or None when the file is too large or unreadable
    (`_read_catalog_yaml` then says why)."""
    try:
        if path.stat().st_size > MAX_CATALOG_FILE_BYTES:
            return None
        return str(path.absolute()), hashlib.sha256(path.read_bytes()).hexdigest()
    except OSError:
        return None


# Across processes: the parsed file kept as JSON in the user's cache folder, under the sha256 of
# its path, its bytes and the code that reads it (every module's size and mtime). Every
# `opencorpus build` loads the catalog; parsing a 1 MB file listing 34,000 files with YAML costs
# ~0.14 s CPU, reading the JSON 3 ms (validation, ~0.05 s, runs either way: the cache holds
# data, never code or objects). Only a folder of the current user that no one else can write is
# read, a file whose JSON does not give back exactly what YAML gave is not kept, and any problem
# is a miss. Each edit and each code version adds files: the least recently used go beyond CACHE_BYTES.
CACHE_ENV = "OPENCORPUS_CATALOG_CACHE"  # a folder, or "off"; default $XDG_CACHE_HOME/opencorpus/catalog
CACHE_BYTES = 64 << 20  # the least recently used files go beyond this (a catalog file is at most 1 MB)
_PACKAGE = Path(__file__).resolve().parent


@functools.lru_cache(maxsize=1)
def _code_fingerprint() -> str:
    digest = hashlib.sha256(f"{sys.version}|{yaml.__version__}".encode())
    for module in sorted(_PACKAGE.rglob("*.py")):
        info = module.stat()
        digest.update(f"{module.relative_to(_PACKAGE)} {info.st_mtime_ns} {info.st_size}\n".encode())
    return digest.hexdigest()


def _disk_cache_file(key: tuple[str, str] | None) -> Path | None:
    folder = cache_folder(CACHE_ENV, "catalog")
    if key is None or folder is None:
        return None
    name = hashlib.sha256(f"{key[0]}\0{key[1]}\0{_code_fingerprint()}".encode()).hexdigest()
    return folder / f"{name}.json"


def _parsed_from_disk_cache(key: tuple[str, str] | None) -> Any:
    """The parsed content kept for `key`, or None on any miss."""
    try:
        target = _disk_cache_file(key)
        if target is None or not target.is_file():
            return None
        if not trusted(target.parent, target):
            return None
        kept = json.loads(target.read_text(encoding="utf-8"))
        if not isinstance(kept, dict) or kept.get("key") != list(key):
            return None
        os.utime(target)  # used: the last to go when the folder is pruned
        return kept["data"]
    except Exception:  # noqa: BLE001 - a cache: any problem is a miss, and the file is parsed
        return None


def _parsed_to_disk_cache(key: tuple[str, str] | None, data: Any) -> None:
    try:
        target = _disk_cache_file(key)
        if target is None:
            return
        text = json.dumps({"key": list(key), "data": data}, ensure_ascii=False)
        if json.loads(text)["data"] != data:  # dates, integer keys: JSON would change what is validated
            return
        target.parent.mkdir(mode=0o700, parents=True, exist_ok=True)
        with published(target) as temporary:
            temporary.write_text(text, encoding="utf-8")
        prune(target.parent, "*.json", CACHE_BYTES)
    except Exception:  # noqa: BLE001 - a cache that cannot be written is no cache
        return


def _source_from_data(path: Path, data: Any) -> Source:
    """Validate the parsed content of the catalog file `path` into a Source (CatalogFileError)."""
    if not isinstance(data, dict):
        raise CatalogFileError(f"expected a mapping of fields (name, kind, options, ...), got {type(data).__name__}")
    problems: list[CatalogProblem] = []
    spec = _validated(SourceSpec, data, "", problems)
    name = data.get("name")
    if isinstance(name, str) and name != path.stem:
        problems.append(CatalogProblem("name", f"{name!r} must equal the file name {path.stem!r}"))
    cls = None
    if isinstance(data.get("kind"), str):
        try:
            cls = connector_class(data["kind"])
        except KeyError as error:
            close = difflib.get_close_matches(data["kind"], known_kinds(), n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            problems.append(CatalogProblem("kind", f"{error.args[0]}{hint}"))
    # A section of the wrong type is already reported by SourceSpec; its content is checked
    # only when it is a mapping.
    options = _validated(cls.Options, data.get("options", {}), "options", problems) if cls else None
    overrides = _validated(PolicyOverrides, data.get("policy", {}), "policy", [])  # reported by SourceSpec
    policy = _merged_policy(overrides, problems) if overrides is not None else None
    declared_kind = data.get("content_kind")
    content_kind = (declared_kind if isinstance(declared_kind, str) else None) or getattr(cls, "content_kind", None) or "general"
    if content_kind not in known_content_kinds():
        problems.append(
            CatalogProblem("content_kind", f"unknown kind {content_kind!r} (expected one of: {', '.join(known_content_kinds())})")
        )
        content_kind = "general"  # so the filters are still checked
    filters = _validated(FiltersConfig, with_kind_defaults(data.get("filters", {}), content_kind), "filters", problems)
    extraction = _validated(ExtractionOptions, data.get("extraction", {}), "extraction", problems)
    if problems:
        raise CatalogFileError(*problems)
    return Source(
        spec=spec,
        path=path,
        connector=cls(options, limits=spec.limits),
        policy=policy,
        filters=filters,
        extraction=extraction,
        content_kind=content_kind,
    )


def _merged_policy(overrides: PolicyOverrides, problems: list[CatalogProblem]) -> LicensePolicy | None:
    """The default policy plus the source's overrides; each invalid entry is a problem of its own
    (`policy.deny.1`), and so is an id both allowed and denied."""
    before = len(problems)
    for field_name in ("allow", "deny"):
        for index, entry in enumerate(getattr(overrides, field_name)):
            try:
                LicensePolicy().merged(**{field_name: [entry]})
            except ValueError as error:
                problems.append(CatalogProblem(f"policy.{field_name}.{index}", str(error)))
    if len(problems) > before:
        return None
    try:
        return LicensePolicy().merged(overrides.allow, overrides.deny)
    except ValueError as error:
        problems.append(CatalogProblem("policy", str(error)))
        return None


def _validated(model: type[BaseModel], data: Any, name: str, problems: list[CatalogProblem]) -> Any:
    """`model` validated from `data`, or None with its errors added to `problems`.

    A section (`name` set) that is not a mapping is left to SourceSpec to report."""
    if name and not isinstance(data, dict):
        return None
    try:
        return model.model_validate(data)
    except ValidationError as error:
        problems.extend(_describe(error, model, prefix=name))
        return None


# A catalog file is a few hundred bytes of settings; anything near this is a mistake or an attack,
# and refusing it before parsing bounds the time and memory one file can cost.
MAX_CATALOG_FILE_BYTES = 1024 * 1024

# libyaml's parser is ~10x faster than the pure-Python one; both refuse aliases the same way here.
_YAML_LOADER = getattr(yaml, "CSafeLoader", yaml.SafeLoader)


def _read_catalog_yaml(path: Path) -> Any:
    """The parsed content of one catalog file, or CatalogFileError saying why not.

    Refused before anything is built: a file larger than MAX_CATALOG_FILE_BYTES, and any anchor
    (`&name`) or alias (`*name`, including merge keys `<<: *name`). A catalog has no use for
    them, and aliases are what makes a 1 KB "billion laughs" file expand to gigabytes in
    memory. The events are scanned first (linear in the file size: an alias is one event however
    much it would expand), and only an alias-free file is constructed.
    """
    try:
        size = path.stat().st_size
        if size > MAX_CATALOG_FILE_BYTES:
            raise CatalogFileError(
                f"file is {size} bytes, over the {MAX_CATALOG_FILE_BYTES}-byte limit for a catalog file; "
                "a catalog file holds one source's settings"
            )
        text = path.read_text(encoding="utf-8")
    except (OSError, UnicodeDecodeError) as error:
        raise CatalogFileError(f"cannot be read: {error}") from None
    try:
        _refuse_anchors_and_aliases(yaml.parse(text, Loader=_YAML_LOADER))
        return yaml.load(text, Loader=_YAML_LOADER)
    except yaml.YAMLError as error:
        raise CatalogFileError(f"not valid YAML: {error}") from None
    except RecursionError:
        raise CatalogFileError("not valid YAML: nesting too deep for a catalog file") from None


def _refuse_anchors_and_aliases(events: Iterable[yaml.Event]) -> None:
    """Raise CatalogFileError at the first alias (the harmful part), else at the first anchor."""
    first_anchor = None
    for event in events:
        if isinstance(event, yaml.AliasEvent):
            raise CatalogFileError(
                f"line {_line(event)}: YAML aliases (*{event.anchor}) are not allowed in catalog files; write the value out"
            )
        if first_anchor is None and getattr(event, "anchor", None) is not None:
            first_anchor = event
    if first_anchor is not None:
        raise CatalogFileError(
            f"line {_line(first_anchor)}: YAML anchors (&{first_anchor.anchor}) are not allowed in catalog files; "
            "write the value out"
        )


def _line(event: yaml.Event) -> int | str:
    return event.start_mark.line + 1 if event.start_mark is not None else "?"


def _describe(error: ValidationError, model: type[BaseModel], prefix: str = "") -> list[CatalogProblem]:
    """Pydantic errors as `field: problem (got X; expected Y)` problems, with typo suggestions."""
    lines = []
    for item in error.errors():
        location = ".".join(str(part) for part in ((prefix,) if prefix else ()) + tuple(item["loc"]))
        message = item["msg"]
        if item["type"] == "extra_forbidden":
            field_name = str(item["loc"][-1])
            allowed = _fields_at(model, item["loc"][:-1])
            close = difflib.get_close_matches(field_name, allowed, n=1)
            hint = f"; did you mean {close[0]!r}?" if close else ""
            lines.append(CatalogProblem(location, f"unknown field{hint} (allowed: {', '.join(allowed)})"))
            continue
        if item["type"] == "missing":
            lines.append(CatalogProblem(location, "required field is missing"))
            continue
        given = item.get("input")
        lines.append(CatalogProblem(location, f"{message} (got {given!r})"))
    return lines


def _fields_at(model: type[BaseModel], location: tuple) -> list[str]:
    current: Any = model
    for part in location:
        if isinstance(part, int):
            continue
        field = getattr(current, "model_fields", {}).get(part)
        if field is None:
            return []
        current = _model_in(field.annotation)
        if current is None:
            return []
    return sorted(getattr(current, "model_fields", {}))


def _model_in(annotation: Any) -> type[BaseModel] | None:
    if isinstance(annotation, type) and issubclass(annotation, BaseModel):
        return annotation
    for arg in getattr(annotation, "__args__", ()) or ():
        found = _model_in(arg)
        if found is not None:
            return found
    return None


__all__ = [
    "MAX_CATALOG_FILE_BYTES",
    "Catalog",
    "CatalogError",
    "CatalogFileError",
    "CatalogProblem",
    "CorpusSettingsSpec",
    "LicenseDeclaration",
    "Source",
    "SourceSpec",
    "TrainingSummarySettings",
    "catalog_dir",
    "load_catalog",
    "load_corpus_settings",
    "load_source_file",
]
