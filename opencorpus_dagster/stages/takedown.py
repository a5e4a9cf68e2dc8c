"""Takedowns and opt-outs after the fact: a request list, matching, and its application.

A takedown request names records to remove from the corpus by one of four keys:

- `url`: a page URL (matches the documents' `url` column; a `#fragment` in the request is
  ignored for that comparison), an upstream record (matches `upstream_uri` exactly, fragment
  included) or a whole upstream file (matches `upstream_uri` with its fragment removed, e.g. a
  Gutenberg book file or, deliberately, a whole dump);
- `domain`: a host and all its subdomains (`wikipedia.org` matches `en.wikipedia.org`, not
  `pedia.org`), compared with the host of `url` and the host of `upstream_uri`;
- `doc_id`: one record of one source;
- `sha256`: every record whose normalised text has this `content_sha256`, in any source.

The requests live in `<home>/takedowns.jsonl`, one JSON object per line, appended atomically.
Their id is the sha256 of the canonical (kind, normalised value, reason), so adding the same
request twice is a no-op.

Applying the list (`apply_takedowns`) matches it against every documents file with DuckDB (the
text column is never read), writes `<home>/dedup/removed.parquet` (which the shard writer
excludes and the exact dedup treats as absent, so a removed keeper's cluster promotes its next
member), replaces the lineage store's `takedown` decisions and appends an audit row per request.

Later refreshes never re-admit a removed record: matching runs over the documents files on
every application, so a record re-ingested by a new upstream unit is matched again. That holds
only if the takedown step runs on every build, after the documents stage and before dedup and
shards; `shard_rows_taken_down` checks the published shards for any row a request still hits.
"""

from __future__ import annotations

import fcntl
import hashlib
import json
import re
from collections import Counter
from dataclasses import asdict, dataclass, field
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import duckdb
import pyarrow as pa

from opencorpus_dagster.lineage.store import LineageStore, decisions_table
from opencorpus_dagster.stages.shards import shard_paths
from opencorpus_dagster.state.atomic import published, write_parquet_atomically
from opencorpus_dagster.state.home import DataHome, data_home
from opencorpus_dagster.state.storage import duckdb_connect, parquet_files, read_parquet

KINDS = ("url", "domain", "doc_id", "sha256")
STAGE = "takedown"

MATCH_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition", pa.string()),
        ("doc_id", pa.string()),
        ("source_record_id", pa.string()),
        ("upstream_uri", pa.string()),
        ("request_id", pa.string()),
        ("kind", pa.string()),
        ("value", pa.string()),
        ("reason", pa.string()),
    ]
)

REMOVED_SCHEMA = pa.schema(
    [
        ("source", pa.string()),
        ("partition", pa.string()),
        ("doc_id", pa.string()),
        ("request_id", pa.string()),
        ("kind", pa.string()),
        ("reason", pa.string()),
    ]
)

_AUDIT_ARROW = pa.schema(
    [(name, pa.string()) for name in ("run_id", "applied_at", "request_id", "kind", "value", "reason", "requested_at", "requested_by")]
    + [("records", pa.int64()), ("new_records", pa.int64()), ("partitions", pa.string()), ("shards_changed", pa.string())]
)

# One URL grammar for Python and DuckDB, so a request and a document are normalised alike:
# scheme, authority (userinfo@host:port), then the rest (path, query, fragment) as given.
_URL_PATTERN = r"^([A-Za-z][A-Za-z0-9+.\-]*)://([^/?#]*)(.*)$"
_URL = re.compile(_URL_PATTERN, re.DOTALL)
_DEFAULT_PORTS = {"http": "80", "https": "443"}
_HOST_LABEL = re.compile(r"^[a-z0-9_](?:[a-z0-9_-]*[a-z0-9_])?$")
_SHA256 = re.compile(r"^[0-9a-f]{64}$")


class TakedownFileError(ValueError):
    """The takedown list has a line that is not a valid request; names the file and line."""


@dataclass(frozen=True)
class TakedownRequest:
    id: str
    kind: str
    value: str
    reason: str
    requested_at: str
    requested_by: str | None = None

    def to_json(self) -> str:
        return json.dumps(asdict(self), ensure_ascii=False)


@dataclass
class TakedownReport:
    requests: int
    records: int  # distinct documents removed
    new_records: int  # of which not removed by the previous application
    by_kind: dict[str, int]  # kind -> distinct documents that kind removed
    by_request: dict[str, int]  # request id -> documents it matched (0 for unmatched requests)
    unmatched: list[str] = field(default_factory=list)  # request ids that matched nothing
    removed_path: Path | None = None


