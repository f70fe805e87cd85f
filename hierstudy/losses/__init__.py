"""Training objectives added to cross-entropy (KFR, Barz L_CORR, HIER)."""
