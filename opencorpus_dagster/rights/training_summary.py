"""The public summary of training content (EU AI Act, Article 53(1)(d)) for one release.

The European Commission's template (Explanatory Notice and Template for the Public Summary of
Training Content for general-purpose AI models, published 24 July 2025) has three sections; this
module fills the parts a corpus can answer, with the template's headings and wording:

1. General information: 1.1 provider and 1.2 model identification come from the catalog's
   `_corpus.yaml` `summary:` block (the data cannot tell them); 1.3 modalities, overall training
   data size (documents, tokens, the template's size band), types of content, the latest date of
   data acquisition and the linguistic characteristics come from the release.
2. List of data sources, split as the template splits them: 2.1 publicly available datasets
   (dumps, book collections, forum dumps: name, link, size), 2.3 data crawled and scraped from
   online sources (the `warc` sources: the crawler named by each WARC's `warcinfo` record, the
   collection period from the captures' WARC-Date, the content types, and the top 10% of all
   domain names determined by the size of content scraped, top 5% capped at 1,000 for an SME),
   2.6 other sources (local collections); 2.2, 2.4 and 2.5 are "none" for a corpus built here.
3. Data processing aspects: 3.1 respect of reservations of rights (each opt-out signal the
   pipeline honours and how many records it removed, from the decisions' reasons; takedowns; the
   licence policy's refusals) and 3.2 removal of illegal content (the PII redaction step: kinds
   enabled per source and the redactions in the released documents).

Where each number comes from: the release is the set of shard rows of the manifest's shards in
the lineage store (`shard_rows` joined with `shards`); documents, characters, languages, licences,
acquisition dates, domains and removals are lineage-store queries; tokens (whitespace words, as the
dataset card counts them) are read from the shard files; WARC capture dates from the raw files;
PII redaction counts from the documents files. "Size of content" for domains is characters of
released text. Output is deterministic: no clock, the same release gives the same files.
"""

from __future__ import annotations

import json
import math
from collections import Counter
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import pyarrow as pa

from opencorpus_dagster.catalog import Catalog, TrainingSummarySettings
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.publish.markdown import markdown_text
from opencorpus_dagster.publish.release import corpus_version
from opencorpus_dagster.publish.shard_stats import shard_statistics
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import duckdb_connect, parquet_files
from opencorpus_dagster.text.language import NOT_IDENTIFIED

SUMMARY_MARKDOWN = "training-content-summary.md"
SUMMARY_JSON = "training-content-summary.json"
TEMPLATE = (
    "European Commission, Explanatory Notice and Template for the Public Summary of Training Content "
    "for general-purpose AI models (Article 53(1)(d) of Regulation (EU) 2024/1689), published 24 July 2025"
)

# Template 1.3, text modality.
SIZE_BANDS = ((10**9, "Less than 1 billion tokens"), (10**13, "1 billion to 10 trillion tokens"))
LARGEST_BAND = "More than 10 trillion tokens"

# Connector kinds by template section: web captures are crawled data (2.3); a local collection is
# "other" (2.6); every other kind reads a published dump or collection (2.1).
CRAWLED_KINDS = frozenset({"warc"})
OTHER_KINDS = frozenset({"textfiles"})

# Reasons of `removed` decisions, by the reservation they honour (licensing/optout.py, takedown.py).
OPT_OUT_SIGNALS = (
    (
        "opt-out:robots-ai",
        "robots.txt disallowing the page to AI crawlers (the agents of licensing/ai_crawlers.py, and `*`)",
    ),
    ("opt-out:tdmrep-json", "TDMRep: /.well-known/tdmrep.json reserving the path (W3C TDM Reservation Protocol)"),
    ("opt-out:tdm-reservation", 'TDMRep: tdm-reservation: 1 HTTP header or <meta name="tdm-reservation">'),
    ("opt-out:noai", 'noai in <meta name="robots"> or an X-Robots-Tag header'),
    ("takedown:url", "takedown requests naming a URL or upstream record/file"),
    ("takedown:domain", "takedown requests naming a domain and its subdomains"),
    ("takedown:doc_id", "takedown requests naming a record"),
    ("takedown:sha256", "takedown requests naming a text (content sha256)"),
)

