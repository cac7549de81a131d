"""Metric spec strings → metrics, through one constant registry (no string-matching dispatch).

A spec is ``NAME`` or ``NAME:ARG``, split on the *first* colon (``regex:a:b`` has the argument
``a:b``; ``python:pkg.mod:fn`` has ``pkg.mod:fn``). :data:`METRICS` holds one
:class:`MetricEntry` per name; its ``factory(arg, **context)`` builds the metric. ``context``
carries what some metrics need from the run (``judge_llm``, ``max_tokens``); the others ignore it.
``all:SPEC&SPEC...`` combines specs (:mod:`~promptopt.evaluators.metrics.combine`: the product of
their values, e.g. ``all:ifbench&judge:responsive``), passing ``context`` to each.

Whether a spec scores with a judge model (so the task layer opens one) is the entry's
``wants_judge(arg)``, asked through :func:`metric_wants_judge`: ``judge[:MODE]`` does, ``all:...``
does when one of its components does.

:func:`resolve_metric` is the one door for every caller (CLI, Python API, tasks): a spec string,
a :class:`Metric`, a plain callable ``f(example, answer)`` or None (the default, ``auto``).

What a run records (:func:`metric_spec_of`): the spec string that rebuilds the metric, so
``promptopt resume`` scores with the same metric. A metric built from a spec carries it as
``metric.spec``; a module-level function or class is recorded as ``python:module:qualname``. A
lambda, a closure, a bound method or an object configured in code has no such string: the run
records None and can be resumed only from Python, passing the metric again (the CLI refuses).
A user's own Metric class can set a ``spec`` attribute to be resumable from the CLI.
"""

from __future__ import annotations

import importlib
import inspect
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from types import MappingProxyType
from typing import Any, Literal

from promptopt.errors import ConfigError, PromptoptError, UnknownNameError
from promptopt.evaluators.metrics.base import Metric, MetricError, as_metric
from promptopt.evaluators.metrics.builtin import (
    make_auto,
    make_contains,
    make_exact,
    make_f1,
    make_graded,
    make_regex,
)
from promptopt.evaluators.metrics.combine import COMPONENT_SEP, AllMetric

TakesArg = Literal["none", "optional", "required"]
MetricFactory = Callable[..., Metric]

#: the judge metric's modes (its optional argument); the first is the default
JUDGE_MODES: tuple[str, ...] = ("rubric", "pairwise", "responsive")


def _no_judge(arg: str | None) -> bool:
    """The ``wants_judge`` of a metric that never calls a judge model."""
    return False


def _always_judge(arg: str | None) -> bool:
    """The ``wants_judge`` of the judge metric (every mode calls the judge model)."""
    return True


@dataclass(frozen=True)
class MetricEntry:
    """One registered metric: ``factory(arg, **context) -> Metric``; ``takes_arg`` says whether a
    spec may or must give ``NAME:ARG``; ``arg_name`` names the argument in usage lines."""

    name: str
    factory: MetricFactory
    takes_arg: TakesArg
    help: str
    arg_name: str = ""
    #: whether the spec with this argument scores through a judge model (the run opens one)
    wants_judge: Callable[[str | None], bool] = _no_judge

    @property
    def usage(self) -> str:
        """How to write the spec: ``exact``, ``regex:PATTERN``, ``judge[:rubric|pairwise]``."""
        if self.takes_arg == "required":
            return f"{self.name}:{self.arg_name or 'ARG'}"
        if self.takes_arg == "optional":
            return f"{self.name}[:{self.arg_name or 'ARG'}]"
        return self.name


# --------------------------------------------------------------------------- factories


def _plain(make: Callable[[], Metric]) -> MetricFactory:
    """A factory for a metric with no argument and no use for the run's context."""

    def factory(arg: str | None = None, **context: Any) -> Metric:
        return make()

    return factory


def _graded(kind: Any) -> MetricFactory:
    def factory(arg: str | None = None, **context: Any) -> Metric:
        return make_graded(kind)

    return factory


def _regex_factory(arg: str | None = None, **context: Any) -> Metric:
    return make_regex(arg or "")


