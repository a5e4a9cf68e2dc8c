"""The dataset card: `README.md` of a release folder in Hugging Face dataset-card form.

A YAML header with the Hub's metadata (licence ids from the Hub's list, languages, size
category, task, and `configs` whose `data_files` globs, relative to the release folder, let
`load_dataset(<release folder>)` read every shard and `load_dataset(<folder>, "<source>")` one
source's; `<home>/corpus/releases/current` is the current release's folder),
then Markdown sections: summary, sources, languages, licences, processing (every filter rule's
removals), deduplication, opt-outs and takedowns, quarantined and skipped records, known
limitations, and release and citation (version, release date, creators, BibTeX; see
release.py). Three charts (charts.py) are written beside it, in `charts/`, and linked from
the sources, licences and processing sections.

Every number is queried when the card is written: document, token and licence counts from the
shard files (DuckDB over the Parquet, in vectors of a few thousand rows; each shard is counted once,
when it is first published, and its counts kept under its sha256: shard_stats.py), and
everything about what left the corpus from the lineage store (`outcomes`, the terminal decision
of each upstream record, and `decisions` of the dedup stage). A token is a whitespace-separated
word, counted by Python's `str.split()` (`shard_stats.TOKENS_SQL`), not a model token.
"""

from __future__ import annotations

import re
from collections import Counter, defaultdict
from dataclasses import dataclass, field
from pathlib import Path

import duckdb
import yaml

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.publish.attribution import (
    license_keys,
    license_url,
    license_urls,
    requires_attribution,
    shard_files,
)
from opencorpus_dagster.publish.charts import (
    LICENCES_CHART,
    OUTCOME_ORDER,
    OUTCOMES_CHART,
    SOURCES_CHART,
    TOKENS_LABEL,
    chart_data,
    write_charts,
)
from opencorpus_dagster.publish.markdown import markdown_code, markdown_link, markdown_text
from opencorpus_dagster.publish.release import Release, release_of
from opencorpus_dagster.publish.shard_stats import TOKENS_SQL, CorpusShardStatistics, shard_statistics  # noqa: F401 (TOKENS_SQL: the card's token, named here)
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.text.language import NOT_IDENTIFIED

CARD_FILE = "README.md"
SHARD_GLOB = "shards/**/*.parquet"  # relative to the release folder, where README.md lives
DEFAULT_CONFIG = "default"  # the Hub's name for the configuration load_dataset picks without one
DEFAULT_PRETTY_NAME = "opencorpus"


# Licence ids the Hub accepts in `license:` (huggingface/hub-docs docs/hub/repositories-licenses.md).
HF_LICENSE_IDS = frozenset(
    """apache-2.0 mit openrail bigscience-openrail-m creativeml-openrail-m bigscience-bloom-rail-1.0
    bigcode-openrail-m afl-3.0 artistic-2.0 bsl-1.0 bsd bsd-2-clause bsd-3-clause bsd-3-clause-clear
    c-uda cc cc0-1.0 cc-by-2.0 cc-by-2.5 cc-by-3.0 cc-by-4.0 cc-by-sa-3.0 cc-by-sa-4.0 cc-by-nc-2.0
    cc-by-nc-3.0 cc-by-nc-4.0 cc-by-nd-4.0 cc-by-nc-nd-3.0 cc-by-nc-nd-4.0 cc-by-nc-sa-2.0
    cc-by-nc-sa-3.0 cc-by-nc-sa-4.0 cdla-sharing-1.0 cdla-permissive-1.0 cdla-permissive-2.0 wtfpl
    ecl-2.0 epl-1.0 epl-2.0 etalab-2.0 eupl-1.1 agpl-3.0 gfdl gpl gpl-2.0 gpl-3.0 lgpl lgpl-2.1
    lgpl-3.0 isc lppl-1.3c ms-pl mpl-2.0 odc-by odbl openrail++ osl-3.0 postgresql ofl-1.1 ncsa
    unlicense zlib pddl lgpl-lr unknown other""".split()
)
# SPDX ids whose Hub id is not simply the lowercased SPDX id.
_HF_ALIASES = {"PDDL-1.0": "pddl", "ODC-By-1.0": "odc-by", "ODbL-1.0": "odbl", "LGPL-LR": "lgpl-lr"}
_HF_FAMILIES = (  # SPDX id prefix -> the Hub's family id, for versions the Hub does not list
    ("GFDL-", "gfdl"), ("LGPL-2.1", "lgpl-2.1"), ("LGPL-3.0", "lgpl-3.0"), ("LGPL-", "lgpl"),
    ("AGPL-3.0", "agpl-3.0"), ("GPL-2.0", "gpl-2.0"), ("GPL-3.0", "gpl-3.0"), ("GPL-", "gpl"),
)  # fmt: skip
# The Hub's size_categories buckets, by upper bound on the number of documents.
_SIZE_CATEGORIES = (
    (1_000, "n<1K"), (10_000, "1K<n<10K"), (100_000, "10K<n<100K"), (1_000_000, "100K<n<1M"),
    (10_000_000, "1M<n<10M"), (100_000_000, "10M<n<100M"), (1_000_000_000, "100M<n<1B"),
    (10_000_000_000, "1B<n<10B"), (100_000_000_000, "10B<n<100B"), (1_000_000_000_000, "100B<n<1T"),
)  # fmt: skip
_LANGUAGE_CODE = re.compile(r"^[a-z]{2,3}$")
_OUTCOME_COLUMNS = tuple(str(o) for o in OUTCOME_ORDER)
TITLE = "an openly licensed text corpus with record-level lineage"


