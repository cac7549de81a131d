"""Which training examples iteration ``k`` reflects on.

GEPA's ``EpochShuffledBatchSampler``: the training examples are shuffled once per epoch and read
in consecutive minibatches, so every example is reflected on once per epoch before any repeats;
the last minibatch of an epoch is padded with examples from the start of that epoch's order.

Why a pure function of (seed, iteration, training size): a resumed run draws exactly the
minibatches an uninterrupted one draws, with no sampler state to save. Each epoch's shuffle is
seeded by (seed, epoch) through a hash, never Python's ``hash()``.
"""

from __future__ import annotations

import hashlib
import random


def _epoch_rng(seed: int, epoch: int) -> random.Random:
    blob = f"reflective-epoch:{seed}:{epoch}".encode()
    return random.Random(int.from_bytes(hashlib.sha256(blob).digest()[:8], "big"))


def minibatch(n: int, size: int, seed: int, iteration: int) -> list[int]:
    """Indices into the ``n`` training examples of iteration ``iteration``'s (1-based) minibatch of
    ``min(size, n)`` examples (see the module docstring)."""
    if n < 1:
        raise ValueError("no training examples to draw a minibatch from")
    if size < 1 or iteration < 1:
        raise ValueError("size and iteration must be positive")
    size = min(size, n)
    per_epoch = -(-n // size)  # minibatches per epoch, the last one padded
    epoch, slot = divmod(iteration - 1, per_epoch)
    order = list(range(n))
    _epoch_rng(seed, epoch).shuffle(order)
    order += order[: per_epoch * size - n]
    return order[slot * size : (slot + 1) * size]


def beats_parent(parent: list[float], child: list[float]) -> bool:
    """GEPA's acceptance: the child's sum over the minibatch is strictly above the parent's (a tie
    is rejected: an equal child adds a validation evaluation and nothing new)."""
    return sum(child) > sum(parent) + 1e-9