# Host of an absolute URL, lowercased, without userinfo, port or trailing dot (takedown.url_host in SQL).
_HOST_SQL = (
    r"nullif(rtrim(lower(regexp_extract({0}, "
    r"'^[A-Za-z][A-Za-z0-9+.\-]*://(?:[^/?#@]*@)?(\[[^\]]*\]|[^:/?#]*)', 1)), '.'), '')"
)


@dataclass(frozen=True)
class SourceFacts:
    """What the catalog says about a source: its connector kind, content kind, description and
    the PII kinds its redaction step removes (None: the step is off)."""

    kind: str
    content_kind: str
    description: str = ""
    pii_kinds: tuple[str, ...] | None = None


def source_facts(catalog: Catalog) -> dict[str, SourceFacts]:
    """SourceFacts of every valid source of a loaded catalog."""
    facts = {}
    for source in catalog.sources:
        pii = getattr(source.filters, "pii", None)
        kinds = tuple(pii.kinds) if pii is not None and getattr(pii, "enabled", True) else None
        facts[source.name] = SourceFacts(source.spec.kind, source.content_kind, source.spec.description.strip(), kinds)
    return facts


def size_band(tokens: int) -> str:
    """The template's text-size range for a number of tokens."""
    for bound, label in SIZE_BANDS:
        if tokens < bound:
            return label
    return LARGEST_BAND


def top_domain_count(domains: int, sme: bool = False) -> int:
    """How many domains "the top 10% of all domain names" is (at least one when there are any);
    for an SME the top 5%, at most 1,000."""
    if domains == 0:
        return 0
    if sme:
        return min(max(1, math.ceil(domains * 0.05)), 1000)
    return max(1, math.ceil(domains * 0.10))