@dataclass
class CorpusStatistics:
    """What the card reports; every figure from the shards or the lineage store."""

    shards: int = 0
    parquet_bytes: int = 0
    documents: int = 0
    tokens: int = 0
    by_source: dict[str, tuple[int, int]] = field(default_factory=dict)  # source -> (documents, tokens)
    by_license: dict[str | None, tuple[int, int]] = field(default_factory=dict)
    by_source_license: dict[tuple[str, str | None], tuple[int, int]] = field(default_factory=dict)
    by_language: dict[str | None, tuple[int, int]] = field(default_factory=dict)
    evidence_kinds: dict[str, int] = field(default_factory=dict)  # kind -> documents
    records_in: dict[str, int] = field(default_factory=dict)  # source -> upstream records read
    outcomes: dict[str, dict[str, int]] = field(default_factory=dict)  # source -> outcome -> n
    filters: list[tuple[str, str, str, int]] = field(default_factory=list)  # source, stage, rule, n
    dedup_documents: dict[str, int] = field(default_factory=dict)  # source -> documents dedup saw
    duplicates: list[tuple[str, str, int]] = field(default_factory=list)  # source, reason, n
    removed: list[tuple[str, str, str, int]] = field(default_factory=list)  # source, category, reason, n
    set_aside: list[tuple[str, str, str, int]] = field(default_factory=list)  # source, outcome, reason, n


def write_card(
    home: DataHome,
    store: LineageStore,
    catalog_descriptions: dict[str, str] | None = None,
    *,
    owners: dict[str, list[str]] | None = None,
    base_url: str | None = None,
    pretty_name: str = DEFAULT_PRETTY_NAME,
    release: str | None = None,
) -> Path:
    """Write `<home>/corpus/README.md` and its charts (`charts/*.png`) for the corpus as
    published; returns the card's path.

    `catalog_descriptions` (source name -> the catalog's description) fills the sources table;
    a source without one gets an empty cell. `owners` (source name -> the catalog's `owners:`)
    gives the creators; `base_url` (where the corpus folder is served, see release.py) goes into
    the citation. Byte-identical output, charts included, for the same corpus and lineage store.
    The charts are published before the card that links them.
    Raises FileNotFoundError when the corpus has no manifest; ValueError for a bad `base_url`.
    `release` is the release folder written into (default: the one being staged, else the current one).
    """
    release_id = release or releases.card_release(home)
    folder = releases.release_dir(home, release_id)
    manifest = releases.read_manifest(home, release_id)
    stats = corpus_statistics(home, store, release_id)
    about = release_of(manifest, store, owners, base_url, pretty_name, folder=f"releases/{release_id}/")
    write_charts(folder, chart_data(stats))
    text = _header(stats, pretty_name) + _body(stats, about, catalog_descriptions or {}, owners or {})
    return write_text_atomically(folder / CARD_FILE, [text])


