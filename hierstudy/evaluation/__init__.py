"""Evaluation: retrieval and re-ranking of finished runs, per-run results, the headline."""
