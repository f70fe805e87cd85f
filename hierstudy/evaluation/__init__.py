"""What the study measures: classification and retrieval metrics (:mod:`.metrics`), the
weakly-supervised localisation scores of class activation maps (:mod:`.localisation`), the
retrieval and re-ranking of finished runs (:mod:`.retrieval`, :mod:`.rerank`) and the per-run
results store (:mod:`.results`)."""
