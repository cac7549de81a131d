"""promptopt: align LLMs without touching their weights (BPO and OPRO behind one interface)."""

__version__ = "0.1.0"

from promptopt.aligned import AlignedLLM as AlignedLLM  # noqa: E402
from promptopt.optimizers.bpo import BPO as BPO  # noqa: E402
from promptopt.optimizers.bpo_rewriter import Rewriter as Rewriter  # noqa: E402
from promptopt.optimizers.opro import OPRO as OPRO  # noqa: E402
