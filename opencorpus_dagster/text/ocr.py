"""OCR layout files (ALTO 1.x-4.x, hOCR) to text in reading order, and a measured OCR quality.

Plain layer: bytes in, `OcrPage` out; no fetching, no records.

- Reading order: ALTO 3+ may state it (`ReadingOrder/OrderedGroup/ElementRef`); otherwise the
  order of the blocks in the file is the engine's reading order (ABBYY, CCS docWORKS, Tesseract
  and Newpah all write blocks column by column), so that is kept. hOCR has no explicit order:
  document order.
- Hyphenation: ALTO marks a word split over two lines with `SUBS_TYPE="HypPart1"/"HypPart2"` and
  the whole word in `SUBS_CONTENT` (NDNP, ABBYY, CCS); the whole word is written once where its
  first part was. Engines that do not (Tesseract ALTO, hOCR) leave a line-final `-`, `¬` or `⸗`:
  joined with the first word of the next line of the same block, dropping the hyphen when that
  word starts in lower case (a line-broken word), keeping it otherwise (`Nord-` `Amerika`).
- Confidence: ALTO `WC` (0-1) or hOCR `x_wconf` (0-100), per word, when the engine wrote it.
- Quality (`ocr_quality`): engine confidence is not accuracy (the fixtures' Winchester News page
  averages WC 0.95 on visibly garbled text), so the score is measured on the text itself: the
  share of tokens that are words of the page's language in wordfreq's lexicon (or, for a
  language it has no list for, tokens shaped like words), lowered by the engine's doubt where
  it gave confidences.

XML is parsed without entity expansion, DTD loading or network access.
"""

from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass, field
from functools import lru_cache

from lxml import etree
from pydantic import BaseModel, ConfigDict, Field

from opencorpus_dagster.records import Document, Drop, Outcome

HYPHENS = ("-", "¬", "⸗", "\u00ad")


class OcrFormatError(ValueError):
    """The bytes are not an ALTO or hOCR document this module can read."""


@dataclass
class OcrWord:
    text: str
    confidence: float | None = None  # 0-1
    hyphen_part: int | None = None  # 1 or 2 for ALTO SUBS_TYPE HypPart1/HypPart2
    full_word: str | None = None  # ALTO SUBS_CONTENT


@dataclass
class OcrBlock:
    block_id: str
    lines: list[list[OcrWord]] = field(default_factory=list)


@dataclass
class OcrPage:
    format: str  # "alto-1", "alto-2", ..., "hocr"
    engine: str | None
    blocks: list[OcrBlock]

    @property
    def words(self) -> list[OcrWord]:
        return [word for block in self.blocks for line in block.lines for word in line]

    def confidences(self) -> list[float]:
        return [w.confidence for w in self.words if w.confidence is not None]


_PARSER = dict(resolve_entities=False, load_dtd=False, no_network=True, huge_tree=False, remove_comments=True)


_DOCTYPE_SUBSET = re.compile(rb"<!DOCTYPE[^>\[]*\[(?P<subset>.*?)\]\s*>", re.DOTALL)


def refuse_entity_declarations(data: bytes) -> None:
    """Raise OcrFormatError when the DOCTYPE declares entities: lxml substitutes internal
    entities inside attribute values even with `resolve_entities=False`, and ALTO keeps its
    words in attributes (`CONTENT`). No OCR engine declares entities, so nothing real is lost."""
    head = data[:65536]
    match = _DOCTYPE_SUBSET.search(head)
    if match and b"<!ENTITY" in match.group("subset"):
        raise OcrFormatError("its DOCTYPE declares entities (refused: entities are never expanded)")
    if b"<!DOCTYPE" in head and b"[" in head.split(b"<!DOCTYPE", 1)[1].split(b">", 1)[0] and match is None:
        raise OcrFormatError("its DOCTYPE has an internal subset that could not be checked")


def _parse_xml(data: bytes) -> etree._Element:
    data = data.removeprefix(b"\xef\xbb\xbf")  # a UTF-8 BOM (417576986_0078.alto has one)
    refuse_entity_declarations(data)
    try:
        return etree.fromstring(data, etree.XMLParser(**_PARSER))
    except etree.XMLSyntaxError as error:
        raise OcrFormatError(f"not well-formed XML: {error}") from error


def _local(element: etree._Element) -> str:
    tag = element.tag
    return etree.QName(tag).localname if isinstance(tag, str) else ""


def read_ocr_page(data: bytes) -> OcrPage:
    """An ALTO or hOCR file's text layout. Raises OcrFormatError for anything else."""
    root = _parse_xml(data)
    name = _local(root)
    if name == "alto":
        return _read_alto(root)
    if name == "html" and any("ocr_page" in (el.get("class") or "") for el in root.iter()):
        return _read_hocr(root)
    raise OcrFormatError(f"root element <{name}> is neither ALTO <alto> nor an hOCR page")


