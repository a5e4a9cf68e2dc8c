"""Is this work in the corpus? Look up texts, HTML pages, URLs and domains in the releases.

A query is a text or HTML file (HTML is reduced to its main text by the same trafilatura
extraction the web sources use), a URL or a domain. A text query is normalised exactly as the
documents stage normalises (`text.normalise.normalise_text`) and then matched three ways:

- exact: its sha256 equals a document's `content_sha256` (lineage store `documents`);
- near duplicate: candidates from the persistent MinHash LSH index of the dedup stage
  (`dedup/lsh_index.py`: same shingling, permutations and banding, so a query is banded like a
  document) and from the passage index below, verified on the exact shingle Jaccard; reported
  when it reaches `near_threshold`;
- passage: the query is a paragraph (or any part) of a document: the share of the query's
  shingles found in the document (containment) reaches `passage_threshold`. A paragraph has a
  tiny Jaccard to its whole document, so MinHash cannot find it; candidates come from a passage
  index of content-defined shingle samples (every shingle whose 32-bit hash is 0 modulo
  `SAMPLE_MODULUS`, Broder's mod-p sampling): a copied passage holds the same sampled shingles as
  its source wherever it sits in it. The index lives in `<home>/rights/passages/`, one Parquet
  file per documents partition, rebuilt at lookup time for partitions whose documents file changed.

URL and domain queries match as a takedown request of that kind would (`takedown.match_takedowns`:
page URL, upstream record or file; a domain and its subdomains), plus, for a URL, records whose
page URL or upstream URI is that URL but that never passed the documents stage (filtered).

Each match names the record (source, partition, doc_id), its similarity, every release (of the
`(release_id, manifest)` pairs searched) whose shards hold it with shard and row, or, when none
does, the terminal decision that kept it out (taken down, duplicate of ..., filtered by ...), and
its full trace (`lineage.trace.trace_doc`). `takedown_requests` gives the requests that would
remove what was found, in the takedown list's format.
"""

from __future__ import annotations

import json
import math
from dataclasses import dataclass
from pathlib import Path
from typing import Any
from urllib.parse import quote

import numpy as np
import pyarrow as pa

from opencorpus_dagster.dedup.clusters import shingle_set
from opencorpus_dagster.dedup.exact import member_key
from opencorpus_dagster.dedup.lsh_index import band_hashes
from opencorpus_dagster.dedup.minhash import _shingle_hashes, compute_signatures, is_empty_signature
from opencorpus_dagster.dedup.near import NearDuplicateIndex
from opencorpus_dagster.lineage import trace as tracing
from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.records import sha256_text
from opencorpus_dagster.stages.takedown import TakedownRequest, new_request, normalise_domain, normalise_url, url_host
from opencorpus_dagster.state.atomic import write_parquet_atomically, write_text_atomically
from opencorpus_dagster.state.home import DataHome
from opencorpus_dagster.state.storage import duckdb_connect, modified_stamp, parquet_file, parquet_files
from opencorpus_dagster.text.normalise import normalise_text

DEFAULT_NEAR_THRESHOLD = 0.5
DEFAULT_PASSAGE_THRESHOLD = 0.8
SAMPLE_MODULUS = 8  # a 40-word paragraph holds ~4.5 sampled shingles; none with probability < 1%
MAX_CANDIDATES = 64
LSH_SLACK = 0.15
PASSAGE_SAMPLE_SHARE = 0.5  # of the query's sampled shingles a candidate must hold
MAX_TRACES = 10  # matches of one query that carry their full trace
_INDEX_BATCH_ROWS = 1024
HTML_SUFFIXES = (".html", ".htm", ".xhtml")


class QueryError(ValueError):
    """A query that is neither a readable file, a URL nor a domain name."""


@dataclass(frozen=True)
class Query:
    """One thing to look up: `kind` is text, url or domain; `text` the normalised text."""

    kind: str
    value: str
    text: str | None = None