def corpus_statistics(home: DataHome, store: LineageStore, release: str | None = None) -> CorpusStatistics:
    """Query the shard files of `release` (default: the current one) and the lineage store for the card's figures.

    The shard figures are sums of per-shard statistics (shard_stats.py): a shard is read the
    first time a card is written with it, later cards read its kept statistics."""
    files = shard_files(home, release)
    manifest = releases.read_manifest(home, release)
    stats = CorpusStatistics(shards=len(files), parquet_bytes=sum(s["bytes"] for s in manifest["shards"]))
    if files:
        _shard_statistics(stats, shard_statistics(home, manifest, files))
    with store.connection() as conn:
        _lineage_statistics(stats, conn)
    return stats


def _shard_statistics(stats: CorpusStatistics, shards: CorpusShardStatistics) -> None:
    totals: dict[str, dict] = {name: defaultdict(lambda: [0, 0]) for name in ("source", "license", "pair", "language")}
    evidence: Counter = Counter()
    groups = (group for shard in shards.shards for group in shard.groups)
    for source, license, language, kind, documents, tokens in groups:
        keys = (("source", source), ("license", license), ("pair", (source, license)), ("language", language))
        for name, key in keys:
            totals[name][key][0] += documents
            totals[name][key][1] += tokens
        evidence[kind] += documents
    stats.documents = sum(documents for documents, _ in totals["source"].values())
    stats.tokens = sum(tokens for _, tokens in totals["source"].values())
    stats.by_source = {k: tuple(v) for k, v in sorted(totals["source"].items())}
    stats.by_license = {k: tuple(totals["license"][k]) for k in sorted(totals["license"], key=_none_last)}
    stats.by_source_license = {
        k: tuple(totals["pair"][k]) for k in sorted(totals["pair"], key=lambda k: (k[0], *_none_last(k[1])))
    }
    stats.by_language = {k: tuple(totals["language"][k]) for k in sorted(totals["language"], key=_none_last)}
    stats.evidence_kinds = dict(sorted(evidence.items()))


def _lineage_statistics(stats: CorpusStatistics, conn: duckdb.DuckDBPyConnection) -> None:
    stats.records_in = dict(
        conn.execute(
            "SELECT source, sum(records_in)::BIGINT FROM partitions WHERE stage = 'raw' GROUP BY source ORDER BY source"
        ).fetchall()
    )
    outcomes: dict[str, dict[str, int]] = defaultdict(dict)
    for source, outcome, n in conn.execute(
        "SELECT source, outcome, count(*) FROM outcomes GROUP BY ALL ORDER BY ALL"
    ).fetchall():
        outcomes[source][outcome] = n
    stats.outcomes = dict(outcomes)
    stats.filters = conn.execute(
        "SELECT source, stage, reason, count(*) AS n FROM outcomes WHERE outcome = 'filtered' "
        "GROUP BY ALL ORDER BY source, n DESC, stage, reason"
    ).fetchall()
    # Dedup rates are over what the dedup stage saw, whatever happened to the record later
    # (a duplicate later taken down still counts as a duplicate found).
    stats.dedup_documents = dict(
        conn.execute(
            "SELECT source, count(*) FROM decisions WHERE stage = 'dedup' GROUP BY source ORDER BY source"
        ).fetchall()
    )
    stats.duplicates = conn.execute(
        "SELECT source, reason, count(*) AS n FROM decisions WHERE stage = 'dedup' AND outcome = 'duplicate' "
        "GROUP BY ALL ORDER BY source, n DESC, reason"
    ).fetchall()
    stats.removed = conn.execute(
        f"SELECT source, {_REMOVAL_CATEGORY_SQL} AS category, reason, count(*) AS n FROM outcomes "
        "WHERE outcome = 'removed' GROUP BY ALL ORDER BY category, source, n DESC, reason"
    ).fetchall()
    stats.set_aside = conn.execute(
        "SELECT source, outcome, reason, count(*) AS n FROM outcomes WHERE outcome IN ('quarantined', 'skipped') "
        "GROUP BY ALL ORDER BY source, outcome, n DESC, reason"
    ).fetchall()


# Opt-outs are recorded as `opt-out:<signal>` (licensing/optout.py); takedowns by the takedown
# stage, with a `takedown...` reason.
_REMOVAL_CATEGORY_SQL = """CASE
    WHEN reason LIKE 'opt-out:%' THEN 'opt-out'
    WHEN stage = 'takedown' OR reason LIKE 'takedown%' THEN 'takedown'
    ELSE 'other removal' END"""


# --- the YAML header -----------------------------------------------------------------------


