"""Instruction search on a dataset: the task and the dataset loaders it scores on."""
