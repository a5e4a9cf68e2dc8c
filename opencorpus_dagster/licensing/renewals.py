"""US public domain by non-renewal: a licence step for works published in the US in 1929-1963.

A US work of those years whose copyright was not renewed in its 28th year is in the US public
domain. For a record with bibliographic metadata (`metadata["bibliographic"]`: title, author,
year, country, registration number and date), `determine` searches the renewal records
(renewal_records.py) and answers:

- `renewed`: a renewal names the registration (same number and date), or, when the record has
  no registration number, a renewal of the same years has a close title and author. Licence
  `LicenseRef-Copyright-US-Renewed`, which the default policy denies; the evidence names the
  renewal id.
- `not_renewed`: no renewal matches. Licence `LicenseRef-PublicDomain-US-NotRenewed`; the
  evidence names the keys searched, the renewal years loaded and the closest candidates with
  their scores, for a reviewer to check.
- `undetermined` (licence left as it was, unless it is a public-domain claim, which is set
  aside: the search could not confirm it): foreign or ad interim registrations (`AF`, `AI`) and
  works published outside the US (no renewal does not make them US public domain: URAA
  restoration), registration years the loaded renewals do not cover, a renewal row whose dates
  are outside the renewal window, and a record with a registration number that does not match
  while a renewal of a close title and author exists under another number (title and author
  are a hint, never the link, when a number is known).
- `not_applicable`: no year, or a year outside 1929-1963.

Titles and authors are compared with rapidfuzz on normalised text (case, accents, `&`/`and`,
punctuation; `SURNAME, GIVEN` against `Given Surname.`; several titles joined by `|`;
`pseud. of`; a renewal that gives the author only inside the title).
"""

from __future__ import annotations

import dataclasses
import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from pydantic import BaseModel, ConfigDict, Field
from rapidfuzz import fuzz, process
from rapidfuzz.distance import Levenshtein

from opencorpus_dagster.connectors.base import UnreadableInput, UpstreamUrl
from opencorpus_dagster.licensing.renewal_records import (
    RenewalIndex,
    RenewalRow,
    is_foreign_registration,
    normalise_registration,
    read_renewal_rows,
)
from opencorpus_dagster.licensing.spdx import PUBLIC_DOMAIN, normalise_license
from opencorpus_dagster.records import Document
from opencorpus_dagster.upstream.fetch import Fetcher

NOT_RENEWED = "LicenseRef-PublicDomain-US-NotRenewed"
RENEWED = "LicenseRef-Copyright-US-Renewed"
FIRST_YEAR, LAST_YEAR = 1929, 1963

# A renewal is the same work when its title scores at least TITLE_MIN and its author AUTHOR_MIN
# (rapidfuzz 0-100), or its title TITLE_ALONE_MIN when either side has no author. Set on the
# benchmark (benchmarks/renewal_matching.py), which prints what they give.
TITLE_MIN = 85
AUTHOR_MIN = 75
TITLE_ALONE_MIN = 93
TITLE_ALONE_MIN_CHARS = 15
CANDIDATES_SHOWN = 3
_US = {"us", "usa", "united states", "united states of america", "u.s.", "u.s.a."}


class RenewalsConfig(BaseModel):
    """`us_renewals:` in a source's catalog entry: the renewal files to search (NYPL/cce-renewals
    TSVs, fetched like any upstream file, so a mirror can stand in)."""

    model_config = ConfigDict(extra="forbid")

    files: list[UpstreamUrl] = Field(min_length=1)


@dataclass
class Candidate:
    row: RenewalRow
    title_score: float
    author_score: float | None

    numbers_differ: bool = False
    query_title_chars: int = 0

    words_differ: bool = False

    @property
    def matches(self) -> bool:
        if self.numbers_differ or self.words_differ:
            return False
        if self.author_score is None:
            # A short title alone ("Cancer", "Sybil") names too many works.
            return self.title_score >= TITLE_ALONE_MIN and self.query_title_chars >= TITLE_ALONE_MIN_CHARS
        return self.title_score >= TITLE_MIN and self.author_score >= AUTHOR_MIN

    @property
    def score(self) -> float:
        return self.title_score if self.author_score is None else 0.6 * self.title_score + 0.4 * self.author_score

    def describe(self) -> str:
        author = "-" if self.author_score is None else f"{self.author_score:.0f}"
        title = self.row.titles[0] if self.row.titles else ""
        row = self.row
        scores = f"(title {self.title_score:.0f}, author {author})"
        return f"{row.renewal_id} {row.registration}/{row.registered} {title[:40]!r} {scores}"


