"""MinHash signatures of word shingles, vectorised over a batch and identical to datasketch's.

`compute_signatures(texts, config)` returns one row of `num_perm` minimum hash values per text.
The values are bit-for-bit those of `datasketch.MinHash(num_perm, seed, hashfunc=shingle_hash,
scheme=config.scheme)` updated with `shingles(text, config.shingle_words)`, so a signature can be
wrapped as `datasketch.LeanMinHash` (see `to_lean_minhash`) and used with datasketch's LSH.

How a text becomes shingle hashes (the reference, slow, path is `shingles` + `shingle_hash`):

- words: `re.findall(r"\\w+", text.lower())` (Unicode word characters). The vectorised path
  classifies code points with a lookup table built from that same regex, so both agree.
- word hash: polynomial hash of the code points, `sum(c_j * B**j) mod 2**64`, which numpy
  computes for every word of a batch at once from one prefix sum (`_WORD_BASE` is odd, hence
  invertible mod 2**64, so a word's hash is a prefix-sum difference times `B**-start`).
- shingle hash: Horner combination of n consecutive word hashes mod 2**64, MurmurHash3's 64-bit
  finaliser, top 32 bits. 32 bits because datasketch's "affine32" and "legacy" schemes take
  32-bit input hashes.

Short and empty texts: a text with fewer than `shingle_words` words (but at least one) has one
shingle, all its words. A text with no words has no shingles; its signature is all `EMPTY_SLOT`
(datasketch's value for a MinHash that saw nothing). `is_empty_signature` tells them apart; the
LSH index does not band them and `verify_pairs` never pairs them, so empty texts never match.

Permutations: the scheme is datasketch 2.0's. "affine32" (datasketch's default since 2.0; uint32,
`a*fmix32(h) + b mod 2**32`, `a` odd so a bijection) is the default here; "legacy"
(`((a*h + b) mod 2**64) mod (2**61 - 1)`, low 32 bits, uint64 storage) reproduces pre-2.0
sketches. Both draw `a, b` from `numpy.random.RandomState(seed)` exactly as datasketch does.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from functools import lru_cache
from typing import Any, Literal

import numpy as np
from pydantic import BaseModel, ConfigDict, Field, model_validator

_WORD_RE = re.compile(r"\w+")

_MASK64 = (1 << 64) - 1
_MERSENNE_PRIME = np.uint64((1 << 61) - 1)
EMPTY_SLOT = (1 << 32) - 1  # datasketch's max_hash: the value of a slot that saw no shingle

# Odd multipliers (so they are invertible mod 2**64); any odd 64-bit constants work, these are
# the golden-ratio constant and a MurmurHash3 constant.
_WORD_BASE = 0x9E3779B97F4A7C15
_SHINGLE_BASE = 0xC6A4A7935BD1E995

# Text is tokenised in pieces of about this many code points (whole texts), so the per-piece
# arrays (code points, prefix sums, powers) stay a few MB whatever the batch size: measured on
# 3,000 5 KB texts, 2**18 runs ~1.9x faster than 2**21 (the arrays stay in cache).
_TEXT_PIECE_CHARS = 1 << 18
# Shingles are permuted in chunks of this many, so the (num_perm, chunk) work array is
# num_perm * chunk * 4 or 8 bytes: 2 MB at 128 perms in uint32, small enough to stay in cache.
_SHINGLE_CHUNK = 4096


# ---------------------------------------------------------------------------------------------
# Configuration


def _false_positive_area(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(0.0, threshold, 2001)
    return float(np.trapezoid(1 - (1 - s**rows) ** bands, s))


def _false_negative_area(threshold: float, bands: int, rows: int) -> float:
    s = np.linspace(threshold, 1.0, 2001)
    return float(np.trapezoid((1 - s**rows) ** bands, s))


def candidate_probability(similarity: float, bands: int, rows: int) -> float:
    """Probability that two sets of Jaccard `similarity` share at least one LSH band."""
    return 1.0 - (1.0 - similarity**rows) ** bands


@lru_cache(maxsize=64)
def optimal_lsh_params(
    threshold: float,
    num_perm: int,
    false_positive_weight: float = 0.5,
    false_negative_weight: float = 0.5,
) -> tuple[int, int]:
    """(bands, rows) minimising the weighted false-positive + false-negative areas.

    Same objective and search as datasketch's `lsh._optimal_param` (areas under the LSH
    S-curve below / above the threshold, Leskovec et al., Mining of Massive Datasets ch. 3),
    integrated with the trapezoid rule instead of scipy's `quad`; the test checks both agree.
    """
    best, best_error = (1, 1), float("inf")
    for bands in range(1, num_perm + 1):
        for rows in range(1, num_perm // bands + 1):
            error = (
                false_positive_weight * _false_positive_area(threshold, bands, rows)
                + false_negative_weight * _false_negative_area(threshold, bands, rows)
            )
            if error < best_error:
                best, best_error = (bands, rows), error
    return best


@lru_cache(maxsize=64)
def recall_first_lsh_params(
    threshold: float, num_perm: int, candidate_recall: float = 0.95
) -> tuple[int, int]:
    """(bands, rows) with the least false-positive area among those whose candidate probability
    at `threshold` is at least `candidate_recall` (ties: fewer bands, less index to store).

    Why not datasketch's equal-weight optimum: at threshold 0.8 and 128 perms it is 9 bands x
    13 rows, whose S-curve sits at ~0.85 and makes a J = 0.8 pair a candidate with probability
    0.40 only. Verification against the full signature removes false candidates cheaply; no
    later step recovers a missed one, so the candidate stage should favour recall.
    """
    feasible = [
        (_false_positive_area(threshold, bands, rows), bands, rows)
        for bands in range(1, num_perm + 1)
        for rows in range(1, num_perm // bands + 1)
        if candidate_probability(threshold, bands, rows) >= candidate_recall
    ]
    if not feasible:
        raise ValueError(f"no banding of {num_perm} perms reaches {candidate_recall} at {threshold}")
    _, bands, rows = min(feasible)
    return bands, rows


class MinHashConfig(BaseModel):
    """Shingling, permutations and LSH banding of the near-duplicate stage.

    `bands` and `rows` default to `recall_first_lsh_params(threshold, num_perm,
    candidate_recall)`: for the defaults (threshold 0.8, 128 perms, 0.95) that is 13 bands of 7
    rows (P(candidate) = 0.953 at J = 0.8, 0.097 at J = 0.5). datasketch's own choice for the
    same threshold, `optimal_lsh_params`, is 9 x 13; give `bands=9, rows=13` to use it.
    `candidate_recall` only matters when bands and rows are derived.
    """

    model_config = ConfigDict(extra="forbid", frozen=True)

    shingle_words: int = Field(5, ge=1)
    num_perm: int = Field(128, ge=1, le=4096)
    bands: int = Field(ge=1)
    rows: int = Field(ge=1)
    seed: int = Field(1, ge=0, lt=2**32)
    threshold: float = Field(0.8, gt=0.0, lt=1.0)
    scheme: Literal["affine32", "legacy"] = "affine32"
    candidate_recall: float = Field(0.95, gt=0.0, lt=1.0)

    @model_validator(mode="before")
    @classmethod
    def _default_banding(cls, data: Any) -> Any:
        if isinstance(data, dict) and ("bands" not in data or "rows" not in data):
            if ("bands" in data) != ("rows" in data):
                raise ValueError("give both `bands` and `rows`, or neither (they are derived)")
            bands, rows = recall_first_lsh_params(
                float(data.get("threshold", 0.8)),
                int(data.get("num_perm", 128)),
                float(data.get("candidate_recall", 0.95)),
            )
            data = {**data, "bands": bands, "rows": rows}
        return data

    @model_validator(mode="after")
    def _banding_fits(self) -> MinHashConfig:
        if self.bands * self.rows > self.num_perm:
            raise ValueError(
                f"bands * rows = {self.bands} * {self.rows} = {self.bands * self.rows} "
                f"exceeds num_perm = {self.num_perm}"
            )
        return self

    @property
    def signature_dtype(self) -> np.dtype:
        return np.dtype(np.uint32 if self.scheme == "affine32" else np.uint64)


# ---------------------------------------------------------------------------------------------
# Reference (per-shingle) path: what datasketch is given in the compatibility test


def words(text: str) -> list[str]:
    """Lower-cased Unicode words of `text` (`\\w+` runs), the tokens shingles are made of."""
    return _WORD_RE.findall(text.lower())


def shingles(text: str, shingle_words: int) -> list[tuple[str, ...]]:
    """Word n-grams of `text`: all windows of `shingle_words` words, one shingle of all words
    if there are fewer, none if there are no words. Duplicates are kept (MinHash ignores them)."""
    tokens = words(text)
    if not tokens:
        return []
    if len(tokens) < shingle_words:
        return [tuple(tokens)]
    return [tuple(tokens[i : i + shingle_words]) for i in range(len(tokens) - shingle_words + 1)]


def _fmix64_int(x: int) -> int:
    x ^= x >> 33
    x = (x * 0xFF51AFD7ED558CCD) & _MASK64
    x ^= x >> 33
    x = (x * 0xC4CEB9FE1A85EC53) & _MASK64
    return x ^ (x >> 33)


def _word_hash_int(word: str) -> int:
    h, power = 0, 1
    for ch in word:
        h = (h + ord(ch) * power) & _MASK64
        power = (power * _WORD_BASE) & _MASK64
    return h


def shingle_hash(shingle: Sequence[str]) -> int:
    """32-bit hash of a shingle (a sequence of words), equal to what the vectorised path computes.

    Usable as datasketch's `hashfunc`: `MinHash(hashfunc=shingle_hash).update(("a", "b"))`.
    """
    h = 0
    for word in shingle:
        h = (h * _SHINGLE_BASE + _word_hash_int(word)) & _MASK64
    return _fmix64_int(h) >> 32


# ---------------------------------------------------------------------------------------------
# Vectorised path


def _fmix64(x: np.ndarray) -> np.ndarray:
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xFF51AFD7ED558CCD)
    x = x ^ (x >> np.uint64(33))
    x = x * np.uint64(0xC4CEB9FE1A85EC53)
    return x ^ (x >> np.uint64(33))


def _fmix32(x: np.ndarray) -> np.ndarray:
    # MurmurHash3's 32-bit finaliser, as datasketch's affine32 scheme pre-mixes its input.
    x = x ^ (x >> np.uint32(16))
    x = x * np.uint32(0x85EBCA6B)
    x = x ^ (x >> np.uint32(13))
    x = x * np.uint32(0xC2B2AE35)
    return x ^ (x >> np.uint32(16))


@lru_cache(maxsize=1)
def _word_char_table() -> np.ndarray:
    """Boolean table over all code points: True where `re` counts the character as `\\w`.

    Built by running the tokeniser's own regex over a string of every code point, so the
    vectorised tokeniser and `words` cannot disagree (about 0.1 s, once per process).
    """
    every_char = "".join(map(chr, range(0x110000)))
    table = np.zeros(0x110000, dtype=bool)
    for match in _WORD_RE.finditer(every_char):
        table[match.start() : match.end()] = True
    return table


def preload() -> None:
    """Build the code point table now (before a build forks its partition workers: they share it)."""
    _word_char_table()


# bytes.translate table for the ASCII fast path: 1 for the bytes `\w` matches, else 0.
_ASCII_WORD_BYTES = bytes(1 if _WORD_RE.fullmatch(chr(i)) else 0 for i in range(256))

_powers_cache: dict[str, np.ndarray] = {}


def _powers(length: int) -> tuple[np.ndarray, np.ndarray]:
    """`B**j` and `B**-j` mod 2**64 for j < length (uint64, wrapping), cached and grown."""
    have = _powers_cache.get("pow")
    if have is None or len(have) < length:
        size = max(length, 1 << 16)
        base = np.full(size, _WORD_BASE, dtype=np.uint64)
        base[0] = 1
        inverse = np.full(size, pow(_WORD_BASE, -1, 1 << 64), dtype=np.uint64)
        inverse[0] = 1
        _powers_cache["pow"] = np.cumprod(base, dtype=np.uint64)
        _powers_cache["inv"] = np.cumprod(inverse, dtype=np.uint64)
    return _powers_cache["pow"], _powers_cache["inv"]


@lru_cache(maxsize=16)
def permutations(num_perm: int, seed: int, scheme: str) -> tuple[np.ndarray, np.ndarray]:
    """Permutation parameters `(a, b)` exactly as datasketch's `MinHash._init_permutations`."""
    gen = np.random.RandomState(seed)
    if scheme == "legacy":
        pairs = np.array(
            [
                (
                    gen.randint(1, _MERSENNE_PRIME, dtype=np.uint64),
                    gen.randint(0, _MERSENNE_PRIME, dtype=np.uint64),
                )
                for _ in range(num_perm)
            ],
            dtype=np.uint64,
        ).T
        return pairs[0].copy(), pairs[1].copy()
    a = gen.randint(0, 1 << 31, num_perm, dtype=np.uint32) * np.uint32(2) + np.uint32(1)
    b = gen.randint(0, 1 << 32, num_perm, dtype=np.uint32)
    return a, b