# -- normalisation -----------------------------------------------------------------------


def normalise_url(value: str) -> str:
    """Absolute URL with scheme and host lowercased, the default port and an empty port removed,
    and an empty path written as `/`. Path, query and fragment are kept as given.

    Raises ValueError when `value` is not an absolute URL with a host.
    """
    match = _URL.match(value.strip())
    if not match or not _host_of_authority(match.group(2)):
        raise ValueError(f"{value!r} is not an absolute URL (scheme://host/...)")
    scheme, authority, rest = match.groups()
    scheme = scheme.lower()
    userinfo, _, hostport = authority.rpartition("@")
    hostport = hostport.lower()
    default = _DEFAULT_PORTS.get(scheme)
    if default and hostport.endswith(":" + default):
        hostport = hostport[: -len(default) - 1]
    hostport = hostport.removesuffix(":")
    if not rest or rest[0] in "?#":
        rest = "/" + rest
    return f"{scheme}://{userinfo + '@' if userinfo else ''}{hostport}{rest}"


def url_host(url: str | None) -> str | None:
    """Lowercased host of an absolute URL (no userinfo, port or trailing dot); None if none."""
    match = _URL.match(url.strip()) if url else None
    return _host_of_authority(match.group(2)) if match else None


def _host_of_authority(authority: str) -> str | None:
    hostport = authority.rpartition("@")[2].lower()
    host = hostport[: hostport.index("]") + 1] if hostport.startswith("[") and "]" in hostport else hostport.split(":")[0]
    return host.rstrip(".") or None


def normalise_domain(value: str) -> str:
    """Lowercase host name without trailing dot; it stands for itself and its subdomains.

    `www.` is kept: `example.com` already covers `www.example.com`, and dropping the label
    would silently widen `www.example.com` to every other subdomain. A single label (`org`)
    is refused, since it would take down a whole top-level domain. Raises ValueError.
    """
    domain = value.strip().lower().rstrip(".")
    labels = domain.split(".")
    if len(labels) < 2 or not all(_HOST_LABEL.match(label) for label in labels):
        raise ValueError(
            f"{value!r} is not a domain name with at least two labels (e.g. example.com; "
            "give a URL as kind 'url', not 'domain')"
        )
    return domain


def normalise_value(kind: str, value: str) -> str:
    """The canonical form of a request value of `kind`; raises ValueError when it is invalid."""
    if not isinstance(value, str) or not value.strip():
        raise ValueError(f"a {kind} takedown needs a non-empty value")
    if kind == "url":
        return normalise_url(value)
    if kind == "domain":
        return normalise_domain(value)
    if kind == "doc_id":
        doc_id = value.strip()
        if any(c.isspace() for c in doc_id):
            raise ValueError(f"doc_id {value!r} contains whitespace")
        return doc_id
    if kind == "sha256":
        digest = value.strip().lower()
        if not _SHA256.match(digest):
            raise ValueError(f"sha256 {value!r} is not 64 hexadecimal digits")
        return digest
    raise ValueError(f"unknown takedown kind {kind!r}; expected one of {', '.join(KINDS)}")


def request_id(kind: str, value: str, reason: str) -> str:
    """sha256 of the canonical request (kind, normalised value, stripped reason)."""
    canonical = json.dumps({"kind": kind, "reason": reason, "value": value}, sort_keys=True, separators=(",", ":"), ensure_ascii=False)
    return hashlib.sha256(canonical.encode("utf-8")).hexdigest()


def new_request(
    kind: str, value: str, reason: str, requested_by: str | None = None, now: datetime | None = None
) -> TakedownRequest:
    """A validated, normalised request (not stored). Raises ValueError on a bad kind, value or
    an empty reason; `now` must be timezone-aware (default: the current UTC time)."""
    if kind not in KINDS:
        raise ValueError(f"unknown takedown kind {kind!r}; expected one of {', '.join(KINDS)}")
    reason = (reason or "").strip()
    if not reason:
        raise ValueError("a takedown needs a reason (who asked and why, or the policy it applies)")
    value = normalise_value(kind, value)
    return TakedownRequest(
        id=request_id(kind, value, reason),
        kind=kind,
        value=value,
        reason=reason,
        requested_at=_iso(now),
        requested_by=(requested_by or "").strip() or None,
    )


