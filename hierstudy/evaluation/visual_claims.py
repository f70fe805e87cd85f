"""What Venkataramanan et al. (ICVS 2023) claim, measured on one classifier run: the rankings of
Fig. 2 (Sec. 4.4), the agreement of the visual hierarchy and Ward's tree with the semantic
taxonomy (Sec. 4.4, "Effect of hierarchy") and the rankings under corruptions (Fig. 3).

:func:`evaluate` fits the visual hierarchy on the run's training features (both covariance
conventions, :class:`~hierstudy.evaluation.rerank.VisualReranker`), ranks its test images every
way Fig. 2 compares, compares the trees (``compare.agreement``) and runs
:func:`~hierstudy.evaluation.robustness.robustness`; :func:`records` gives the per-run results the
claims ledger pairs by seed (``visual_retrieval``, ``visual_robustness``, ``visual_agreement``).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd

from hierstudy import runs
from hierstudy.config import Profile
from hierstudy.evaluation import rerank
from hierstudy.evaluation.robustness import Robustness, robustness
from hierstudy.hierarchy import Hierarchy, compare

COVARIANCES = ("class", "pooled")  # the paper's per-class Σ_c; the authors' code's pooled Σ
CURVES = ("map_at_k", "map_at_k_divk")  # the mAP@k curves, left out of the stored results


@dataclass(frozen=True)
class VisualClaims:
    """What :func:`evaluate` measured on one run.

    Attributes:
        run: the classifier.
        fits: {covariance: the re-ranker fitted on its training features at t}, chosen first.
        scores: the measures of Fig. 2 for its test labels (``rerank.RetrievalScores``).
        retrieval: one row per ranking of the clean test images (``RetrievalScores.rows``).
        agreement: one row per pair of trees, ``compare.agreement``'s columns and "pair".
        robust: :func:`~hierstudy.evaluation.robustness.robustness` (Fig. 3).
    """

    run: runs.Run
    fits: dict[str, rerank.VisualReranker]
    scores: rerank.RetrievalScores
    retrieval: pd.DataFrame
    agreement: pd.DataFrame
    robust: Robustness


def evaluate(
    profile: Profile,
    run: runs.Run,
    semantic: Hierarchy,
    *,
    threshold: float,
    alpha: float,
    covariance: str = "class",
    variance: float = 0.95,
    k_max: int = 20,
    corruptions=("blur", "saturation", "occlusion"),
    retrained: bool = False,
    force: bool = False,
) -> VisualClaims:
    """Fig. 2, the trees' agreement and Fig. 3 for ``run`` (its classes: ``semantic.classes``).

    The rankings: Euclidean and cosine (baselines (i), (ii)), D_H of the visual hierarchy alone
    (iii), eq. 6 with the visual hierarchy, the semantic taxonomy (vii) and Ward's tree (vi), and
    eq. 6 with the visual hierarchy of the other ``covariance`` convention. ``retrained`` and
    ``force``: as in :func:`~hierstudy.evaluation.robustness.robustness`.
    """
    other = COVARIANCES[1 - COVARIANCES.index(covariance)]
    train, test = run.features("train"), run.features("test")
    fits = {
        c: rerank.VisualReranker(threshold, covariance=c, variance=variance).fit(
            train["features"], train["labels"], semantic.classes
        )
        for c in (covariance, other)
    }
    chosen, beside = fits[covariance], fits[other]
    scores = rerank.RetrievalScores.of(test["labels"], semantic, k_max)
    variants = {  # name -> (tree, α, distance)
        "Euclidean": ("none", 0.0, "euclidean"),
        "cosine": ("none", 0.0, "cosine"),
        "D_H only (visual)": ("visual", None, chosen.hierarchical_distance()),
        **rerank.rankings(chosen, alpha, semantic),
        f"cosine + α·D_H (visual, {other} Σ)": (
            f"visual ({other} Σ)",
            alpha,
            beside.distance(alpha),
        ),
    }
    features = test["features"].astype(np.float64)  # α = 0 then reproduces cosine's order exactly
    retrieval = pd.DataFrame(scores.rows(features, variants, corruption="none"))
    visual, ward = chosen.visual.hierarchy, chosen.ward()
    pairs = {
        "visual vs semantic": (visual, semantic),
        f"visual ({other} Σ) vs semantic": (beside.visual.hierarchy, semantic),
        "Ward vs semantic": (ward, semantic),
        "visual vs Ward": (visual, ward),
        "semantic vs semantic (check)": (semantic, semantic),
    }
    agreement = pd.DataFrame(
        [{"pair": k, **compare.agreement(a, b)} for k, (a, b) in pairs.items()]
    )
    robust = robustness(
        profile, run, corruptions, chosen, scores, alpha, retrained=retrained, force=force
    )
    return VisualClaims(run, fits, scores, retrieval, agreement, robust)


def records(claims: VisualClaims) -> dict[str, dict]:
    """{result name: record} to store beside the run (``results.save_run_result``): the retrieval
    and robustness rows without their curves, with "mAP@k" at the largest k ("k"), and the
    agreement rows."""
    k = claims.scores.map_ks[-1]

    def rows(table: pd.DataFrame) -> dict:
        table = table.drop(columns=list(CURVES)).assign(**{"mAP@k": table[f"mAP@{k}"]})
        return {"k": k, "rows": table.to_dict("records")}

    return {
        "visual_retrieval": rows(claims.retrieval),
        "visual_robustness": rows(claims.robust.table),
        "visual_agreement": {"rows": claims.agreement.to_dict("records")},
    }


AGREEMENT = "triplet agreement (resolved in either)"  # the ledger's (vh_meaningful)
RANKED = ("cosine", "cosine + α·D_H (visual)")  # the rankings the robustness claim compares


def key_numbers(claims: VisualClaims) -> list[dict]:
    """One seed's numbers the claims rest on, as {"measure", "value"} rows: mAP@k at the largest k
    of each clean ranking, of cosine and the visual ranking under each corruption, and the
    triplet agreement of the visual hierarchy and of Ward's tree with the taxonomy."""
    top = f"mAP@{claims.scores.map_ks[-1]}"
    table = claims.robust.table
    hit = table[(table.corruption != "none") & table.variant.isin(RANKED)]
    agree = claims.agreement[claims.agreement.pair.isin(["visual vs semantic", "Ward vs semantic"])]
    return (
        [
            {"measure": f"{top}, {r.variant}", "value": r[top]}
            for _, r in claims.retrieval.iterrows()
        ]
        + [
            {"measure": f"{top}, {r.corruption}, {r.variant}", "value": r[top]}
            for _, r in hit.iterrows()
        ]
        + [
            {"measure": f"{AGREEMENT}, {r.pair}", "value": r[AGREEMENT]}
            for _, r in agree.iterrows()
        ]
    )
