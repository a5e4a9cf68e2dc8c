"""The conventions every `opencorpus` command follows, checked on the real console script.

Results on stdout, errors and warnings on stderr; `--version`; the exit codes in `--help`; every
error of every catalog file, SPDX ids checked against the SPDX licence list; listings as a table
with a header (TSV when stdout is a pipe, a rich table on a terminal) or one JSON list with
`--json`; an empty result said on stderr with exit code 6; summaries named after the command.
The listings run on the default catalog built once from the fixture mirror (`built_corpus`),
and on a copy of it where two takedowns were applied by a real `opencorpus backfill`.
"""

from __future__ import annotations

import json
import os
import pty
import re
import shutil
import signal
import subprocess
from importlib.metadata import version
from pathlib import Path

import pytest
from cli_runner import OPENCORPUS, REPO, run_opencorpus, shard_name
from conftest import current_manifest

from opencorpus_dagster.catalog import load_catalog
from opencorpus_dagster.cli import (
    EXIT_ENVIRONMENT,
    EXIT_FAILED,
    EXIT_LOCKED,
    EXIT_NO_MATCH,
    EXIT_NOT_BUILT,
    EXIT_USAGE,
)
from opencorpus_dagster.licensing.spdx import spdx_expression_problems

ENWIKI_DUMP = "https://dumps.wikimedia.org/enwiki/latest/enwiki-latest-pages-articles1.xml-p000000010p000030302.bz2"
ENWIKI_SHARD = "shards/enwiki/enwiki-latest-pages-articles1.xml-p000000010p000030302/part-00000.parquet"
BOOKS_SHARD = "shards/gutenberg/02000-02999/part-00000.parquet"
AARDVARK = "https://en.wikipedia.org/wiki/Aardvark"


def opencorpus(*args: str, env: dict | None = None) -> subprocess.CompletedProcess:
    """`opencorpus ARGS` without --home (for the commands that take none), in a clean environment."""
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_", "OPENLINEAGE"))}
    return subprocess.run(
        [OPENCORPUS, *args], capture_output=True, text=True, env={**clean, **(env or {})}, cwd=REPO, timeout=120
    )


def tsv(stdout: str) -> list[list[str]]:
    return [line.split("\t") for line in stdout.splitlines()]


# -- --version and the exit codes ------------------------------------------------------------


def test_version_is_the_installed_package_version():
    result = opencorpus("--version")
    assert (result.returncode, result.stdout, result.stderr) == (0, f"opencorpus {version('opencorpus-dagster')}\n", "")


def test_help_documents_every_exit_code():
    result = opencorpus("--help")
    assert result.returncode == 0
    lines = [line.strip() for line in result.stdout.splitlines()]
    table = lines[lines.index("Exit codes:") + 1 :]
    codes = {int(line.split()[0]): line.split(maxsplit=1)[1] for line in table if line[:1].isdigit()}
    assert codes == {
        0: "success",
        EXIT_FAILED: "the command ran and something failed (a partition, an invalid catalog file)",
        EXIT_USAGE: "bad options or arguments",
        EXIT_NOT_BUILT: "the data home was never built or does not exist",
        EXIT_ENVIRONMENT: "the machine refused (disk full, read-only, permission denied, missing path)",
        EXIT_LOCKED: "another build holds the data home (wait, then retry)",
        EXIT_NO_MATCH: "nothing matched: an empty listing or trace (said on stderr)",
        129: "a build stopped by SIGHUP (terminal closed); stderr says what is left",
        130: "a build stopped by SIGINT (Ctrl-C); stderr says what is left",
        143: "a build stopped by SIGTERM (kill); stderr says what is left",
    }
    assert sorted(codes) == [*range(7), 128 + signal.SIGHUP, 128 + signal.SIGINT, 128 + signal.SIGTERM]


# -- SPDX ids ------------------------------------------------------------------------------------


MADE_UP = "'CC-BY-SA-9.9' is not on the SPDX licence list (did you mean CC-BY-SA-4.0 or CC-BY-SA-3.0?)"


