"""OPRO's linear-regression demo: find (w, b) that minimise the squared error on noisy data.

Data: x = 1..``num_points``, y = w_true·x + b_true + N(0, 1) noise drawn from ``seed``. The
optimizer starts from ``num_starting`` random integer pairs in [start_low, start_high]² and sees the
loss rounded to integers, as in the paper (Yang et al. 2024, §3). Candidates are rounded to
``decimals`` decimals (0: integers), which makes the search space a grid whose best point is the
*optimum* reported (and, by default, the point where the run stops).

Also here: :func:`random_search`, the baseline a benchmark compares OPRO against with the same
number of loss evaluations.
"""

from __future__ import annotations

import math
import random
import re
from collections.abc import Sequence
from typing import Any

import numpy as np

from promptopt.errors import ConfigError
from promptopt.llm.base import Constraint
from promptopt.tasks.base import Candidate, ProposalShape, Rejected, Scored, TaskDescription

_NUM = r"[-+]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][-+]?\d+)?"
_PAIR_RE = re.compile(rf"^\s*(?:w\s*[=:]\s*)?({_NUM})\s*,\s*(?:b\s*[=:]\s*)?({_NUM})\s*$", re.I)
_BRACKETS_RE = re.compile(r"\[([^\[\]]*)\]")
# "w=15, b=14" (the entries' own format), "w: 15, b: 14", {"w": 15, "b": 14}, one per line
_LABELLED_RE = re.compile(
    rf"\bw[\"']?[ \t]*[=:]\s*({_NUM})[ \t]*(?:,\s*|\n\s*)[\"']?b[\"']?[ \t]*[=:]\s*({_NUM})", re.I
)
MAX_ABS = 1e6  # a pair beyond this is not a serious proposal (and would overflow the display)

PROBLEM = (
    "Now you will help me minimize a function with two input variables w, b. I have some (w, b) "
    "pairs and the function values at those points. The pairs are arranged in descending order "
    "based on their function values, where lower values are better."
)
OUTPUT_FORMAT = (
    "Give me a new (w, b) pair that is different from all pairs above, and has a function value "
    "lower than any of the above. Do not write code. The output must end with a pair [w, b], where "
    "w and b are numerical values."
)
#: The output-format sentence under constrained decoding: the pair and nothing else.
CONSTRAINED_OUTPUT_FORMAT = (
    "Give me a new (w, b) pair that is different from all pairs above, and has a function value "
    "lower than any of the above. Output only the pair as [w, b], where w and b are {kind}."
)
_DIGITS = 6  # at most 6 integer digits: every value the grammar allows is below MAX_ABS


def _fmt(v: float, decimals: int) -> str:
    return str(int(round(v))) if decimals <= 0 else f"{v:.{decimals}f}"


