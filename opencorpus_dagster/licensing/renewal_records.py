"""US copyright renewal records: NYPL's transcription of the Catalog of Copyright Entries renewals
(`NYPL/cce-renewals`, CC0), read from its tab-separated files into an index by registration.

Both layouts are read: the 1950-77 files (`author, title, ..., rdat, ..., notes, full_text`, from
Project Gutenberg's transcriptions) and the 1978- files (`auth, titl, ..., dreg, ..., note`, from
the Copyright Office database). Quirks handled (see the fixtures README, `digitised/`):

- ids: registrations upper-cased without hyphens or spaces, the letter O after `AF`/`AI` read as
  a zero (`AFO-840` = `AF0840`); renewal ids `RE26938` (database) and `R651568` (1950-77) kept as
  written, compared in the `R` form.
- unrolled entries: one row per (registration, renewal) pair; all rows are indexed.
- rows whose fields were not parsed (`oreg`/`odat`/`id` empty) are read from `full_text`
  (`... © 16Jan50 (in notice: 1949); A40610. ... ; 17Jan77; R651764.`).
- misread dates: a row whose renewal year minus registration year is not 27 or 28 is kept but
  marked `suspect` (most are 1929-30 works transcribed as 1950).
- notes naming a previous edition or new matter mark the row, so a reviewer sees that the
  renewal may cover only part of a work.
"""

from __future__ import annotations

import csv
import io
import re
from collections import defaultdict
from collections.abc import Iterable, Iterator
from dataclasses import dataclass, field

# The renewal term came in the 28th year of the first; the renewal year minus the registration
# year is 27 or 28 for 99.4% of the dated rows of 1950-51 registrations.
RENEWAL_LAG_YEARS = (27, 28)
# A renewal year counts as loaded when at least this many rows carry it: a whole year file holds
# thousands; a few dozen are strays (cut files, misdated rows) that cover nothing.
MIN_ROWS_FOR_RENEWAL_YEAR = 1000

_MONTHS = {
    m: i for i, m in enumerate(("jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"), 1)
}
_CCE_DATE = re.compile(r"(\d{1,2})\s*([A-Za-z]{3})[a-z]*\.?\s*(\d{2,4})")
# `© 16Jan50 (in notice: 1949); A40610` / `© 12Jan50; AFO-840` / `© 14Feb51, A779451`
_FULL_TEXT_REG = re.compile(r"©\s*(\d{1,2}[A-Za-z]{3}\d{2})(?:\s*\([^)]*\))?\s*[;,]\s*([A-Z]{1,3}-?\d[\d-]*)")
_FULL_TEXT_RENEWAL = re.compile(r"(\d{1,2}[A-Za-z]{3}\d{2})\s*[;,]\s*(R\d+)\.?\s*$")
_FULL_TEXT_TITLE = re.compile(r"^\s*R\d+\.\s*(?P<title>.*?)(?:\s+By\s+(?P<author>[^©]*?))?\s*©")
_PREVIOUS = re.compile(r"prev\. reg|1st ed\.|previously|originally pub|earlier ed", re.IGNORECASE)
_ABROAD = re.compile(r"pub\. abroad|ad interim", re.IGNORECASE)


def normalise_registration(number: str) -> str:
    """`AFO-4873` -> `AF04873`, `a 39770` -> `A39770`: upper case, no hyphens or spaces, the
    letter O after AF/AI read as zero."""
    text = re.sub(r"[\s\-]", "", number.upper())
    return re.sub(r"^(A[FI])O", r"\g<1>0", text)


def normalise_renewal(number: str) -> str:
    """`RE26938` -> `R26938` (NYPL's README: RE is the database's spelling of R)."""
    text = re.sub(r"[\s\-]", "", number.upper())
    return "R" + text[2:] if text.startswith("RE") else text


def is_foreign_registration(number: str) -> bool:
    """Ad interim (`AI`) and foreign (`AF`) registrations: works first published abroad."""
    return normalise_registration(number).startswith(("AI", "AF"))


def parse_cce_date(text: str) -> str | None:
    """`6Jun51` -> `1951-06-06` (two-digit years are 19xx); None when it is not such a date."""
    match = _CCE_DATE.fullmatch(text.strip())
    if not match:
        return None
    day, month, year = int(match.group(1)), _MONTHS.get(match.group(2).lower()), int(match.group(3))
    if month is None or not 1 <= day <= 31:
        return None
    year = year + 1900 if year < 100 else year
    return f"{year:04d}-{month:02d}-{day:02d}"


