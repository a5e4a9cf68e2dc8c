"""From LSH candidates to duplicate decisions: verify, cluster, order each cluster, pick a keeper.

- `verify_pairs` keeps candidate pairs whose estimated Jaccard similarity (the fraction of equal
  signature slots) reaches the threshold; LSH candidates include pairs that only share a band.
  `verify_pairs_exact` does the same with the texts' exact shingle Jaccard (no estimate noise).
- `form_clusters` joins verified pairs transitively (union-find) into clusters.
- `choose_keeper` orders a cluster by a configurable policy; the first member is kept. The whole
  order is returned, because when the keeper is taken down the next member is promoted
  (`promote_after_removal`), and `duplicates_of_keeper` gives the other members' decisions.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Literal

import numpy as np

from opencorpus_dagster.dedup.minhash import _shingle_hashes, is_empty_signature, text_pieces

_VERIFY_CHUNK = 65536


def estimated_jaccard(signature_a: np.ndarray, signature_b: np.ndarray) -> float:
    """Fraction of equal slots of two signatures; 0.0 if either text had no words."""
    if is_empty_signature(signature_a) or is_empty_signature(signature_b):
        return 0.0
    return float(np.mean(signature_a == signature_b))


def verify_pairs(
    pairs: Iterable[tuple[str, str]],
    signature_lookup: Mapping[str, np.ndarray],
    threshold: float,
) -> list[tuple[str, str, float]]:
    """`(a, b, similarity)` for each pair whose estimated Jaccard similarity is >= threshold.

    Order follows `pairs`. Pairs involving an empty signature never pass. Raises KeyError naming
    the doc_id when a pair refers to a document without a signature in `signature_lookup`.
    """
    verified: list[tuple[str, str, float]] = []
    batch: list[tuple[str, str]] = []

    def flush() -> None:
        try:
            left = np.stack([signature_lookup[a] for a, _ in batch])
            right = np.stack([signature_lookup[b] for _, b in batch])
        except KeyError as missing:
            raise KeyError(f"no signature for doc_id {missing.args[0]!r}") from None
        similarity = np.mean(left == right, axis=1)
        similarity[is_empty_signature(left) | is_empty_signature(right)] = 0.0
        for (a, b), s in zip(batch, similarity.tolist()):
            if s >= threshold:
                verified.append((a, b, s))
        batch.clear()

    for pair in pairs:
        batch.append(pair)
        if len(batch) >= _VERIFY_CHUNK:
            flush()
    if batch:
        flush()
    return verified


def shingle_set(text: str, shingle_words: int) -> np.ndarray:
    """Sorted unique 32-bit hashes of the text's shingles (the same hashes MinHash permutes)."""
    return shingle_sets([text], shingle_words)[0]


def shingle_sets(texts: Sequence[str], shingle_words: int) -> list[np.ndarray]:
    """`shingle_set` of each text, hashed and made unique a piece of texts at a time
    (`text_pieces`, as MinHash signs them): a few vectorised passes instead of one per text."""
    sets: list[np.ndarray] = []
    for start, end in text_pieces(texts):
        hashes, counts = _shingle_hashes(texts[start:end], shingle_words)
        # One sort for the whole piece: each hash tagged with its text's number in the high bits.
        owner = np.repeat(np.arange(len(counts), dtype=np.uint64), counts)
        tagged = np.unique((owner << np.uint64(32)) | hashes.astype(np.uint64))
        bounds = np.searchsorted(tagged >> np.uint64(32), np.arange(len(counts) + 1, dtype=np.uint64))
        values = tagged.astype(np.uint32)  # the low 32 bits: the hashes
        sets.extend(values[bounds[i] : bounds[i + 1]] for i in range(len(counts)))
    return sets


def _jaccard_of_sets(a: np.ndarray, b: np.ndarray) -> float:
    if len(a) == 0 or len(b) == 0:
        return 0.0
    common = len(np.intersect1d(a, b, assume_unique=True))
    return common / (len(a) + len(b) - common)


def exact_jaccard(text_a: str, text_b: str, shingle_words: int) -> float:
    """Jaccard similarity of the two texts' shingle sets (0.0 if either has no words).

    Shingles are compared by their 32-bit hashes: a collision between two distinct shingles of
    two ~5 KB texts has a probability around 1e-4, far below the 0.01 precision we need.
    """
    return _jaccard_of_sets(shingle_set(text_a, shingle_words), shingle_set(text_b, shingle_words))