class LinearRegressionTask:
    """The task object (see :mod:`promptopt.tasks.base` for the contract)."""

    name = "linear-regression"
    direction = "min"
    #: the reference's settings (opro/optimization/optimize_linear_regression.py: max_num_steps =
    #: 500, max_num_pairs = 20, num_generated_points_in_each_step = 8); OPRO uses them where the
    #: caller gives none
    opro_defaults: dict[str, Any] = {"steps": 500, "top_k": 20, "per_step": 8, "num_exemplars": 0}

    def __init__(
        self,
        w_true: float = 15.0,
        b_true: float = 14.0,
        num_points: int = 50,
        num_starting: int = 5,
        start_low: int = 10,
        start_high: int = 20,
        decimals: int = 0,
        score_decimals: int = 0,
        seed: int = 0,
    ) -> None:
        if num_points < 2:
            raise ConfigError(f"num_points must be >= 2, got {num_points}")
        if num_starting < 1:
            raise ConfigError(f"num_starting must be >= 1, got {num_starting}")
        if start_low > start_high:
            raise ConfigError(f"start_low ({start_low}) must be <= start_high ({start_high})")
        if not (0 <= decimals <= 12 and 0 <= score_decimals <= 12):  # a float has ~15 significant digits
            raise ConfigError(
                f"decimals and score_decimals must be between 0 and 12, got {decimals}, {score_decimals}"
            )
        self.w_true, self.b_true = float(w_true), float(b_true)
        self.num_points, self.num_starting = int(num_points), int(num_starting)
        self.start_low, self.start_high = int(start_low), int(start_high)
        self.decimals, self.score_decimals, self.seed = int(decimals), int(score_decimals), int(seed)
        self.x = np.arange(1, self.num_points + 1, dtype=float)
        noise = np.random.default_rng(self.seed).standard_normal(self.num_points)
        self.y = self.w_true * self.x + self.b_true + noise
        self._optimum: tuple[float, float, float] | None = None

    # -- the objective
    def loss(self, w: float, b: float) -> float:
        """Sum of squared residuals."""
        r = self.y - (self.x * w + b)
        return float(r @ r)

    def least_squares(self) -> tuple[float, float]:
        w, b = np.polyfit(self.x, self.y, 1)
        return float(w), float(b)

    def optimum_pair(self) -> tuple[float, float, float]:
        """(w, b, loss) of the best point on the candidate grid (rounded to ``decimals``).

        For a fixed w the loss is a parabola in b, so the best grid b is next to the continuous
        one; w is scanned in a window around the least-squares w, wide enough for this problem.
        """
        if self._optimum is None:
            step = 10.0**-self.decimals
            w0, _ = self.least_squares()
            best = (math.nan, math.nan, math.inf)
            for k in range(-20, 21):
                w = round(round(w0 / step) * step + k * step, self.decimals)
                b_cont = float(np.mean(self.y - w * self.x))
                for b in (math.floor(b_cont / step) * step, math.ceil(b_cont / step) * step):
                    b = round(b, self.decimals)
                    v = self.loss(w, b)
                    if v < best[2]:
                        best = (w, b, v)
            self._optimum = best
        return self._optimum

    @property
    def optimum(self) -> float:
        """The best loss reachable on the grid; OPRO can stop when it gets there."""
        return self.optimum_pair()[2]

    # -- the Task contract
    def describe(self) -> TaskDescription:
        return TaskDescription(
            problem=PROBLEM,
            solution_name="(w, b) pair",
            score_name="function value",
            output_format=OUTPUT_FORMAT,
            entry_template="input:\n{text}\nvalue:\n{score}",
        )

    def proposal_shape(self) -> ProposalShape:
        """``[w, b]`` and nothing else: integers (at most 6 digits) or, with ``decimals``, numbers
        with at most that many decimals; also as a JSON schema (a 2-item array), which
        :meth:`parse` reads as well. Range and finiteness are still checked by :meth:`parse`."""
        frac_gbnf = f' ("." [0-9]{{1,{self.decimals}}})?' if self.decimals else ""
        frac_regex = rf"(?:\.[0-9]{{1,{self.decimals}}})?" if self.decimals else ""
        num_regex = rf"-?[0-9]{{1,{_DIGITS}}}{frac_regex}"
        gbnf = f'root ::= "[" num ", " num "]"\nnum ::= "-"? [0-9]{{1,{_DIGITS}}}{frac_gbnf}\n'
        item = {"type": "integer"} if self.decimals == 0 else {"type": "number"}
        schema = {"type": "array", "items": item, "minItems": 2, "maxItems": 2}
        kind = "integers" if self.decimals == 0 else f"numbers with at most {self.decimals} decimals"
        return ProposalShape(
            Constraint(gbnf=gbnf, json_schema=schema, pattern=rf"\[{num_regex}, {num_regex}\]"),
            CONSTRAINED_OUTPUT_FORMAT.format(kind=kind),
        )

    def candidate(self, w: float, b: float) -> Candidate:
        # + 0.0: a value rounding to -0.0 would read "w=-0.0" and never dedupe against "w=0.0"
        w, b = round(float(w), self.decimals) + 0.0, round(float(b), self.decimals) + 0.0
        if self.decimals == 0:
            w, b = float(int(w)), float(int(b))
        return Candidate(f"w={_fmt(w, self.decimals)}, b={_fmt(b, self.decimals)}", (w, b))

    def initial_candidates(self, rng: random.Random) -> list[Candidate]:
        """``num_starting`` distinct random integer pairs in the starting box."""
        box = (self.start_high - self.start_low + 1) ** 2
        want = min(self.num_starting, box)
        seen: list[tuple[int, int]] = []
        while len(seen) < want:
            pair = (
                rng.randint(self.start_low, self.start_high),
                rng.randint(self.start_low, self.start_high),
            )
            if pair not in seen:
                seen.append(pair)
        return [self.candidate(w, b) for w, b in seen]

    def parse(self, text: str) -> Candidate | Rejected:
        """The last ``[w, b]`` in the text (``[w=1, b=2]`` too); bracketed text like ``[w, b]``
        that holds no numbers is skipped, as in the reference implementation. Without any
        bracketed pair, the last explicitly labelled ``w=1, b=2`` is taken: small models often
        answer in the format of the meta-prompt's own entries, or paraphrase it as ``w: 1, b: 2``,
        one per line or as a JSON object ``{"w": 1, "b": 2}`` (in that order)."""
        text = text or ""
        for inner in reversed(_BRACKETS_RE.findall(text)):
            m = _PAIR_RE.match(inner)
            if m:
                return self._checked(m.group(1), m.group(2), f"[{inner.strip()}]")
        labelled = _LABELLED_RE.findall(text)
        if labelled:
            w, b = labelled[-1]
            return self._checked(w, b, f"w={w}, b={b}")
        return Rejected("unparseable", "no [w, b] pair in the output")

    def _checked(self, w_text: str, b_text: str, shown: str) -> Candidate | Rejected:
        w, b = float(w_text), float(b_text)
        if not (math.isfinite(w) and math.isfinite(b)):
            return Rejected("invalid", f"non-finite pair {shown}")
        if abs(w) > MAX_ABS or abs(b) > MAX_ABS:
            return Rejected("invalid", f"pair {shown} is out of range (|value| > {MAX_ABS:g})")
        return self.candidate(w, b)

    async def ascore(self, candidates: Sequence[Candidate]) -> list[Scored]:
        out = []
        for c in candidates:
            w, b = c.value
            out.append(Scored(self.loss(w, b), info={"w": w, "b": b}))
        return out

    def format_score(self, score: float) -> str:
        return _fmt(score, self.score_decimals)

    def exemplars(self, rng: random.Random, k: int) -> list[str]:
        return []

    def final_report(self, best: Candidate, ranked: Sequence[tuple[Candidate, float]] = ()) -> dict[str, Any]:
        ow, ob, oloss = self.optimum_pair()
        lw, lb = self.least_squares()
        w, b = best.value
        return {
            "w_true": self.w_true,
            "b_true": self.b_true,
            "loss_at_true": self.loss(self.w_true, self.b_true),
            "least_squares": {"w": lw, "b": lb, "loss": self.loss(lw, lb)},
            "optimum": {"w": ow, "b": ob, "loss": oloss},
            "best": {"w": w, "b": b, "loss": self.loss(w, b)},
            "reached_optimum": self.loss(w, b) <= oloss + 1e-9,
        }

    def config(self) -> dict[str, Any]:
        return {
            "w_true": self.w_true,
            "b_true": self.b_true,
            "num_points": self.num_points,
            "num_starting": self.num_starting,
            "start_low": self.start_low,
            "start_high": self.start_high,
            "decimals": self.decimals,
            "score_decimals": self.score_decimals,
            "seed": self.seed,
        }

    # -- report hooks (see promptopt.tasks.base): called on the class, from a run's files only
    @staticmethod
    def summary(report: dict[str, Any]) -> list[str]:
        from promptopt.tasks.base import short_number as n

        b, o = report["best"], report["optimum"]
        return [
            f"best pair: [{n(b['w'])}, {n(b['b'])}]  loss {b['loss']:.2f}",
            f"optimum on the grid: [{n(o['w'])}, {n(o['b'])}]  loss {o['loss']:.2f}"
            f"  (true w, b = {n(report['w_true'])}, {n(report['b_true'])})",
            f"reached the optimum: {'yes' if report['reached_optimum'] else 'no'}",
        ]

    @staticmethod
    def report_section(report: dict[str, Any], search: dict[str, Any]) -> list[str]:
        from promptopt.tasks.base import number as n

        b, o, ls = report["best"], report["optimum"], report["least_squares"]
        return [
            f"True (w, b) = ({n(report['w_true'])}, {n(report['b_true'])}); loss there {report['loss_at_true']:.2f}.",
            "",
            "| | w | b | loss |",
            "|---|---|---|---|",
            f"| OPRO best | {n(b['w'])} | {n(b['b'])} | {b['loss']:.2f} |",
            f"| grid optimum | {n(o['w'])} | {n(o['b'])} | {o['loss']:.2f} |",
            f"| least squares (continuous) | {ls['w']:.3f} | {ls['b']:.3f} | {ls['loss']:.2f} |",
            "",
            f"Steps to reach the optimum: {n(search.get('steps_to_optimum'))}; "
            f"unique pairs explored (incl. the starting ones): {n(search.get('unique_scored'))}.",
        ]

    @staticmethod
    def plots(history: Sequence[Any], report: dict[str, Any], out_dir: Any) -> list[tuple[str, Any]]:
        """Every (w, b) explored coloured by step, the best-so-far path, the true pair and the
        grid optimum (those two only once the run has a final report)."""
        from promptopt.tasks.base import pyplot

        pts = [(t.step, t.info["w"], t.info["b"], t.score) for t in history
               if t.score is not None and "w" in t.info and "b" in t.info]  # fmt: skip
        if not pts:
            return []
        plt = pyplot()
        fig, ax = plt.subplots(figsize=(6.5, 5))
        sc = ax.scatter(
            [p[1] for p in pts], [p[2] for p in pts], c=[p[0] for p in pts], cmap="viridis", s=22, alpha=0.8
        )
        fig.colorbar(sc, ax=ax, label="step")
        path_wb: list[tuple[float, float]] = []  # the best pair at the end of each step
        best: tuple[float, float, float] | None = None
        for step in sorted({p[0] for p in pts}):
            for _, w, b, s in (p for p in pts if p[0] == step):
                if best is None or s < best[2]:
                    best = (w, b, s)
            if best is not None and (not path_wb or path_wb[-1] != best[:2]):
                path_wb.append(best[:2])
        ax.plot(
            [p[0] for p in path_wb],
            [p[1] for p in path_wb],
            "-o",
            color="C3",
            ms=4,
            lw=1.5,
            label="best-so-far path",
        )
        if report:
            ax.scatter([report["w_true"]], [report["b_true"]], marker="*", s=220, color="gold", edgecolor="k",
                       zorder=4, label="true (w, b)")  # fmt: skip
            o = report.get("optimum", {})
            if o:
                ax.scatter([o["w"]], [o["b"]], marker="x", s=90, color="k", zorder=5, label="grid optimum")
        ax.set_xlabel("w")
        ax.set_ylabel("b")
        ax.set_title("Linear regression: (w, b) explored")
        ax.legend(fontsize=8)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        path = out_dir / "linreg_path.png"
        fig.savefig(path, dpi=110)
        plt.close(fig)
        return [("Path through (w, b)", path)]