def training_summary(
    store: LineageStore,
    home: DataHome,
    manifest: dict,
    *,
    release_id: str | None = None,
    sources: dict[str, SourceFacts] | None = None,
    settings: TrainingSummarySettings | None = None,
    fetcher: Any = None,
) -> dict[str, Any]:
    """The summary of one release as a JSON-able dict (see the module docstring).

    `manifest` is the release's manifest (shards with paths relative to the corpus folder);
    `sources` the catalog facts per source (a source missing from it is listed under 2.6 with
    kind "unknown"); `settings` the catalog's `summary:` block; `fetcher` (fetch.Fetcher), when
    given, reads each crawled WARC's `warcinfo` record by byte range to name the crawler.
    """
    sources = sources or {}
    settings = settings or TrainingSummarySettings()
    release_id = release_id or releases.current_release(home)
    folder = releases.release_dir(home, release_id) if release_id else None
    shard_files = [str(folder / shard["path"]) for shard in manifest.get("shards", [])] if folder else []
    # The released records are the rows of the release's shard files (not the lineage store's
    # shard tables, which follow the release only once it is published).
    released = _release_rows(shard_files)
    with store.connection() as conn:
        conn.register("release_rows", released)
        try:
            facts = _lineage_facts(conn, sources)
        finally:
            conn.unregister("release_rows")
    tokens = _tokens_by_source(home, manifest, shard_files)
    crawled = sorted(s for s in facts["documents"] if _section(s, sources) == "crawled")
    capture = _capture_periods(home, facts["released_keys"], crawled)
    pii = _pii_redactions(home, facts["released_keys"])

    total_documents = sum(n for n, _ in facts["documents"].values())
    total_tokens = sum(tokens.values())
    per_source = {}
    for source, (documents, characters) in sorted(facts["documents"].items()):
        fact = sources.get(source)
        per_source[source] = {
            "source": source,
            "kind": fact.kind if fact else "unknown",
            "content_kind": fact.content_kind if fact else "unknown",
            "description": fact.description if fact else "",
            "documents": documents,
            "characters": characters,
            "tokens": tokens.get(source, 0),
            "share_of_tokens": _share(tokens.get(source, 0), total_tokens),
            "licenses": facts["licenses"].get(source, {}),
            "links": facts["links"].get(source, []),
            "acquired": facts["acquired"].get(source),
        }

    public = [per_source[s] for s in per_source if _section(s, sources) == "public"]
    other = [per_source[s] for s in per_source if _section(s, sources) == "other"]
    crawled_entries = []
    for source in crawled:
        domains = facts["domains"].get(source, [])
        count = top_domain_count(len(domains), settings.sme)
        source_characters = sum(chars for _, _, chars in domains)
        running = 0
        top = []
        for host, documents, characters in domains[:count]:
            running += characters
            top.append(
                {
                    "domain": host,
                    "documents": documents,
                    "characters": characters,
                    "share_of_content": _share(characters, source_characters),
                    "cumulative_share": _share(running, source_characters),
                }
            )
        crawled_entries.append(
            {
                **per_source[source],
                "crawlers": _crawlers(fetcher, facts["warcinfo"].get(source, [])),
                "collection_period": capture.get(source),
                "content_types": (capture.get(source) or {}).get("content_types", {}),
                "domains": len(domains),
                "top_domains_rule": "top 5% of all domain names (at most 1,000; SME)"
                if settings.sme
                else "top 10% of all domain names",
                "top_domains": top,
            }
        )

    removed = facts["removed"]
    kinds_by_source = {
        s: (list(f.pii_kinds) if f.pii_kinds is not None else None)
        for s, f in sorted(sources.items())
        if s in per_source
    }
    return {
        "format": "opencorpus-training-content-summary/1",
        "template": TEMPLATE,
        # The content version (as the card prints it), not the release id: a release whose files
        # equal the current one's is not published again, so no file of it may name its id.
        "release": corpus_version(manifest),
        "general_information": {
            "provider": {
                "name": settings.provider,
                "contact": settings.provider_contact,
                "authorised_representative": settings.authorised_representative,
            },
            "model": {
                "versioned_names": list(settings.models),
                "dependencies": settings.model_dependencies,
                "placed_on_market": settings.placed_on_market.isoformat() if settings.placed_on_market else None,
            },
            "modalities": [
                {
                    "modality": "Text",
                    "documents": total_documents,
                    "tokens": total_tokens,
                    "characters": sum(c for _, c in facts["documents"].values()),
                    "size_band": size_band(total_tokens),
                    "types_of_content": _content_types(per_source),
                }
            ],
            "latest_acquisition": facts["latest_acquisition"],
            "languages": facts["languages"],
        },
        "data_sources": {
            "publicly_available_datasets": public,
            "private_third_party_datasets": [],
            "crawled_and_scraped": crawled_entries,
            "user_data": [],
            "synthetic_data": [],
            "other_sources": other,
        },
        "data_processing": {
            "reservations_of_rights": {
                "signals": [
                    {"reason": reason, "measure": measure, "records_removed": removed.get(reason, 0)}
                    for reason, measure in OPT_OUT_SIGNALS
                ],
                "other_removals": {r: n for r, n in sorted(removed.items()) if r not in dict(OPT_OUT_SIGNALS)},
                "license_refusals": facts["license_refusals"],
            },
            "illegal_content": {
                "pii_kinds_by_source": kinds_by_source,
                "pii_redactions": pii,
            },
        },
    }


def _section(source: str, sources: dict[str, SourceFacts]) -> str:
    fact = sources.get(source)
    if fact is None or fact.kind in OTHER_KINDS:
        return "other"
    return "crawled" if fact.kind in CRAWLED_KINDS else "public"


def _share(part: int, whole: int) -> float:
    return round(part / whole, 6) if whole else 0.0


def _content_types(per_source: dict[str, dict]) -> dict[str, int]:
    kinds: Counter = Counter()
    for entry in per_source.values():
        kinds[entry["content_kind"]] += entry["documents"]
    return dict(sorted(kinds.items()))


_RELEASED_SQL = """
    released AS (SELECT source, partition, doc_id FROM release_rows)
"""


