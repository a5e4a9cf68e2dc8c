"""`opencorpus releases`, `diff`, `gc`, `verify` and `prove`: the releases of a data home.

Registered on the `opencorpus` app by cli.py; the same conventions (listings as tables, TSV or
--json; nothing found exits 6; errors one line on stderr).
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Annotated

import typer

from opencorpus_dagster.cli import (
    EXIT_FAILED,
    EXIT_NO_MATCH,
    Column,
    HomeOption,
    JsonOption,
    _lineage,
    _print_json,
    _print_listing,
    _say,
    app,
    out,
)
from opencorpus_dagster.state import releases
from opencorpus_dagster.state.home import data_home

ReleaseArgument = Annotated[str, typer.Argument(help="a release id, e.g. r000003 (see opencorpus releases)")]


def _known(home, release: str) -> str:
    try:
        releases.read_release(home, release)
    except releases.ReleaseNotFound as error:
        raise typer.BadParameter(str(error)) from None
    return release


@app.command("releases")
def releases_command(home: HomeOption = None, as_json: JsonOption = False) -> None:
    """List the published releases, oldest first; the current one is marked."""
    rows = [
        {
            "release": r["release"],
            "current": r["current"],
            "published_at": r["published_at"],
            "rows": r["totals"]["rows"],
            "shards": r["totals"]["shards"],
            "bytes": r["totals"]["bytes"],
            "merkle_root": r.get("merkle_root"),
            "corpus_run_id": r["corpus_run_id"],
        }
        for r in releases.list_releases(data_home(home))
    ]
    _print_listing(
        rows,
        [
            Column("release", lambda r: r["release"] + (" *" if r["current"] else "")),
            Column("published_at", lambda r: r["published_at"]),
            Column("rows", lambda r: r["rows"], numeric=True),
            Column("shards", lambda r: r["shards"], numeric=True),
            Column("bytes", lambda r: r["bytes"], numeric=True),
            Column("merkle_root", lambda r: r["merkle_root"]),
        ],
        as_json=as_json,
        title="releases (* = current)",
        nothing="no release published yet (run opencorpus build)",
    )


@app.command()
def diff(older: ReleaseArgument, newer: ReleaseArgument, home: HomeOption = None, as_json: JsonOption = False) -> None:
    """The records added and removed between two releases, and why (from the lineage)."""
    from opencorpus_dagster.state.release_diff import diff_releases

    resolved = data_home(home)
    changes = diff_releases(resolved, _lineage(home), _known(resolved, older), _known(resolved, newer))
    _print_listing(
        changes,
        [
            Column("change", lambda r: r["change"]),
            Column("why", lambda r: r["why"]),
            Column("source", lambda r: r["source"]),
            Column("partition", lambda r: r["partition"]),
            Column("doc_id", lambda r: r["doc_id"]),
            Column("reason", lambda r: r["reason"]),
            Column("detail", lambda r: r["detail"]),
        ],
        as_json=as_json,
        title=f"{older} -> {newer}",
        nothing=f"no record differs between {older} and {newer}",
    )


@app.command()
def gc(
    home: HomeOption = None,
    keep: Annotated[int, typer.Option("--keep", help="how many of the newest releases to keep (the current one always is)")] = 3,
    dry_run: Annotated[bool, typer.Option("--dry-run", help="say what would be removed, remove nothing")] = False,
    as_json: JsonOption = False,
) -> None:
    """Remove older releases and the shard files no kept release lists (takes the build lock)."""
    from opencorpus_dagster.publish.shard_stats import forget_statistics
    from opencorpus_dagster.state.home_lock import hold_home

    resolved = data_home(home)
    if keep < 1:
        raise typer.BadParameter("must be at least 1", param_hint="--keep")
    with hold_home(resolved):
        collected = releases.collect_garbage(resolved, keep, dry_run=dry_run)
        if not dry_run:
            forget_statistics(resolved, releases.listed_sha256(resolved))
    result = {"releases": collected.releases, "shards": collected.shards, "bytes": collected.bytes, "dry_run": dry_run}
    if as_json:
        _print_json(result)
        return
    verb = "would remove" if dry_run else "removed"
    out.print(f"{verb} {len(collected.releases)} releases ({', '.join(collected.releases) or 'none'}) "
              f"and {len(collected.shards)} shard files ({collected.bytes} bytes)")  # fmt: skip


@app.command()
def verify(
    folder: Annotated[Path, typer.Argument(help="a corpus folder (as published: releases/, shards/) or one release folder")],
    release: Annotated[str | None, typer.Option("--release", help="which release of the folder (default: current.json's)")] = None,
    subset: Annotated[bool, typer.Option("--subset", help="shards that are absent are not a failure (a partial copy)")] = False,
    as_json: JsonOption = False,
) -> None:
    """Check a copy of a release: file checksums, shard checksums and Merkle roots. Exit 1 names what differs."""
    from opencorpus_dagster.state.verification import verify_copy

    result = verify_copy(folder, release, subset=subset)
    if as_json:
        _print_json({"release": result.release, "ok": result.ok, "checked": result.checked, "absent": result.absent, "problems": result.problems})
    else:
        out.print(f"release {result.release}: {len(result.checked)} shards checked, {len(result.absent)} absent")
    for problem in result.problems:
        _say(f"{problem['path']}: {problem['problem']}")
    if not result.ok:
        raise typer.Exit(code=EXIT_FAILED)


@app.command()
def prove(
    doc_id: Annotated[str, typer.Option("--doc-id", help="the record's doc_id")],
    home: HomeOption = None,
    release: Annotated[str | None, typer.Option("--release", help="default: the current release")] = None,
) -> None:
    """Print a record's inclusion proof as JSON (README: verify_proof), or which release it left and why."""
    from opencorpus_dagster.state.verification import NotInRelease
    from opencorpus_dagster.state.verification import prove as build_proof

    resolved = data_home(home)
    try:
        store = _lineage(home)
    except FileNotFoundError:
        store = None
    try:
        proof = build_proof(resolved, doc_id, _known(resolved, release) if release else None, store)
    except NotInRelease as error:
        _say(str(error))
        raise typer.Exit(code=EXIT_NO_MATCH) from None
    print(json.dumps(proof, indent=2, sort_keys=True, default=str))
    if not proof["included"]:
        _say(f"{doc_id} is not in {proof['release']}: it left in {proof['left_in']} (last in {proof['last_release']})")