def _shingle_hashes(texts: Sequence[str], shingle_words: int) -> tuple[np.ndarray, np.ndarray]:
    """32-bit shingle hashes of a few texts, concatenated, and the shingle count of each text."""
    lowered = [text.lower() for text in texts]
    # NUL is not a word character, so it separates texts without joining words across them.
    joined = "\x00".join(lowered) + "\x00"
    text_starts = np.zeros(len(lowered), dtype=np.int64)
    np.cumsum([len(t) + 1 for t in lowered[:-1]], out=text_starts[1:])
    if joined.isascii():
        # Fast path: one byte per character and a C-speed byte translation as the class table.
        raw = joined.encode("ascii")
        code_points = np.frombuffer(raw, dtype=np.uint8)
        is_word = np.frombuffer(raw.translate(_ASCII_WORD_BYTES), dtype=np.bool_)
    else:
        code_points = np.frombuffer(joined.encode("utf-32-le", "surrogatepass"), dtype=np.uint32)
        is_word = _word_char_table()[code_points]
    # Word runs begin and end where the class changes (a word at offset 0 begins there); the
    # trailing NUL closes the last word, so starts and ends alternate.
    boundaries = np.flatnonzero(is_word[1:] != is_word[:-1]) + 1
    if is_word[0]:
        boundaries = np.concatenate(([0], boundaries))
    word_starts, word_ends = boundaries[0::2], boundaries[1::2]

    power, inverse = _powers(len(code_points) + 1)
    weighted = code_points.astype(np.uint64)
    np.multiply(weighted, power[: len(code_points)], out=weighted)
    prefix = np.empty(len(code_points) + 1, dtype=np.uint64)
    prefix[0] = 0
    np.cumsum(weighted, out=prefix[1:])
    word_hashes = (prefix[word_ends] - prefix[word_starts]) * inverse[word_starts]

    first_word = np.searchsorted(word_starts, text_starts)
    words_per_text = np.diff(first_word, append=len(word_starts))

    n = shingle_words
    counts = np.where(words_per_text >= n, words_per_text - n + 1, np.minimum(words_per_text, 1))
    if len(word_hashes) >= n:
        windows = len(word_hashes) - n + 1
        combined = word_hashes[:windows].copy()
        for offset in range(1, n):
            combined *= np.uint64(_SHINGLE_BASE)
            combined += word_hashes[offset : offset + windows]
        # A window is a shingle unless it runs into the next text: drop the n-1 windows
        # starting just before each text's first word.
        crossing = (first_word[1:, None] - np.arange(1, n)[None, :]).ravel()
        whole = np.ones(windows, dtype=bool)
        whole[crossing[(crossing >= 0) & (crossing < windows)]] = False
        hashes = (_fmix64(combined[whole]) >> np.uint64(32)).astype(np.uint32)
    else:
        hashes = np.zeros(0, dtype=np.uint32)

    short = np.flatnonzero((words_per_text > 0) & (words_per_text < n))
    if len(short):
        # Texts shorter than one shingle: one shingle of all their words (rare, so a loop).
        short_hashes = np.empty(len(short), dtype=np.uint32)
        for i, (start, count) in enumerate(zip(first_word[short], words_per_text[short])):
            h = np.zeros(1, dtype=np.uint64)
            for word_hash in word_hashes[start : start + count]:
                h = h * np.uint64(_SHINGLE_BASE) + word_hash
            short_hashes[i] = np.uint32(_fmix64(h)[0] >> np.uint64(32))
        # Splice them in at each short text's position (its regular shingles are none).
        insert_at = np.cumsum(counts)[short] - 1
        hashes = np.insert(hashes, insert_at - np.arange(len(short)), short_hashes)
    return hashes, counts


