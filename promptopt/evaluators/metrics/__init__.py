"""Metrics: how an answer to an example becomes a value in [0, 1] with a reason.

The contract is in :mod:`~promptopt.evaluators.metrics.base`, the built-in rules in
:mod:`~promptopt.evaluators.metrics.builtin`, the spec strings (``exact``, ``regex:PATTERN``,
``python:mod:fn``, ``judge[:rubric|pairwise|responsive]``, ``all:SPEC&SPEC``) in
:mod:`~promptopt.evaluators.metrics.registry`; ``all:`` (the product of several metrics, e.g. a
verifiable metric gated by the ``judge:responsive`` content judge) in
:mod:`~promptopt.evaluators.metrics.combine`. Only pure-Python modules are imported here: the judge
metrics (and the LLM machinery they need) are imported by the registry when chosen.
"""

from __future__ import annotations

from promptopt.evaluators.metrics.base import (
    FunctionMetric,
    Metric,
    MetricError,
    MetricItem,
    Score,
    SyncMetric,
    as_metric,
    ascore_items,
    to_score,
)
from promptopt.evaluators.metrics.registry import (
    METRICS,
    MetricEntry,
    describe_metrics,
    metric_spec_of,
    metric_wants_judge,
    parse_metric_spec,
    resolve_metric,
)

__all__ = [
    "METRICS",
    "FunctionMetric",
    "Metric",
    "MetricEntry",
    "MetricError",
    "MetricItem",
    "Score",
    "SyncMetric",
    "as_metric",
    "ascore_items",
    "describe_metrics",
    "metric_spec_of",
    "metric_wants_judge",
    "parse_metric_spec",
    "resolve_metric",
    "to_score",
]