def parse_queries(items: list[str], list_files: list[Path] | None = None) -> list[Query]:
    """Queries from command-line items and files listing one item per line (blank lines and
    `#` comments skipped). An item is a URL (http/https), a path to a text or HTML file, or a
    domain name. Raises QueryError naming the item that is none of them."""
    values = list(items)
    for listing in list_files or []:
        for line in Path(listing).read_text(encoding="utf-8").splitlines():
            line = line.strip()
            if line and not line.startswith("#"):
                values.append(line)
    return [_query(value) for value in values]


def _query(value: str) -> Query:
    if value.lower().startswith(("http://", "https://")):
        return Query("url", value)
    path = Path(value)
    if path.is_file():
        raw = path.read_text(encoding="utf-8", errors="replace")
        if path.suffix.lower() in HTML_SUFFIXES or raw.lstrip()[:15].lower().startswith(("<!doctype html", "<html")):
            from opencorpus_dagster.text.html import extract_main_text

            extracted = extract_main_text(raw)
            if not extracted:
                raise QueryError(f"{value}: no main text could be extracted from this HTML file")
            raw = extracted
        text = normalise_text(raw)
        if not text:
            raise QueryError(f"{value}: the file holds no text")
        return Query("text", value, text)
    try:
        return Query("domain", normalise_domain(value))
    except ValueError:
        raise QueryError(f"{value!r} is not a file, an http(s) URL or a domain name") from None


# -- the passage index ---------------------------------------------------------------------------


def sampled_shingles(hashes: np.ndarray) -> np.ndarray:
    """The content-defined sample of a text's shingle hashes (sorted, unique)."""
    return np.unique(hashes[hashes % SAMPLE_MODULUS == 0])


class PassageIndex:
    """Sampled shingle hashes of every document, one file per documents partition:
    `<home>/rights/passages/<source>/<partition>.parquet` (hash uint32, key), sorted by hash."""

    def __init__(self, home: DataHome, shingle_words: int):
        self.home = home
        self.shingle_words = shingle_words
        self.root = home.root / "rights" / "passages"
        self.state_file = self.root / "indexed.json"

    def _file(self, source: str, partition: str) -> Path:
        return self.root / quote(source, safe="") / f"{quote(partition, safe='')}.parquet"

    def update(self) -> list[tuple[str, str]]:
        """Index new and changed documents partitions, forget vanished ones; returns those indexed."""
        files = {
            (path.parent.name, path.stem): path
            for path in sorted((self.home.root / "documents").glob("*/*.parquet"))
            if not path.name.startswith(".")
        }
        state = json.loads(self.state_file.read_text()) if self.state_file.is_file() else {}
        wanted = f"{self.shingle_words}/{SAMPLE_MODULUS}"
        if state.get("_settings") != wanted:
            state = {"_settings": wanted}
        for key in [k for k in state if k != "_settings" and tuple(k.split("|", 1)) not in files]:
            source, partition = key.split("|", 1)
            self._file(source, partition).unlink(missing_ok=True)
            del state[key]
        changed = []
        for (source, partition), path in files.items():
            stamp = modified_stamp(path)
            if state.get(f"{source}|{partition}") == stamp and self._file(source, partition).is_file():
                continue
            self._index_partition(source, partition, path)
            state[f"{source}|{partition}"] = stamp
            changed.append((source, partition))
        if changed or not self.state_file.is_file():
            write_text_atomically(self.state_file, json.dumps(state, indent=1, sort_keys=True))
        return changed

    def _index_partition(self, source: str, partition: str, path: Path) -> None:
        hashes: list[np.ndarray] = []
        keys: list[np.ndarray] = []
        for batch in parquet_file(path).iter_batches(batch_size=_INDEX_BATCH_ROWS, columns=["doc_id", "text"]):
            texts = [t or "" for t in batch.column("text").to_pylist()]
            all_hashes, counts = _shingle_hashes(texts, self.shingle_words) if texts else (np.zeros(0, np.uint32), [])
            ends = np.cumsum(counts)
            for doc_id, end, count in zip(batch.column("doc_id").to_pylist(), ends, counts, strict=True):
                sample = sampled_shingles(all_hashes[end - count : end])
                hashes.append(sample)
                keys.append(np.full(len(sample), member_key(source, partition, doc_id), dtype=object))
        table = pa.table(
            {
                "hash": pa.array(np.concatenate(hashes) if hashes else np.zeros(0, np.uint32), pa.uint32()),
                "key": pa.array(np.concatenate(keys) if keys else np.zeros(0, object), pa.string()),
            }
        ).sort_by([("hash", "ascending"), ("key", "ascending")])
        write_parquet_atomically(table, self._file(source, partition))

    def candidates(self, sample: np.ndarray, limit: int = MAX_CANDIDATES) -> dict[str, int]:
        """Keys of the documents sharing the most sampled shingles with `sample` -> shared count."""
        files = parquet_files(self.root, "*/*.parquet")
        if not files or len(sample) == 0:
            return {}
        with duckdb_connect(*files) as connection:
            connection.register("wanted", pa.table({"hash": pa.array(sample, pa.uint32())}))
            rows = connection.execute(
                "SELECT key, count(*) AS shared FROM read_parquet(?) WHERE hash IN (SELECT hash FROM wanted) "
                "GROUP BY key ORDER BY shared DESC, key LIMIT ?",
                [files, limit],
            ).fetchall()
        return {key: int(shared) for key, shared in rows}