def _permuted_minima(
    hashes: np.ndarray, counts: np.ndarray, config: MinHashConfig, out: np.ndarray
) -> None:
    """Write into `out[i]` the per-permutation minimum over text i's shingle hashes."""
    a, b = permutations(config.num_perm, config.seed, config.scheme)
    legacy = config.scheme == "legacy"
    # affine32 pre-mixes each input hash once with fmix32, as datasketch does.
    values = hashes.astype(np.uint64) if legacy else _fmix32(hashes)
    a_col, b_col = a[:, None], b[:, None]
    ends = np.cumsum(counts)
    starts = ends - counts
    nonempty = np.flatnonzero(counts > 0)
    work = np.empty((config.num_perm, _SHINGLE_CHUNK), dtype=config.signature_dtype)
    for chunk_start in range(0, len(values), _SHINGLE_CHUNK):
        chunk_end = min(chunk_start + _SHINGLE_CHUNK, len(values))
        width = chunk_end - chunk_start
        # Layout (num_perm, shingles): the segmented min then runs along contiguous rows,
        # which numpy's reduceat does ~20x faster than along axis 0.
        phv = work[:, :width]
        np.multiply(a_col, values[None, chunk_start:chunk_end], out=phv)
        np.add(phv, b_col, out=phv)
        if legacy:
            # datasketch: (a*h + b) wraps in uint64, then mod the Mersenne prime, low 32 bits.
            np.remainder(phv, _MERSENNE_PRIME, out=phv)
            np.bitwise_and(phv, np.uint64(EMPTY_SLOT), out=phv)
        # Texts with at least one shingle in this chunk, and where their shingles begin in it.
        docs = nonempty[(starts[nonempty] < chunk_end) & (ends[nonempty] > chunk_start)]
        local_starts = np.maximum(starts[docs], chunk_start) - chunk_start
        minima = np.minimum.reduceat(phv, local_starts, axis=1).T
        np.minimum(out[docs], minima, out=minima)
        out[docs] = minima