def _iso(moment: datetime | None) -> str:
    moment = moment or datetime.now(UTC)
    if moment.tzinfo is None:
        raise ValueError("takedown times must be timezone-aware (UTC)")
    return moment.astimezone(UTC).replace(microsecond=0).isoformat()


# -- the request list --------------------------------------------------------------------


def _root(home: DataHome | Path | str) -> DataHome:
    return home if isinstance(home, DataHome) else data_home(home)


def takedowns_path(home: DataHome | Path | str) -> Path:
    return _root(home).takedowns


def add_takedown(
    home: DataHome | Path | str,
    kind: str,
    value: str,
    reason: str,
    requested_by: str | None = None,
    now: datetime | None = None,
) -> TakedownRequest:
    """Append a request to `<home>/takedowns.jsonl` and return it.

    Idempotent: when a request with the same kind, normalised value and reason is already
    listed, that request (with its original `requested_at`) is returned and nothing is written.
    The file is rewritten as a temporary copy plus rename, under an exclusive lock, so a killed
    or concurrent add never leaves a half-written or lost line. Raises ValueError on an invalid
    request and TakedownFileError when the existing list is malformed.
    """
    request = new_request(kind, value, reason, requested_by, now)
    root = _root(home)
    path = root.takedowns
    root.state.mkdir(parents=True, exist_ok=True)
    # The lock is a local file (object storage has none): concurrent adds on one machine wait.
    with open(root.state / ".takedowns.jsonl.lock", "w") as lock:
        fcntl.flock(lock, fcntl.LOCK_EX)
        existing = {r.id: r for r in load_takedowns(home)}
        if request.id in existing:
            return existing[request.id]
        current = path.read_bytes() if path.is_file() else b""
        if current and not current.endswith(b"\n"):
            current += b"\n"
        with published(path) as temporary:
            temporary.write_bytes(current + request.to_json().encode("utf-8") + b"\n")
    return request


def load_takedowns(home: DataHome | Path | str) -> list[TakedownRequest]:
    """Every request in `<home>/takedowns.jsonl`, in file order ([] when there is no file).

    Blank lines are skipped; a repeated request (same id) is listed once, first occurrence.
    A line may omit `id` (hand-written); when given it must equal the id of the normalised
    request. Raises TakedownFileError naming the file and line for a malformed line.
    """
    path = takedowns_path(home)
    if not path.is_file():
        return []
    requests: dict[str, TakedownRequest] = {}
    with path.open(encoding="utf-8") as handle:
        for number, line in enumerate(handle, start=1):
            if not line.strip():
                continue
            try:
                request = _parse_line(line)
            except (ValueError, TypeError) as error:
                raise TakedownFileError(f"{path}:{number}: {error}") from None
            requests.setdefault(request.id, request)
    return list(requests.values())


def _parse_line(line: str) -> TakedownRequest:
    try:
        data = json.loads(line)
    except json.JSONDecodeError as error:
        raise ValueError(f"not a JSON object ({error.msg} at column {error.colno})") from None
    if not isinstance(data, dict):
        raise TypeError("not a JSON object")
    unknown = set(data) - {"id", "kind", "value", "reason", "requested_at", "requested_by"}
    if unknown:
        raise ValueError(f"unknown field(s) {', '.join(sorted(unknown))}")
    for name in ("kind", "value", "reason", "requested_at"):
        if not isinstance(data.get(name), str) or not data[name].strip():
            raise ValueError(f"field {name!r} is missing or not a non-empty string")
    try:
        requested_at = datetime.fromisoformat(data["requested_at"])
    except ValueError:
        raise ValueError(f"requested_at {data['requested_at']!r} is not an ISO-8601 time") from None
    by = data.get("requested_by")
    if by is not None and not isinstance(by, str):
        raise ValueError("requested_by must be a string or null")
    request = new_request(data["kind"], data["value"], data["reason"], by, requested_at)
    if "id" in data and data["id"] != request.id:
        raise ValueError(
            f"id {data['id']!r} is not the id of this request ({request.id}); "
            "was kind, value or reason edited? remove the id to recompute it"
        )
    return request


# -- matching ----------------------------------------------------------------------------