def _lineage_facts(conn, sources: dict[str, SourceFacts]) -> dict[str, Any]:
    def query(sql: str, params: list | None = None) -> list[tuple]:
        return conn.execute(f"WITH {_RELEASED_SQL} {sql}", params or []).fetchall()

    facts: dict[str, Any] = {}
    facts["documents"] = {
        source: (int(n), int(chars or 0))
        for source, n, chars in query(
            "SELECT rel.source, count(*), sum(d.text_length) FROM released rel "
            "LEFT JOIN documents d USING (source, partition, doc_id) GROUP BY 1 ORDER BY 1"
        )
    }
    facts["languages"] = [
        {"language": language, "documents": int(n), "characters": int(chars or 0)}
        for language, n, chars in query(
            "SELECT d.language, count(*), sum(d.text_length) FROM released rel "
            "JOIN documents d USING (source, partition, doc_id) GROUP BY 1 ORDER BY 2 DESC, 1"
        )
    ]
    licenses: dict[str, dict[str, int]] = {}
    for source, license, n in query(
        "SELECT rel.source, d.license, count(*) FROM released rel JOIN documents d USING (source, partition, doc_id) "
        "GROUP BY ALL ORDER BY ALL"
    ):
        licenses.setdefault(source, {})[license or "none"] = int(n)
    facts["licenses"] = licenses
    acquired = {}
    for source, first, last in query(
        # Dates, not times (the template asks for a date): two builds of the same inputs on one
        # day give the same summary, as the card's release date does.
        "SELECT rel.source, min(left(rr.retrieved_at, 10)), max(left(rr.retrieved_at, 10)) FROM released rel "
        "JOIN raw_records rr USING (source, partition, doc_id) GROUP BY 1 ORDER BY 1"
    ):
        acquired[source] = {"first": first, "last": last}
    facts["acquired"] = acquired
    latest = [a["last"] for a in acquired.values() if a["last"]]
    facts["latest_acquisition"] = max(latest) if latest else None
    links: dict[str, list[str]] = {}
    for source, url in query(
        "SELECT DISTINCT f.source, f.url FROM fetches f "
        "WHERE (f.source, f.partition) IN (SELECT source, partition FROM released) ORDER BY 1, 2"
    ):
        links.setdefault(source, []).append(url)
    facts["links"] = links

    crawled = sorted(s for s, f in sources.items() if f.kind in CRAWLED_KINDS)
    domains: dict[str, list[tuple[str, int, int]]] = {}
    warcinfo: dict[str, list[str]] = {}
    if crawled:
        host = _HOST_SQL.format("rr.url")
        for source, domain, n, chars in query(
            f"SELECT rel.source, {host} AS domain, count(*), sum(d.text_length) FROM released rel "
            "JOIN raw_records rr USING (source, partition, doc_id) JOIN documents d USING (source, partition, doc_id) "
            "WHERE rel.source IN (SELECT unnest(?)) GROUP BY 1, 2 ORDER BY 1, 4 DESC, 2",
            [crawled],
        ):
            domains.setdefault(source, []).append((domain or "(no host)", int(n), int(chars or 0)))
        for source, uri in query(
            "SELECT DISTINCT source, upstream_uri FROM decisions WHERE reason = 'warc.warcinfo' "
            "AND source IN (SELECT unnest(?)) AND (source, partition) IN (SELECT source, partition FROM released) "
            "ORDER BY 1, 2",
            [crawled],
        ):
            warcinfo.setdefault(source, []).append(uri)
    facts["domains"] = domains
    facts["warcinfo"] = warcinfo
    facts["removed"] = {
        reason: int(n)
        for reason, n in conn.execute(
            "SELECT reason, count(*) FROM outcomes WHERE outcome = 'removed' GROUP BY 1 ORDER BY 1"
        ).fetchall()
    }
    facts["license_refusals"] = {
        reason: int(n)
        for reason, n in conn.execute(
            "SELECT reason, count(*) FROM outcomes WHERE outcome = 'filtered' AND starts_with(reason, 'license.') "
            "GROUP BY 1 ORDER BY 1"
        ).fetchall()
    }
    facts["released_keys"] = conn.sql(
        f"WITH {_RELEASED_SQL} SELECT source, partition, doc_id FROM released"
    ).to_arrow_table()
    return facts


def _release_rows(files: list[str]) -> pa.Table:
    if not files:
        return pa.table({name: pa.array([], pa.string()) for name in ("source", "partition", "doc_id")})
    with duckdb_connect(*files) as connection:
        return connection.sql("SELECT source, partition, doc_id FROM read_parquet(?)", params=[files]).to_arrow_table()


