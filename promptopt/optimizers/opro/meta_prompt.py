"""OPRO's meta-prompt: the task's text plus the best past solutions, worst first and best last.

Kept apart from the loop so that the exact text is a pure function of (task description, history,
exemplars) and can be tested to the character. Why best last: the paper found that LLMs continue
the trend of the list, so the most promising solutions sit right before the request.
"""

from __future__ import annotations

import re
import unicodedata
from collections.abc import Callable, Sequence
from dataclasses import dataclass

from promptopt.tasks.base import Direction, TaskDescription

_WS_RE = re.compile(r"\s+")


def normalise_proposal(text: str) -> str:
    """The dedupe key of a solution's text: NFKC-normalised, case-folded, whitespace collapsed.

    Why NFKC + casefold: model output in any script may differ only by compatibility forms
    (full-width digits, ligatures) or case, which should not count as a new solution.
    """
    return _WS_RE.sub(" ", unicodedata.normalize("NFKC", text).casefold()).strip()


@dataclass(frozen=True)
class PastSolution:
    """A scored solution as the meta-prompt sees it. ``order`` is when it was first found."""

    text: str
    score: float
    order: int


def top_k(solutions: Sequence[PastSolution], direction: Direction, k: int) -> list[PastSolution]:
    """The ``k`` best solutions, sorted from worst to best (best last).

    Ties keep discovery order (earlier first), so the meta-prompt is deterministic.
    """
    sign = 1.0 if direction == "max" else -1.0
    ranked = sorted(solutions, key=lambda s: (sign * s.score, s.order))
    return ranked[-k:] if k > 0 else []


def build_meta_prompt(
    desc: TaskDescription,
    entries: Sequence[PastSolution],
    format_score: Callable[[float], str],
    exemplars: Sequence[str] = (),
) -> str:
    """Assemble the meta-prompt (layout documented on :class:`TaskDescription`).

    ``entries`` must already be selected and ordered (see :func:`top_k`).
    """
    parts = [desc.problem.strip()]
    if entries:
        parts.append(
            "\n\n".join(
                desc.entry_template.format(
                    text=e.text,
                    score=format_score(e.score),
                    solution_name=desc.solution_name,
                    score_name=desc.score_name,
                ).strip()
                for e in entries
            )
        )
    shown = [x.strip() for x in exemplars if x.strip()]
    if shown:
        block = "\n\n".join(shown)
        intro = desc.exemplars_intro.strip()
        parts.append(f"{intro}\n\n{block}" if intro else block)
    closing = " ".join(p.strip() for p in (desc.output_format, desc.instruction_suffix) if p.strip())
    parts.append(closing)
    return "\n\n".join(p for p in parts if p)