def lsh_candidates(index: NearDuplicateIndex, signature: np.ndarray) -> set[str]:
    """Keys sharing at least one LSH band with `signature` in the dedup stage's index."""
    if is_empty_signature(signature):
        return set()
    files = parquet_files(index.root / "bands", "*/*.parquet")
    if not files:
        return set()
    hashes = band_hashes(signature[None, :], index.config)[0]
    wanted = pa.table(
        {"band_no": pa.array(np.arange(len(hashes), dtype=np.int16)), "band_hash": pa.array(hashes, pa.uint64())}
    )
    with duckdb_connect(*files) as connection:
        connection.register("wanted", wanted)
        rows = connection.execute(
            "SELECT DISTINCT b.doc_id FROM read_parquet(?) b JOIN wanted w "
            "ON b.band_no = w.band_no AND b.band_hash = w.band_hash",
            [files],
        ).fetchall()
    return {row[0] for row in rows}


# -- lookup ----------------------------------------------------------------------------------


def lookup(
    home: DataHome,
    store: LineageStore,
    queries: list[Query],
    releases: list[tuple[str, dict]],
    *,
    near_threshold: float = DEFAULT_NEAR_THRESHOLD,
    passage_threshold: float = DEFAULT_PASSAGE_THRESHOLD,
    with_trace: bool = True,
) -> list[dict[str, Any]]:
    """One result per query: `{"query", "kind", "matches": [...]}`; see the module docstring.

    `releases` are the `(release_id, manifest)` pairs to search, newest first. A match is
    `{"match": exact|near|passage|url|domain, "similarity", "containment", "source", "partition",
    "doc_id", "in_release": [{"release", "shard", "row"}], "status", "decision", "trace"}`;
    `status` is "in release" or the terminal outcome (removed, duplicate, filtered, ...).
    """
    near = NearDuplicateIndex(home)
    passages = PassageIndex(home, near.config.shingle_words)
    if any(q.kind == "text" for q in queries):
        passages.update()
    results = []
    for query in queries:
        if query.kind == "text":
            found = _text_matches(query.text, near, passages, store, near_threshold, passage_threshold)
        else:
            found = _address_matches(store, query)
        matches = _describe_all(home, store, releases, found, with_trace)
        results.append({"query": query.value, "kind": query.kind, "matches": matches})
    return results