@dataclass(frozen=True)
class RenewalRow:
    """One (registration, renewal) pair as a renewal entry states it."""

    renewal_id: str  # as written (RE26938 / R651568)
    registration: str | None  # normalised
    registered: str | None  # YYYY-MM-DD
    renewed: str | None  # YYYY-MM-DD
    titles: tuple[str, ...]
    author: str
    note: str
    entry_id: str
    file: str
    from_full_text: bool = False

    @property
    def suspect(self) -> bool:
        """The dates do not fit a renewal in the 28th year: a misread year or an odd entry."""
        if not (self.registered and self.renewed):
            return False
        return int(self.renewed[:4]) - int(self.registered[:4]) not in RENEWAL_LAG_YEARS

    @property
    def flags(self) -> list[str]:
        flags = []
        if self.suspect:
            flags.append("dates outside the 27-28 year renewal window")
        if _PREVIOUS.search(self.note):
            flags.append("note names an earlier edition: the renewal may cover only new matter")
        if _ABROAD.search(self.note):
            flags.append("published abroad")
        return flags


def read_renewal_rows(text: str, file: str) -> Iterator[RenewalRow]:
    """The rows of one NYPL renewals TSV (either layout). Raises ValueError when the header is
    neither layout's."""
    reader = csv.DictReader(io.StringIO(text), delimiter="\t", quoting=csv.QUOTE_NONE)
    fields = set(reader.fieldnames or ())
    if not {"oreg", "odat", "id"} <= fields:
        raise ValueError(f"{file}: not a cce-renewals TSV (header has no oreg/odat/id): {sorted(fields)[:8]}")
    for row in reader:
        title = row.get("title") or row.get("titl") or ""
        author = row.get("author") or row.get("auth") or ""
        renewed = row.get("rdat") or row.get("dreg") or None
        note = " ".join(filter(None, (row.get("notes") or row.get("note"), row.get("new_matter"))))
        entry = row.get("entry_id") or ""
        titles = tuple(t.strip() for t in title.split("|") if t.strip())
        if row.get("oreg") or row.get("id"):
            yield RenewalRow(
                renewal_id=(row.get("id") or "").strip(),
                registration=normalise_registration(row["oreg"]) if row.get("oreg") else None,
                registered=row.get("odat") or None,
                renewed=renewed,
                titles=titles,
                author=author.strip(),
                note=note,
                entry_id=entry,
                file=file,
            )
            continue
        yield from _rows_from_full_text(row.get("full_text") or "", titles, author, note, entry, file)


def _rows_from_full_text(full_text: str, titles, author, note, entry, file) -> Iterator[RenewalRow]:
    """The 193 unparsed rows of 1977-1.tsv carry their ids only in the entry's text."""
    renewal = _FULL_TEXT_RENEWAL.search(full_text)
    if renewal is None:
        return
    head = _FULL_TEXT_TITLE.search(full_text)
    if not titles and head:
        titles = (head.group("title").strip(),)
    if not author and head and head.group("author"):
        author = head.group("author").strip()
    for date, number in _FULL_TEXT_REG.findall(full_text):
        yield RenewalRow(
            renewal_id=renewal.group(2),
            registration=normalise_registration(number),
            registered=parse_cce_date(date),
            renewed=parse_cce_date(renewal.group(1)),
            titles=tuple(titles),
            author=author,
            note=note,
            entry_id=entry,
            file=file,
            from_full_text=True,
        )


@dataclass
class RenewalIndex:
    """Every loaded row, by (registration, date) and by registration year."""

    by_key: dict[tuple[str, str], list[RenewalRow]] = field(default_factory=lambda: defaultdict(list))
    by_number: dict[str, list[RenewalRow]] = field(default_factory=lambda: defaultdict(list))
    by_year: dict[int, list[RenewalRow]] = field(default_factory=lambda: defaultdict(list))
    renewal_year_rows: dict[int, int] = field(default_factory=lambda: defaultdict(int))
    files: list[str] = field(default_factory=list)
    rows: int = 0

    def add(self, rows: Iterable[RenewalRow]) -> None:
        for row in rows:
            self.rows += 1
            if row.registration and row.registered:
                self.by_key[(row.registration, row.registered)].append(row)
            if row.registration:
                self.by_number[row.registration].append(row)
            if row.registered:
                self.by_year[int(row.registered[:4])].append(row)
            if row.renewed:
                self.renewal_year_rows[int(row.renewed[:4])] += 1

    def renewal_years(self) -> list[int]:
        """Renewal years loaded whole (`MIN_ROWS_FOR_RENEWAL_YEAR`)."""
        return sorted(y for y, n in self.renewal_year_rows.items() if n >= MIN_ROWS_FOR_RENEWAL_YEAR)

    def covered_registration_years(self) -> list[int]:
        """Registration years whose whole renewal window (27th and 28th year) is loaded."""
        loaded = set(self.renewal_years())
        return sorted(
            {
                y - lag
                for y in loaded
                for lag in RENEWAL_LAG_YEARS
                if all(y - lag + k in loaded for k in RENEWAL_LAG_YEARS)
            }
        )


def load_renewal_index(files: Iterable[tuple[str, str]]) -> RenewalIndex:
    """An index of (file name, TSV text) pairs."""
    index = RenewalIndex()
    for name, text in files:
        index.files.append(name)
        index.add(read_renewal_rows(text, name))
    return index
