"""KFR's ℓ_qtr (Zhao et al., KFR 2024, eq. 6) against its literal per-triplet transcription."""

import numpy as np
import pytest
import torch
from reference_kfr import literal_qtr, path_indicator_latents

from hierstudy.hierarchy import Hierarchy
from hierstudy.losses.kfr import (
    DEMO,
    PAPER,
    STUDY,
    KFRLoss,
    Scale,
    pairwise_latent_distance,
    standardisation_ratio,
    standardise,
    transfer_alpha,
)

# Leaves at depths 2 and 3, so d_T takes the values 0, 2, 3, 4 and 5.
PAIRS = [
    ("root", "A"),
    ("root", "B"),
    ("A", "a1"),
    ("A", "a2"),
    ("B", "b1"),
    ("B", "b2"),
    ("B", "C"),
    ("C", "c1"),
    ("C", "c2"),
]


@pytest.fixture(scope="module")
def tree():
    return Hierarchy.from_pairs(PAIRS)


@pytest.fixture(scope="module")
def d_t(tree):
    return tree.path_distance(k=1)


def random_batch(seed, batch=12, features=16, classes=6):
    g = torch.Generator().manual_seed(seed)
    latent = (torch.randn(batch, features, generator=g) * 3 + 1).double()
    labels = torch.randint(classes, (batch,), generator=g)
    return latent, labels, g


def value_and_grad(fn, latent):
    latent = latent.clone().requires_grad_(True)
    value = fn(latent)
    (grad,) = torch.autograd.grad(value, latent)
    return float(value.detach()), grad


@pytest.mark.parametrize(
    "options",
    [
        {},
        {"standardise": "batch", "power": 1.2},
        {"switch_positions": True},
        {"standardise": "batch", "power": 1.2, "switch_positions": True},
    ],
)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_matches_literal_value_and_gradient(d_t, options, seed):
    latent, labels, g = random_batch(seed)
    loss = KFRLoss(d_t, triplets_per_anchor=2, generator=g, **options)
    triplets = loss.sample_triplets(latent.shape[0])
    fast, fast_grad = value_and_grad(lambda z: loss(z, labels, triplets), latent)
    slow, slow_grad = value_and_grad(
        lambda z: literal_qtr(z, labels, triplets, d_t, **options), latent
    )
    assert fast > 0
    assert fast == pytest.approx(slow, rel=1e-10)
    torch.testing.assert_close(fast_grad, slow_grad, rtol=1e-8, atol=1e-10)


def test_sampled_forward_equals_explicit_triplets(d_t):
    latent, labels, _ = random_batch(3)
    loss = KFRLoss(d_t, generator=torch.Generator().manual_seed(5))
    sampled = loss(latent, labels)
    triplets = KFRLoss(d_t).sample_triplets(12, torch.Generator().manual_seed(5))
    assert float(sampled) == pytest.approx(
        float(literal_qtr(latent, labels, triplets, d_t)), rel=1e-10
    )


def test_symmetric_in_b_and_c(d_t):
    latent, labels, g = random_batch(4)
    loss = KFRLoss(d_t, triplets_per_anchor=3, generator=g)
    triplets = loss.sample_triplets(12)
    value, grad = value_and_grad(lambda z: loss(z, labels, triplets), latent)
    swapped, swapped_grad = value_and_grad(
        lambda z: loss(z, labels, triplets[:, [0, 2, 1]]), latent
    )
    assert value == pytest.approx(swapped, rel=1e-12)
    torch.testing.assert_close(grad, swapped_grad)


@pytest.mark.parametrize("options", [{}, {"standardise": "batch", "power": 1.2}])
def test_zero_when_latent_distances_proportional_to_d_t(tree, d_t, options):
    g = torch.Generator().manual_seed(6)
    labels = torch.randint(len(tree.classes), (24,), generator=g)
    if options:  # batch standardisation removes one affine map of the whole batch
        latent = path_indicator_latents(tree, labels) * 2.5 - 0.7
    else:  # per-vector standardisation removes one per sample
        latent = path_indicator_latents(
            tree,
            labels,
            scale=torch.rand(24, generator=g) + 0.1,
            shift=torch.randn(24, generator=g),
        )
    # A tiny eps: eps = 1e-5 breaks exact invariance to the per-sample scale by ~eps / scale².
    loss = KFRLoss(d_t, eps=1e-12, triplets_per_anchor=4, generator=g, **options)
    mode, power = options.get("standardise", "vector"), options.get("power", 1.0)
    d_z = pairwise_latent_distance(latent, mode=mode, power=power, eps=1e-12)
    ratio = d_z / torch.as_tensor(d_t)[labels][:, labels]
    assert ratio[torch.isfinite(ratio)].std() < 1e-9  # the construction is proportional
    assert float(loss(latent, labels)) < 1e-8
    # Moving one latent off the alignment must be penalised.
    latent[0, 0] += 1.0
    triplets = torch.tensor([[0, i, j] for i in range(1, 24) for j in range(1, 24)])
    assert float(loss(latent, labels, triplets)) > 1e-4


