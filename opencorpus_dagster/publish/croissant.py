"""Croissant 1.0 metadata (`croissant.json` of a release folder): the release's files and columns in JSON-LD.

Describes a `cr:FileObject` for `manifest.json` with its sha256, a `cr:FileSet` for the shards
(`shards/**/*.parquet`, relative to the release folder, where the file lives), and one
`cr:RecordSet` whose fields are the shard columns, each with the Croissant data type of its
Parquet type (read from the shards' footers). The licence is a list of licence URLs. Version,
release date (`datePublished`), creators (`creator`: the catalog owners) and citation (`citeAs`,
BibTeX: Croissant's property for how to cite the dataset; schema.org's `citation` is for works
the dataset cites) are those of the card (release.py). `url` (the card) and the manifest's
`contentUrl` are absolute under `OPENCORPUS_BASE_URL` when it is set, relative otherwise. The
`@context` is the Croissant 1.0 one (mlcommons/croissant datasets/1.0, plus the
`equivalentProperty` and `samplingRate` terms mlcroissant expects). Validated by
`mlcroissant` in tests/test_card.py.
"""

from __future__ import annotations

import hashlib
import json
import re
from pathlib import Path

import pyarrow as pa
import pyarrow.parquet as pq

from opencorpus_dagster.lineage.store import LineageStore
from opencorpus_dagster.publish.attribution import (
    license_keys,
    license_urls,
    shard_files,
)
from opencorpus_dagster.publish.card import CARD_FILE, SHARD_GLOB, TITLE
from opencorpus_dagster.publish.release import release_of
from opencorpus_dagster.publish.shard_stats import schema_digest, shard_statistics
from opencorpus_dagster.stages.shards import SHARD_SCHEMA
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.atomic import write_text_atomically
from opencorpus_dagster.state.home import DataHome

CROISSANT_FILE = "croissant.json"
CROISSANT_CONFORMS_TO = "http://mlcommons.org/croissant/1.0"
CROISSANT_CONTEXT = {
    "@language": "en",
    "@vocab": "https://schema.org/",
    "citeAs": "cr:citeAs",
    "column": "cr:column",
    "conformsTo": "dct:conformsTo",
    "cr": "http://mlcommons.org/croissant/",
    "rai": "http://mlcommons.org/croissant/RAI/",
    "data": {"@id": "cr:data", "@type": "@json"},
    "dataType": {"@id": "cr:dataType", "@type": "@vocab"},
    "dct": "http://purl.org/dc/terms/",
    "equivalentProperty": "cr:equivalentProperty",
    "examples": {"@id": "cr:examples", "@type": "@json"},
    "extract": "cr:extract",
    "field": "cr:field",
    "fileProperty": "cr:fileProperty",
    "fileObject": "cr:fileObject",
    "fileSet": "cr:fileSet",
    "format": "cr:format",
    "includes": "cr:includes",
    "isLiveDataset": "cr:isLiveDataset",
    "jsonPath": "cr:jsonPath",
    "key": "cr:key",
    "md5": "cr:md5",
    "parentField": "cr:parentField",
    "path": "cr:path",
    "recordSet": "cr:recordSet",
    "references": "cr:references",
    "regex": "cr:regex",
    "repeated": "cr:repeated",
    "replace": "cr:replace",
    "samplingRate": "cr:samplingRate",
    "sc": "https://schema.org/",
    "separator": "cr:separator",
    "source": "cr:source",
    "subField": "cr:subField",
    "transform": "cr:transform",
}
RECORD_SET = "documents"
_COLUMN_DESCRIPTIONS = {
    "doc_id": "Stable document id, derived from the source name and the upstream record id.",
    "source": "Catalog name of the source.",
    "partition": "Upstream unit (dump file, batch of books, crawl segment) the record came from.",
    "source_record_id": "The record's id in its source (page id, book id, WARC record id).",
    "upstream_uri": "Where to fetch the record again (file URL plus page/revision, offset/length).",
    "url": "The record's canonical web address.",
    "title": "Title of the page or book.",
    "text": "The document text, extracted and normalised.",
    "language": "ISO 639-1 code of the identified language.",
    "license": "SPDX licence expression of the document.",
    "license_evidence": "How the licence was decided.",
    "attribution": "Attribution string to reproduce when the licence requires it.",
    "content_sha256": "sha256 of the text (UTF-8).",
}


