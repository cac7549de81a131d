"""BPO (Cheng et al. 2024): pair sources, rewrite-data construction, rewriter training and rewriting."""
