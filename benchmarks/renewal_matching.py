"""Precision and recall of "renewed" for the US renewal determination (licensing/renewals.py).

How the labelled set is built from the fixture renewals (NYPL/cce-renewals, every renewal of a
1950 or 1951 registration), all of them loaded as the index:

- positives (must be found): books (class `A`, not `AA`/`AF`/`AI`) registered in 1950 or 1951,
  renewed within the 27-28 year window, with a parsed title and author. Each is presented as a
  cataloguer would write it, without its registration number: author as `SURNAME, GIVEN`
  upper-cased, the first title cut at its subtitle, then OCR-like noise (3% of letters swapped
  by the confusions seen in the fixture pages: e/c, l/1/i, rn/m, h/b, u/n, o/0, dropped letters).
- negatives (must not be matched): books whose registration is of another year (1949 and a few
  others, renewed 1976-79) presented, with the same treatment, as published in 1950 or 1951.
  Their renewals are in the files but for registrations the 1950-51 coverage does not contain,
  so the right answer for "was this 1950-51 registration renewed?" is no. A negative whose
  main title and author surname also appear among the 1950-51 rows (a new edition, a reprint, a
  second volume of the same title) is left out: the fields a cataloguer gives cannot tell the
  two apart, so its label would be a guess. The count left out is printed.

Limits: the works are renewed works on both sides (no never-renewed registration is in the
fixtures, NYPL's 7-entry example aside), so negatives are near misses by year, not the plain
unrenewed book; the noise is synthetic; thresholds were set while looking at this set (a
second seed is printed to show the figures are not one draw's luck).

Run: .venv/bin/python benchmarks/renewal_matching.py [--size 1000]
"""

from __future__ import annotations

import argparse
import random
import re
import sys
import time
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

from rapidfuzz import fuzz  # noqa: E402

from opencorpus_dagster.licensing.renewal_records import RenewalRow, load_renewal_index  # noqa: E402
from opencorpus_dagster.licensing.renewals import author_names, determine, title_variants  # noqa: E402

RENEWALS = ROOT.parent / "shared" / "fixtures" / "digitised" / "renewals"
COVERED = (1950, 1951)
CONFUSIONS = {
    "e": "c",
    "c": "e",
    "l": "1",
    "i": "l",
    "h": "b",
    "u": "n",
    "n": "u",
    "o": "0",
    "m": "rn",
    "rn": "m",
    "s": "f",
}
_BOOK = re.compile(r"^A\d")


def cataloguer_author(author: str) -> str:
    """`Mary Patricia Highsmith.` -> `HIGHSMITH, MARY PATRICIA` (the CCE registration form)."""
    names = author_names(author)
    if not names:
        return ""
    words = names[0].split()
    return (words[-1] + (", " + " ".join(words[:-1]) if len(words) > 1 else "")).upper()


def cataloguer_title(title: str) -> str:
    return re.split(r"\s*[;:]\s*|\s{2,}", title.strip(), maxsplit=1)[0].rstrip(". ")


def ocr_noise(text: str, rng: random.Random, rate: float = 0.03) -> str:
    out, i = [], 0
    while i < len(text):
        pair, char = text[i : i + 2], text[i]
        if pair in CONFUSIONS and rng.random() < rate:
            out.append(CONFUSIONS[pair])
            i += 2
            continue
        if char.isalpha() and rng.random() < rate:
            lower = char.lower()
            if lower in CONFUSIONS and rng.random() < 0.8:
                swap = CONFUSIONS[lower]
                out.append(swap.upper() if char.isupper() else swap)
            # else: the letter is dropped
        else:
            out.append(char)
        i += 1
    return "".join(out)


def usable(row: RenewalRow) -> bool:
    return bool(
        row.registration
        and _BOOK.match(row.registration)
        and row.titles
        and author_names(row.author)
        and row.renewed
        and not row.suspect
    )