def test_same_class_pairs(d_t):
    latent, _, g = random_batch(7, batch=6)
    loss = KFRLoss(d_t, triplets_per_anchor=3, generator=g)
    # All of one class: every d_T is 0, so the loss and its gradient vanish.
    same = torch.full((6,), 2)
    value, grad = value_and_grad(lambda z: loss(z, same), latent)
    assert value == 0.0 and torch.count_nonzero(grad) == 0
    # a and b of one class, c of another: the term is d_z(a, b)·d_T(a, c) and pulls b to a.
    labels = torch.tensor([0, 0, 5, 1, 2, 3])
    triplet = torch.tensor([[0, 1, 2]])
    z = standardise(latent)
    expected = (z[0] - z[1]).abs().mean() * d_t[0, 5]
    value, grad = value_and_grad(lambda x: loss(x, labels, triplet), latent)
    assert d_t[0, 5] > 0 and value == pytest.approx(float(expected), rel=1e-12)
    moved = latent.clone()
    moved[1] = latent[1] + 0.1 * (latent[0] - latent[1])
    assert float(loss(moved, labels, triplet)) < value
    assert torch.count_nonzero(grad[2]) == 0  # c is in a different class than a and b


def test_invariant_to_per_vector_scale_and_shift_only_in_vector_mode(d_t):
    latent, labels, g = random_batch(8)
    triplets = KFRLoss(d_t).sample_triplets(12, g)
    scale, shift = torch.rand(12, 1, generator=g).double() * 5 + 0.2, torch.randn(12, 1).double()
    moved = latent * scale + shift
    vector, batch = KFRLoss(d_t), KFRLoss(d_t, standardise="batch")
    assert float(vector(moved, labels, triplets)) == pytest.approx(
        float(vector(latent, labels, triplets)), rel=1e-5
    )
    assert float(batch(moved, labels, triplets)) != pytest.approx(
        float(batch(latent, labels, triplets)), rel=1e-2
    )


def test_batch_variant_is_the_authors_demo_form(d_t):
    latent, labels, g = random_batch(9)
    triplets = KFRLoss(d_t).sample_triplets(12, g)
    loss = KFRLoss(d_t, standardise="batch", power=1.2)
    z = (latent - latent.mean()) / torch.sqrt(latent.var(unbiased=False) + 1e-5)
    a, b, c = triplets.unbind(1)
    d_ab = (z[a] - z[b]).abs().pow(1.2).mean(1)
    d_ac = (z[a] - z[c]).abs().pow(1.2).mean(1)
    t = torch.as_tensor(d_t)
    expected = (d_ab * t[labels[a], labels[c]] - d_ac * t[labels[a], labels[b]]).abs().mean()
    assert float(loss(latent, labels, triplets)) == pytest.approx(float(expected), rel=1e-10)
    assert float(KFRLoss(d_t)(latent, labels, triplets)) != pytest.approx(float(expected), rel=1e-2)


def test_sampling_is_seeded_uniform_and_covers_every_anchor(d_t):
    loss = KFRLoss(d_t, triplets_per_anchor=500)
    t1 = loss.sample_triplets(8, torch.Generator().manual_seed(1))
    t2 = loss.sample_triplets(8, torch.Generator().manual_seed(1))
    t3 = loss.sample_triplets(8, torch.Generator().manual_seed(2))
    assert t1.shape == (4000, 3) and torch.equal(t1, t2) and not torch.equal(t1, t3)
    assert torch.equal(torch.bincount(t1[:, 0]), torch.full((8,), 500))
    counts = torch.bincount(t1[:, 1:].reshape(-1), minlength=8).double()
    assert counts.min() > 0.85 * 1000 and counts.max() < 1.15 * 1000
    # The private generator: two fresh losses draw the same triplets, the global RNG is untouched.
    state = torch.get_rng_state()
    assert torch.equal(KFRLoss(d_t).sample_triplets(8), KFRLoss(d_t).sample_triplets(8))
    assert torch.equal(torch.get_rng_state(), state)


