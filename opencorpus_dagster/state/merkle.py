"""Merkle roots over a release's rows, and inclusion proofs a third party checks without the corpus.

A row's leaf is `sha256(0x00 | doc_id | 0x00 | content_sha256)` (UTF-8; content_sha256 as the
64 hex characters in the shard). A shard's root is the Merkle root of its rows' leaves in row
order; the release's root is the Merkle root of the shard roots in manifest order (path order).
A parent is `sha256(0x01 | left | right)`; on a level with an odd number of nodes the last one
moves up unchanged (no duplication, so no second-preimage games with a repeated last leaf). The
root of nothing is `sha256(b"")`. Hex digests in files, raw bytes when hashing.

`verify_proof` is all a verifier needs (hashlib only); the README prints it.
"""

from __future__ import annotations

import hashlib
from collections.abc import Iterable, Sequence

EMPTY_ROOT = hashlib.sha256(b"").hexdigest()


def leaf(doc_id: str, content_sha256: str) -> bytes:
    return hashlib.sha256(b"\x00" + doc_id.encode() + b"\x00" + content_sha256.encode()).digest()


def _parent(left: bytes, right: bytes) -> bytes:
    return hashlib.sha256(b"\x01" + left + right).digest()


def _levels(leaves: Sequence[bytes]) -> list[list[bytes]]:
    levels = [list(leaves)]
    while len(levels[-1]) > 1:
        level = levels[-1]
        up = [_parent(level[i], level[i + 1]) for i in range(0, len(level) - 1, 2)]
        if len(level) % 2:
            up.append(level[-1])
        levels.append(up)
    return levels


def root(leaves: Sequence[bytes]) -> str:
    if not leaves:
        return EMPTY_ROOT
    return _levels(leaves)[-1][0].hex()


def rows_root(rows: Iterable[tuple[str, str]]) -> str:
    """The root over (doc_id, content_sha256) rows in order: a shard's root."""
    return root([leaf(doc_id, content) for doc_id, content in rows])


def release_root(shard_roots: Sequence[str]) -> str:
    return root([bytes.fromhex(r) for r in shard_roots])


def path_to_root(leaves: Sequence[bytes], index: int) -> list[list[str]]:
    """The audit path of `leaves[index]`: [side, sibling hex] from the bottom, side "L" when the
    sibling is on the left. A level where the node has no sibling (odd, last) adds nothing."""
    steps = []
    for level in _levels(leaves)[:-1]:
        sibling = index ^ 1
        if sibling < len(level):
            steps.append(["L" if sibling < index else "R", level[sibling].hex()])
        index //= 2
    return steps


def verify_proof(proof: dict) -> bool:
    """Check an inclusion proof printed by `opencorpus prove` (standalone: hashlib only).

    proof = {"doc_id", "content_sha256", "shard_path": [[side, hex], ...], "shard_root",
             "release_path": [[side, hex], ...], "release_root"}
    """
    import hashlib as h

    def climb(node: bytes, steps) -> bytes:
        for side, sibling in steps:
            pair = bytes.fromhex(sibling) + node if side == "L" else node + bytes.fromhex(sibling)
            node = h.sha256(b"\x01" + pair).digest()
        return node

    node = h.sha256(b"\x00" + proof["doc_id"].encode() + b"\x00" + proof["content_sha256"].encode()).digest()
    if climb(node, proof["shard_path"]).hex() != proof["shard_root"]:
        return False
    return climb(bytes.fromhex(proof["shard_root"]), proof["release_path"]).hex() == proof["release_root"]