def verify_pairs_exact(
    pairs: Iterable[tuple[str, str]],
    text_lookup: Mapping[str, str],
    threshold: float,
    shingle_words: int,
) -> list[tuple[str, str, float]]:
    """Like `verify_pairs`, but with the exact shingle Jaccard of the texts.

    Why: a 128-slot estimate has a standard deviation of ~0.035 near J = 0.8, so pairs just
    below the threshold pass and pairs just above fail; when the texts are at hand (they are,
    in the dedup stage), checking the few candidates exactly removes that noise. Each text's
    shingle set is computed once, however many pairs it is in, and all of them together
    (`shingle_sets`): callers bound the pairs, and so the texts, of one call.
    """
    pairs = list(pairs)
    keys = sorted({key for pair in pairs for key in pair})
    sets = dict(zip(keys, shingle_sets([text_lookup[key] for key in keys], shingle_words), strict=True))
    verified = []
    for a, b in pairs:
        similarity = _jaccard_of_sets(sets[a], sets[b])
        if similarity >= threshold:
            verified.append((a, b, similarity))
    return verified


def form_clusters(verified_pairs: Iterable[tuple]) -> list[list[str]]:
    """Connected components of the verified pairs (only the first two fields are read).

    Each cluster is sorted, clusters are sorted by their first member: the same pairs in any
    order give the same output. Documents in no pair are in no cluster (they are unique).
    """
    parent: dict[str, str] = {}

    def find(x: str) -> str:
        root = x
        while parent[root] != root:
            root = parent[root]
        while parent[x] != root:  # path compression
            parent[x], x = root, parent[x]
        return root

    for pair in verified_pairs:
        a, b = pair[0], pair[1]
        parent.setdefault(a, a)
        parent.setdefault(b, b)
        root_a, root_b = find(a), find(b)
        if root_a != root_b:
            # The smaller id becomes the root, so roots do not depend on pair order.
            parent[max(root_a, root_b)] = min(root_a, root_b)
    members: dict[str, list[str]] = {}
    for doc_id in parent:
        members.setdefault(find(doc_id), []).append(doc_id)
    return sorted((sorted(group) for group in members.values()), key=lambda group: group[0])


@dataclass(frozen=True)
class DocInfo:
    """What the keeper policy looks at for one cluster member.

    `license_rank`: 0 is the most permissive (public domain), larger is more restrictive.
    `upstream_order`: a sortable string, earlier sorts first (e.g. retrieval time, or source
    plus record id). `text_length`: characters of the document text.
    """

    doc_id: str
    license_rank: int
    upstream_order: str
    text_length: int


Criterion = Literal["license_rank", "upstream_order", "text_length", "doc_id"]

# Each criterion's sort key: smaller is preferred.
_CRITERIA: dict[str, Callable[[DocInfo], object]] = {
    "license_rank": lambda d: d.license_rank,  # most permissive first
    "upstream_order": lambda d: d.upstream_order,  # earliest upstream record first
    "text_length": lambda d: -d.text_length,  # longest text first
    "doc_id": lambda d: d.doc_id,
}

DEFAULT_KEEPER_POLICY: tuple[Criterion, ...] = (
    "license_rank",
    "upstream_order",
    "text_length",
    "doc_id",
)


def choose_keeper(
    members: Sequence[DocInfo], policy: Sequence[Criterion] = DEFAULT_KEEPER_POLICY
) -> list[DocInfo]:
    """Cluster members in keeper order: the first is kept, the next is promoted if it goes.

    `policy` lists criteria names, most important first (see `_CRITERIA` for what each prefers).
    `doc_id` is always the final tie-break, so the order is total and deterministic. Raises
    ValueError for an unknown criterion name.
    """
    unknown = [name for name in policy if name not in _CRITERIA]
    if unknown:
        raise ValueError(f"unknown keeper criteria {unknown}; known: {sorted(_CRITERIA)}")
    keys = [_CRITERIA[name] for name in (*policy, "doc_id")]
    return sorted(members, key=lambda doc: tuple(key(doc) for key in keys))


def duplicates_of_keeper(
    ordered: Sequence[DocInfo], signature_lookup: Mapping[str, np.ndarray]
) -> list[tuple[str, str, float]]:
    """`(doc_id, keeper_doc_id, similarity_to_keeper)` for every member after the keeper.

    The similarity is estimated against the keeper itself (a member may have joined the
    cluster through another member, so it can be below the verification threshold).
    """
    if not ordered:
        return []
    keeper = ordered[0].doc_id
    keeper_signature = signature_lookup[keeper]
    return [
        (doc.doc_id, keeper, estimated_jaccard(signature_lookup[doc.doc_id], keeper_signature))
        for doc in ordered[1:]
    ]


def promote_after_removal(ordered: Sequence[DocInfo], removed: Iterable[str]) -> list[DocInfo]:
    """The keeper order without the removed doc_ids (a takedown); the new first is kept."""
    gone = set(removed)
    return [doc for doc in ordered if doc.doc_id not in gone]