@dataclass
class Determination:
    status: str  # renewed | not_renewed | undetermined | not_applicable
    reason: str
    keys: list[str] = field(default_factory=list)
    renewal_years: list[int] = field(default_factory=list)
    covered_years: list[int] = field(default_factory=list)
    renewal_ids: list[str] = field(default_factory=list)
    candidates: list[Candidate] = field(default_factory=list)
    flags: list[str] = field(default_factory=list)

    @property
    def license(self) -> str | None:
        return {"renewed": RENEWED, "not_renewed": NOT_RENEWED}.get(self.status)

    def evidence(self) -> str:
        """One compact line for `license_evidence`."""
        parts = [f"US renewal search: {self.status} ({self.reason})"]
        if self.keys:
            parts.append("searched " + ", ".join(self.keys))
        if self.renewal_years:
            covered = f"{self.covered_years[0]}-{self.covered_years[-1]}" if self.covered_years else "none"
            parts.append(
                f"renewals of {self.renewal_years[0]}-{self.renewal_years[-1]} loaded "
                f"(registrations of {covered} covered)"
            )
        if self.renewal_ids:
            parts.append("renewal " + ", ".join(self.renewal_ids))
        if self.candidates:
            parts.append("closest: " + "; ".join(c.describe() for c in self.candidates[:CANDIDATES_SHOWN]))
        if self.flags:
            parts.append("flags: " + "; ".join(self.flags))
        return " | ".join(parts)


# --- normalisation --------------------------------------------------------------------------


def normalise_text(text: str) -> str:
    text = unicodedata.normalize("NFKD", text)
    text = "".join(c for c in text if not unicodedata.combining(c)).lower().replace("&", " and ")
    return " ".join(re.sub(r"[^\w\s]", " ", text).split())


_MAIN_TITLE = re.compile(r"\s*(?:[;:/]|\s{2,}|\.\s|\(|\[)")
_MAIN_TITLE_NO_PERIOD = re.compile(r"\s*(?:[;:/]|\s{2,}|\(|\[)")
_ARTICLE = re.compile(r"^(?:the|a|an)\s+")


def title_variants(title: str) -> list[str]:
    """Full title and main title (before a subtitle, a note or a second sentence), normalised,
    with and without a leading English article."""
    variants = []
    main = _MAIN_TITLE.split(title.strip(), maxsplit=1)[0]
    if len(main) < 10:  # a sentence break that short is an abbreviation: `U.S. West` is not `U.S`
        main = _MAIN_TITLE_NO_PERIOD.split(title.strip(), maxsplit=1)[0]
    for part in (title, main):
        text = normalise_text(part)
        for variant in (text, _ARTICLE.sub("", text)):
            if variant and variant not in variants:
                variants.append(variant)
    return variants


_PSEUD = re.compile(r",?\s*pseud\.?\s+of\s+", re.IGNORECASE)
_ROLE = re.compile(r"\b(?:ed|comp|illus|tr|joint author|pseud)\b\.?", re.IGNORECASE)


def author_names(author: str) -> list[str]:
    """Each person an author field names, normalised, `SURNAME, GIVEN` turned into `given surname`."""
    names = []
    for part in re.split(r"\s*(?:\||;|&|\band\b|" + _PSEUD.pattern + r")\s*", author, flags=re.IGNORECASE):
        part = _ROLE.sub(" ", part or "").strip(" .,")
        if not part:
            continue
        if "," in part:
            surname, _, given = part.partition(",")
            part = f"{given} {surname}"
        text = normalise_text(part)
        if text:
            names.append(text)
    return names


def _surname(name: str) -> str:
    return name.split()[-1] if name.split() else ""


def author_score(query: list[str], row: RenewalRow) -> float | None:
    """How well the record's author agrees with the renewal's (0-100); None when either is
    unknown. A renewal with no author field is searched for the surname in its title text."""
    if not query:
        return None
    names = author_names(row.author)
    if not names:
        haystack = normalise_text(" ".join(row.titles)).split()
        if not haystack:
            return None
        best = max(fuzz.ratio(_fold(_surname(q)), _fold(word)) for q in query for word in haystack)
        return best if best >= 85 else None  # the title may just not name the author
    scores = []
    for q in query:
        for name in names:
            full = fuzz.token_sort_ratio(q, name)
            # Initials against full given names (`Margaret E. Bell` / `BELL, MARGARET ELIZABETH`):
            # same surname and the same initials count as the same person.
            surname = max(
                (fuzz.ratio(_fold(_surname(q)), _fold(word)) for word in name.split() if len(word) > 2), default=0
            )
            if surname >= 85:
                # Same surname: given names are where cataloguers and renewals differ most
                # (initials, middle names, a role or a second author mixed in).
                full = max(full, 90.0 if _initials(q) & _initials(name) else 80.0)
            scores.append(full)
    return max(scores)