def _judge_factory(arg: str | None = None, **context: Any) -> Metric:
    """The judge-as-metric; judge.py (and what it imports) is loaded only when chosen."""
    mode = arg or JUDGE_MODES[0]
    if mode not in JUDGE_MODES:
        raise ConfigError(f"unknown judge mode {mode!r}; choose one of: {', '.join(JUDGE_MODES)}")
    llm = context.get("judge_llm")
    if llm is None:
        raise ConfigError("the judge metric needs a judge model (--judge-model SPEC)")
    from promptopt.evaluators.metrics.judge import make_judge_metric

    # None means "not set" in a caller's context: let the judge keep its own default.
    options = {k: v for k, v in context.items() if k in ("max_tokens",) and v is not None}
    return make_judge_metric(mode, llm=llm, **options)


def split_components(arg: str | None) -> list[str]:
    """The component specs of ``all:ARG`` (split on ``&``, stripped); an empty one is a ConfigError."""
    parts = [p.strip() for p in (arg or "").split(COMPONENT_SEP)]
    if not any(parts) or not all(parts):
        raise ConfigError(
            f"the all metric needs specs joined by {COMPONENT_SEP!r} (all:SPEC&SPEC), got {arg!r}"
        )
    return parts


def _all_factory(arg: str | None = None, **context: Any) -> Metric:
    """``all:SPEC&SPEC...``: each component built by this registry with the same ``context``; one
    level only (a nested ``all`` is refused). The metric carries the spec as written."""
    components: list[tuple[str, Metric]] = []
    for part in split_components(arg):
        try:
            name, _ = parse_metric_spec(part)
        except UnknownNameError as exc:
            raise UnknownNameError(f"in all:{arg}: {exc}") from None
        if name == "all":
            raise ConfigError(f"all:{arg}: a component cannot be another all (one level is enough)")
        components.append((part, resolve_metric(part, **context)))
    return AllMetric(f"all:{arg}", components)


def _all_wants_judge(arg: str | None) -> bool:
    """``all:...`` wants a judge when a component does (an unreadable spec: building it says why)."""
    parts = [p.strip() for p in (arg or "").split(COMPONENT_SEP)]
    return any(metric_wants_judge(p) for p in parts if p)


def load_python_metric(ref: str) -> Metric:
    """``module:function`` or ``module:attr.attr`` imported and made a Metric.

    A class is instantiated with no arguments (its instance is the metric: a Metric, or a callable
    ``(example, answer)``). A function keeps its own name as the metric's name. Everything that
    can go wrong is the user's configuration, so it is a ConfigError naming what was missing. The
    module must be importable: on ``sys.path`` (``PYTHONPATH=. promptopt ...`` for a file in the
    current folder) or an installed package.
    """
    module_name, sep, attr_path = ref.partition(":")
    module_name, attr_path = module_name.strip(), attr_path.strip()
    if not sep or not module_name or not attr_path:
        raise ConfigError(f"python metric {ref!r}: write python:MODULE:FUNCTION (or MODULE:ATTR.ATTR)")
    try:
        module = importlib.import_module(module_name)
    except ModuleNotFoundError as exc:
        hint = (
            " (is its folder on PYTHONPATH? e.g. PYTHONPATH=. promptopt ...)"
            if exc.name == module_name
            else ""
        )
        raise ConfigError(
            f"python metric {ref!r}: cannot import module {module_name!r}: {exc}{hint}"
        ) from None
    except Exception as exc:  # noqa: BLE001 - the user's module may fail any way at import: name it
        msg = " ".join(str(exc).split())[:200]
        raise ConfigError(
            f"python metric {ref!r}: importing module {module_name!r} raised {type(exc).__name__}: {msg}"
        ) from exc
    obj: Any = module
    for part in attr_path.split("."):
        try:
            obj = getattr(obj, part)
        except AttributeError:
            raise ConfigError(
                f"python metric {ref!r}: module {module_name!r} has no attribute {attr_path!r}"
            ) from None
    if not callable(obj):
        raise ConfigError(
            f"python metric {ref!r}: {attr_path!r} is a {type(obj).__name__}, not a function or class"
        )
    return _from_callable(obj, where=f"python metric {ref!r}")