def hub_license_id(key: str) -> str:
    """The Hub's id for one SPDX licence id (`other` when the Hub has none)."""
    if key in _HF_ALIASES:
        return _HF_ALIASES[key]
    if key.lower() in HF_LICENSE_IDS:
        return key.lower()
    for prefix, family in _HF_FAMILIES:
        if key.upper().startswith(prefix.upper()):
            return family
    return "other"


def size_category(documents: int) -> str:
    for bound, label in _SIZE_CATEGORIES:
        if documents < bound:
            return label
    return "n>1T"


def _header(stats: CorpusStatistics, pretty_name: str) -> str:
    keys = sorted({key for license in stats.by_license for key in license_keys(license)})
    hub_ids = sorted({hub_license_id(key) for key in keys}) or ["unknown"]
    metadata: dict = {"pretty_name": pretty_name, "license": hub_ids}
    others = [key for key in keys if hub_license_id(key) == "other"]
    if others:
        # The Hub allows one license_name/license_link: name the licence when there is one,
        # otherwise point to ATTRIBUTION, whose header lists every licence with its URL.
        if len(others) == 1:
            metadata["license_name"] = _slug(others[0])
            metadata["license_link"] = license_url(others[0]) or "ATTRIBUTION"
        else:
            metadata["license_name"] = "multiple-licenses"
            metadata["license_link"] = "ATTRIBUTION"
    languages = sorted(lang for lang in stats.by_language if lang and _LANGUAGE_CODE.match(lang))
    if languages:
        metadata["language"] = languages
    metadata.update(
        {
            "size_categories": [size_category(stats.documents)],
            "task_categories": ["text-generation"],
            "annotations_creators": ["no-annotation"],
            "language_creators": ["found"],
            "multilinguality": ["multilingual" if len(languages) > 1 else "monolingual"],
            "source_datasets": ["original"],
            "configs": dataset_configs(stats.by_source),
        }
    )
    return "---\n" + yaml.safe_dump(metadata, sort_keys=False, allow_unicode=True, width=1000) + "---\n\n"


def dataset_configs(sources) -> list[dict]:
    """The Hub's `configs`: `default` (every shard, what `load_dataset(folder)` reads), then one
    per source with documents, named after it, reading `shards/<source>/**/*.parquet`.

    A source named `default` would clash with the Hub's default configuration: its own
    configuration is `source_default`.
    """
    configs = [{"config_name": DEFAULT_CONFIG, "data_files": [{"split": "train", "path": SHARD_GLOB}], "default": True}]
    for source in sorted(sources):
        data_files = [{"split": "train", "path": f"shards/{source}/**/*.parquet"}]
        configs.append({"config_name": source_config_name(source), "data_files": data_files})
    return configs


def source_config_name(source: str) -> str:
    return f"source_{source}" if source == DEFAULT_CONFIG else source


def _slug(key: str) -> str:
    if key == "LicenseRef-PublicDomain":
        return "public-domain"
    return re.sub(r"[^a-z0-9.]+", "-", key.lower().removeprefix("licenseref-")).strip("-")


# --- the Markdown body ---------------------------------------------------------------------


def _body(stats: CorpusStatistics, release: Release, descriptions: dict[str, str], owners: dict[str, list[str]]) -> str:
    sections = [
        _summary(stats, release),
        _sources(stats, descriptions),
        _languages(stats),
        _licences(stats),
        _processing(stats),
        _dedup(stats),
        _removals(stats),
        _set_aside(stats),
        _limitations(stats),
        _release(stats, release, owners),
    ]
    return "\n".join(sections)