def _initials(name: str) -> set[str]:
    return {w[0] for w in name.split()[:-1]} or {""}


# --- the search -----------------------------------------------------------------------------


@dataclass
class _YearTable:
    rows: list[RenewalRow]
    choices: list[str]
    owner: list[int]


def _year_table(index: RenewalIndex, year: int) -> _YearTable:
    cache = index.__dict__.setdefault("_tables", {})
    if year not in cache:
        rows = [r for r in index.by_year.get(year, []) if not r.suspect]
        choices, owner = [], []
        for i, row in enumerate(rows):
            texts = list(row.titles) or []
            for title in texts:
                for variant in title_variants(title):
                    choices.append(variant)
                    owner.append(i)
        cache[year] = _YearTable(rows, choices, owner)
    return cache[year]


def search_candidates(
    index: RenewalIndex,
    title: str,
    author: str | None,
    years: list[int],
    limit: int = 40,
    registration_class: str | None = None,
) -> list[Candidate]:
    """Renewal rows of registrations in `years` whose title is close to `title`, best first;
    with a `registration_class`, only rows of a compatible class (`class_compatible`)."""
    query_titles = title_variants(title)
    query_authors = author_names(author or "")
    query_numbers = title_numbers(title)
    query_words = normalise_text(title).split()
    best: dict[int, Candidate] = {}
    for year in years:
        table = _year_table(index, year)
        if not table.choices:
            continue
        for variant in query_titles:
            for _, score, position in process.extract(
                variant, table.choices, scorer=fuzz.ratio, limit=limit, score_cutoff=55
            ):
                row = table.rows[table.owner[position]]
                if not class_compatible(registration_class, row):
                    continue
                key = id(row)
                if key in best and best[key].title_score >= score:
                    continue
                best[key] = Candidate(
                    row,
                    score,
                    author_score(query_authors, row),
                    _numbers_differ(query_numbers, row),
                    len(variant),
                    _words_differ(variant, query_words, row),
                )
    return sorted(best.values(), key=lambda c: (-c.matches, -c.score, c.row.renewal_id))


_ROMAN = {
    "i": "1",
    "ii": "2",
    "iii": "3",
    "iv": "4",
    "v": "5",
    "vi": "6",
    "vii": "7",
    "viii": "8",
    "ix": "9",
    "x": "10",
}
_NUMBERED = re.compile(r"\b(v[o0]l|v|book|bk|part|pt|no|t|series|ser)\s+([ivx]+)\b")


def title_numbers(title: str) -> set[str]:
    """The numbers a title states as words of their own (volume, book, part, edition): `6th` and
    `6B` as 6, `Vol. II` as 2; four-digit years are left out (a subject, `before 1860`)."""
    text = _NUMBERED.sub(lambda m: f"{m.group(1)} {_ROMAN.get(m.group(2), m.group(2))}", normalise_text(title))
    # A letter after the digits (`3B`, `6th`, and OCR's `4b` for `4th`) is not compared.
    numbers = re.findall(r"\b(\d+)[a-z]{0,2}\b", text)
    return {n for n in numbers if not (len(n) == 4 and n[:2] in ("17", "18", "19", "20"))}


def _numbers_differ(query: set[str], row: RenewalRow) -> bool:
    """Both titles state numbers and share none: another volume, book or release of a series
    (`Paterson. Book 3` is not `Paterson. Book 4`)."""
    if not query:
        return False
    stated = set().union(*(title_numbers(t) for t in row.titles)) if row.titles else set()
    return bool(stated) and not (query & stated)


# Letters OCR confuses, folded together before words are compared (`rn`/`m`, `1`/`l`, `c`/`e`,
# long s read as `f`, ...), so a misreading is not taken for another word.
_FOLD = str.maketrans({"1": "l", "i": "l", "0": "o", "c": "e", "f": "s", "u": "n", "b": "h", "v": "y"})
WORD_MIN = 75


def _fold(word: str) -> str:
    return word.translate(_FOLD).replace("rn", "m")


