"""The ``ifbench`` task: instruction search scored by IFBench's verifiable constraints.

:mod:`.data` finds the data (IFBench's test prompts, the base prompts of training), :mod:`.compose`
builds the training prompts, :mod:`.task` builds the task (``create``, registered as ``ifbench``).
Nothing is imported here, so importing the package loads no data module.
"""