def _tokens_by_source(home: DataHome, manifest: dict, files: list[str]) -> dict[str, int]:
    """Whitespace tokens per source: sums of the per-shard statistics the card keeps (a shard's
    text is read once, ever: publish/shard_stats.py)."""
    if not files:
        return {}
    tokens: dict[str, int] = {}
    for shard in shard_statistics(home, manifest, files).shards:
        for source, _license, _language, _kind, _documents, count in shard.groups:
            tokens[source] = tokens.get(source, 0) + count
    return tokens


def _capture_periods(home: DataHome, released: pa.Table, crawled: list[str]) -> dict[str, dict]:
    """First and last WARC-Date of the released captures of each crawled source (raw files)."""
    periods: dict[str, dict] = {}
    for source in crawled:
        files = parquet_files(home.root / "raw" / source, "*.parquet")
        if not files:
            continue
        with duckdb_connect(*files) as connection:
            connection.register("released", released)
            first, last, content_types = connection.execute(
                """
                SELECT min(json_extract_string(r.metadata, '$.warc_date')),
                       max(json_extract_string(r.metadata, '$.warc_date')),
                       histogram(json_extract_string(r.metadata, '$.content_type'))
                FROM read_parquet(?, union_by_name = true) r
                JOIN released k ON k.source = r.source AND k.partition = r.partition AND k.doc_id = r.doc_id
                """,
                [files],
            ).fetchone()
        periods[source] = {"first": first, "last": last}
        if content_types:
            periods[source]["content_types"] = {
                str(k): int(v) for k, v in sorted(content_types.items(), key=lambda kv: str(kv[0]))
            }
    return periods


def _pii_redactions(home: DataHome, released: pa.Table) -> dict[str, dict[str, int]]:
    """source -> PII kind -> redactions in the released documents (documents files' metadata)."""
    files = parquet_files(home.root / "documents", "*/*.parquet")
    if not files:
        return {}
    with duckdb_connect(*files) as connection:
        connection.register("released", released)
        rows = connection.execute(
            """
            SELECT d.source, json_extract_string(d.metadata, '$.pii')
            FROM read_parquet(?, union_by_name = true) d
            JOIN released k ON k.source = d.source AND k.partition = d.partition AND k.doc_id = d.doc_id
            WHERE json_extract_string(d.metadata, '$.pii') NOT IN ('{}', '')
            """,
            [files],
        ).fetchall()
    totals: dict[str, Counter] = {}
    for source, pii in rows:
        for kind, count in (json.loads(pii) if pii else {}).items():
            totals.setdefault(source, Counter())[kind] += int(count)
    return {source: dict(sorted(counts.items())) for source, counts in sorted(totals.items())}


_WARCINFO_FIELDS = ("software", "operator", "publisher", "isPartOf", "robots", "http-header-user-agent")


def _crawlers(fetcher: Any, warcinfo_uris: list[str]) -> list[dict[str, str]]:
    """The distinct crawler descriptions in the sources' WARC `warcinfo` records (software,
    operator, robots policy, ...), read by byte range; [] without a fetcher or on a read error."""
    if fetcher is None:
        return []
    found: list[dict[str, str]] = []
    for uri in warcinfo_uris:
        base, _, fragment = uri.partition("#")
        params = dict(part.split("=", 1) for part in fragment.split("&") if "=" in part)
        try:
            record = fetcher.fetch_range(base, int(params["offset"]), int(params["length"]))
            fields = _warcinfo_fields(record)
        except Exception:  # a crawler we cannot name is left out; the summary still stands
            continue
        if fields and fields not in found:
            found.append(fields)
    return found


def _warcinfo_fields(record: bytes) -> dict[str, str]:
    import io

    from warcio.archiveiterator import ArchiveIterator

    for item in ArchiveIterator(io.BytesIO(record)):
        if item.rec_type != "warcinfo":
            continue
        body = item.content_stream().read().decode("utf-8", "replace")
        values = {}
        for line in body.splitlines():
            name, _, value = line.partition(":")
            if name.strip() in _WARCINFO_FIELDS and value.strip():
                values[name.strip()] = value.strip()
        return dict(sorted(values.items()))  # the order the JSON file keeps
    return {}


# -- writing -------------------------------------------------------------------------------