def compute_signatures(texts: Sequence[str], config: MinHashConfig) -> np.ndarray:
    """MinHash signatures, shape `(len(texts), config.num_perm)`, dtype `config.signature_dtype`.

    Row i equals datasketch's `MinHash(config.num_perm, config.seed, hashfunc=shingle_hash,
    scheme=config.scheme)` after `update_batch(shingles(texts[i], config.shingle_words))`.
    A text with no words gets a row of `EMPTY_SLOT`. Working memory is bounded by the piece
    sizes (~`_TEXT_PIECE_CHARS` code points of text at ~40 bytes each, `_SHINGLE_CHUNK`
    shingles x num_perm), not by the batch size; a single text longer than a piece is
    processed whole.
    """
    out = np.full((len(texts), config.num_perm), EMPTY_SLOT, dtype=config.signature_dtype)
    for start, end in text_pieces(texts):
        hashes, counts = _shingle_hashes(texts[start:end], config.shingle_words)
        _permuted_minima(hashes, counts, config, out[start:end])
    return out


def text_pieces(texts: Sequence[str]) -> Iterator[tuple[int, int]]:
    """`(start, end)` slices of `texts` holding about `_TEXT_PIECE_CHARS` code points each (a
    longer text alone): the unit `_shingle_hashes` is called on, which bounds its arrays."""
    start, chars = 0, 0
    for i, text in enumerate(texts):
        chars += len(text) + 1
        if chars >= _TEXT_PIECE_CHARS or i == len(texts) - 1:
            yield start, i + 1
            start, chars = i + 1, 0


def is_empty_signature(signatures: np.ndarray) -> np.ndarray | bool:
    """True for signature rows of texts without words (every slot `EMPTY_SLOT`)."""
    return np.all(signatures == EMPTY_SLOT, axis=-1)


def to_lean_minhash(signature: np.ndarray, config: MinHashConfig):
    """A `datasketch.LeanMinHash` holding one signature row (for datasketch's LSH and friends)."""
    from datasketch import LeanMinHash

    return LeanMinHash(seed=config.seed, hashvalues=signature, scheme=config.scheme)