def test_path_distance_from_hierarchy_is_a_buffer(tree, d_t):
    loss = KFRLoss(d_t)
    buffers = dict(loss.named_buffers())
    assert set(buffers) == {"path_distance"} and loss.num_classes == 6
    i = {c: k for k, c in enumerate(tree.classes)}
    assert buffers["path_distance"][i["a1"], i["a2"]] == 2  # siblings
    assert buffers["path_distance"][i["a1"], i["c1"]] == 5  # a1-A-root-B-C-c1
    assert buffers["path_distance"][i["b1"], i["c2"]] == 3
    assert "path_distance" in loss.state_dict()


def test_float32_and_pairwise_distances(d_t):
    latent, labels, g = random_batch(10)
    triplets = KFRLoss(d_t).sample_triplets(12, g)
    value32 = KFRLoss(d_t)(latent.float(), labels, triplets)
    assert value32.dtype == torch.float32
    assert float(value32) == pytest.approx(
        float(literal_qtr(latent, labels, triplets, d_t)), rel=1e-5
    )
    for mode, power in [("vector", 1.0), ("batch", 1.2)]:
        z = standardise(latent, mode)
        pair = pairwise_latent_distance(latent, mode=mode, power=power)
        assert float(pair[3, 7]) == pytest.approx(float((z[3] - z[7]).abs().pow(power).mean()))
        assert torch.allclose(pair, pair.T) and torch.all(pair.diagonal().abs() < 1e-6)


@pytest.mark.parametrize(
    ("matrix", "message"),
    [
        (np.zeros((3, 4)), "square"),
        (np.zeros(3), "square"),
        (np.array([[0.0, 1.0], [2.0, 0.0]]), "symmetric"),
        (np.array([[0.0, -1.0], [-1.0, 0.0]]), "negative"),
        (np.array([[1.0, 1.0], [1.0, 0.0]]), "diagonal"),
        (np.array([[0.0, np.nan], [np.nan, 0.0]]), "non-finite"),
    ],
)
def test_bad_path_distance(matrix, message):
    with pytest.raises(ValueError, match=message):
        KFRLoss(matrix)


@pytest.mark.parametrize(
    ("options", "message"),
    [
        ({"standardise": "layer"}, "standardise"),
        ({"power": 0.5}, "power"),
        ({"eps": -1.0}, "eps"),
        ({"reduction": "max"}, "reduction"),
        ({"edge_weight": 0.0}, "edge_weight"),
        ({"triplets_per_anchor": 0}, "triplets_per_anchor"),
    ],
)
def test_bad_options(d_t, options, message):
    with pytest.raises(ValueError, match=message):
        KFRLoss(d_t, **options)


def test_bad_batch(d_t):
    loss = KFRLoss(d_t)
    latent, labels, _ = random_batch(11)
    cases = [
        ((latent, labels.clone().fill_(6)), r"labels must lie in \[0, 6\)"),
        ((latent, labels - 1 - labels.max()), r"labels must lie in \[0, 6\)"),
        ((latent, labels[:5]), "5 labels for 12 latent"),
        ((latent, labels.double()), "integer"),
        ((latent[0], labels), r"\[B, F\]"),
        ((latent.long(), labels), "floating"),
        ((latent[:, :1], labels), "F >= 2"),
        ((latent, labels, torch.tensor([[0, 1, 12]])), r"\[0, 12\)"),
        ((latent, labels, torch.tensor([[0, 1]])), r"\[T, 3\]"),
    ]
    for args, message in cases:
        with pytest.raises(ValueError, match=message):
            loss(*args)


# Three latents of F = 4 entries, each of mean 0 and population variance 1, so per-vector and
# per-batch standardisation (eps = 0) leave them unchanged: ẑ = z. Classes a1, a2, c1.
SCALE_BATCH = torch.tensor(
    [[1.0, -1.0, 1.0, -1.0], [-1.0, 1.0, 1.0, -1.0], [1.0, 1.0, -1.0, -1.0]], dtype=torch.float64
)