def labelled_set(index, size: int, seed: int) -> list[tuple[dict, bool]]:
    rng = random.Random(seed)
    rows = {id(r): r for rs in index.by_key.values() for r in rs}.values()
    covered_keys: dict[str, set[str]] = {}
    for r in rows:
        if r.registered and int(r.registered[:4]) in COVERED and r.titles:
            title, surname = _work_key(r)
            covered_keys.setdefault(title, set()).add(surname)
    positives, negatives, ambiguous = [], [], []
    seen_entries = set()
    for row in sorted(rows, key=lambda r: (r.file, r.entry_id, r.registration or "")):
        if not usable(row) or row.entry_id in seen_entries:
            continue
        seen_entries.add(row.entry_id)
        year = int(row.registered[:4])
        if year in COVERED:
            positives.append(row)
        elif not _same_work_covered(row, covered_keys):
            negatives.append(row)
        else:
            ambiguous.append(row)
    print(f"  pools: {len(positives)} positives, {len(negatives)} negatives, {len(ambiguous)} left out as ambiguous")
    cases = []
    if size:
        positives, negatives = (
            rng.sample(positives, min(size, len(positives))),
            rng.sample(negatives, min(size, len(negatives))),
        )
    for row in positives:
        cases.append((_present(row, int(row.registered[:4]), rng), True))
    for row in negatives:
        cases.append((_present(row, rng.choice(COVERED), rng), False))
    return cases


def _work_key(row: RenewalRow) -> tuple[str, str]:
    """Main title (no leading article) and surname: what a cataloguer's record of the work shows."""
    title = title_variants(row.titles[0])[-1]  # the main title without a leading article
    names = author_names(row.author)
    return title, (names[0].split()[-1] if names else "")


def _same_work_covered(row: RenewalRow, covered_keys: dict[str, set[str]]) -> bool:
    title, surname = _work_key(row)
    return any(fuzz.ratio(surname, other) >= 85 for other in covered_keys.get(title, ()))


def _present(row: RenewalRow, year: int, rng: random.Random) -> dict:
    return {
        "title": ocr_noise(cataloguer_title(row.titles[0]), rng),
        "author": ocr_noise(cataloguer_author(row.author), rng),
        "year": year,
        "country": "US",
        "registration_class": "A",  # the cataloguer has a book in hand
        "truth": f"{row.renewal_id} {row.registration}/{row.registered}",
    }


def run(index, size: int, seed: int, show_errors: int) -> None:
    cases = labelled_set(index, size, seed)
    tp = fp = fn = tn = undetermined = 0
    errors = []
    started = time.perf_counter()
    for bibliographic, renewed in cases:
        result = determine(index, bibliographic)
        said = result.status == "renewed"
        undetermined += result.status == "undetermined"
        if said and renewed:
            tp += 1
        elif said:
            fp += 1
            errors.append(("FP", bibliographic, result))
        elif renewed:
            fn += 1
            errors.append(("FN", bibliographic, result))
        else:
            tn += 1
    seconds = time.perf_counter() - started
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    positives = sum(1 for _, r in cases if r)
    print(
        f"seed {seed}: {positives} positives, {len(cases) - positives} negatives; "
        f"precision {precision:.4f} recall {recall:.4f} "
        f"(tp {tp} fp {fp} fn {fn} tn {tn}, undetermined {undetermined}); "
        f"{len(cases) / seconds:.0f} works/s"
    )
    for kind, bibliographic, result in errors[:show_errors]:
        best = result.candidates[0].describe() if result.candidates else "no candidate"
        print(
            f"  {kind} {bibliographic['title']!r} / {bibliographic['author']!r} {bibliographic['year']} "
            f"(truth {bibliographic['truth']}): {best}"
        )


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--size", type=int, default=1000, help="positives and negatives per seed; 0: the whole pools")
    parser.add_argument("--show-errors", type=int, default=5)
    args = parser.parse_args()
    files = sorted(RENEWALS.glob("*.tsv"))
    started = time.perf_counter()
    index = load_renewal_index((p.name, p.read_text(encoding="utf-8")) for p in files)
    print(
        f"index: {index.rows} rows from {len(files)} files in {time.perf_counter() - started:.1f}s; "
        "renewal years loaded "
        f"{index.renewal_years()}, registration years covered {index.covered_registration_years()}"
    )
    for seed in (1, 2) if args.size else (1,):
        run(index, args.size, seed, args.show_errors)


if __name__ == "__main__":
    main()