def random_search(
    task: LinearRegressionTask,
    evaluations: int,
    *,
    seed: int = 0,
    low: int | None = None,
    high: int | None = None,
) -> dict[str, Any]:
    """The baseline: ``evaluations`` distinct integer pairs drawn uniformly from [low, high]²
    (default: the task's starting box, i.e. the same prior knowledge OPRO starts from).

    Returns the best pair, its loss, and whether it is the grid optimum.
    """
    lo = task.start_low if low is None else int(low)
    hi = task.start_high if high is None else int(high)
    if lo > hi:
        raise ConfigError(f"low ({lo}) must be <= high ({hi})")
    rng = random.Random(seed)
    box = (hi - lo + 1) ** 2
    n = min(max(int(evaluations), 0), box)
    seen: set[tuple[int, int]] = set()
    best = (math.nan, math.nan, math.inf)
    while len(seen) < n:
        pair = (rng.randint(lo, hi), rng.randint(lo, hi))
        if pair in seen:
            continue
        seen.add(pair)
        v = task.loss(*pair)
        if v < best[2]:
            best = (float(pair[0]), float(pair[1]), v)
    return {
        "evaluations": n,
        "box": [lo, hi],
        "best": {"w": best[0], "b": best[1], "loss": best[2]},
        "reached_optimum": best[2] <= task.optimum + 1e-9,
    }