_MACROS = f"""
CREATE OR REPLACE TEMP MACRO oc_url_parts(u) AS regexp_extract(trim(u), '{_URL_PATTERN}', ['scheme', 'authority', 'rest']);
CREATE OR REPLACE TEMP MACRO oc_hostport(scheme, authority) AS regexp_replace(
    CASE lower(scheme)
        WHEN 'http' THEN regexp_replace(lower(regexp_replace(authority, '^.*@', '')), ':80$', '')
        WHEN 'https' THEN regexp_replace(lower(regexp_replace(authority, '^.*@', '')), ':443$', '')
        ELSE lower(regexp_replace(authority, '^.*@', ''))
    END, ':$', '');
CREATE OR REPLACE TEMP MACRO oc_normalise_url_parts(p) AS CASE
    WHEN p.scheme = '' THEN NULL
    ELSE lower(p.scheme) || '://' || regexp_extract(p.authority, '^(.*@)?', 1) || oc_hostport(p.scheme, p.authority)
         || CASE WHEN p.rest = '' OR left(p.rest, 1) IN ('?', '#') THEN '/' || p.rest ELSE p.rest END
END;
CREATE OR REPLACE TEMP MACRO oc_normalise_url(u) AS oc_normalise_url_parts(oc_url_parts(u));
CREATE OR REPLACE TEMP MACRO oc_without_fragment(u) AS regexp_replace(u, '#.*$', '');
CREATE OR REPLACE TEMP MACRO oc_host(u) AS nullif(rtrim(regexp_extract(
    lower(regexp_replace(oc_url_parts(u).authority, '^.*@', '')), '^(\\[[^\\]]*\\]|[^:]*)', 1), '.'), '');
"""


def _connect(*locations: str) -> duckdb.DuckDBPyConnection:
    connection = duckdb_connect(*locations)
    connection.execute(_MACROS)
    return connection


def _requests_table(requests: list[TakedownRequest]) -> pa.Table:
    return pa.Table.from_pylist(
        [{"request_id": r.id, "kind": r.kind, "value": r.value, "reason": r.reason} for r in requests],
        schema=pa.schema([(n, pa.string()) for n in ("request_id", "kind", "value", "reason")]),
    )


def _match_files(files: list[str], requests: list[TakedownRequest]) -> pa.Table:
    """Rows of the Parquet `files` hit by `requests` (MATCH_SCHEMA)."""
    if not requests or not files:
        return MATCH_SCHEMA.empty_table()  # nothing asked, or no files yet
    connection = _connect(*files)
    try:
        connection.register("requests", _requests_table(requests))
        connection.execute(
            """
            CREATE TEMP TABLE keys AS
            SELECT source, partition, doc_id, source_record_id, upstream_uri, content_sha256,
                   oc_without_fragment(oc_normalise_url(url)) AS url_key,
                   oc_normalise_url(upstream_uri) AS upstream_key,
                   oc_without_fragment(oc_normalise_url(upstream_uri)) AS upstream_file,
                   oc_host(url) AS url_host, oc_host(upstream_uri) AS upstream_host
            FROM read_parquet(?, union_by_name = true)
            """,
            [files],
        )
        # Equi-joins only (one per key), so the cost grows with records + requests, not their
        # product. A domain request meets a host through the host's suffixes (a.b.org -> a.b.org,
        # b.org, org), expanded once per distinct host.
        table = connection.sql(
            """
            WITH req AS (SELECT *, oc_without_fragment(value) AS value_page FROM requests),
            hosts AS (
                SELECT DISTINCT host, string_split(host, '.') AS labels
                FROM (SELECT url_host AS host FROM keys UNION ALL SELECT upstream_host FROM keys)
                WHERE host IS NOT NULL
            ),
            suffixes AS (
                SELECT host, array_to_string(labels[i:], '.') AS suffix
                FROM hosts, LATERAL (SELECT unnest(generate_series(1, len(labels))) AS i)
            ),
            hits AS (
                SELECT k.*, r.request_id FROM keys k JOIN req r ON r.kind = 'url' AND k.url_key = r.value_page
                UNION SELECT k.*, r.request_id FROM keys k JOIN req r ON r.kind = 'url' AND k.upstream_key = r.value
                UNION SELECT k.*, r.request_id FROM keys k JOIN req r ON r.kind = 'url' AND k.upstream_file = r.value
                UNION SELECT k.*, r.request_id FROM keys k JOIN suffixes s ON s.host = k.url_host
                      JOIN req r ON r.kind = 'domain' AND r.value = s.suffix
                UNION SELECT k.*, r.request_id FROM keys k JOIN suffixes s ON s.host = k.upstream_host
                      JOIN req r ON r.kind = 'domain' AND r.value = s.suffix
                UNION SELECT k.*, r.request_id FROM keys k JOIN req r ON r.kind = 'doc_id' AND k.doc_id = r.value
                UNION SELECT k.*, r.request_id FROM keys k JOIN req r ON r.kind = 'sha256' AND k.content_sha256 = r.value
            )
            SELECT DISTINCT h.source, h.partition, h.doc_id, h.source_record_id, h.upstream_uri,
                   r.request_id, r.kind, r.value, r.reason
            FROM hits h JOIN requests r USING (request_id)
            ORDER BY h.source, h.partition, h.doc_id, r.request_id
            """
        ).to_arrow_table()
    finally:
        connection.close()
    return table.cast(MATCH_SCHEMA)