def _text_matches(
    text: str,
    near: NearDuplicateIndex,
    passages: PassageIndex,
    store: LineageStore,
    near_threshold: float,
    passage_threshold: float,
) -> dict[tuple[str, str, str], dict]:
    found: dict[tuple[str, str, str], dict] = {}
    with store.connection() as conn:
        for source, partition, doc_id in conn.execute(
            "SELECT source, partition, doc_id FROM documents WHERE content_sha256 = ? ORDER BY ALL", [sha256_text(text)]
        ).fetchall():
            found[(source, partition, doc_id)] = {"match": "exact", "similarity": 1.0, "containment": 1.0}
    query_set = shingle_set(text, near.config.shingle_words)
    signature = compute_signatures([text], near.config)[0]
    # Texts are read only for likely matches: an LSH candidate whose signature agrees on too few
    # slots, or a document holding under half the query's sampled shingles, cannot reach either
    # threshold (the slot agreement estimates Jaccard to about +-0.04 at 128 permutations).
    exact_keys = {member_key(*k) for k in found}
    lsh = lsh_candidates(near, signature) - exact_keys
    signatures = near.index.signatures_for(lsh) if lsh else {}
    keys = {k for k, other in signatures.items() if np.mean(other == signature) >= near_threshold - LSH_SLACK}
    sample = sampled_shingles(query_set)
    least = max(1, math.ceil(len(sample) * PASSAGE_SAMPLE_SHARE))
    keys |= {k for k, shared in passages.candidates(sample).items() if shared >= least}
    keys -= exact_keys
    if not keys or len(query_set) == 0:
        return found
    for key, candidate in near.texts(keys).items():
        other = shingle_set(candidate, near.config.shingle_words)
        common = len(np.intersect1d(query_set, other, assume_unique=True))
        jaccard = common / (len(query_set) + len(other) - common) if len(other) else 0.0
        containment = common / len(query_set)
        source, partition, doc_id = key.split("|", 2)
        if jaccard >= near_threshold:
            found[(source, partition, doc_id)] = {
                "match": "near",
                "similarity": round(jaccard, 6),
                "containment": round(containment, 6),
            }
        elif containment >= passage_threshold:
            found[(source, partition, doc_id)] = {
                "match": "passage",
                "similarity": round(containment, 6),
                "containment": round(containment, 6),
            }
    return found


def _address_matches(store: LineageStore, query: Query) -> dict[tuple[str, str, str], dict]:
    """Records a takedown request of the query's kind and value would hit (takedown.py's rules:
    page URL without fragment, upstream record, upstream file; a domain and its subdomains),
    over every raw record in the lineage store, so records that never passed the documents stage
    are found too. The store is narrowed by a substring scan for the host; the rules are then
    applied in Python to the few rows left."""
    if query.kind == "url":
        wanted = normalise_url(query.value)
        page = wanted.split("#", 1)[0]
        needle = url_host(wanted) or ""
    else:
        wanted = page = query.value
        needle = query.value
    with store.connection() as conn:
        rows = conn.execute(
            "SELECT DISTINCT source, partition, doc_id, url, upstream_uri FROM raw_records "
            "WHERE contains(lower(url), $1) OR contains(lower(upstream_uri), $1) ORDER BY ALL",
            [needle],
        ).fetchall()
    found = {}
    for source, partition, doc_id, url, upstream in rows:
        if query.kind == "url":
            hit = _normalised(url, fragment=False) == page or _normalised(upstream) == wanted
            hit = hit or _normalised(upstream, fragment=False) == wanted
        else:
            hit = any(_within(url_host(u), wanted) for u in (url, upstream))
        if hit:
            found[(source, partition, doc_id)] = {"match": query.kind, "similarity": 1.0, "containment": None}
    return found


def _normalised(url: str | None, fragment: bool = True) -> str | None:
    try:
        value = normalise_url(url) if url else None
    except ValueError:
        return None
    return value if fragment or value is None else value.split("#", 1)[0]


def _within(host: str | None, domain: str) -> bool:
    return host is not None and (host == domain or host.endswith("." + domain))


_DECISION_FIELDS = ("stage", "outcome", "reason", "value", "detail", "decided_at")