def _word_like(word: str, other: str) -> bool:
    """The same word read with OCR errors: letters dropped (at most 40%), one edit in a short
    word, ratio WORD_MIN in a long one."""
    a, b = _fold(word), _fold(other)
    short, long = sorted((a, b), key=len)
    if len(short) >= 0.6 * len(long) and _is_subsequence(short, long):
        return True  # letters dropped by the OCR (`tches` / `watches`), nothing misread
    if min(len(a), len(b)) <= 5:
        return Levenshtein.distance(a, b) <= 1
    return fuzz.ratio(a, b) >= WORD_MIN


def _is_subsequence(short: str, long: str) -> bool:
    letters = iter(long)
    return all(c in letters for c in short)


def _has_word_like(word: str, words: list[str]) -> bool:
    return any(_word_like(word, other) for other in words)


def _words_differ(query_title: str, query_words: list[str], row: RenewalRow) -> bool:
    """A word of the record's (matched) title that no word of the renewal's resembles even as an
    OCR misreading (`trains` / `trucks`, `junior` / `senior`), or a word of the renewal's main
    title missing from the record's (`Audubon bird guide` / `Audubon water bird guide`): a
    different work of a close title. Words under 4 letters are not compared."""
    row_words = [w for t in row.titles for w in normalise_text(t).split()]
    if any(len(w) >= 4 and not _has_word_like(w, row_words) for w in query_title.split()):
        return True
    mains = [normalise_text(_MAIN_TITLE.split(t.strip(), maxsplit=1)[0]).split() for t in row.titles]
    return bool(mains) and all(any(len(w) >= 4 and not _has_word_like(w, query_words) for w in main) for main in mains)


BOOK_CLASSES = frozenset({"A", "AA", "AF", "AI"})


def registration_class_of(number: str | None) -> str | None:
    """`A50980` -> `A`, `AF0-4873` -> `AF`, `DU27931` -> `DU`."""
    if not number:
        return None
    match = re.match(r"[A-Z]+", normalise_registration(number))
    return match.group(0) if match else None


def class_compatible(registration_class: str | None, row: RenewalRow) -> bool:
    """A book (A, AA, AF, AI) is renewed under a book registration; other classes under their
    own. Unknown on either side: compatible."""
    theirs = registration_class_of(row.registration)
    if registration_class is None or theirs is None:
        return True
    mine = registration_class.upper()
    if mine in BOOK_CLASSES:
        return theirs in BOOK_CLASSES
    return theirs == mine


def _is_us(country: str | None) -> bool:
    return country is None or country.strip().lower() in _US


def determine(index: RenewalIndex, bibliographic: dict) -> Determination:
    """Decide renewed / not_renewed / undetermined / not_applicable for one work (see module doc)."""
    title = bibliographic.get("title") or ""
    author = bibliographic.get("author")
    registration = bibliographic.get("registration")
    registered = bibliographic.get("registered")
    year = bibliographic.get("year") or (int(registered[:4]) if registered else None)
    loaded, covered = index.renewal_years(), index.covered_registration_years()
    context = {"renewal_years": loaded, "covered_years": covered}
    if year is None or not FIRST_YEAR <= int(year) <= LAST_YEAR:
        return Determination("not_applicable", f"year {year} is outside {FIRST_YEAR}-{LAST_YEAR}")
    year = int(year)
    keys = []
    number = normalise_registration(registration) if registration else None
    if number:
        keys.append(f"registration {number}/{registered or '?'}")
    if title:
        keys.append(f"title {' / '.join(title_variants(title)[:2])!r}")
    if author:
        keys.append(f"author {' / '.join(author_names(author))!r}")
    keys.append(f"year {year}")
    if registration and is_foreign_registration(registration):
        return Determination(
            "undetermined",
            "foreign or ad interim registration: non-renewal does not make it US public domain (URAA)",
            keys,
            **context,
        )
    if not _is_us(bibliographic.get("country")):
        return Determination(
            "undetermined",
            f"published outside the US ({bibliographic['country']}): "
            "non-renewal does not make it US public domain (URAA)",
            keys,
            **context,
        )
    registration_year = int(registered[:4]) if registered else year
    if registration_year not in covered:
        return Determination(
            "undetermined", f"renewals of {registration_year} registrations are not loaded", keys, **context
        )
    registration_class = bibliographic.get("registration_class") or registration_class_of(registration)
    years = [y for y in (year - 1, year, year + 1) if y in covered]
    candidates = search_candidates(index, title, author, years, registration_class=registration_class) if title else []
    if number and registered:
        rows = index.by_key.get((number, registered), [])
        if rows:
            flags = sorted({f for r in rows for f in r.flags})
            ids = sorted({r.renewal_id for r in rows})
            if any(r.suspect for r in rows):
                reason = "a renewal names this registration but its dates are outside the renewal window"
                return Determination("undetermined", reason, keys, renewal_ids=ids, flags=flags, **context)
            return Determination(
                "renewed",
                "a renewal names this registration number and date",
                keys,
                renewal_ids=ids,
                flags=flags,
                **context,
            )
        same_number = [r for r in index.by_number.get(number, []) if r.registered != registered]
        flags = [
            f"registration number also renewed for {r.registered} ({r.renewal_id}): numbers restarted in 1947"
            for r in same_number[:2]
        ]
        strong = [c for c in candidates if c.matches and c.row.registration != number]
        if strong:
            return Determination(
                "undetermined",
                "no renewal names this registration, but one of a close title and author exists under another number",
                keys,
                candidates=candidates,
                flags=flags,
                **context,
            )
        return Determination(
            "not_renewed",
            "no renewal names this registration number and date",
            keys,
            candidates=candidates,
            flags=flags,
            **context,
        )
    if not title:
        return Determination("undetermined", "no registration number and no title to search", keys, **context)
    matched = [c for c in candidates if c.matches]
    if matched:
        ids = sorted({c.row.renewal_id for c in matched[:1]})
        flags = sorted(set(matched[0].row.flags))
        return Determination(
            "renewed",
            "a renewal of the same years has a close title and author",
            keys,
            renewal_ids=ids,
            candidates=candidates,
            flags=flags,
            **context,
        )
    return Determination(
        "not_renewed",
        "no renewal of the same years has a close title and author",
        keys,
        candidates=candidates,
        **context,
    )