def _from_callable(obj: Any, *, where: str) -> Metric:
    """A class → its no-argument instance; then a Metric as is, a callable wrapped."""
    name: str | None = None
    if inspect.isclass(obj):
        cls = obj
        try:
            obj = cls()
        except Exception as exc:  # noqa: BLE001 - a user's constructor can raise anything: name it
            msg = " ".join(str(exc).split())[:200]
            raise ConfigError(f"{where}: {cls.__name__}() raised {type(exc).__name__}: {msg}") from exc
        name = cls.__name__
        if not isinstance(obj, Metric) and not callable(obj):
            raise ConfigError(
                f"{where}: a {cls.__name__} is neither a Metric nor callable as (example, answer)"
            )
    return as_metric(obj, name)


def _python_factory(arg: str | None = None, **context: Any) -> Metric:
    return load_python_metric(arg or "")


def _ifbench_factory(arg: str | None = None, **context: Any) -> Metric:
    """IFBench's verifiable constraints (promptopt.evaluators.metrics.ifbench), loaded when chosen."""
    from promptopt.evaluators.metrics.ifbench import make_ifbench_metric

    return make_ifbench_metric(arg)


_ENTRIES: tuple[MetricEntry, ...] = (
    MetricEntry("auto", _plain(make_auto), "none", "grade by each example's answer kind (the default)"),
    MetricEntry(
        "exact", _plain(make_exact), "none", "the whole response equals the gold answer (normalised)"
    ),
    MetricEntry(
        "contains", _plain(make_contains), "none", "the response contains the gold answer as whole words"
    ),
    MetricEntry(
        "regex",
        _regex_factory,
        "required",
        "the response matches PATTERN (re.search; {target} = the escaped gold answer)",
        "PATTERN",
    ),
    MetricEntry(
        "f1", _plain(make_f1), "none", "SQuAD token F1 against the gold answer (alternatives: a|||b)"
    ),
    MetricEntry("number", _graded("number"), "none", "the last stated number equals the gold number"),
    MetricEntry("choice", _graded("choice"), "none", "the chosen option letter is the gold one"),
    MetricEntry("boolean", _graded("boolean"), "none", "the yes/no (true/false, ...) answer is the gold one"),
    MetricEntry("text", _graded("text"), "none", "the extracted free-text answer equals the gold text"),
    MetricEntry(
        "judge",
        _judge_factory,
        "optional",
        "a judge model scores each answer (needs --judge-model; pairwise: against the no-instruction "
        "answer; responsive: 1 when the answer carries out the request, else 0)",
        "|".join(JUDGE_MODES),
        _always_judge,
    ),
    MetricEntry(
        "ifbench",
        _ifbench_factory,
        "optional",
        "IFBench's verifiable constraints (instruction_id_list / kwargs columns): share followed; "
        "prompt: all followed; loose: first/last line and * forgiven",
        "prompt|loose|prompt-loose",
    ),
    MetricEntry(
        "python",
        _python_factory,
        "required",
        "your function f(example, answer) -> bool | float | (value, feedback) | Score, or a Metric class",
        "MODULE:FUNCTION",
    ),
    MetricEntry(
        "all",
        _all_factory,
        "required",
        "every metric at once, value = their product (a gate), e.g. all:ifbench&judge:responsive; "
        "split on & (one level)",
        "SPEC&SPEC...",
        _all_wants_judge,
    ),
)

#: name → entry, in listing order; read-only
METRICS: Mapping[str, MetricEntry] = MappingProxyType({e.name: e for e in _ENTRIES})


# --------------------------------------------------------------------------- specs


def parse_metric_spec(spec: str) -> tuple[str, str | None]:
    """``NAME[:ARG]`` → (name, arg), split on the first colon; the name is checked against the
    registry (UnknownNameError listing the known ones) and the argument against what the metric
    takes (ConfigError). An empty optional argument (``judge:``) is no argument."""
    if not isinstance(spec, str):
        raise ConfigError(f"a metric spec is a string, got {type(spec).__name__}")
    head, sep, rest = spec.partition(":")
    name = head.strip().lower()
    arg = rest if sep else None
    entry = METRICS.get(name)
    if entry is None:
        what = f"unknown metric {name!r}" if name else f"empty metric name in {spec!r}"
        raise UnknownNameError(f"{what}; known metrics: {', '.join(METRICS)}")
    if entry.takes_arg == "none" and arg is not None:
        raise ConfigError(f"the {name} metric takes no argument, got {spec!r}")
    if entry.takes_arg == "required" and not arg:
        raise ConfigError(f"the {name} metric needs an argument: {entry.usage}")
    if entry.takes_arg == "optional" and not arg:
        arg = None
    return name, arg