# --- ALTO ----------------------------------------------------------------------------------------


def _alto_version(root: etree._Element) -> str:
    namespace = etree.QName(root).namespace or ""
    if "ccs-gmbh" in namespace:
        return "alto-1"  # CCS's pre-standard namespace (ALTO 1.x)
    match = re.search(r"ns-v(\d)", namespace)
    if match:
        return f"alto-{match.group(1)}"
    return "alto-1"


def _alto_engine(root: etree._Element) -> str | None:
    for element in root.iter():
        if _local(element) == "ocrProcessingStep":
            names = [
                " ".join((e.text or "").split())
                for e in element.iter()
                if _local(e) in ("softwareName", "softwareVersion")
            ]
            names = list(dict.fromkeys(n for n in names if n))  # Tesseract repeats name in version
            if names:
                return " ".join(names)
    return None


def _float(value: str | None) -> float | None:
    try:
        return float(value) if value is not None else None
    except ValueError:
        return None


def _read_alto(root: etree._Element) -> OcrPage:
    blocks: dict[str, OcrBlock] = {}
    order: list[str] = []
    for index, element in enumerate(root.iter()):
        if _local(element) != "TextBlock":
            continue
        block_id = element.get("ID") or f"block-{index}"
        block = OcrBlock(block_id)
        for line in element:
            if _local(line) != "TextLine":
                continue
            words: list[OcrWord] = []
            for item in line:
                kind = _local(item)
                if kind == "String":
                    subs = item.get("SUBS_TYPE") or ""
                    part = 1 if subs == "HypPart1" else 2 if subs == "HypPart2" else None
                    words.append(
                        OcrWord(item.get("CONTENT") or "", _float(item.get("WC")), part, item.get("SUBS_CONTENT"))
                    )
                elif kind == "HYP" and words and words[-1].hyphen_part is None:
                    # A hyphen glyph without SUBS_*: keep it so the line-end rule joins the word.
                    words[-1].text += item.get("CONTENT") or "-"
            if words:
                block.lines.append(words)
        if block.lines and block_id not in blocks:
            blocks[block_id] = block
            order.append(block_id)
    stated = _alto_reading_order(root)
    if stated:
        ordered = [b for b in stated if b in blocks]
        order = ordered + [b for b in order if b not in set(ordered)]
    return OcrPage(_alto_version(root), _alto_engine(root), [blocks[b] for b in order])


def _alto_reading_order(root: etree._Element) -> list[str]:
    """Block ids in the order ALTO 3+'s `ReadingOrder` states (empty when it does not)."""
    for element in root.iter():
        if _local(element) == "ReadingOrder":
            return [e.get("REF") for e in element.iter() if _local(e) == "ElementRef" and e.get("REF")]
    return []


# --- hOCR ----------------------------------------------------------------------------------------

_X_WCONF = re.compile(r"\bx_wconf\s+(-?\d+(?:\.\d+)?)")


def _classes(element: etree._Element) -> set[str]:
    return set((element.get("class") or "").split())


def _read_hocr(root: etree._Element) -> OcrPage:
    engine = None
    for element in root.iter():
        if _local(element) == "meta" and element.get("name") == "ocr-system":
            engine = element.get("content")
    # A block is an `ocr_carea` (content area); pages without areas are split by paragraph.
    present = set().union(*(_classes(e) for e in root.iter()))
    block_class = next((c for c in ("ocr_carea", "ocr_par") if c in present), None)
    blocks: list[OcrBlock] = []
    current: OcrBlock | None = None
    for element in root.iter():
        classes = _classes(element)
        if block_class in classes:
            current = OcrBlock(element.get("id") or f"block-{len(blocks) + 1}")
            blocks.append(current)
        elif classes & {"ocr_line", "ocrx_line", "ocr_caption", "ocr_header", "ocr_textfloat"}:
            if current is None:
                current = OcrBlock(f"block-{len(blocks) + 1}")
                blocks.append(current)
            words = []
            for word in element.iter():
                if "ocrx_word" in _classes(word):
                    text = "".join(word.itertext()).strip()
                    match = _X_WCONF.search(word.get("title") or "")
                    confidence = float(match.group(1)) / 100 if match else None
                    if text:
                        words.append(OcrWord(text, confidence))
            if words:
                current.lines.append(words)
    return OcrPage("hocr", engine, [b for b in blocks if b.lines])


# --- text ----------------------------------------------------------------------------------------