# --- the documents-stage step ----------------------------------------------------------------


class RenewalDetermination:
    """Step (before the licence gate): for a record with `metadata["bibliographic"]`, decide its
    licence from the renewal records and add the evidence; other records pass unchanged."""

    name = "us_renewals"

    def __init__(self, index: RenewalIndex) -> None:
        self.index = index

    def __call__(self, doc: Document) -> Document:
        bibliographic = doc.metadata.get("bibliographic")
        if not isinstance(bibliographic, dict):
            return doc
        result = determine(self.index, bibliographic)
        doc.metadata["us_renewals"] = {"status": result.status, "renewal_ids": result.renewal_ids}
        parts = [doc.license_evidence, result.evidence()]
        license = result.license or doc.license
        if result.status == "undetermined" and _claims_public_domain(doc.license):
            # A 1929-63 work whose renewal status is unknown (foreign, not covered) is not public
            # domain on a blanket claim; a licence its rights holder gave (CC0, CC-BY) stands.
            parts.append(f"public-domain claim {doc.license!r} set aside: the renewal search could not confirm it")
            license = None
        evidence = "; ".join(p for p in parts if p)
        return dataclasses.replace(doc, license=license, license_evidence=evidence)


def _claims_public_domain(raw: str | None) -> bool:
    normalised = normalise_license(raw) if raw else None
    return normalised is not None and normalised.expression.startswith(PUBLIC_DOMAIN)


def renewal_step(config: RenewalsConfig, fetcher: Fetcher | None) -> RenewalDetermination:
    """The step for a catalog entry's `us_renewals:` block, its files read through `fetcher`
    now, so that a missing or unreadable file fails the partition (naming the file) instead of
    quarantining every record. Raises the fetcher's errors, or UnreadableInput."""
    if fetcher is None:
        raise ValueError("us_renewals: the renewal files are read through a fetcher, and none was given")
    fetched = tuple((url, f.sha256, str(f.path)) for url, f in ((url, fetcher.fetch(url)) for url in config.files))
    return RenewalDetermination(_cached_index(fetched))


@lru_cache(maxsize=4)
def _cached_index(files: tuple[tuple[str, str, str], ...]) -> RenewalIndex:
    # Keyed by content hash: the same files are read once per process, however many partitions.
    index = RenewalIndex()
    for url, _, path in files:
        try:
            with open(path, encoding="utf-8", newline="") as handle:
                text = handle.read()
            index.files.append(url)
            index.add(read_renewal_rows(text, url.rsplit("/", 1)[-1]))
        except (UnicodeDecodeError, ValueError, OSError) as error:
            raise UnreadableInput(url, f"not a readable cce-renewals TSV: {error}") from error
    return index
