"""OPRO's travelling-salesman demo: propose shorter tours through n random points.

Points are ``n`` random integer points in [low, high]² drawn from ``seed``. A solution is a trace
``<trace>0,3,1,...</trace>`` that starts at node 0 and visits every node exactly once; its score
is the closed tour length (lower is better). The final report gives the optimality gap against
the exact optimum (Held–Karp for n ≤ 12, a MILP beyond, see :mod:`promptopt.tasks.tsp_solvers`)
and the classical baselines' lengths and gaps.
"""

from __future__ import annotations

import functools
import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from promptopt.errors import ConfigError
from promptopt.llm.base import Constraint
from promptopt.tasks import tsp_solvers as solvers
from promptopt.tasks.base import Candidate, ProposalShape, Rejected, Scored, TaskDescription
from promptopt.tasks.shapes import grammar, int_range

_TRACE_RE = re.compile(r"<trace>(.*?)</trace>", re.S | re.I)
_SEP_RE = re.compile(r"[\s,]+")
MAX_N = 1000

OUTPUT_FORMAT = (
    "Give me a new trace that is different from all traces above, and has a length lower than any "
    "of the above. The trace should traverse all points exactly once. The trace should start with "
    "'<trace>' and end with </trace>."
)
#: The output-format sentence under constrained decoding: the trace and nothing else.
CONSTRAINED_OUTPUT_FORMAT = (
    "Give me a new trace that is different from all traces above, and has a length lower than any "
    "of the above. The trace should traverse all points exactly once. Output only the trace: "
    "<trace>, then the {n} point numbers separated by commas, starting with 0, then </trace>."
)