@pytest.mark.parametrize(
    ("expression", "problems"),
    [
        ("CC-BY-SA-4.0", []),
        ("cc-by-sa-4.0", []),  # SPDX ids are case-insensitive
        ("GPL-2.0+", []),  # deprecated, still on the list
        ("MIT OR Apache-2.0", []),
        ("GPL-2.0-only WITH Classpath-exception-2.0", []),
        ("LicenseRef-Wikimedia-Terms", []),
        ("LicenseRef-PublicDomain", []),
        ("CC-BY-SA-9.9", [MADE_UP]),
        ("MIT OR CC-BY-SA-9.9", [MADE_UP]),
        ("Apache-3.0 AND MITT", [
            "'Apache-3.0' is not on the SPDX licence list (did you mean Apache-2.0 or Apache-1.0?)",
            "'MITT' is not on the SPDX licence list (did you mean MIT?)",
        ]),
        ("Made-Up-License", ["'Made-Up-License' is not on the SPDX licence list"]),
        ("MIT AND", ["'MIT AND' is not a valid SPDX expression: AND requires two or more licenses as in: MIT AND BSD"]),
        ("(MIT", ["'(MIT' is not a valid SPDX expression: Invalid expression"]),
        ("", ["an SPDX expression is required; it is empty"]),
    ],
)  # fmt: skip
def test_spdx_expression_problems(expression, problems):
    assert spdx_expression_problems(expression) == problems


# -- validate: every error of every file, on stderr -----------------------------------------------

DUMP = f"options:\n  dumps: [{ENWIKI_DUMP}]\n"


def declaring(name: str, spdx: str) -> str:
    """A valid mediawiki catalog file whose source declares the licence `spdx`."""
    return f"name: {name}\nkind: mediawiki\nlicense: {{spdx: {spdx}, evidence: terms}}\n" + DUMP


# file -> (content, [(field, message), ...] expected on stderr, in order; [] for a valid file)
CATALOG = {
    "licenseref.yaml": (declaring("licenseref", "LicenseRef-Wikimedia-Terms"), []),
    "lowercase.yaml": (declaring("lowercase", "cc-by-sa-4.0"), []),
    "madeup.yaml": (declaring("madeup", "CC-BY-SA-9.9"), [
        ("license.spdx", f"Value error, {MADE_UP} (got 'CC-BY-SA-9.9')"),
    ]),
    "expression.yaml": (declaring("expression", "MIT OR Made-Up-1.0"), [
        ("license.spdx", "Value error, 'Made-Up-1.0' is not on the SPDX licence list (got 'MIT OR Made-Up-1.0')"),
    ]),
    "many.yaml": (
        "name: many\nkind: mediawiki\ndescripton: typo\nlicense: {spdx: CC-BY-SA-9.9, evidence: terms}\n"
        f"options:\n  dumps: [{ENWIKI_DUMP}]\n  namespacs: [0]\n"
        "policy: {allow: [CC-BY-NC-4.0], deny: [NOPE-1.0]}\nfilters: {language: {min_confidence: 7}}\n",
        [
            ("license.spdx", f"Value error, {MADE_UP} (got 'CC-BY-SA-9.9')"),
            ("descripton", "unknown field; did you mean 'description'? (allowed: content_kind, description, enabled, "
                           "extraction, filters, kind, license, limits, name, options, owners, policy, tags, us_renewals)"),
            ("options.namespacs", "unknown field; did you mean 'namespaces'? (allowed: dump_index, dump_job, dumps, "
                                  "latest_runs, license, listed_hosts, namespaces, partition_keys, revisions, since)"),
            ("policy.deny.0", "'NOPE-1.0' is not a known SPDX licence id; did you mean 'OPL-1.0'?"),
            ("filters.language.min_confidence", "Input should be less than or equal to 1 (got 7)"),
        ],
    ),
    "renamed.yaml": ("name: other\nkind: mediawik\n" + DUMP, [
        ("name", "'other' must equal the file name 'renamed'"),
        ("kind", "unknown connector kind 'mediawik'"),
    ]),
}  # fmt: skip


@pytest.fixture(scope="module")
def catalog(tmp_path_factory) -> Path:
    folder = tmp_path_factory.mktemp("catalog")
    for name, (content, _) in CATALOG.items():
        (folder / name).write_text(content)
    return folder


@pytest.fixture(scope="module")
def validated(catalog):
    return opencorpus("validate", "--catalog", str(catalog)), opencorpus(
        "validate", "--catalog", str(catalog), "--json"
    )