def match_takedowns(home: DataHome | Path | str, requests: list[TakedownRequest]) -> pa.Table:
    """Every (document, request) pair where a request hits a record in the documents files.

    Columns: source, partition, doc_id, source_record_id, upstream_uri, request_id, kind,
    value, reason; ordered by source, partition, doc_id, request_id. Only key columns are read.
    """
    return _match_files(parquet_files(_root(home).root / "documents", "*/*.parquet"), requests)


def shard_rows_taken_down(
    home: DataHome | Path | str, requests: list[TakedownRequest] | None = None, release: str | None = None
) -> pa.Table:
    """Rows of a release's shards that a takedown request hits (MATCH_SCHEMA); must be empty.

    The invariant behind "a later refresh never re-admits a removed record", as an asset
    check on `corpus/shards`. `requests` defaults to the home's takedown list, `manifest` to the
    current one (the check passes the staged one).
    """
    root = _root(home)
    if requests is None:
        requests = load_takedowns(root)
    return _match_files(shard_paths(root, release), requests)


# -- applying ----------------------------------------------------------------------------


def removed_keys(home: DataHome | Path | str) -> set[tuple[str, str, str]]:
    """(source, partition, doc_id) of every taken-down record, from removed.parquet.

    The records the dedup must treat as absent, so a removed keeper's cluster promotes its
    next member (corpus.find_duplicates reads the same file). Empty before any application.
    """
    path = _root(home).removed_records
    if not path.is_file():
        return set()
    table = read_parquet(path, columns=["source", "partition", "doc_id"])
    return set(zip(*(table.column(n).to_pylist() for n in ("source", "partition", "doc_id")), strict=True))


def is_taken_down(home: DataHome | Path | str, source: str, partition: str, doc_id: str) -> bool:
    """Whether the last application of the takedown list removed this record."""
    return (source, partition, doc_id) in removed_keys(home)


