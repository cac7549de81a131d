"""Reflective proposals (GEPA, Agrawal et al. 2025): a child instruction written by the optimizer LLM
after reading its parent's answers and the metric's feedback on a training minibatch, kept when it
beats the parent there, and pooled by the validation examples it is best on.

The optimizer is :class:`~promptopt.optimizers.reflective.optimizer.Reflective` (also
``OPRO(proposer="reflective")``, ``opro run --proposer reflective``); the modules: :mod:`.pareto`
(the pool and parent selection), :mod:`.minibatch` (which training examples each iteration reads),
:mod:`.reflection` (the prompt and parsing its answer), :mod:`.journal` (records and replay),
:mod:`.loop` (one run). Nothing is imported here, so the OPRO optimizer can import the loop without
a cycle.
"""
