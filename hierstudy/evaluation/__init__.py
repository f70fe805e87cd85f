"""What the study measures: classification and retrieval metrics (:mod:`.metrics`) and the
weakly-supervised localisation scores of class activation maps (:mod:`.localisation`)."""