def apply_takedowns(
    home: DataHome | Path | str, store: LineageStore, run_id: str, now: datetime | None = None
) -> TakedownReport:
    """Match the home's takedown list against every documents file and record the result.

    1. `<home>/dedup/removed.parquet` (source, partition, doc_id, request_id, kind, reason; one
       row per record and request hitting it, sorted) is rewritten atomically; the shard writer
       excludes these records and the dedup treats them as absent (keeper promotion).
    2. The lineage store's `takedown` decisions are replaced: one `removed` decision per record,
       reason `takedown:<kind>`, value the request id and detail the request's reason and time,
       for the earliest request that hits it (others are named in the detail).
    3. One `takedown_audit` row per request is appended (records matched, how many are new
       since the previous application, their partitions); `record_shard_changes` adds the shards.

    Runs on every build (after documents, before dedup and shards): a withdrawn request
    re-admits its records, a record re-ingested later is removed again.
    Raises TakedownFileError when the list is malformed (nothing is written then).
    """
    root = _root(home)
    applied_at = _iso(now)
    requests = load_takedowns(root)
    by_id = {r.id: r for r in requests}
    matches = match_takedowns(root, requests).to_pylist()

    target = root.removed_records
    previous = _previous_removals(target)
    rows = [{name: m[name] for name in REMOVED_SCHEMA.names} for m in matches]
    write_parquet_atomically(pa.Table.from_pylist(rows, schema=REMOVED_SCHEMA), target)

    per_record: dict[tuple[str, str, str], list[dict[str, Any]]] = {}
    per_request: dict[str, set[tuple[str, str, str]]] = {r.id: set() for r in requests}
    for match in matches:
        key = (match["source"], match["partition"], match["doc_id"])
        per_record.setdefault(key, []).append(match)
        per_request[match["request_id"]].add(key)
    decisions = []
    by_kind: Counter = Counter()
    for key in sorted(per_record):
        hits = sorted(per_record[key], key=lambda m: (by_id[m["request_id"]].requested_at, m["request_id"]))
        first = by_id[hits[0]["request_id"]]
        by_kind[first.kind] += 1
        detail = f"{first.reason} (requested {first.requested_at}{f' by {first.requested_by}' if first.requested_by else ''})"
        if len(hits) > 1:
            detail += "; also requested in " + ", ".join(h["request_id"] for h in hits[1:])
        decisions.append(
            {
                "source": key[0],
                "partition": key[1],
                "doc_id": key[2],
                "source_record_id": hits[0]["source_record_id"],
                "upstream_uri": hits[0]["upstream_uri"],
                "stage": STAGE,
                "outcome": "removed",
                "reason": f"takedown:{first.kind}",
                "value": first.id,
                "detail": detail,
                "run_id": run_id,
                "decided_at": applied_at,
            }
        )
    store.replace_stage(STAGE, decisions_table(decisions))

    audit = []
    by_request: dict[str, int] = {}
    new_total: set[tuple[str, str, str]] = set()
    for request in requests:
        keys = per_request[request.id]
        new = keys - previous.get(request.id, set())
        new_total |= new
        by_request[request.id] = len(keys)
        audit.append(
            {
                "run_id": run_id,
                "applied_at": applied_at,
                "request_id": request.id,
                "kind": request.kind,
                "value": request.value,
                "reason": request.reason,
                "requested_at": request.requested_at,
                "requested_by": request.requested_by,
                "records": len(keys),
                "new_records": len(new),
                "partitions": json.dumps(sorted({f"{s}/{p}" for s, p, _ in keys})),
                "shards_changed": None,
            }
        )
    _append_audit(store, audit)
    return TakedownReport(
        requests=len(requests),
        records=len(per_record),
        new_records=len(new_total),
        by_kind=dict(sorted(by_kind.items())),
        by_request=by_request,
        unmatched=[r.id for r in requests if by_request[r.id] == 0],
        removed_path=target,
    )


def _previous_removals(path: Path) -> dict[str, set[tuple[str, str, str]]]:
    """request id -> records the previous application removed (empty when there was none)."""
    if not path.is_file():
        return {}
    table = read_parquet(path)
    if "request_id" not in table.column_names:
        return {}
    previous: dict[str, set[tuple[str, str, str]]] = {}
    for row in table.select(["source", "partition", "doc_id", "request_id"]).to_pylist():
        previous.setdefault(row["request_id"], set()).add((row["source"], row["partition"], row["doc_id"]))
    return previous


def _append_audit(store: LineageStore, rows: list[dict[str, Any]]) -> None:
    if not rows:
        return
    previous = store.corpus_table("takedown_audit")
    store.replace_corpus_table("takedown_audit", pa.concat_tables([previous, pa.Table.from_pylist(rows, schema=_AUDIT_ARROW)]))


def record_shard_changes(store: LineageStore, run_id: str, changed_shards: list[str]) -> None:
    """Fill `shards_changed` of this run's audit rows after the shards were republished.

    `changed_shards` are manifest paths (`shards/<source>/<partition>/part-NNNNN.parquet`)
    written or deleted by the publish; each audit row gets those in the partitions its records
    live in (a shard of such a partition may also have changed for another reason, e.g. new
    upstream data in the same run).
    """
    rows = store.corpus_table("takedown_audit").to_pylist()
    if not any(row["run_id"] == run_id for row in rows):
        return
    for row in rows:
        if row["run_id"] == run_id:
            wanted = set(json.loads(row["partitions"] or "[]"))
            row["shards_changed"] = json.dumps(sorted(s for s in changed_shards if "/".join(s.split("/")[-3:-1]) in wanted))
    store.replace_corpus_table("takedown_audit", pa.Table.from_pylist(rows, schema=_AUDIT_ARROW))


def takedown_audit(store: LineageStore, run_id: str | None = None) -> list[dict[str, Any]]:
    """Audit rows (all runs, or one run), oldest first, JSON columns decoded."""
    # The file holds the rows in the order they were applied; a stable sort keeps it per time.
    rows = sorted(store.corpus_table("takedown_audit").to_pylist(), key=lambda row: row["applied_at"] or "")
    if run_id:
        rows = [row for row in rows if row["run_id"] == run_id]
    for row in rows:
        for name in ("partitions", "shards_changed"):
            row[name] = json.loads(row[name]) if row[name] is not None else None
    return rows