def _summary(stats: CorpusStatistics, release: Release) -> str:
    records_in = sum(stats.records_in.values())
    licences = len(stats.by_license)
    one_source = next(iter(stats.by_source), None)
    released = f", released {release.date}" if release.date else ""
    return (
        f"# {markdown_text(release.name)}\n\n"
        "## Summary\n\n"
        f"{_n(stats.documents)} documents, {_n(stats.tokens)} tokens, from {len(stats.by_source)} sources "
        f"under {licences} licence{'s' if licences != 1 else ''}, in {_n(stats.shards)} Parquet shards "
        f"({_n(stats.parquet_bytes)} bytes). They are what was kept of {_n(records_in)} upstream records; "
        "every other record left with a recorded outcome (see Processing).\n\n"
        "Tokens here are whitespace-separated words (counted as Python's `str.split()` counts them), "
        "not the tokens of any model's tokenizer.\n\n"
        "Every document is openly licensed or in the public domain; its licence, the evidence for it, "
        "its attribution and its upstream URI are columns of the shards, and `opencorpus trace` "
        "follows any shard row back to the upstream record and every decision taken about it. "
        "`manifest.json` lists each shard with its sha256; `ATTRIBUTION` credits every record whose "
        "licence requires it; `croissant.json` describes the files in Croissant 1.0.\n\n"
        f"Version {markdown_code(release.version)}{released} (see Release and citation).\n\n"
        "Every source is also a configuration of its own (the `configs` of the YAML header):\n\n"
        "```python\n"
        "from datasets import load_dataset\n\n"
        'corpus = load_dataset("path/to/this/folder", split="train")  # every source\n'
        + (
            f'{one_source} = load_dataset("path/to/this/folder", "{source_config_name(one_source)}", split="train")'
            "  # one source\n"
            if one_source
            else ""
        )
        + "```\n"
    )


def _sources(stats: CorpusStatistics, descriptions: dict[str, str]) -> str:
    lines = [
        "## Sources\n",
        "| Source | Description | Documents | Share of documents | Tokens | Share of tokens |",
        "|---|---|---:|---:|---:|---:|",
    ]
    for source, (documents, tokens) in stats.by_source.items():
        description = markdown_text(descriptions.get(source, ""))
        lines.append(
            f"| {source} | {description} | {_n(documents)} | {_share(documents, stats.documents)} "
            f"| {_n(tokens)} | {_share(tokens, stats.tokens)} |"
        )
    lines.append(
        f"| **total** | | {_n(stats.documents)} | {_share(stats.documents, stats.documents)} "
        f"| {_n(stats.tokens)} | {_share(stats.tokens, stats.tokens)} |"
    )
    lines += ["", f"![Documents and {TOKENS_LABEL} per source]({SOURCES_CHART})"]
    return "\n".join(lines) + "\n"


def _languages(stats: CorpusStatistics) -> str:
    lines = [
        "## Languages\n",
        "Identified per document by the documents stage (py3langid); codes are ISO 639-1.\n",
        "| Language | Documents | Share of documents | Tokens | Share of tokens |",
        "|---|---:|---:|---:|---:|",
    ]
    for language, (documents, tokens) in stats.by_language.items():
        lines.append(
            f"| {markdown_text(language) or NOT_IDENTIFIED} | {_n(documents)} | {_share(documents, stats.documents)} "
            f"| {_n(tokens)} | {_share(tokens, stats.tokens)} |"
        )
    return "\n".join(lines) + "\n"


def _licences(stats: CorpusStatistics) -> str:
    lines = [
        "## Licences\n",
        "Licences are SPDX expressions; `LicenseRef-PublicDomain` marks works with no known copyright "
        "(the Creative Commons Public Domain Mark). Shares are of documents and of tokens.\n",
        "| Licence | Licence text | Attribution required | Documents | Share of documents | Tokens | Share of tokens |",
        "|---|---|---|---:|---:|---:|---:|",
    ]
    for license, (documents, tokens) in stats.by_license.items():
        urls = ", ".join(markdown_link(link) for link in license_urls(license)) or "none"
        needs = "yes" if requires_attribution(license) else "no"
        lines.append(
            f"| {markdown_text(license) or '(none)'} | {urls} | {needs} | {_n(documents)} "
            f"| {_share(documents, stats.documents)} | {_n(tokens)} | {_share(tokens, stats.tokens)} |"
        )
    lines += ["", f"![Share of documents and of {TOKENS_LABEL} under each licence]({LICENCES_CHART})"]
    lines += ["", "By source:", "", "| Source | Licence | Documents | Tokens |", "|---|---|---:|---:|"]
    for (source, license), (documents, tokens) in stats.by_source_license.items():
        lines.append(f"| {source} | {markdown_text(license) or '(none)'} | {_n(documents)} | {_n(tokens)} |")
    return "\n".join(lines) + "\n"