def test_validate_prints_results_on_stdout_and_every_error_on_stderr(catalog, validated):
    result, _ = validated
    assert result.returncode == EXIT_FAILED
    assert result.stdout.splitlines() == [
        "ok  licenseref.yaml: licenseref (mediawiki, 1 partitions)",
        "ok  lowercase.yaml: lowercase (mediawiki, 1 partitions)",
    ]
    stderr = result.stderr.splitlines()
    expected = [f"bad {catalog / name}: " for name in sorted(CATALOG) for _ in CATALOG[name][1]]
    assert [line[: len(prefix)] for line, prefix in zip(stderr, expected, strict=False)] == expected
    assert stderr[len(expected) :] == [f"opencorpus: {len(expected)} errors in 4 of 6 catalog files"]


@pytest.mark.parametrize("name", sorted(CATALOG))
def test_validate_reports_each_error_with_its_field(catalog, validated, name):
    result, as_json = validated
    _, problems = CATALOG[name]
    own = [
        line.removeprefix(f"bad {catalog / name}: ")
        for line in result.stderr.splitlines()
        if line.startswith(f"bad {catalog / name}: ")
    ]
    assert len(own) == len(problems)
    for line, (field, message) in zip(own, problems, strict=True):
        assert line.startswith(f"{field}: {message}"), line
    (entry,) = [e for e in json.loads(as_json.stdout) if e["file"] == str(catalog / name)]
    assert entry["valid"] is (not problems)
    assert [e["field"] for e in entry["errors"]] == [field for field, _ in problems]
    assert all(e["message"].startswith(m) for e, (_, m) in zip(entry["errors"], problems, strict=True))
    # The plain layer returns the same problems, so the UI and `build` see every error too.
    errors = {e.path.name: e for e in load_catalog(catalog).errors}
    if problems:
        assert [p.field for p in errors[name].problems] == [field for field, _ in problems]
        assert errors[name].lines() == [f"{catalog / name}: {line}" for line in own]
    else:
        assert name not in errors


def test_validate_json_is_one_list_in_file_order(catalog, validated):
    _, as_json = validated
    assert as_json.returncode == EXIT_FAILED
    entries = json.loads(as_json.stdout)
    assert [Path(e["file"]).name for e in entries] == sorted(CATALOG)
    assert entries[1] == {
        "file": str(catalog / "licenseref.yaml"), "valid": True, "source": "licenseref", "kind": "mediawiki",
        "partitions": 1, "discovers_partitions": False, "errors": [],
    }  # fmt: skip
    errors = sum(len(problems) for _, problems in CATALOG.values())
    assert errors == 9
    assert (
        as_json.stderr == f"opencorpus: {errors} errors in 4 of 6 catalog files\n"
    )  # the errors themselves are in the JSON


def test_validate_on_an_empty_catalog_says_so(tmp_path):
    result = opencorpus("validate", "--catalog", str(tmp_path))
    assert (result.returncode, result.stdout) == (EXIT_NO_MATCH, "")
    assert result.stderr == f"opencorpus: no catalog files (*.yaml, *.yml) in {tmp_path}\n"


# -- listings on the built corpus --------------------------------------------------------------


@pytest.fixture(scope="module")
def built(built_corpus):
    home, summary = built_corpus
    return home, summary, current_manifest(home)


def test_trace_source_lists_its_shards_with_a_header(built):
    home, _, manifest = built
    books = [s for s in manifest["shards"] if s["source"] == "gutenberg"]
    result = run_opencorpus("trace", "--source", "gutenberg", home=home)
    assert tsv(result.stdout) == [
        ["shard", "rows", "sha256"],
        *([s["path"], str(s["rows"]), s["sha256"]] for s in books),
    ]
    assert [shard_name(s["path"]) for s in books] == [BOOKS_SHARD]
    assert result.stderr == ""
    as_json = json.loads(run_opencorpus("trace", "--source", "gutenberg", "--json", home=home).stdout)
    assert as_json == [{"shard": s["path"], "sha256": s["sha256"], "rows": s["rows"]} for s in books]


