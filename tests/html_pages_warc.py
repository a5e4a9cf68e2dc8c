"""One WARC wrapping the fixture `html_extraction` pages (readability and trafilatura test pages).

The fixtures hold the pages as gzipped HTML files, not as web captures; the end-to-end web
benchmark and the documents-stage guard test need them as WARC response records, so this writes
one at run time (into a temporary folder: fixture files are never copied into the repository).
Each page gets the URL `https://fixtures.opencorpus.invalid/html_extraction/<set>/<name>` (RFC
2606 `.invalid`: never fetched) and an HTTP `Content-Type: text/html` without a charset, so
the charset is read from the page as a browser would. The same file every time (record ids
from the URLs, one fixed date).
"""

from __future__ import annotations

import gzip
import uuid
from io import BytesIO
from pathlib import Path

from warcio.statusandheaders import StatusAndHeaders
from warcio.warcwriter import WARCWriter

PAGES_HOST = "fixtures.opencorpus.invalid"


def html_pages(fixtures: Path) -> list[tuple[str, bytes]]:
    """(url, page bytes) of every fixture HTML page, in a fixed order."""
    root = fixtures / "html_extraction"
    pages = []
    for path in sorted((root / "mozilla-readability-test-pages" / "pages").glob("*/source.html.gz")):
        pages.append((f"https://{PAGES_HOST}/html_extraction/readability/{path.parent.name}", path))
    for path in sorted((root / "trafilatura-eval-subset" / "html").glob("*.html.gz")):
        name = path.name.removesuffix(".gz")
        pages.append((f"https://{PAGES_HOST}/html_extraction/trafilatura/{name}", path))
    return [(url, gzip.decompress(path.read_bytes())) for url, path in pages]


def write_html_pages_warc(fixtures: Path, destination: Path) -> int:
    """Write `destination` (a gzipped WARC) with one response record per page; returns the count."""
    pages = html_pages(fixtures)
    destination.parent.mkdir(parents=True, exist_ok=True)
    with open(destination, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for url, body in pages:
            headers = StatusAndHeaders(
                "200 OK", [("Content-Type", "text/html"), ("Content-Length", str(len(body)))], protocol="HTTP/1.1"
            )
            # Record id and date derived from the URL / fixed: the same WARC every time, so the
            # records' doc_ids (derived from the WARC-Record-ID) are stable across runs.
            warc_headers = {
                "WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, url)}>",
                "WARC-Date": "2024-01-01T00:00:00Z",
            }
            record = writer.create_warc_record(
                url, "response", payload=BytesIO(body), http_headers=headers, warc_headers_dict=warc_headers
            )
            writer.write_record(record)
    return len(pages)