def write_croissant(
    home: DataHome,
    store: LineageStore,
    *,
    name: str = "opencorpus",
    owners: dict[str, list[str]] | None = None,
    base_url: str | None = None,
    release: str | None = None,
) -> Path:
    """Write `croissant.json` into the folder of `release` (default: the one being staged, else the current one); returns its path.

    Files and columns come from the manifest and the shard footers; the release date from the
    lineage store; `owners` (source name -> catalog owners) and `base_url` as for the card.
    Byte-identical for the same corpus and store.
    Raises FileNotFoundError when the corpus has no manifest; ValueError for a bad `base_url`.
    """
    release_id = release or releases.card_release(home)
    folder = releases.release_dir(home, release_id)
    files = shard_files(home, release_id)
    manifest = releases.read_manifest(home, release_id)
    release = release_of(manifest, store, owners, base_url, name, folder=f"releases/{release_id}/")
    statistics = shard_statistics(home, manifest, files).shards  # kept per shard: new shards only are read
    totals = manifest["totals"]
    licences = sorted({key for license in totals["licenses"] for key in license_keys(license)})
    urls = sorted({link for license in totals["licenses"] for link in license_urls(license)})
    description = (
        f"An openly licensed text corpus with record-level lineage: {totals['rows']} documents from "
        f"{len(totals['sources'])} sources ({', '.join(totals['sources'])}) in {totals['shards']} Parquet "
        f"shards, under {', '.join(licences) or 'no licence'}. Every row carries its SPDX licence, the "
        "evidence for it, its attribution and the URI of its upstream record."
    )
    document = {
        "@context": CROISSANT_CONTEXT,
        "@type": "sc:Dataset",
        "name": name,
        "description": description,
        "conformsTo": CROISSANT_CONFORMS_TO,
        "license": urls,
        "url": release.url_of(CARD_FILE),
        "version": release.version,
        **({"datePublished": release.date} if release.date else {}),
        **({"creator": [_creator(owner) for owner in release.creators]} if release.creators else {}),
        "citeAs": release.bibtex(TITLE),
        "inLanguage": _languages(statistics),
        "distribution": [
            {
                "@type": "cr:FileObject",
                "@id": "manifest.json",
                "name": "manifest.json",
                "description": "The shard list: path, rows, bytes, sha256 and licence counts of every shard.",
                "contentUrl": release.url_of("manifest.json"),
                "encodingFormat": "application/json",
                "sha256": _sha256(folder / releases.MANIFEST_FILE),
            },
            {
                "@type": "cr:FileSet",
                "@id": "shards",
                "name": "shards",
                "description": "The corpus shards (sha256 of each in manifest.json).",
                "encodingFormat": "application/x-parquet",
                "includes": SHARD_GLOB,
            },
        ],
        "recordSet": [
            {
                "@type": "cr:RecordSet",
                "@id": RECORD_SET,
                "name": RECORD_SET,
                "description": "One record per document (one shard row).",
                "key": {"@id": f"{RECORD_SET}/doc_id"},
                "field": [_field(column) for column in _schema(files, statistics)],
            }
        ],
    }
    text = json.dumps(document, indent=2, ensure_ascii=False) + "\n"
    return write_text_atomically(folder / CROISSANT_FILE, [text])


def croissant_data_type(arrow_type: pa.DataType) -> str:
    """The Croissant (schema.org) data type of one Arrow column type.

    Raises ValueError for a type the shards should never hold (nested, binary).
    """
    if pa.types.is_string(arrow_type) or pa.types.is_large_string(arrow_type):
        return "sc:Text"
    if pa.types.is_boolean(arrow_type):
        return "sc:Boolean"
    if pa.types.is_integer(arrow_type):
        return "sc:Integer"
    if pa.types.is_floating(arrow_type):
        return "sc:Float"
    if pa.types.is_timestamp(arrow_type):
        return "sc:DateTime"
    if pa.types.is_date(arrow_type):
        return "sc:Date"
    if pa.types.is_dictionary(arrow_type):
        return croissant_data_type(arrow_type.value_type)
    raise ValueError(f"no Croissant data type for Arrow type {arrow_type}")


def _field(column: pa.Field) -> dict:
    return {
        "@type": "cr:Field",
        "@id": f"{RECORD_SET}/{column.name}",
        "name": column.name,
        "description": _COLUMN_DESCRIPTIONS.get(column.name, f"Shard column {column.name}."),
        "dataType": croissant_data_type(column.type),
        "source": {"fileSet": {"@id": "shards"}, "extract": {"column": column.name}},
    }


def _schema(files: list[str], statistics) -> pa.Schema:
    """The shards' schema (from the first footer; every shard is checked to agree, by the
    schema digest kept in its statistics)."""
    if not files:
        return SHARD_SCHEMA
    schema = pq.read_schema(files[0]).remove_metadata()
    digest = schema_digest(schema)
    for path, shard in zip(files[1:], statistics[1:], strict=True):
        if shard.schema_sha256 != digest:
            other = pq.read_schema(path)
            raise ValueError(f"{path}: schema {other} differs from {files[0]}'s {schema}")
    return schema


def _languages(statistics) -> list[str]:
    """Every language of a kept document (the languages of the shard statistics' groups)."""
    return sorted({language for shard in statistics for _, _, language, *_ in shard.groups if language is not None})


_EMAIL = re.compile(r"^[^@\s]+@[^@\s]+$")


def _creator(owner: str) -> dict:
    """A catalog owner as schema.org: an e-mail address is a Person, `team:<name>` an Organization."""
    if _EMAIL.match(owner):
        return {"@type": "sc:Person", "name": owner, "email": owner}
    return {"@type": "sc:Organization", "name": owner}


def _sha256(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()
