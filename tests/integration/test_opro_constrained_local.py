"""Constrained proposals with the real embedded model (issue 10): llama.cpp decodes OPRO's
linear-regression proposals under the task's GBNF grammar, and every proposal parses; the other
built-in tasks' grammars compile against the model's vocabulary. Short: one step, four proposals."""

from __future__ import annotations

import json
import re
from collections.abc import Iterator
from pathlib import Path

import pytest

from promptopt import OPRO
from promptopt.llm.base import Constraint, LLMBadRequestError, Request, run_sync
from promptopt.llm.local import LlamaCppLLM
from promptopt.llm.registry import create_backend
from promptopt.paths import models_dir
from promptopt.tasks.base import proposal_shape
from promptopt.tasks.linear_regression import LinearRegressionTask
from promptopt.tasks.tsp import TSPTask

pytestmark = pytest.mark.integration


@pytest.fixture(scope="module")
def local_llm() -> Iterator[LlamaCppLLM]:
    llm = create_backend("local", cache_dir=models_dir(), n_ctx=1024, n_threads=1)
    assert isinstance(llm, LlamaCppLLM)
    yield llm
    llm.close()


def test_constrained_linear_regression_proposals_all_parse(local_llm: LlamaCppLLM, tmp_path: Path) -> None:
    task = LinearRegressionTask()
    shape = proposal_shape(task)
    assert shape is not None
    opro = OPRO(steps=1, per_step=4, max_tokens=16, seed=0, stop_at_optimum=False)
    result = opro.optimize(task, llm=local_llm, run=tmp_path / "run")
    search = result.report["search"]
    assert search["proposals"] == 4
    assert search["unparseable_fraction"] == 0.0 and search["invalid_fraction"] == 0.0
    proposals = [t for t in result.history if t.step == 1]
    assert all(re.fullmatch(shape.constraint.pattern or "", t.raw or "") for t in proposals), proposals
    config = json.loads((tmp_path / "run" / "config.json").read_text())
    assert config["structured_output"] == "gbnf"


def test_task_grammars_compile_and_a_bad_one_is_refused(local_llm: LlamaCppLLM) -> None:
    from promptopt.tasks.shapes import bounded_text, grammar, literal

    instruction = Constraint(gbnf=grammar(f'{literal("<INS>").gbnf} {bounded_text("<", 500).gbnf} "</INS>"'))
    for c in (proposal_shape(TSPTask(n=50)).constraint, instruction):  # type: ignore[union-attr]
        assert run_sync(local_llm._worker.run(local_llm._grammar, c)) is not None
    # llama.cpp would skip a grammar it cannot parse and answer free text: refused instead
    with pytest.raises(LLMBadRequestError, match="rejected"):
        local_llm.generate(
            [Request.chat("x", max_tokens=2, constraint=Constraint(gbnf="root ::= undefined"))]
        )