def _held(home: DataHome, releases: list[tuple[str, dict]], keys: pa.Table) -> dict[tuple[str, str, str], list[dict]]:
    """Where each wanted record is, in every release given: (release, shard, row), read from the
    releases' shard files themselves (immutable), so an earlier release answers as published."""
    from opencorpus_dagster.state.releases import release_dir

    files: dict[str, tuple[str, str]] = {}
    for release, manifest in releases:
        folder = release_dir(home, release)
        files.update({str(folder / s["path"]): (release, s["path"]) for s in manifest.get("shards", [])})
    held: dict[tuple[str, str, str], list[dict]] = {}
    if not files:
        return held
    with duckdb_connect(home.root) as connection:
        connection.register("wanted_keys", keys)
        rows = connection.execute(
            "SELECT f.source, f.partition, f.doc_id, f.filename, f.file_row_number "
            "FROM read_parquet(?, filename = true, file_row_number = true) f "
            "SEMI JOIN wanted_keys k ON k.source = f.source AND k.partition = f.partition AND k.doc_id = f.doc_id",
            [list(files)],
        ).fetchall()
    for source, partition, doc_id, filename, row in sorted(rows, key=lambda r: (r[0], r[1], r[2], files[r[3]])):
        release, shard = files[filename]
        held.setdefault((source, partition, doc_id), []).append({"release": release, "shard": shard, "row": int(row)})
    return held


def _describe_all(
    home: DataHome,
    store: LineageStore,
    releases: list[tuple[str, dict]],
    found: dict[tuple[str, str, str], dict],
    with_trace: bool,
) -> list[dict[str, Any]]:
    """The matches, best first, each with where it is held and its terminal decision (two
    queries for all of them) and, for the first MAX_TRACES, its trace."""
    ordered = sorted(found.items(), key=lambda kv: (-kv[1]["similarity"], kv[0]))
    if not ordered:
        return []
    keys = pa.table(
        {
            name: pa.array([k[i] for k, _ in ordered], pa.string())
            for i, name in enumerate(("source", "partition", "doc_id"))
        }
    )
    held = _held(home, releases, keys)
    current = releases[-1][0] if releases else None
    decisions: dict[tuple[str, str, str], dict] = {}
    with store.connection() as conn:
        conn.register("wanted_keys", keys)
        try:
            for source, partition, doc_id, *decision in conn.execute(
                "SELECT o.source, o.partition, o.doc_id, o.stage, o.outcome, o.reason, o.value, o.detail, o.decided_at "
                "FROM outcomes o JOIN wanted_keys k USING (source, partition, doc_id)"
            ).fetchall():
                decisions[(source, partition, doc_id)] = dict(zip(_DECISION_FIELDS, decision, strict=True))
        finally:
            conn.unregister("wanted_keys")
    results = []
    for number, (key, match) in enumerate(ordered):
        terminal = decisions.get(key)
        where = held.get(key, [])
        result = {
            **match,
            "source": key[0],
            "partition": key[1],
            "doc_id": key[2],
            "status": "in release" if any(w["release"] == current for w in where) else (terminal["outcome"] if terminal else "unknown"),
            "in_release": where,
            "decision": terminal,
        }
        if with_trace:
            # A domain may hold thousands of records: each one's trace is a `trace --doc-id` away.
            traces = tracing.trace_doc(store, key[2]) if number < MAX_TRACES else []
            traces = [t for t in traces if (t["source"], t["partition"]) == key[:2]]
            result["trace"] = traces[0] if traces else None
        results.append(result)
    return results


def takedown_requests(results: list[dict], reason: str, requested_by: str | None = None) -> list[TakedownRequest]:
    """The requests that would remove every match still in a release: the URL or domain asked
    about, the text's sha256 for an exact copy (every source holding it), else the doc_id."""
    requests: dict[str, TakedownRequest] = {}
    for result in results:
        live = [m for m in result["matches"] if m["in_release"]]
        if not live:
            continue
        if result["kind"] in ("url", "domain"):
            wanted = [(result["kind"], result["query"])]
        else:
            wanted = []
            for m in live:
                sha = (m.get("trace") or {}).get("content_sha256")
                wanted.append(("sha256", sha) if m["match"] == "exact" and sha else ("doc_id", m["doc_id"]))
        for kind, value in wanted:
            request = new_request(kind, value, reason, requested_by)
            requests.setdefault(request.id, request)
    return list(requests.values())


__all__ = [
    "DEFAULT_NEAR_THRESHOLD",
    "DEFAULT_PASSAGE_THRESHOLD",
    "QueryError",
    "PassageIndex",
    "Query",
    "lookup",
    "parse_queries",
    "takedown_requests",
]
