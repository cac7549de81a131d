"""Few-shot demonstrations for the deployed prompt, searched with the instruction (MIPROv2-style).

:mod:`.bootstrap` builds candidate demo sets from the target's own right training answers and
from labelled data; :mod:`.search` picks an (instruction, demo set) with Optuna's TPE sampler on
training minibatches and full validation evaluations; :mod:`.choice` holds the result and the
events that make the search resumable. Optuna is the ``demos`` extra, imported only when a search
starts.
"""

from promptopt.optimizers.demos.bootstrap import Bootstrap, DemoSet, abootstrap, build_demo_sets
from promptopt.optimizers.demos.choice import DemoChoice
from promptopt.optimizers.demos.search import asearch_demos

__all__ = ["Bootstrap", "DemoChoice", "DemoSet", "abootstrap", "asearch_demos", "build_demo_sets"]
