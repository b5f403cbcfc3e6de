"""Evaluation: metrics, plots, label mappings, and the zero-shot / retrieval / scene runs."""