@pytest.mark.parametrize("spelling", ["CC-BY-SA-3.0", "cc-by-sa-3.0"])
def test_trace_license_lists_the_shards_holding_it(built, spelling):
    home, _, manifest = built
    expected = [
        [s["path"], str(s["licenses"]["CC-BY-SA-3.0"]), s["sha256"]]
        for s in manifest["shards"]
        if "CC-BY-SA-3.0" in s["licenses"]
    ]
    assert [[shard_name(row[0]), *row[1:]] for row in expected] == [[ENWIKI_SHARD, "94", expected[0][2]]]
    result = run_opencorpus("trace", "--license", spelling, home=home)
    assert tsv(result.stdout) == [["shard", "rows", "sha256"], *expected]


def test_trace_license_not_on_the_spdx_list_is_a_usage_error(built):
    home, _, _ = built
    result = run_opencorpus("trace", "--license", "CC-BY-SA-9.9", home=home, check=False)
    assert (result.returncode, result.stdout) == (EXIT_USAGE, "")
    assert "'CC-BY-SA-9.9' is not on the SPDX licence list" in result.stderr
    assert "did you mean CC-BY-SA-4.0 or" in " ".join(result.stderr.split())  # click's box wraps the message


def test_report_lists_removals_per_rule_and_they_add_up_to_the_build(built):
    home, summary, _ = built
    result = run_opencorpus("report", home=home)
    header, *rows = tsv(result.stdout)
    assert header == ["source", "rule", "removed", "measured", "min", "median", "max"]
    assert ["gutenberg", "license.unknown", "14", "0", "", "", ""] in rows
    assert ["enwiki", "mediawiki.redirect", "99", "0", "", "", ""] in rows
    as_json = json.loads(run_opencorpus("report", "--json", home=home).stdout)
    assert [[r["source"], r["rule"], str(r["removed"]), str(r["measured"])] for r in as_json] == [
        row[:4] for row in rows
    ]
    # Every record that did not stay in the corpus is removed by exactly one rule.
    assert sum(r["removed"] for r in as_json) == summary["records_in"] - summary["outcomes"]["kept"] > 0
    only = json.loads(run_opencorpus("report", "--source", "gutenberg", "--json", home=home).stdout)
    assert only == [r for r in as_json if r["source"] == "gutenberg"] != []


NOTHING = [
    (("trace", "--license", "MIT"), "no shard holds records matching --license MIT"),
    (("trace", "--source", "x", "--license", "CC0-1.0"), "no shard holds records matching --source x and --license"),
    (("trace", "--doc-id", "nope"), "no record with doc_id 'nope' in the lineage store"),
    (("trace", "--url", "https://example.org/"), "no record with URL or upstream URI 'https://example.org/'"),
    (("trace", "--shard", "shards/no.parquet", "--row", "0"), "no shard named 'shards/no.parquet'"),
    (("report", "--source", "nope"), "no rule removed or measured records of source 'nope'"),
    (("takedown", "list"), "no takedown requests in {home}/takedowns.jsonl (add one with opencorpus takedown add)"),
    (("takedown", "audit"), "no takedown has been applied in this home (opencorpus takedown add, then opencorpus"),
]  # fmt: skip


@pytest.mark.parametrize("as_json", [False, True])
@pytest.mark.parametrize(("command", "message"), NOTHING)
def test_nothing_matched_is_said_on_stderr_and_exits_6(built, command, message, as_json):
    home, _, _ = built
    result = run_opencorpus(*command, *(["--json"] if as_json else []), home=home, check=False)
    assert result.returncode == EXIT_NO_MATCH
    assert (json.loads(result.stdout) if as_json else result.stdout) == ([] if as_json else "")
    (line,) = result.stderr.splitlines()
    assert line.startswith(f"opencorpus: {message.format(home=home)}"), line