def block_text(block: OcrBlock, pending_part2: list[int] | None = None) -> str:
    """One block's text: lines joined by newlines, hyphenated words rejoined.

    `pending_part2` counts ALTO HypPart2 words still to skip (their word was written whole at
    its HypPart1), carried across blocks because a word may continue in the next column.
    """
    pending = pending_part2 if pending_part2 is not None else [0]
    lines: list[list[str]] = []
    carry: str | None = None  # a line-final fragment waiting for the next line's first word
    for line in block.lines:
        out: list[str] = []
        for word in line:
            text = word.text
            if word.hyphen_part == 2 and pending[0] > 0:
                pending[0] -= 1
                continue
            if word.hyphen_part == 1:
                if word.full_word:
                    text = word.full_word
                    pending[0] += 1
                else:
                    text = text.rstrip("".join(HYPHENS)) + "-"  # joined with the next line below
            if carry is not None:
                text = _join_hyphenated(carry, text)
                carry = None
            out.append(text)
        if out and out[-1].endswith(HYPHENS) and len(out[-1]) > 1:
            carry = out.pop()
        if out:
            lines.append(out)
    if carry is not None:
        lines.append([carry])
    return "\n".join(" ".join(words) for words in lines)


def _join_hyphenated(first: str, second: str) -> str:
    stem = first.rstrip("".join(HYPHENS))
    if second[:1].islower():
        return stem + second
    return stem + "-" + second


def page_text(page: OcrPage, blocks: list[OcrBlock] | None = None) -> str:
    """The page's text in reading order, one paragraph (blank line) per block."""
    pending = [0]
    parts = [block_text(block, pending) for block in (blocks if blocks is not None else page.blocks)]
    return "\n\n".join(p for p in parts if p.strip())


# --- quality -------------------------------------------------------------------------------------

_EDGE = "!\"#$%&'()*+,-./:;<=>?@[\\]^_`{|}~“”‘’«»„‚‹›–—…·•¡¿§¶†‡°"
# Vowels of the Latin, Greek and Cyrillic alphabets (accents are stripped before the test).
_VOWELS = set("aeiouyæøœåäöüαεηιουωаеёиоуыэюяії")
_LETTERS = re.compile(r"^[^\W\d_]+(?:['’\-][^\W\d_]+)*$")
_NUMBER = re.compile(r"^\d+(?:[.,:/\-]\d+)*(?:st|nd|rd|th|d|s)?$", re.IGNORECASE)
_LONG_RUN = re.compile(r"(.)\1\1")
_CONSONANTS = re.compile(r"[bcdfghjklmnpqrstvwxz]{6,}")


def _plain(word: str) -> str:
    return "".join(c for c in unicodedata.normalize("NFKD", word.lower()) if not unicodedata.combining(c))


def is_wordlike(token: str) -> bool:
    """True when a whitespace token, edge punctuation stripped, looks like a word or a number.

    A word is letters only (with inner apostrophes or hyphens), at most 25 letters, with a
    vowel when longer than 3 letters, no letter tripled, no run of 6 consonants, and a case
    pattern print uses (lower, Capitalised, UPPER). These are the shapes OCR noise breaks:
    `wcLL`, `tbc`, `l1ke`, `iiiiii`, `,.'-`.
    """
    core = token.strip(_EDGE)
    if not core:
        return False
    if _NUMBER.match(core):
        return True
    if not _LETTERS.match(core) or len(core) > 25:
        return False
    plain = _plain(core)
    letters = [c for c in plain if c.isalpha()]
    if len(letters) > 3 and not any(c in _VOWELS for c in letters):
        return False
    if _LONG_RUN.search(plain) or _CONSONANTS.search(plain):
        return False
    body = core.replace("'", "").replace("’", "").replace("-", "")
    return body.islower() or body.isupper() or (body[0].isupper() and body[1:].islower())


# A word the lexicon has seen at least this often (Zipf scale: 1.5 = about 3 times per 100
# million words) counts as a word; rarer entries of wordfreq's lists are mostly noise itself.
LEXICON_MIN_ZIPF = 1.5
# How much the engine's doubt may lower the score: at most a quarter (opencorpus's choice,
# not published). Engines calibrate differently (ABBYY's WC averages 0.64 on the clean
# 417576986 p. 12, Newpah's 0.95 on the garbled Winchester News), so confidence moderates the
# text measure and never replaces it.
CONFIDENCE_WEIGHT = 0.25


@lru_cache(maxsize=1)
def _lexicon_languages() -> frozenset[str]:
    import wordfreq  # here, not at the top: every catalog load imports this module (its config)

    return frozenset(wordfreq.available_languages())


@lru_cache(maxsize=200_000)
def _in_lexicon(word: str, language: str) -> bool:
    from wordfreq import zipf_frequency

    return zipf_frequency(word, language) >= LEXICON_MIN_ZIPF