def write_release_summary(
    home: DataHome, store: LineageStore, sources: list, fetcher: Any = None, release: str | None = None
) -> tuple[Path, Path]:
    """The card step's call: summarise `release` (the staged one; default: the current one) with
    the catalog's sources (`catalog.Source` list) and `_corpus.yaml` settings, and write both
    files into its folder, beside the card. Raises CatalogFileError when `_corpus.yaml` is invalid."""
    from opencorpus_dagster.catalog import Catalog, load_corpus_settings

    release = release or releases.card_release(home)
    facts = source_facts(Catalog(Path("."), tuple(sources), ()))
    summary = training_summary(
        store, home, releases.read_manifest(home, release) or {"shards": []}, release_id=release, sources=facts,
        settings=load_corpus_settings().summary, fetcher=fetcher,
    )  # fmt: skip
    return write_training_summary(releases.release_dir(home, release), summary)


def write_training_summary(folder: Path, summary: dict[str, Any]) -> tuple[Path, Path]:
    """Write `training-content-summary.md` and `.json` into a release folder, beside the card."""
    markdown = write_text_atomically(folder / SUMMARY_MARKDOWN, summary_markdown(summary))
    data = write_text_atomically(folder / SUMMARY_JSON, json.dumps(summary, indent=2, sort_keys=True) + "\n")
    return markdown, data


def _n(value: int) -> str:
    return f"{value:,}"


def _pct(value: float) -> str:
    return f"{value * 100:.1f}%"


def _given(value: Any, missing: str = "not stated (set it in the catalog's _corpus.yaml, `summary:`)") -> str:
    if value in (None, "", []):
        return missing
    return markdown_text(", ".join(value) if isinstance(value, list) else str(value))


