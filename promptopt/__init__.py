"""promptopt: align LLMs without touching their weights (BPO and OPRO behind one interface)."""

__version__ = "0.1.0"

from promptopt.optimizers.opro import OPRO as OPRO  # noqa: E402