def metric_wants_judge(spec: Any) -> bool:
    """Whether the metric ``spec`` scores through a judge model, so the caller opens one and passes
    it as ``judge_llm``: ``judge[:MODE]``, or an ``all:`` with such a component. False for anything
    that is not a valid spec string (a Metric object, a callable, a typo): building it reports why."""
    if not isinstance(spec, str):
        return False
    try:
        name, arg = parse_metric_spec(spec)
    except PromptoptError:
        return False
    return METRICS[name].wants_judge(arg)


def _importable_ref(obj: Any) -> str | None:
    """``module:qualname`` when importing it gives back this very object (a module-level
    function or class, not ``__main__``, a lambda, a closure or a bound method), else None."""
    module = getattr(obj, "__module__", None)
    qualname = getattr(obj, "__qualname__", None)
    if (
        not isinstance(module, str)
        or not isinstance(qualname, str)
        or "<" in qualname
        or module == "__main__"
    ):
        return None
    found: Any = sys.modules.get(module)
    for part in qualname.split("."):
        found = getattr(found, part, None)
    return f"{module}:{qualname}" if found is not None and found is obj else None


def metric_spec_of(metric: Any) -> str | None:
    """The spec string to record in a run's config so the run can be resumed from the CLI.

    A string is its own spec; a metric built by :func:`resolve_metric` from a spec (or any object
    with a string ``spec`` attribute) gives that; a module-level function or class gives
    ``python:module:qualname``, as does a :class:`FunctionMetric` wrapping one. Anything else
    (lambdas, closures, configured objects, None) gives None: pass the metric again to resume.
    """
    if metric is None:
        return None
    if isinstance(metric, str):
        return metric
    spec = getattr(metric, "spec", None)
    if isinstance(spec, str) and spec:
        return spec
    if not isinstance(metric, Metric) or inspect.isclass(metric):
        ref = _importable_ref(metric)
        return f"python:{ref}" if ref else None
    fn = getattr(metric, "fn", None)  # a FunctionMetric: its function may be importable
    ref = _importable_ref(fn) if fn is not None and not inspect.isclass(fn) else None
    return f"python:{ref}" if ref else None


def _tag(metric: Metric, spec: str | None) -> Metric:
    """Record ``spec`` on the metric (for :func:`metric_spec_of`) where the object allows it."""
    if spec is not None and getattr(metric, "spec", None) is None:
        try:
            metric.spec = spec  # type: ignore[attr-defined]
        except (AttributeError, TypeError):  # a frozen or slotted user object: nothing to record
            pass
    return metric


def resolve_metric(
    metric: str | Metric | Callable[..., Any] | None, *, default: str = "auto", **context: Any
) -> Metric:
    """Any way of naming a metric → a :class:`Metric`.

    None → the ``default`` spec; a string → the registry (``context`` goes to its factory:
    ``judge_llm=``, ``max_tokens=``); a Metric → as is; a class → its no-argument instance; any
    other callable ``f(example, answer)`` → :func:`as_metric`.
    """
    if metric is None:
        metric = default
    if isinstance(metric, str):
        name, arg = parse_metric_spec(metric)
        built = METRICS[name].factory(arg, **context)
        return _tag(built, name if arg is None else f"{name}:{arg}")
    if isinstance(metric, Metric) and not inspect.isclass(metric):
        return metric
    if callable(metric):
        spec = metric_spec_of(metric)
        return _tag(_from_callable(metric, where=f"metric {getattr(metric, '__qualname__', metric)!r}"), spec)
    raise MetricError(f"a metric is a name, a callable or a Metric, got {type(metric).__name__}")


def describe_metrics() -> list[tuple[str, str]]:
    """(usage, help) per registered metric, in listing order, for ``promptopt ... list`` output."""
    return [(e.usage, e.help) for e in METRICS.values()]
