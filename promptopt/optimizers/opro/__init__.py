"""OPRO (Yang et al. 2024): the optimizer, its loop, journal replay, meta-prompt and report."""
