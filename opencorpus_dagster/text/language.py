"""Offline language identification with py3langid, and the step that filters on it.

py3langid (a maintained fork of Lui & Baldwin's langid.py) ships its naive-Bayes model inside
the wheel (`py3langid/data/model.npz.xz`, 140 labels); nothing is downloaded. Its normalised
probabilities are a softmax over the class scores with a temperature of sqrt(bytes), so they
are comparable across text lengths; `identify_language` reports that probability as the
confidence.

Speed: py3langid walks the UTF-8 bytes through its feature automaton in Python (about 1 µs per
byte) and multiplies by a float16 table that numpy converts in software. `_Identifier` gives the
same scores, bit for bit, at less than half the cost (see its docstring). Only a bounded sample
is classified: the whole text up to `SAMPLE_CHARS` characters, otherwise three
windows of `SAMPLE_CHARS // 3` characters taken at the start, the middle and the end, each cut
at whitespace. Three windows rather than one prefix because a document's first characters are
often a title, a licence line or a table of contents in another language.
"""

from __future__ import annotations

import threading

import numpy as np
from py3langid.langid import LanguageIdentifier
from pydantic import BaseModel, ConfigDict, Field

from opencorpus_dagster.records import Document, Drop, Outcome
from opencorpus_dagster.text.language_model import ModelArrays, load_model

SAMPLE_CHARS = 1500

# py3langid labels that are not ISO 639-1 codes are returned as they are (ISO 639-3, e.g. `ace`,
# `yue`); `zxx` is ISO 639-2's "no linguistic content".
NO_LANGUAGE = "zxx"
# How the dataset card and the training-data summary name the documents of a source whose
# language identification is off (their `language` is null).
NOT_IDENTIFIED = "(not identified)"

# After this many bytes the model's automaton is in the same state whatever state it started
# in (tests/test_language.py proves it for the installed model: 6 for py3langid 0.4's).
SYNC_BYTES = 6


class _Identifier(LanguageIdentifier):
    """py3langid's identifier, scoring with numpy instead of a Python loop. Same results.

    py3langid finds its features by walking every byte through an automaton, one Python step
    per byte. That automaton is definite: after `SYNC_BYTES` bytes its state no longer depends
    on where the walk started. So the state after byte i is the state reached by walking from
    the start state over bytes i-5..i (or from the first byte, near the start), and numpy
    computes it for every position at once, in `SYNC_BYTES` gathers. Counts are then taken in
    order of first occurrence, as py3langid's `Counter` takes them, so the dot product adds the
    same terms in the same order. The class-by-feature table is widened once from float16 to
    float32: the values are exact, and numpy's float16 conversion, which py3langid pays on
    every call, is what made its matrix product slow.
    """

    __slots__ = ("_next_state", "_row_start", "_feature_of")

    def __init__(self, *args, **kwargs) -> None:
        super().__init__(*args, **kwargs)
        self._next_state = np.asarray(self.tk_nextmove, dtype=np.uint32)
        self._row_start = np.asarray(self.tk_row, dtype=np.uint32) << 8  # under 2**24
        self._feature_of = np.asarray(self.tk_output, dtype=np.int64)
        self.nb_ptc = np.asarray(self.nb_ptc, dtype=np.float32)  # a mapped float32 table stays mapped
        self._full_model = (self.nb_ptc, *self._full_model[1:])

    def _raw_score(self, text: bytes):
        data = np.frombuffer(text, dtype=np.uint8)
        states = np.zeros(len(data), dtype=np.uint32)
        for lag in range(min(SYNC_BYTES, len(data)) - 1, 0, -1):
            # Positions >= lag take their walk's step from the byte `lag` places back.
            states[lag:] = self._next_state[self._row_start[states[lag:]] + data[:-lag]]
        states = self._next_state[self._row_start[states] + data]
        features = self._feature_of[states]
        features = features[features >= 0]
        if not len(features):
            return super()._raw_score(b"")
        ids, first, counts = np.unique(features, return_index=True, return_counts=True)
        order = np.argsort(first)
        # py3langid's `_sparse_score`, on arrays rather than a Counter.
        return np.log1p(counts[order].astype(np.float32)) @ self.nb_ptc[ids[order]] + self.nb_pc


_identifier: _Identifier | None = None
_identifier_lock = threading.Lock()


