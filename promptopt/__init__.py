"""promptopt: align LLMs without touching their weights (BPO and OPRO behind one interface).

The public API, re-exported here (nothing heavy is imported: torch and transformers load only
when a rewriter is trained or loaded, llama.cpp only when the embedded model is first called).
"""

__version__ = "0.1.0"

from promptopt.aligned import AlignedLLM  # noqa: E402
from promptopt.errors import PromptoptError  # noqa: E402
from promptopt.evaluators.metrics.base import Metric, MetricItem, Score  # noqa: E402
from promptopt.llm.base import LLM, Completion, LLMError, Message, Request  # noqa: E402
from promptopt.llm.budget import Budget  # noqa: E402
from promptopt.llm.factory import build_llm  # noqa: E402
from promptopt.optimizers.base import Optimizer, Result, Trial  # noqa: E402
from promptopt.optimizers.bpo.optimizer import BPO  # noqa: E402
from promptopt.optimizers.bpo.rewriter import Rewriter, RewriteSettings  # noqa: E402
from promptopt.optimizers.opro.optimizer import OPRO  # noqa: E402
from promptopt.optimizers.reflective.optimizer import Reflective  # noqa: E402
from promptopt.runs import Run  # noqa: E402
from promptopt.tasks.base import Task, make_task  # noqa: E402

__all__ = [
    "BPO",
    "LLM",
    "OPRO",
    "AlignedLLM",
    "Budget",
    "Completion",
    "LLMError",
    "Message",
    "Metric",
    "MetricItem",
    "Optimizer",
    "PromptoptError",
    "Reflective",
    "Request",
    "Result",
    "RewriteSettings",
    "Rewriter",
    "Run",
    "Score",
    "Task",
    "Trial",
    "build_llm",
    "make_task",
]