def test_a_listing_on_a_terminal_is_a_rich_table(built):
    home, _, manifest = built
    (book,) = [s for s in manifest["shards"] if s["source"] == "gutenberg"]
    env = {k: v for k, v in os.environ.items() if not k.startswith(("OPENCORPUS_", "DAGSTER_"))}
    # Rich draws a dumb terminal 80 columns wide whatever COLUMNS says; NO_COLOR leaves bold and italics.
    env.update(COLUMNS="200", TERM="xterm", NO_COLOR="1", DAGSTER_HOME=str(home / "dagster"))
    leader, follower = pty.openpty()
    with subprocess.Popen(
        [OPENCORPUS, "trace", "--source", "gutenberg", "--home", str(home)],
        stdout=follower,
        stderr=subprocess.PIPE,
        env=env,
    ) as process:
        os.close(follower)
        chunks = []
        while True:
            try:
                chunk = os.read(leader, 65536)
            except OSError:  # EIO: the child closed the terminal
                break
            if not chunk:
                break
            chunks.append(chunk)
        assert process.wait(timeout=60) == 0
    os.close(leader)
    text = re.sub(r"\x1b\[[0-9;]*m", "", b"".join(chunks).decode())
    lines = [line.strip() for line in text.splitlines() if line.strip()]
    assert lines[0] == "shards"  # the title
    assert [cell.strip() for cell in lines[2].split("┃")] == ["", "shard", "rows", "sha256", ""]
    assert lines[4] == f"│ {book['path']} │    {book['rows']} │ {book['sha256']} │"  # whole values, no folding
    assert len(lines) == 6


# -- a takedown applied by a real backfill: takedown list and audit, backfill's summary ---------


@pytest.fixture(scope="module")
def taken_down(built_corpus, fixture_mirror, tmp_path_factory):
    home = tmp_path_factory.mktemp("takedown") / "home"
    shutil.copytree(built_corpus[0], home, ignore=shutil.ignore_patterns("dagster", "downloads"))
    run_opencorpus(
        "takedown", "add", "--url", AARDVARK, "--reason", "DMCA notice 2024-117", "--by", "legal@example.org", home=home
    )
    run_opencorpus("takedown", "add", "--domain", "example.org", "--reason", "publisher\topt-out", home=home)
    backfill = run_opencorpus(
        "backfill", "gutenberg", "--partitions", "02000-02999", "--mirror", str(fixture_mirror), home=home
    )
    return home, backfill


def test_backfill_summary_is_titled_after_the_command(taken_down):
    _, backfill = taken_down
    lines = [line.strip() for line in backfill.stdout.splitlines() if line.strip()]
    assert lines[0] == "opencorpus backfill"
    processed = next(line for line in lines if "partitions processed" in line)
    assert [cell.strip() for cell in processed.split("│")[1:3]] == ["partitions processed", "1"]


def test_takedown_list_is_a_table_with_a_header(taken_down):
    home, _ = taken_down
    result = run_opencorpus("takedown", "list", home=home)
    header, *rows = tsv(result.stdout)
    assert header == ["id", "kind", "value", "requested_at", "requested_by", "reason"]
    assert [row[1:3] + row[4:] for row in rows] == [
        ["url", AARDVARK, "legal@example.org", "DMCA notice 2024-117"],
        ["domain", "example.org", "", "publisher opt-out"],  # the tab inside the reason would break the columns
    ]
    as_json = json.loads(run_opencorpus("takedown", "list", "--json", home=home).stdout)
    assert [r["id"] for r in as_json] == [row[0] for row in rows]
    assert as_json[1]["requested_by"] is None and as_json[1]["reason"] == "publisher\topt-out"


def test_takedown_audit_is_a_table_with_a_header(taken_down):
    home, _ = taken_down
    result = run_opencorpus("takedown", "audit", home=home)
    header, *rows = tsv(result.stdout)
    assert header == ["applied_at", "request_id", "kind", "value", "records", "new_records", "shards_changed", "reason"]
    listed = {r["kind"]: r["id"] for r in json.loads(run_opencorpus("takedown", "list", "--json", home=home).stdout)}
    as_json = json.loads(run_opencorpus("takedown", "audit", "--json", home=home).stdout)
    # The shard file that left and the one that replaced it (files are named by their content).
    changed = as_json[0]["shards_changed"]
    assert [shard_name(path) for path in changed] == [ENWIKI_SHARD, ENWIKI_SHARD]
    assert [row[1:6] for row in rows] == [
        [listed["url"], "url", AARDVARK, "1", "1"],
        [listed["domain"], "domain", "example.org", "0", "0"],
    ]
    assert [row[6] for row in rows] == [" ".join(changed), ""]
    assert [(r["request_id"], r["records"], r["shards_changed"]) for r in as_json] == [
        (listed["url"], 1, changed), (listed["domain"], 0, []),
    ]  # fmt: skip
    assert [r["applied_at"] for r in as_json] == [row[0] for row in rows]
