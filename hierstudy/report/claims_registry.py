"""The papers' claims the study tests, as data: where each is made, what it says, the paper's own
number, and the comparisons that test it (a treatment, its fair control and the claimed direction).

Every side of a comparison names a result stored beside the runs (:mod:`hierstudy.evaluation
.results`): notebook 06's ``retrieval`` rows, 07's ``localisation``, 05's ``visual_retrieval``,
``visual_robustness`` and ``visual_agreement``, 08's ``proxy_tree``, 02's dataset-level
``exactness``, or ``record``, the run's own ``result.json`` (its accuracies). A fair control is
trained on the same data with the same backbone, schedule and budget, and ranked with a distance
of the same family; where the treatment's natural distance differs from the control's (L_CORR's
dot product on unit vectors against raw CE features ranked by Euclidean distance), the control is
also given under the treatment's distance (CE + L2 norm, cosine) and both rows are kept.
:mod:`.claims` turns them into verdicts.
"""

from __future__ import annotations

from dataclasses import dataclass, field

RECORD = "record"  # the run's own result.json (RunRecord): test_acc, val_acc_last5
# the run's per-epoch history (metrics.csv): "val_acc_second_half", the mean validation accuracy
# over the epochs of KFR's second phase (from epoch round(epochs / 2), when its term is on)
HISTORY = "history"


@dataclass(frozen=True)
class Side:
    """One side of a comparison: the value ``metric`` of the rows of result ``result`` of the run
    named ``run`` (its name without the paper prefix, e.g. ``kfr-alpha1``; None: a result of the
    dataset, not of a run) whose columns equal ``where``."""

    label: str
    result: str
    run: str | None
    metric: str
    where: dict = field(default_factory=dict)


@dataclass(frozen=True)
class Comparison:
    """``treatment − control`` on ``metric``, claimed ``direction`` ("higher" or "lower"). With a
    ``margin`` the claim is "not worse by more than margin" (a non-inferiority claim); ``log10``
    compares the sides' base-10 logarithms (rounding errors: decades)."""

    metric: str
    treatment: Side
    control: Side
    direction: str = "higher"
    margin: float = 0.0
    paper_number: str = "—"
    note: str = ""
    log10: bool = False


@dataclass(frozen=True)
class Claim:
    """One claim of a paper and the comparisons that test it, on the dataset the profile gives
    the paper's notebook (``dataset``: a key of ``Profile.datasets``) and runs trained with that
    paper's setup (``paper``; HierShapes runs have none); ``unit`` is what the pairs are matched
    on; ``untested``: {profile: why the claim cannot be tested there}."""

    id: str
    paper: str
    where: str
    text: str
    notebook: str  # the notebook that stores its results
    comparisons: tuple[Comparison, ...]
    dataset: str
    setup: str | None
    unit: str = "seed"
    untested: dict = field(default_factory=dict)


KFR = "KFR — Zhao et al. (2024)"
BARZ = "Barz & Denzler (WACV 2019)"
HIER = "HIER — Kim, Jeong, Kwak (CVPR 2023)"
VH = "Venkataramanan et al. (ICVS 2023)"
NO_NUMBER = "not in the paper's text"


def _record(label: str, run: str, metric: str = "val_acc_last5") -> Side:
    return Side(label, RECORD, run, metric)


def _retrieval(label: str, run: str, distance: str, metric: str) -> Side:
    """A row of notebook 06's central table: ``run`` ranked with ``distance``."""
    return Side(f"{label} ({distance})", "retrieval", run, metric, {"distance": distance})


CE_RAW = ("CE", "ce", "euclidean")  # classification features, as the authors' code ranks them
CE_L2 = ("CE + L2 norm", "ce", "cosine")
L_CORR = ("L_CORR", "corr", "dot")
L_CORR_CLS = ("L_CORR+CLS", "corr_cls", "dot")
DML = {  # notebook 03's Table II runs
    "triplet (L2)": "dml",
    "triplet (L1)": "dml-losstriplet_l1",
    "contrastive (L2)": "dml-losscontrastive_l2",
    "contrastive (L1)": "dml-losscontrastive_l1",
    "InfoNCE (supervised)": "dml-lossinfonce",
}
VISUAL = "cosine + α·D_H (visual)"


def _barz(metric: str, label: str, pairs, numbers) -> tuple[Comparison, ...]:
    return tuple(
        Comparison(label, _retrieval(*t, metric), _retrieval(*c, metric), paper_number=n)
        for (t, c), n in zip(pairs, numbers, strict=True)
    )


