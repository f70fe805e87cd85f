"""Training objectives beside cross-entropy: KFR, Barz & Denzler's L_CORR, HIER (docs/papers.md)."""
