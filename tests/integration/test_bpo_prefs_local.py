"""bpo build-prefs with a real embedded target (SmolLM2-135M) and a real tiny rewriter.

The contract, not quality: a real Rewriter samples distinct rewrites through the hf backend, the
embedded model answers each, every prompt is decided, kept rows are (prompt, chosen, rejected)
that ``bpo train --method dpo`` reads, and a rerun does no work. The ranking is a deterministic
length rubric so that rows come out whatever a 135M model would say as a judge.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path

import pytest

pytest.importorskip("torch")

from promptopt.llm.factory import build_llm  # noqa: E402
from promptopt.optimizers.bpo.preference import PrefConfig, build_preferences  # noqa: E402
from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings  # noqa: E402
from promptopt.optimizers.bpo.templates import RewriterConfig  # noqa: E402
from promptopt.optimizers.bpo.train_pref import load_preferences  # noqa: E402
from promptopt.testing import tiny_qwen2  # noqa: E402

pytestmark = [pytest.mark.integration, pytest.mark.usefixtures("one_torch_thread")]
PROMPTS = ["Name a color.", "Say hi."]


class LengthRubric:
    name = "length"

    async def ascore(self, prompts: Sequence[str], answers: Sequence[str]) -> list[float | None]:
        return [float(len(a)) for a in answers]


def test_embedded_target_yields_preference_rows(tmp_path: Path) -> None:
    base = tiny_qwen2(
        tmp_path / "rw", [*PROMPTS, "Improve:\n"], hidden_size=32, num_hidden_layers=1,
        num_attention_heads=2, num_key_value_heads=1, max_position_embeddings=128,
    )  # fmt: skip
    RewriterConfig(family="causal", template="Improve:\n{}\n", max_length=64).save(base)
    rw = Rewriter.load(base, "cpu", backend="transformers")
    target = build_llm("local:smollm2-135m", n_ctx=1024, n_threads=1)
    cfg = PrefConfig(rewrite=RewriteSettings(n=2, max_new_tokens=6), answer_max_tokens=12)
    out = tmp_path / "prefs.jsonl"
    try:
        report = build_preferences(PROMPTS, rw, target, LengthRubric(), out, config=cfg)
        assert report.total == len(PROMPTS) and report.processed == len(PROMPTS)
        assert report.kept >= 1, report.dropped
        again = build_preferences(PROMPTS, rw, target, LengthRubric(), out, config=cfg)
        assert (again.processed, again.resumed) == (0, len(PROMPTS))
    finally:
        target.close()  # type: ignore[attr-defined]
        rw.close()
    prefs = load_preferences(out)
    assert len(prefs) == report.kept and all(p.chosen != p.rejected for p in prefs)