def _get_identifier():
    # Once per process, on first use: from the user's cache, a few milliseconds; the first time
    # on a machine, decompressed from the wheel (about a second), see `language_model`.
    global _identifier
    if _identifier is None:
        with _identifier_lock:
            if _identifier is None:
                _identifier = new_identifier(load_model())
    return _identifier


def new_identifier(model: ModelArrays) -> _Identifier:
    """An identifier (normalised probabilities) over `model`'s arrays."""
    return _Identifier(
        model.ptc,
        model.pc,
        model.classes,
        model.nextmove,
        model.out_feat.tolist(),
        norm_probs=True,
        tk_row=model.row.tolist(),
    )


def preload() -> None:
    """Load the language model now (before a build forks its partition workers: they share it)."""
    _get_identifier()


def language_sample(text: str, limit: int = SAMPLE_CHARS) -> str:
    """The part of `text` that is classified: all of it up to `limit` characters, else three
    windows (start, middle, end) of `limit // 3` characters each, cut at whitespace."""
    if len(text) <= limit:
        return text
    width = limit // 3
    windows = []
    for start in (0, (len(text) - width) // 2, len(text) - width):
        window = text[start : start + width]
        # Drop the partial words at the cut edges (not at the start/end of the whole text).
        if start > 0:
            head, _, rest = window.partition(" ")
            window = rest or head
        if start + width < len(text):
            head, _, _tail = window.rpartition(" ")
            window = head or window
        windows.append(window)
    return "\n".join(windows)


def identify_language(text: str) -> tuple[str, float]:
    """(language, confidence) of `text`.

    `language` is an ISO 639-1 code (`en`, `uk`) where one exists, else the model's ISO 639-3
    label; `confidence` is the normalised probability of that language, in 0..1. Text without
    any usable feature (empty, only digits or symbols) gives (`zxx`, 0.0). Never raises.
    """
    sample = language_sample(text)
    if not sample.strip():
        return NO_LANGUAGE, 0.0
    lang, prob = _get_identifier().classify(sample)
    prob = float(prob)
    # No feature at all: py3langid returns a uniform distribution (an aliased label such as
    # sr/srl holds two shares of it); report that as no language rather than a random label.
    if prob <= 2.0 / len(_get_identifier().nb_classes) + 1e-6:
        return NO_LANGUAGE, 0.0
    return lang, min(max(prob, 0.0), 1.0)


class LanguageConfig(BaseModel):
    """`filters.language` in a source's catalog YAML."""

    model_config = ConfigDict(extra="forbid")

    enabled: bool = True
    # Languages to keep (ISO 639-1 codes as identify_language returns them); None keeps any.
    allowed: list[str] | None = None
    # Below this probability the language is too uncertain to act on; 0 disables the rule.
    min_confidence: float = Field(default=0.5, ge=0.0, le=1.0)


class LanguageFilter:
    """Step: set `doc.language` from the text; drop uncertain or unwanted languages.

    A language the upstream declared (the connector's `doc.language`, e.g. a wiki's or a
    catalog's language) is kept as evidence in `doc.metadata["language_hint"]`; the measured
    language wins. `doc.metadata["language_confidence"]` holds the probability.

    Drops (checked in this order):
    - `Drop(FILTERED, "language.low_confidence", value=confidence)` below `min_confidence`;
    - `Drop(FILTERED, "language.not_allowed", value=lang)` when `allowed` is set and lacks it.
    """

    name = "language"  # the step name in decisions and run metadata

    def __init__(self, config: LanguageConfig | None = None) -> None:
        self.config = config or LanguageConfig()
        self._allowed = set(self.config.allowed) if self.config.allowed is not None else None

    def __call__(self, doc: Document) -> Document | Drop:
        lang, confidence = identify_language(doc.text)
        if doc.language and "language_hint" not in doc.metadata:
            doc.metadata["language_hint"] = doc.language
        doc.language = lang
        doc.metadata["language_confidence"] = round(confidence, 4)
        hint = doc.metadata.get("language_hint")
        if confidence < self.config.min_confidence:
            return Drop(
                Outcome.FILTERED,
                "language.low_confidence",
                value=round(confidence, 4),
                detail=f"language {lang}, min_confidence {self.config.min_confidence}"
                + (f", upstream hint {hint}" if hint else ""),
            )
        if self._allowed is not None and lang not in self._allowed:
            return Drop(
                Outcome.FILTERED,
                "language.not_allowed",
                value=lang,
                detail=f"confidence {confidence:.4f}, allowed {sorted(self._allowed)}"
                + (f", upstream hint {hint}" if hint else ""),
            )
        return doc
