"""Slow literal reference for ``hierstudy.embeddings`` (used by its tests and its benchmark):
``algorithm1_literal`` transcribes Algorithm 1 of Barz & Denzler (WACV 2019) line by line."""

from __future__ import annotations

import numpy as np


def algorithm1_literal(similarity: np.ndarray) -> np.ndarray:
    """Algorithm 1 (Sec. 3.2), row by row: φ(c_1) = e_1; for i = 2..n solve eq. (5) by forward
    substitution, then coordinate i by eq. (6) with the non-negative root. [n, n] → [n, n].

    A non positive definite S makes eq. (6) the root of a negative number: NaN rows.
    """
    s = np.asarray(similarity, dtype=np.float64)
    n = s.shape[0]
    phi = np.zeros((n, n))
    phi[0, 0] = 1.0  # line 1
    for i in range(1, n):  # line 2
        for j in range(i):  # line 3, eq. (5): φ(c_j)ᵀφ(c_i) = s(c_j, c_i); φ(c_j) ends at j
            phi[i, j] = (s[j, i] - phi[j, :j] @ phi[i, :j]) / phi[j, j]
        phi[i, i] = np.sqrt(1.0 - phi[i, :i] @ phi[i, :i])  # line 4, eq. (6)
    return phi  # line 5 pads with zeros: phi is lower-triangular