def _processing(stats: CorpusStatistics) -> str:
    lines = [
        "## Processing\n",
        "Each upstream record read has exactly one terminal outcome (the decision of its last stage: "
        "raw < documents < dedup < takedown).\n",
        "| Source | Records read | " + " | ".join(o.capitalize() for o in _OUTCOME_COLUMNS) + " |",
        "|---|---:|" + "---:|" * len(_OUTCOME_COLUMNS),
    ]
    totals: Counter = Counter()
    for source in sorted(set(stats.records_in) | set(stats.outcomes)):
        counts = stats.outcomes.get(source, {})
        totals.update(counts)
        totals["records in"] += stats.records_in.get(source, 0)
        cells = " | ".join(_n(counts.get(o, 0)) for o in _OUTCOME_COLUMNS)
        lines.append(f"| {source} | {_n(stats.records_in.get(source, 0))} | {cells} |")
    cells = " | ".join(_n(totals[o]) for o in _OUTCOME_COLUMNS)
    lines.append(f"| **total** | {_n(totals['records in'])} | {cells} |")
    lines += ["", f"![Per source, records read, then left after each outcome, down to records kept]({OUTCOMES_CHART})"]
    lines += ["", "### Filter rules", ""]
    if not stats.filters:
        lines.append("No record was removed by a filter rule.")
    else:
        lines += [
            "Records removed by each rule (the first rule that failed; licence rules included):",
            "",
            "| Source | Stage | Rule | Records removed |",
            "|---|---|---|---:|",
        ]
        lines += [
            f"| {source} | {markdown_text(stage)} | {markdown_code(rule)} | {_n(n)} |"
            for source, stage, rule, n in stats.filters
        ]
    return "\n".join(lines) + "\n"


def _dedup(stats: CorpusStatistics) -> str:
    considered = sum(stats.dedup_documents.values())
    lines = [
        "## Deduplication\n",
        "Across all sources. Rate = duplicates / documents the dedup stage considered.\n",
        "| Source | Documents considered | Duplicates | Rate |",
        "|---|---:|---:|---:|",
    ]
    by_source: Counter = Counter()
    by_reason: Counter = Counter()
    for source, reason, n in stats.duplicates:
        by_source[source] += n
        by_reason[reason] += n
    for source, documents in stats.dedup_documents.items():
        found = by_source[source]
        lines.append(f"| {source} | {_n(documents)} | {_n(found)} | {_share(found, documents)} |")
    total = sum(by_source.values())
    lines.append(f"| **total** | {_n(considered)} | {_n(total)} | {_share(total, considered)} |")
    lines += ["", "By reason:", ""]
    if not by_reason:
        lines.append("No duplicates were found.")
    else:
        lines += ["| Reason | Duplicates | Rate |", "|---|---:|---:|"]
        for reason, n in sorted(by_reason.items(), key=lambda item: (-item[1], item[0])):
            lines.append(f"| {markdown_code(reason)} | {_n(n)} | {_share(n, considered)} |")
    return "\n".join(lines) + "\n"


def _removals(stats: CorpusStatistics) -> str:
    by_category: Counter = Counter()
    for _, category, _, n in stats.removed:
        by_category[category] += n
    lines = [
        "## Opt-outs and takedowns\n",
        f"Opt-outs honoured: {_n(by_category['opt-out'])}. Takedown requests applied: {_n(by_category['takedown'])}."
        + (f" Other removals: {_n(by_category['other removal'])}." if by_category["other removal"] else ""),
    ]
    if stats.removed:
        lines += ["", "| Kind | Source | Reason | Records removed |", "|---|---|---|---:|"]
        lines += [
            f"| {category} | {source} | {markdown_code(reason)} | {_n(n)} |"
            for source, category, reason, n in stats.removed
        ]
    return "\n".join(lines) + "\n"


def _set_aside(stats: CorpusStatistics) -> str:
    totals: Counter = Counter()
    for _, outcome, _, n in stats.set_aside:
        totals[outcome] += n
    lines = [
        "## Quarantined and skipped records\n",
        f"Quarantined (bad input, kept out with the error): {_n(totals['quarantined'])}. "
        f"Skipped (not content: redirects, non-article pages, WARC request records): {_n(totals['skipped'])}.",
    ]
    if stats.set_aside:
        lines += ["", "| Source | Outcome | Reason | Records |", "|---|---|---|---:|"]
        lines += [
            f"| {source} | {outcome} | {markdown_code(reason)} | {_n(n)} |"
            for source, outcome, reason, n in stats.set_aside
        ]
    return "\n".join(lines) + "\n"