class TSPTask:
    """The task object (see :mod:`promptopt.tasks.base` for the contract)."""

    name = "tsp"
    direction = "min"
    #: the reference's settings for TSP (opro/optimization/optimize_tsp.py: num_steps = 500,
    #: max_num_pairs = 10 past traces in the meta-prompt, num_decode_per_step = 8 proposals)
    #: (and, as the reference does, ask again — up to 3 extra rounds — for traces that were not valid)
    opro_defaults: dict[str, Any] = {
        "steps": 500,
        "top_k": 10,
        "per_step": 8,
        "num_exemplars": 0,
        "max_reasks": 3,
    }

    def __init__(
        self,
        n: int = 10,
        seed: int = 0,
        num_starting: int = 5,
        low: int = -100,
        high: int = 100,
        score_decimals: int = 0,
        exact_time_limit: float = 60.0,
    ) -> None:
        if not 3 <= n <= MAX_N:
            raise ConfigError(f"n must be between 3 and {MAX_N}, got {n}")
        if num_starting < 1:
            raise ConfigError(f"num_starting must be >= 1, got {num_starting}")
        if low >= high:
            raise ConfigError(f"low ({low}) must be < high ({high})")
        self.n, self.seed, self.num_starting = int(n), int(seed), int(num_starting)
        self.low, self.high, self.score_decimals = int(low), int(high), int(score_decimals)
        self.exact_time_limit = float(exact_time_limit)
        coords = np.random.default_rng(self.seed).integers(self.low, self.high + 1, size=(self.n, 2))
        self.points: list[tuple[int, int]] = [(int(x), int(y)) for x, y in coords]
        self._d = solvers.distance_matrix(self.points)

    # -- geometry
    def length(self, tour: Sequence[int]) -> float:
        t = list(tour)
        return float(sum(self._d[a, b] for a, b in zip(t, t[1:] + t[:1], strict=True)))

    @functools.cached_property
    def exact(self) -> solvers.ExactSolution:
        """The optimum (or a bound, for large n past the time limit); computed once, on demand."""
        return solvers.exact_tsp(self.points, time_limit=self.exact_time_limit)

    @property
    def optimum(self) -> float | None:
        """The optimal length when it is known exactly (OPRO may stop when it gets there)."""
        return self.exact.length if self.exact.exact else None

    def baselines(self) -> dict[str, list[int]]:
        """The classical tours the report compares against. ``farthest_insertion`` is the
        textbook rule; ``farthest_insertion_opro`` is the rule the OPRO reference runs under that
        name (see :mod:`promptopt.tasks.tsp_solvers`), kept so that numbers compare with the paper."""
        nn = solvers.nearest_neighbour(self.points)
        return {
            "nearest_neighbour": nn,
            "farthest_insertion": solvers.farthest_insertion(self.points),
            "farthest_insertion_opro": solvers.farthest_insertion_opro(self.points),
            "two_opt": solvers.two_opt(self.points, nn),
        }

    # -- the Task contract
    def describe(self) -> TaskDescription:
        coords = ", ".join(f"({i}): ({x}, {y})" for i, (x, y) in enumerate(self.points))
        problem = (
            "You are given a list of points with coordinates below:\n"
            f"{coords}.\n\n"
            "Below are some previous traces and their lengths. The traces are arranged in descending "
            "order based on their lengths, where lower values are better."
        )
        return TaskDescription(
            problem=problem,
            solution_name="trace",
            score_name="length",
            output_format=OUTPUT_FORMAT,
            entry_template="<trace> {text} </trace>\nlength:\n{score}",
        )

    def proposal_shape(self) -> ProposalShape:
        """``<trace>0,i,j,...</trace>``: node 0, then exactly n - 1 node ids in 0..n-1.

        Why not "a permutation": that n ids are *distinct* is not expressible compactly in GBNF
        (or a JSON schema) for large n, so the grammar fixes the length, the start and the id
        range, and :meth:`parse` still rejects a trace that visits a node twice (``invalid``)."""
        node = int_range(self.n - 1)
        rest = self.n - 1
        gbnf = grammar(f'"<trace>0" ("," node){{{rest}}} "</trace>"', node=node.gbnf)
        pattern = rf"<trace>0(?:,{node.regex}){{{rest}}}</trace>"
        return ProposalShape(
            Constraint(gbnf=gbnf, pattern=pattern), CONSTRAINED_OUTPUT_FORMAT.format(n=self.n)
        )

    def candidate(self, tour: Sequence[int]) -> Candidate:
        t = tuple(int(i) for i in tour)
        return Candidate(",".join(map(str, t)), t)

    def initial_candidates(self, rng: random.Random) -> list[Candidate]:
        """``num_starting`` distinct random tours from node 0 (fewer if n is tiny)."""
        rest = list(range(1, self.n))
        possible = 1
        for k in range(2, self.n):
            possible *= k
            if possible >= self.num_starting:
                break
        want = min(self.num_starting, possible)
        tours: list[tuple[int, ...]] = []
        while len(tours) < want:
            perm = rest[:]
            rng.shuffle(perm)
            t = (0, *perm)
            if t not in tours:
                tours.append(t)
        return [self.candidate(t) for t in tours]

    def parse(self, text: str) -> Candidate | Rejected:
        """The last ``<trace>...</trace>``; node ids separated by commas or spaces."""
        found = _TRACE_RE.findall(text or "")
        if not found:
            return Rejected("unparseable", "no <trace>...</trace> in the output")
        body = found[-1].strip()
        tokens = [t for t in _SEP_RE.split(body) if t]
        if not tokens or not all(t.isascii() and t.isdigit() for t in tokens):
            return Rejected("unparseable", "the trace must be node numbers separated by commas")
        # too many digits for a node id: rejected before int(), which raises past 4300 digits
        if any(len(t.lstrip("0")) > len(str(self.n - 1)) for t in tokens):
            return Rejected("invalid", f"node ids must be 0..{self.n - 1}")
        tour = [int(t) for t in tokens]
        if any(i >= self.n for i in tour):
            return Rejected("invalid", f"node ids must be 0..{self.n - 1}")
        if len(set(tour)) != len(tour):
            return Rejected("invalid", "the trace visits a node more than once")
        if len(tour) != self.n:
            return Rejected("invalid", f"the trace visits {len(tour)} of {self.n} nodes")
        if tour[0] != 0:
            return Rejected("invalid", "the trace must start at node 0")
        return self.candidate(tour)

    async def ascore(self, candidates: Sequence[Candidate]) -> list[Scored]:
        return [Scored(self.length(c.value)) for c in candidates]

    def format_score(self, score: float) -> str:
        return str(int(round(score))) if self.score_decimals <= 0 else f"{score:.{self.score_decimals}f}"

    def exemplars(self, rng: random.Random, k: int) -> list[str]:
        return []

    def final_report(self, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = ()) -> dict[str, Any]:
        ex = self.exact
        ref = ex.length if ex.exact else ex.bound

        def gap(length: float) -> float:
            return 100.0 * (length - ref) / ref if ref > 0 else 0.0

        best_len = self.length(best.value)
        return {
            "n": self.n,
            "points": [list(p) for p in self.points],
            "best": {"tour": list(best.value), "length": best_len, "gap_percent": gap(best_len)},
            "optimum": {
                "tour": ex.tour,
                "length": ex.length,
                "bound": ex.bound,
                "method": ex.method,
                "exact": ex.exact,
            },
            "gap_reference": "optimum" if ex.exact else "lower bound",
            "baselines": {
                name: {"tour": t, "length": self.length(t), "gap_percent": gap(self.length(t))}
                for name, t in self.baselines().items()
            },
        }

    def config(self) -> dict[str, Any]:
        return {
            "n": self.n,
            "seed": self.seed,
            "num_starting": self.num_starting,
            "low": self.low,
            "high": self.high,
            "score_decimals": self.score_decimals,
            "exact_time_limit": self.exact_time_limit,
        }

    # -- report hooks (see promptopt.tasks.base): called on the class, from a run's files only
    @staticmethod
    def summary(report: dict[str, Any]) -> list[str]:
        best, opt = report["best"], report["optimum"]
        ref = "optimum" if opt["exact"] else "lower bound"
        lines = [
            f"tour: {','.join(map(str, best['tour']))}",
            f"length: {best['length']:.2f}   gap to {ref}: {best['gap_percent']:.2f}%",
            f"{ref} ({opt['method']}): {opt['length' if opt['exact'] else 'bound']:.2f}",
        ]
        for name, b in report["baselines"].items():
            lines.append(f"baseline {name}: {b['length']:.2f} (gap {b['gap_percent']:.2f}%)")
        return lines

    @staticmethod
    def report_section(report: dict[str, Any], search: dict[str, Any]) -> list[str]:
        opt = report["optimum"]
        ref = "optimum" if opt["exact"] else "lower bound (MILP stopped at its time limit)"
        rows = [
            "| solution | length | gap |",
            "|---|---|---|",
            f"| OPRO best | {report['best']['length']:.2f} | {report['best']['gap_percent']:.2f}% |",
        ]
        for name, b in report["baselines"].items():
            rows.append(f"| {name.replace('_', ' ')} | {b['length']:.2f} | {b['gap_percent']:.2f}% |")
        shown = opt["length"] if opt["exact"] else opt["bound"]
        rows.append(f"| {opt['method']} ({'exact' if opt['exact'] else 'bound'}) | {shown:.2f} | 0.00% |")
        tour = ",".join(map(str, report["best"]["tour"]))
        return [f"n = {report['n']}; gaps are relative to the {ref}.", "", f"Best tour: `{tour}`", "", *rows]

    @staticmethod
    def plots(history: Sequence[Any], report: dict[str, Any], out_dir: Any) -> list[tuple[str, Any]]:
        """The best tour, the optimum dashed, the baselines' lengths in the legend (needs the
        final report: nothing for a run that has not finished)."""
        from promptopt.tasks.base import pyplot

        pts, best = report.get("points"), report.get("best", {})
        if not pts or not best.get("tour"):
            return []
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6, 6))
        opt = report.get("optimum", {})
        if opt.get("exact") and opt.get("tour"):
            t = [*opt["tour"], opt["tour"][0]]
            ax.plot([pts[i][0] for i in t], [pts[i][1] for i in t], "--", color="gray", lw=1.2,
                    label=f"optimum {opt['length']:.1f} ({opt.get('method')})")  # fmt: skip
        t = [*best["tour"], best["tour"][0]]
        ax.plot([pts[i][0] for i in t], [pts[i][1] for i in t], "-", color="C0", lw=2,
                label=f"OPRO best {best['length']:.1f}")  # fmt: skip
        for name, b in report.get("baselines", {}).items():
            ax.plot([], [], " ", label=f"{name.replace('_', ' ')}: {b['length']:.1f}")
        ax.scatter([p[0] for p in pts], [p[1] for p in pts], color="k", zorder=3, s=18)
        for i, (x, y) in enumerate(pts):
            ax.annotate(str(i), (x, y), textcoords="offset points", xytext=(4, 4), fontsize=8)
        ax.set_title(
            f"TSP, n = {report.get('n', len(pts))}: gap {best.get('gap_percent', float('nan')):.2f}%"
        )
        ax.legend(fontsize=8, loc="best")
        ax.set_aspect("equal", adjustable="datalim")
        fig.tight_layout()
        path = out_dir / "tsp_tour.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [("Best tour", path)]