CLAIMS: tuple[Claim, ...] = (
    Claim(
        "kfr_accuracy",
        KFR,
        "Sec. IV-E.1, Table I",
        "CE + α·ℓ_qtr classifies more accurately than CE alone on small and medium datasets.",
        "03",
        (
            Comparison(
                "accuracy, mean of the last 5 epochs (validation)",
                _record("KFR (setup's α)", "kfr"),
                _record("CE", "ce"),
                paper_number="CIFAR / Mini-ImageNet values not in the text; ImageNet-1k 79.5 % "
                "vs 81.2 % (lower, as the paper says)",
            ),
            Comparison(
                "accuracy, mean over KFR's second phase (validation)",
                Side("KFR (setup's α)", HISTORY, "kfr", "val_acc_second_half"),
                Side("CE", HISTORY, "ce", "val_acc_second_half"),
                note="the epochs where ℓ_qtr is on; the last 5 of 8 include one CE-only epoch",
            ),
            Comparison(
                "test accuracy",
                _record("KFR (setup's α)", "kfr", "test_acc"),
                _record("CE", "ce", "test_acc"),
            ),
        ),
        "kfr",
        "kfr",
    ),
    Claim(
        "kfr_alpha_trend",
        KFR,
        "Sec. IV-E.2, Fig. 3",
        "Accuracy grows with α over 0, 1, 3, 10, 30 ('a strong positive correlation').",
        "03",
        (
            Comparison(
                "accuracy, mean of the last 5 epochs (validation)",
                _record("KFR (setup's α)", "kfr"),
                _record("KFR (α = 1)", "kfr-alpha1"),
                paper_number=NO_NUMBER + " (Fig. 3)",
            ),
            Comparison(
                "accuracy, mean of the last 5 epochs (validation)",
                _record("KFR (α = 1)", "kfr-alpha1"),
                _record("KFR (α = 0): CE, the same weights", "ce"),
                paper_number=NO_NUMBER + " (Fig. 3)",
            ),
        ),
        "kfr",
        "kfr",
    ),
    Claim(
        "kfr_vs_dml",
        KFR,
        "Sec. IV-E.4, Table II",
        "KFR classifies more accurately than CE plus a contrastive, triplet (L1, L2) or InfoNCE "
        "term (C²AM is not implemented here).",
        "03",
        tuple(
            Comparison(
                "accuracy, mean of the last 5 epochs (validation)",
                _record("KFR (setup's α)", "kfr"),
                _record(f"CE + {name}", run),
                paper_number=NO_NUMBER + " (Table II)",
            )
            for name, run in DML.items()
        ),
        "kfr",
        "kfr",
    ),
    Claim(
        "kfr_maxboxacc",
        KFR,
        "Sec. IV-E.1, Table I (WSOL)",
        "KFR 'tremendously' improves weakly-supervised localisation (MaxBoxAccV2 of Grad-CAM).",
        "07",
        (
            Comparison(
                "MaxBoxAccV2 (mean of δ = 30/50/70 %), Grad-CAM at the last block",
                Side("KFR (setup's α)", "localisation_last_block", "kfr", "maxboxacc_v2"),
                Side("CE", "localisation_last_block", "ce", "maxboxacc_v2"),
                paper_number="ImageNet-1k: 75.6 % vs 50.4 %",
                note="primary: KFR's own layer; KFR's classifier is less accurate, which also "
                "moves its maps",
            ),
            Comparison(
                "MaxBoxAccV2 (mean of δ = 30/50/70 %), Grad-CAM at notebook 07's finer layer",
                Side("KFR (setup's α)", "localisation", "kfr", "maxboxacc_v2"),
                Side("CE", "localisation", "ce", "maxboxacc_v2"),
                paper_number="ImageNet-1k: 75.6 % vs 50.4 %",
                note="secondary: the layer notebook 07 picks when the last block's map is coarse",
            ),
        ),
        "wsol",
        "kfr",
    ),
    Claim(
        "kfr_boxacc_point",
        KFR,
        "Sec. IV-D, eq. 8 (τ = 0.15, δ = 0.3)",
        "KFR improves localisation at the paper's own operating point BoxAcc(τ = 0.15, δ = 30 %).",
        "07",
        (
            Comparison(
                "BoxAcc(τ = 0.15, δ = 30 %), Grad-CAM at the last block",
                Side("KFR (setup's α)", "localisation_last_block", "kfr", "boxacc_tau0.15_iou30"),
                Side("CE", "localisation_last_block", "ce", "boxacc_tau0.15_iou30"),
                paper_number="ImageNet-1k: 75.6 % vs 50.4 % (MaxBoxAccV2(0.15, 0.3))",
                note="primary: KFR's own layer; δ = 30 % is near its ceiling on HierShapes",
            ),
            Comparison(
                "BoxAcc(τ = 0.15, δ = 30 %), Grad-CAM at notebook 07's finer layer",
                Side("KFR (setup's α)", "localisation", "kfr", "boxacc_tau0.15_iou30"),
                Side("CE", "localisation", "ce", "boxacc_tau0.15_iou30"),
                paper_number="ImageNet-1k: 75.6 % vs 50.4 % (MaxBoxAccV2(0.15, 0.3))",
                note="secondary: the layer notebook 07 picks when the last block's map is coarse",
            ),
        ),
        "wsol",
        "kfr",
    ),
    Claim(
        "barz_mahp",
        BARZ,
        "Sec. 5.4, Table 1",
        "Features learnt with L_CORR retrieve with a higher mAHP@250 than every competitor.",
        "06",
        _barz(
            "mahp",
            "mAHP@250",
            [(L_CORR, CE_RAW), (L_CORR, CE_L2), (L_CORR_CLS, CE_L2)],
            ["0.8290 vs 0.7261", "0.8290 vs 0.7468", "0.8329 vs 0.7468"],
        ),
        "barz",
        "barz",
    ),
    Claim(
        "barz_map",
        BARZ,
        "Sec. 5.4, Table 3",
        "L_CORR (and L_CORR+CLS) also outperform all competitors in classical mAP.",
        "06",
        _barz(
            "map",
            "mAP",
            [(L_CORR, CE_RAW), (L_CORR, CE_L2), (L_CORR_CLS, CE_L2)],
            ["0.5900 vs 0.4870", "0.5900 vs 0.5305", "0.6107 vs 0.5305"],
        ),
        "barz",
        "barz",
    ),
    Claim(
        "barz_classification",
        BARZ,
        "Sec. 5.5, Table 2",
        "Learning the class embeddings 'does not impair classification performance "
        "unreasonably' (here: balanced accuracy at most 2 points below CE's, the largest gap of "
        "the paper's own CIFAR-100 columns being 1.9 points).",
        "06",
        tuple(
            Comparison(
                "balanced accuracy",
                Side(label, "retrieval", run, "balanced_accuracy", {"distance": "dot"}),
                Side("CE", "retrieval", "ce", "balanced_accuracy", {"distance": "euclidean"}),
                margin=0.02,
                paper_number=number,
            )
            for label, run, number in (
                ("L_CORR+CLS (text: FC on z)", "corr_cls", "76.60 % vs 76.95 %"),
                ("L_CORR+CLS (code: ReLU + BN + FC)", "corr_cls-relu_bn1", "76.60 % vs 76.95 %"),
                ("L_CORR (nearest class embedding)", "corr", "75.03 % vs 76.95 %"),
            )
        ),
        "barz",
        "barz",
    ),
    Claim(
        "barz_precision",
        BARZ,
        "Sec. 3.3",
        "Algorithm 1 embeds the classes more precisely than the eigendecomposition Φ = QΛ^½ "
        "(largest pairwise-distance error).",
        "02",
        (
            Comparison(
                "log10 of the largest pairwise-distance error",
                Side("Algorithm 1", "exactness", None, "algorithm1"),
                Side("eigendecomposition", "exactness", None, "eigendecomposition"),
                direction="lower",
                paper_number="1.7e-15 vs 1.7e-13 (ILSVRC, 1000 classes)",
                note="paired over the WordNet trees of the profile, not over seeds",
                log10=True,
            ),
        ),
        "barz",
        None,
        unit="tree",
    ),
    Claim(
        "hier_recall",
        HIER,
        "Table 1",
        "HIER on top of Proxy-Anchor raises zero-shot Recall@1.",
        "06",
        (
            Comparison(
                "Recall@1 (zero-shot)",
                _retrieval("PA + HIER", "hier", "hyperbolic", "recall@1"),
                _retrieval("Proxy-Anchor", "dml_zero_shot", "cosine", "recall@1"),
                paper_number=NO_NUMBER + " (project page)",
                note="each ranked by its own distance: Proxy-Anchor's embedding is not a point "
                "of the Poincaré ball, so it has no hyperbolic ranking",
            ),
        ),
        "hier",
        "hier",
    ),
    Claim(
        "hier_hyperbolic",
        HIER,
        "Table 2 (HIERsph ablation)",
        "HIER in the Poincaré ball beats the same regulariser on the sphere (HIERsph).",
        "06",
        (
            Comparison(
                "Recall@1 (zero-shot)",
                _retrieval("PA + HIER", "hier", "hyperbolic", "recall@1"),
                _retrieval("PA + HIERsph", "hier-sphere1", "cosine", "recall@1"),
                paper_number=NO_NUMBER + " (project page)",
            ),
        ),
        "hier",
        "hier",
    ),
    Claim(
        "hier_hierarchy",
        HIER,
        "Sec. 3 of the results (Figs. 3, 5)",
        "HIER's proxies discover the latent semantic hierarchy of the data.",
        "08",
        (
            Comparison(
                "triplet agreement of the proxy tree with the taxonomy (seen classes)",
                Side("proxy tree", "proxy_tree", "hier", "agreement"),
                Side("random trees of its shape", "proxy_tree", "hier", "chance"),
                paper_number=NO_NUMBER + " (qualitative)",
                note="the tree is the study's reading of the proxies (notebook 04)",
            ),
        ),
        "hier",
        "hier",
        untested={
            p: "notebook 08 compares the hierarchies on HierShapes only"
            for p in ("paper", "paper_check")
        },
    ),
    Claim(
        "vh_retrieval",
        VH,
        "Sec. 4.4, Fig. 2",
        "cosine + α·D_H with the visual hierarchy retrieves best (mAP@k) among cosine, Ward's "
        "tree and the semantic taxonomy.",
        "05",
        tuple(
            Comparison(
                "mAP@k (largest k of Fig. 2)",
                Side("visual hierarchy", "visual_retrieval", "ce", "mAP@k", {"variant": VISUAL}),
                Side(label, "visual_retrieval", "ce", "mAP@k", {"variant": variant}),
                paper_number=NO_NUMBER + " (Fig. 2)",
            )
            for label, variant in (
                ("cosine", "cosine"),
                ("Ward's tree", "cosine + α·D_H (Ward)"),
                ("semantic taxonomy", "cosine + α·D_H (semantic)"),
            )
        ),
        "vh",
        "vh",
    ),
    Claim(
        "vh_meaningful",
        VH,
        "Sec. 4.4 ('Effect of hierarchy')",
        "The visual hierarchy is semantically more meaningful than Ward's tree, which 'may "
        "group classes that are semantically unrelated'.",
        "05",
        (
            Comparison(
                "triplet agreement with the taxonomy (resolved in either)",
                Side(
                    "visual hierarchy",
                    "visual_agreement",
                    "ce",
                    "triplet agreement (resolved in either)",
                    {"pair": "visual vs semantic"},
                ),
                Side(
                    "Ward's tree",
                    "visual_agreement",
                    "ce",
                    "triplet agreement (resolved in either)",
                    {"pair": "Ward vs semantic"},
                ),
                paper_number=NO_NUMBER + " (qualitative)",
                note="a triplet one tree leaves unresolved counts as a disagreement",
            ),
        ),
        "vh",
        "vh",
    ),
    Claim(
        "vh_robustness",
        VH,
        "Secs. 3.3 and 4.4, Fig. 3",
        "Under blur, saturation change and occlusion the method still retrieves better than "
        "cosine.",
        "05",
        tuple(
            Comparison(
                f"mAP@k, {corruption}",
                Side(
                    "visual hierarchy",
                    "visual_robustness",
                    "ce",
                    "mAP@k",
                    {"variant": VISUAL, "corruption": corruption},
                ),
                Side(
                    "cosine",
                    "visual_robustness",
                    "ce",
                    "mAP@k",
                    {"variant": "cosine", "corruption": corruption},
                ),
                paper_number=NO_NUMBER + " (Fig. 3)",
                note="retrained on corrupted images under `paper`; smoke and small evaluate the "
                "clean network on corrupted test images",
            )
            for corruption in ("blur", "saturation", "occlusion")
        ),
        "vh",
        "vh",
    ),
)