def _limitations(stats: CorpusStatistics) -> str:
    kinds = stats.evidence_kinds
    items = []
    if kinds.get("web-page"):
        items.append(
            f"Web pages ({_count(kinds['web-page'], 'document')}): the licence is read from signals in the "
            "page (`rel=\"license\"` links, Creative Commons links, meta tags, JSON-LD). This is heuristic: "
            "a page can misstate its licence, carry a licence for its template rather than its text, "
            "or quote third-party material under other terms."
        )
    if kinds.get("gutenberg-rights"):
        items.append(
            f"Project Gutenberg books ({_count(kinds['gutenberg-rights'], 'document')}): included on Project "
            "Gutenberg's statement \"Public domain in the USA\". Their copyright status elsewhere was not checked "
            "and may differ (terms of the author's life plus 70 years in many countries). Books without "
            "a catalog rights statement are excluded (`license.unknown`), not guessed."
        )
    if kinds.get("wikimedia-terms"):
        items.append(
            f"Wikimedia pages ({_count(kinds['wikimedia-terms'], 'document')}): the licence follows the "
            "revision date (CC BY-SA 3.0 before Wikimedia's 2023 terms change, 4.0 after), not each "
            "contributor's statement; attribution points to the page history, which lists the authors. "
            "Images, templates and quoted material are not part of the text and their licences are not tracked."
        )
    items += [
        "Languages are identified automatically (py3langid, one label per document); mixed-language "
        "documents get the majority label and short texts may be mislabelled.",
        "Quality filters (Gopher, C4 and FineWeb heuristics) are tuned on English web text; they remove "
        "some good text (lists, tables, verse) and keep some poor text. The rules applied and their "
        "removals are listed under Processing.",
        "PII redaction is pattern-based (e-mail addresses, IP addresses, phone numbers, payment cards, "
        "IBANs) and can be disabled per source; names, postal addresses and other personal data are "
        "not removed.",
        "Deduplication removes exact copies of the normalised text and, where enabled, MinHash "
        "near-duplicates above a similarity threshold; paraphrases, translations and partial overlaps "
        "remain.",
        "Opt-outs are honoured as signalled when a web page was fetched (TDM Reservation Protocol, "
        "`noai` robots directives, robots.txt rules for AI crawlers); a later opt-out takes effect "
        "only through a takedown and the next build. Dumps and catalogs carry no such signals.",
        "No toxicity or bias filtering is applied: the text reflects its sources, including their "
        "biases and offensive content.",
        "Token counts are whitespace-separated words, not model tokens; a tokenizer will count more.",
    ]
    return "## Known limitations\n\n" + "\n".join(f"- {item}" for item in items) + "\n"


def _release(stats: CorpusStatistics, release: Release, owners: dict[str, list[str]]) -> str:
    lines = [
        "## Release and citation\n",
        f"- Version: {markdown_code(release.version)} (changes exactly when a shard's bytes change: "
        "a digest of the shards' sha256 in `manifest.json`).",
        f"- Release date: {release.date or 'unknown (no decision recorded)'} (UTC; when a record's outcome was last "
        "decided, from the lineage store).",
    ]
    if release.creators:
        lines.append("- Creators (the catalog owners of the sources in this release):")
        for creator in release.creators:
            owned = [source for source in stats.by_source if creator in owners.get(source, [])]
            lines.append(f"  - {markdown_text(creator)} ({', '.join(owned)})")
    else:
        lines.append("- Creators: no catalog owners are declared for the sources in this release.")
    if release.base_url:
        lines.append(f"- Published at: {markdown_link(release.url_of(CARD_FILE))}")
    lines += ["", "```bibtex", release.bibtex(TITLE).rstrip("\n"), "```"]
    return "\n".join(lines) + "\n"


# --- formatting ----------------------------------------------------------------------------


def _n(value: int) -> str:
    return f"{value:,}"


def _count(value: int, noun: str) -> str:
    return f"{value:,} {noun}{'' if value == 1 else 's'}"


def _share(part: int, whole: int) -> str:
    return f"{100 * part / whole:.2f}%" if whole else "0.00%"


# Characters that start Markdown inline syntax (emphasis, links, images, code, raw HTML, entities)
# or a table cell; `#` too, though only a line start makes a heading. A backslash before any
# ASCII punctuation is a literal character in CommonMark, so escaping them all is always safe.
def _none_last(value: str | None) -> tuple[bool, str]:
    return (value is None, value or "")
