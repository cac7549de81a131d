"""``Reflective``: the reflective proposer as an optimizer of its own, behind the one interface.

It is OPRO with ``proposer="reflective"`` (same doors, keywords, run directory, resume rules and
Result), under its own name so a caller can say what it runs::

    result = Reflective(minibatch_size=3, max_metric_calls=2000, seed=0).optimize(task, llm=optimizer)

Why a subclass rather than a second implementation: the run machinery (config.json, journal,
budget, stop conditions, resume, final report) is the one OPRO has; only the loop differs
(:mod:`.loop`). OPRO's meta-prompt parameters (``per_step``, ``top_k``, ``num_exemplars``,
``max_reasks``, ``constrained``) do not apply and are refused when set.
"""

from __future__ import annotations

from dataclasses import dataclass

from promptopt.errors import ConfigError
from promptopt.optimizers.opro.optimizer import OPRO

NAME = "reflective"


@dataclass
class Reflective(OPRO):
    """GEPA-style reflective instruction search (see :mod:`promptopt.optimizers.reflective.loop`).
    Parameters as :class:`~promptopt.optimizers.opro.optimizer.OPRO`'s; ``minibatch_size``
    (default 3), ``max_metric_calls``, ``steps`` (iterations), ``temperature`` and ``max_tokens``
    (of each reflection, default 2048) shape the search."""

    proposer: str | None = NAME

    def __post_init__(self) -> None:
        if self.proposer != NAME:
            raise ConfigError(f"Reflective runs the {NAME!r} proposer; use OPRO(proposer={self.proposer!r})")