def test_scale_knobs_by_hand(tree, d_t):
    # |z0 − z1| = (2, 2, 0, 0), |z0 − z2| = (0, 2, 2, 0): L1 = 4, mean over F = 1.
    # d_T(a1, a2) = 2, d_T(a1, c1) = 5 (a1-A-root-B-C-c1). ℓ = |d_ab·t_ac − d_ac·t_ab|:
    # mean, k = 1: |1·5 − 1·2| = 3; sum: |4·5 − 4·2| = 12 = F·3; k = 0.1 scales both t by 0.1.
    labels = torch.tensor([tree.classes.index(c) for c in ("a1", "a2", "c1")])
    triplet = torch.tensor([[0, 1, 2]])

    def qtr(**options):
        loss = KFRLoss(d_t, eps=0.0, **options)
        return float(loss(SCALE_BATCH, labels, triplet))

    assert qtr() == pytest.approx(3.0, abs=1e-12)
    assert qtr(reduction="sum") == pytest.approx(12.0, abs=1e-12)
    assert qtr(edge_weight=0.1) == pytest.approx(0.3, abs=1e-12)
    assert qtr(reduction="sum", edge_weight=0.1) == pytest.approx(1.2, abs=1e-12)
    assert qtr(standardise="batch") == pytest.approx(3.0, abs=1e-12)
    # unbiased batch std: var = 12/11 (12 entries), so ẑ = z·sqrt(11/12)
    assert qtr(standardise="batch", unbiased=True) == pytest.approx(3 * (11 / 12) ** 0.5, abs=1e-12)


def test_transfer_alpha_keeps_alpha_times_loss(tree, d_t):
    # the paper's α = 30 on the L1 scale (sum over F = 4) is α = 120 on the study's mean scale:
    # 30 · 12 = 120 · 3 (test_scale_knobs_by_hand); k = 0.1 needs ten times the α.
    assert transfer_alpha(30.0, 4, PAPER, STUDY) == pytest.approx(120.0)
    assert transfer_alpha(120.0, 4, STUDY, PAPER) == pytest.approx(30.0)
    assert transfer_alpha(30.0, 4, PAPER, Scale(edge_weight=0.1)) == pytest.approx(1200.0)
    assert transfer_alpha(30.0, 512, PAPER, STUDY) == pytest.approx(15360.0)
    assert STUDY.factor(4) == 1.0 and PAPER.factor(4) == 4.0 and DEMO.factor(4) == 0.1
    # the standardisation factor, measured on the batch: every pair shrinks by sqrt(11/12)
    unbiased = Scale(standardise="batch", unbiased=True, eps=0.0)
    plain = Scale(eps=0.0)
    assert standardisation_ratio(SCALE_BATCH, unbiased, plain) == pytest.approx((11 / 12) ** 0.5)
    got = transfer_alpha(30.0, 4, unbiased, plain, latent=SCALE_BATCH)
    assert got == pytest.approx(30.0 * (11 / 12) ** 0.5)
    labels = torch.tensor([tree.classes.index(c) for c in ("a1", "a2", "c1")])
    triplet = torch.tensor([[0, 1, 2]])
    lhs = 30.0 * KFRLoss(d_t, **unbiased.kwargs())(SCALE_BATCH, labels, triplet)
    rhs = got * KFRLoss(d_t, **plain.kwargs())(SCALE_BATCH, labels, triplet)
    assert float(lhs) == pytest.approx(float(rhs), rel=1e-12)
    with pytest.raises(ValueError, match="num_features"):
        transfer_alpha(30.0, 0, PAPER, STUDY)


def test_demo_scale_is_its_literal_loss(d_t):
    # ckfr_train_demo.py, loss_function, transcribed: (x − mean)/std over the whole tensor
    # (unbiased, no eps), mean_f |Δ|^1.2, d_T × 0.1; b and c a permutation of the batch.
    latent, labels, g = random_batch(11)
    b, c = torch.randperm(12, generator=g), torch.randperm(12, generator=g)
    z = (latent - latent.mean()) / latent.std()
    t = torch.as_tensor(d_t, dtype=torch.float64) * 0.1
    d_ab = (z[b] - z).abs().pow(1.2).mean(1)
    d_ac = (z[c] - z).abs().pow(1.2).mean(1)
    expected = (d_ab * t[labels, labels[c]] - d_ac * t[labels, labels[b]]).abs().mean()
    triplets = torch.stack([torch.arange(12), b, c], dim=1)
    got = KFRLoss(d_t, **DEMO.kwargs())(latent, labels, triplets)
    assert float(got) == pytest.approx(float(expected), rel=1e-12)
    assert float(KFRLoss(d_t)(latent, labels, triplets)) != pytest.approx(float(expected), rel=1e-2)