def text_quality(text: str, language: str | None = None) -> tuple[float, str]:
    """Share of whitespace tokens that read as words, weighted by length (capped at 12) so a
    stray one-letter token counts less than a garbled long one; (0.0, how) for no tokens.

    With a `language` wordfreq has a list for, a word is a token (edge punctuation stripped,
    lower-cased) the list has (`LEXICON_MIN_ZIPF`) or a number; otherwise the shape test
    `is_wordlike`. Returns (share, "lexicon:<lang>" or "shape").
    """
    tokens = text.split()
    lexicon = language if language in _lexicon_languages() else None
    total = good = 0
    for token in tokens:
        core = token.strip(_EDGE)
        weight = min(len(core), 12)
        if not weight:
            continue
        total += weight
        if lexicon is not None:
            ok = bool(_NUMBER.match(core)) or _in_lexicon(core.lower(), lexicon)
        else:
            ok = is_wordlike(core)
        good += weight if ok else 0
    return (good / total if total else 0.0), (f"lexicon:{lexicon}" if lexicon else "shape")


@dataclass(frozen=True)
class OcrQuality:
    """`score` (0-1, higher is better) and what it is made of."""

    score: float
    text_score: float
    word_confidence: float | None
    words: int
    measured_by: str


def ocr_quality(text: str, word_confidence: float | None = None, language: str | None = None) -> OcrQuality:
    """The OCR quality of a record's text: `text_quality`, lowered by up to
    `CONFIDENCE_WEIGHT` by the engine's mean word confidence (0-1) when it gave one."""
    text_score, how = text_quality(text, language)
    score = text_score if word_confidence is None else text_score * (1 - CONFIDENCE_WEIGHT * (1 - word_confidence))
    confidence = None if word_confidence is None else round(word_confidence, 4)
    return OcrQuality(round(score, 4), round(text_score, 4), confidence, len(text.split()), how)


def mean_confidence(words: list[OcrWord]) -> float | None:
    values = [w.confidence for w in words if w.confidence is not None]
    return sum(values) / len(values) if values else None


# --- the documents-stage rule ----------------------------------------------------------------

# Default minimum `ocr.quality` per kind of print (opencorpus's choice, set on the fixtures:
# clean book pages score 0.85-0.93, the long-s misread 1700s page 0.57; 1850-1910 newspaper
# pages 0.77-0.86, their worst columns far lower). Newspapers get a lower bar: small type on
# microfilm is always noisier, and dropping whole pages for it would drop most of the press.
DEFAULT_MIN_QUALITY = {"book": 0.7, "newspaper": 0.6, "periodical": 0.6, "typescript": 0.75}


class OcrQualityConfig(BaseModel):
    """`filters.ocr` in a source's catalog YAML: the OCR quality rule (`ocr.quality`).

    It measures records that carry OCR metadata (`metadata["ocr"]`, set by the `ocr` connector)
    and passes every other record untouched. `min_quality` overrides the default for the kind
    of print the record's metadata names (`DEFAULT_MIN_QUALITY`); `measure_only: true` records
    the values without dropping anything.
    """

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    min_quality: float | None = Field(default=None, ge=0.0, le=1.0)
    measure_only: bool = False


class OcrQualityFilter:
    """Step: measure `ocr.quality` (and `ocr.text_score`, `ocr.word_confidence`) into
    `doc.metadata["quality"]`, so the distributions are kept with the other rules'; drop a
    record below its threshold as `Drop(FILTERED, "ocr.quality", score, detail)`."""

    name = "ocr_quality"

    def __init__(self, config: OcrQualityConfig | None = None) -> None:
        self.config = config or OcrQualityConfig()

    def __call__(self, doc: Document) -> Document | Drop:
        ocr = doc.metadata.get("ocr")
        if not isinstance(ocr, dict):
            return doc
        language = doc.language
        if language is None:
            from opencorpus_dagster.text.language import identify_language

            language = identify_language(doc.text)[0]
        quality = ocr_quality(doc.text, ocr.get("word_confidence"), language)
        values = doc.metadata.setdefault("quality", {})
        values["ocr.quality"] = quality.score
        values["ocr.text_score"] = quality.text_score
        if quality.word_confidence is not None:
            values["ocr.word_confidence"] = quality.word_confidence
        kind = ocr.get("print") or "book"
        threshold = self.config.min_quality if self.config.min_quality is not None else DEFAULT_MIN_QUALITY.get(kind)
        if self.config.measure_only or threshold is None or quality.score >= threshold:
            return doc
        detail = f"required >= {threshold} ({kind} print); text {quality.text_score} by {quality.measured_by}"
        if quality.word_confidence is not None:
            detail += f", engine word confidence {quality.word_confidence}"
        return Drop(Outcome.FILTERED, "ocr.quality", quality.score, detail)