def summary_markdown(summary: dict[str, Any]) -> str:
    """The summary as Markdown, with the template's section numbers and headings."""
    general = summary["general_information"]
    sources = summary["data_sources"]
    processing = summary["data_processing"]
    (text,) = general["modalities"]
    out = [
        f"# Public Summary of Training Content: opencorpus release {markdown_text(summary['release'])}\n",
        f"Sections of the {TEMPLATE} that the corpus can answer, filled from its lineage store and "
        "catalog. A token is a whitespace-separated word (as in the dataset card), not a model token. "
        "Sizes of content are characters of released text.\n",
        "## 1. General information\n",
        "### 1.1 Provider identification\n",
        f"- Provider name and contact details: {_given(general['provider']['name'])}"
        + (f" ({markdown_text(general['provider']['contact'])})" if general["provider"]["contact"] else ""),
        "- Authorised representative name and contact details: "
        f"{_given(general['provider']['authorised_representative'], 'not applicable')}\n",
        "### 1.2 Model identification\n",
        f"- Versioned model name(s): {_given(general['model']['versioned_names'])}",
        f"- Model dependencies: {_given(general['model']['dependencies'], 'not applicable')}",
        f"- Date of placement of the model on the Union market: {_given(general['model']['placed_on_market'])}\n",
        "### 1.3 Modalities, overall training data size and other characteristics\n",
        "| Modality | Training data size | Documents | Tokens | Types of content |",
        "|---|---|---:|---:|---|",
        f"| {text['modality']} | {text['size_band']} | {_n(text['documents'])} | {_n(text['tokens'])} | "
        + ", ".join(f"{markdown_text(k)} ({_n(v)} documents)" for k, v in text["types_of_content"].items())
        + " |",
        "",
        "Image, audio, video and other modalities: none.\n",
        "- Latest date of data acquisition/collection for model training: "
        f"{_given(general['latest_acquisition'], 'unknown')}",
        "- Linguistic characteristics of the overall training data (documents per language):\n",
        "| Language | Documents | Characters |",
        "|---|---:|---:|",
        *[
            f"| {markdown_text(row['language']) or NOT_IDENTIFIED} | {_n(row['documents'])} | {_n(row['characters'])} |"
            for row in general["languages"]
        ],
        "",
        "## 2. List of data sources\n",
        "### 2.1 Publicly available datasets\n",
    ]
    out += _dataset_lines(sources["publicly_available_datasets"])
    out += [
        "### 2.2 Private non-publicly available datasets obtained from third parties\n",
        "None: the corpus holds no licensed or private third-party dataset.\n",
        "### 2.3 Data crawled and scraped from online sources\n",
    ]
    if not sources["crawled_and_scraped"]:
        out.append("None.\n")
    for entry in sources["crawled_and_scraped"]:
        period = entry["collection_period"] or {}
        crawlers = (
            "; ".join(", ".join(f"{k}: {v}" for k, v in c.items()) for c in entry["crawlers"]) or "not recorded here"
        )
        out += [
            f"#### {markdown_text(entry['source'])}: {markdown_text(entry['description'])}\n",
            f"- Crawler name(s)/identifier(s) (from the WARC files' warcinfo records): {markdown_text(crawlers)}",
            "- Period of data collection (WARC-Date of the released captures): "
            f"{period.get('first') or 'unknown'} to {period.get('last') or 'unknown'}",
            "- Type of content: "
            + ", ".join(f"{markdown_text(k)} ({_n(v)})" for k, v in (period.get("content_types") or {}).items())
            + f"; {_n(entry['documents'])} documents, {_n(entry['tokens'])} tokens",
            f"- Summary of the most relevant domain names crawled: the {entry['top_domains_rule']} "
            f"({len(entry['top_domains'])} of {_n(entry['domains'])}) determined by the size of content scraped:\n",
            "| Domain | Documents | Characters | Share of content | Cumulative share |",
            "|---|---:|---:|---:|---:|",
            *[
                f"| {markdown_text(d['domain'])} | {_n(d['documents'])} | {_n(d['characters'])} | "
                f"{_pct(d['share_of_content'])} | {_pct(d['cumulative_share'])} |"
                for d in entry["top_domains"]
            ],
            "",
        ]
    out += [
        "### 2.4 User data\n",
        "None.\n",
        "### 2.5 Synthetic data\n",
        "None.\n",
        "### 2.6 Other sources of data\n",
    ]
    out += _dataset_lines(sources["other_sources"])
    rights = processing["reservations_of_rights"]
    out += [
        "## 3. Data processing aspects\n",
        "### 3.1 Respect of reservation of rights from text and data mining exception or limitation\n",
        "Opt-out signals honoured before a record can enter the corpus, and records each removed "
        "(a record removed by an opt-out or a takedown is never published; takedowns are applied "
        "again on every build, so re-ingested content stays out):\n",
        "| Measure | Decision reason | Records removed |",
        "|---|---|---:|",
        *[
            f"| {markdown_text(s['measure'])} | `{s['reason']}` | {_n(s['records_removed'])} |"
            for s in rights["signals"]
        ],
        *[f"| other | `{reason}` | {_n(n)} |" for reason, n in rights["other_removals"].items()],
        "",
        "Only openly licensed or public-domain records are kept; records refused by the licence policy: "
        + (", ".join(f"`{r}` {_n(n)}" for r, n in rights["license_refusals"].items()) or "none")
        + ".\n",
        "### 3.2 Removal of illegal content\n",
        "Personal data: the PII step redacts the kinds below in each source's documents before publication "
        "(redactions counted in the released documents). No other illegal-content classifier runs in this pipeline.\n",
        "| Source | PII kinds redacted | Redactions |",
        "|---|---|---|",
    ]
    illegal = processing["illegal_content"]
    for source, kinds in illegal["pii_kinds_by_source"].items():
        counts = illegal["pii_redactions"].get(source, {})
        out.append(
            f"| {markdown_text(source)} | {', '.join(kinds) if kinds is not None else 'step off'} | "
            + (", ".join(f"{k} {_n(v)}" for k, v in counts.items()) or "0")
            + " |"
        )
    return "\n".join(out) + "\n"


def _dataset_lines(entries: list[dict]) -> list[str]:
    if not entries:
        return ["None.\n"]
    lines = [
        "| Source | Description | Link | Documents | Tokens | Share of tokens | Licences |",
        "|---|---|---|---:|---:|---:|---|",
    ]
    for e in entries:
        links = e["links"]
        link = markdown_text(links[0]) + (f" (+{len(links) - 1} more)" if len(links) > 1 else "") if links else ""
        licences = ", ".join(f"{markdown_text(k)} {_n(v)}" for k, v in e["licenses"].items())
        lines.append(
            f"| {markdown_text(e['source'])} | {markdown_text(e['description'])} | {link} | {_n(e['documents'])} | "
            f"{_n(e['tokens'])} | {_pct(e['share_of_tokens'])} | {licences} |"
        )
    return [*lines, ""]
