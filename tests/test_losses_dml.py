"""The DML terms of KFR's Table II against literal per-tuple loops (value and gradient)."""

import pytest
import torch

from hierstudy.losses.dml import KINDS, UniformTupleLoss

TUPLE_KINDS = [k for k in KINDS if k != "infonce"]
MARGIN = 0.5


def random_batch(seed, batch=12, features=6, classes=3):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(batch, features, generator=g, dtype=torch.float64)
    labels = torch.randint(classes, (batch,), generator=g)
    return x, labels


def value_and_grad(fn, x):
    x = x.clone().requires_grad_(True)
    value = fn(x)
    (grad,) = torch.autograd.grad(value, x)
    return float(value.detach()), grad


def mean_nonzero(losses):
    """pytorch-metric-learning's AvgNonZeroReducer: the mean of the positive losses, else 0."""
    kept = [v for v in losses if v > 0]
    return torch.stack(kept).mean() if kept else torch.zeros((), dtype=torch.float64)


def literal_tuple_loss(kind, x, labels, tuples):
    """One tuple at a time: Lp-normalise, Lp distance, the hinge of ``kind``."""
    p = 1 if kind.endswith("l1") else 2
    z = [row / torch.linalg.vector_norm(row, ord=p) for row in x]

    def d(i, j):
        return torch.linalg.vector_norm(z[i] - z[j], ord=p)

    if kind.startswith("contrastive"):
        pos, neg = [], []
        for a, b in tuples.tolist():
            if labels[a] != labels[b]:
                neg.append(torch.relu(MARGIN - d(a, b)))
            elif a != b:  # a sample is not its own positive pair
                pos.append(d(a, b))
        return mean_nonzero(pos) + mean_nonzero(neg)
    hinges = []
    for a, b, c in tuples.tolist():
        b_same, c_same = bool(labels[b] == labels[a]), bool(labels[c] == labels[a])
        if b_same != c_same:  # exactly one partner shares the anchor's class: the positive
            positive, negative = (b, c) if b_same else (c, b)
            hinges.append(torch.relu(d(a, positive) - d(a, negative) + MARGIN))
    return mean_nonzero(hinges)


def literal_infonce(x, labels, temperature=0.1):
    """Supervised NT-Xent: for every ordered positive pair (i, j), −log of e^{s_ij/τ} over itself
    plus e^{s_ik/τ} of every k of another class; mean over the positive pairs."""
    z = [row / torch.linalg.vector_norm(row) for row in x]
    n, terms = len(z), []
    for i in range(n):
        for j in range(n):
            if i == j or labels[i] != labels[j]:
                continue
            positive = torch.exp(z[i] @ z[j] / temperature)
            negatives = sum(
                torch.exp(z[i] @ z[k] / temperature) for k in range(n) if labels[k] != labels[i]
            )
            terms.append(-torch.log(positive / (positive + negatives)))
    return torch.stack(terms).mean()


@pytest.mark.parametrize("kind", TUPLE_KINDS)
@pytest.mark.parametrize("seed", [0, 1, 2])
def test_tuple_kinds_match_the_literal_loop(kind, seed):
    x, labels = random_batch(seed)
    loss = UniformTupleLoss(kind, per_anchor=4, margin=MARGIN)
    tuples = loss.sample_tuples(len(labels), torch.Generator().manual_seed(seed))
    fast, fast_grad = value_and_grad(lambda v: loss(v, labels, tuples), x)
    slow, slow_grad = value_and_grad(lambda v: literal_tuple_loss(kind, v, labels, tuples), x)
    assert fast > 0
    assert fast == pytest.approx(slow, rel=1e-10)
    torch.testing.assert_close(fast_grad, slow_grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", TUPLE_KINDS)
def test_edge_tuples_match_the_literal_loop(kind):
    # the anchor drawn as its own partner, a pair of one class, tuples with no usable triplet
    x, labels = random_batch(3, batch=6)
    labels = torch.tensor([0, 0, 1, 1, 2, 2])
    rows = [(0, 0, 2), (0, 1, 2), (2, 3, 3), (4, 0, 2), (5, 5, 1), (1, 4, 0)]
    tuples = torch.tensor(rows)[:, : 2 if kind.startswith("contrastive") else 3]
    loss = UniformTupleLoss(kind, margin=MARGIN)
    fast, fast_grad = value_and_grad(lambda v: loss(v, labels, tuples), x)
    slow, slow_grad = value_and_grad(lambda v: literal_tuple_loss(kind, v, labels, tuples), x)
    assert fast > 0
    assert fast == pytest.approx(slow, rel=1e-10)
    torch.testing.assert_close(fast_grad, slow_grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("seed", [0, 1, 2])
def test_infonce_matches_the_literal_loop_over_all_pairs(seed):
    x, labels = random_batch(seed)
    fast, fast_grad = value_and_grad(lambda v: UniformTupleLoss("infonce")(v, labels), x)
    slow, slow_grad = value_and_grad(lambda v: literal_infonce(v, labels), x)
    assert fast > 0
    assert fast == pytest.approx(slow, rel=1e-10)
    torch.testing.assert_close(fast_grad, slow_grad, rtol=1e-8, atol=1e-10)


@pytest.mark.parametrize("kind", TUPLE_KINDS)
def test_sampled_forward_equals_its_explicit_tuples(kind):
    x, labels = random_batch(4)
    sampled = UniformTupleLoss(kind, per_anchor=4, generator=torch.Generator().manual_seed(5))
    tuples = UniformTupleLoss(kind, per_anchor=4).sample_tuples(
        12, torch.Generator().manual_seed(5)
    )
    assert tuples.shape == (48, 2 if kind.startswith("contrastive") else 3)
    torch.testing.assert_close(tuples[:, 0], torch.arange(12).repeat_interleave(4))
    assert float(sampled(x, labels)) == pytest.approx(
        float(literal_tuple_loss(kind, x, labels, tuples)), rel=1e-10
    )


def test_bad_tuples_and_unknown_kind_are_named():
    x, labels = random_batch(0)
    with pytest.raises(ValueError, match=r"\[T, 3\] index tensor"):
        UniformTupleLoss("triplet_l2")(x, labels, torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match=r"in \[0, 12\)"):
        UniformTupleLoss("contrastive_l1")(x, labels, torch.tensor([[0, 12]]))
    with pytest.raises(ValueError, match="infonce uses every pair"):
        UniformTupleLoss("infonce")(x, labels, torch.zeros(4, 2, dtype=torch.long))
    with pytest.raises(ValueError, match="unknown DML loss 'arcface'"):
        UniformTupleLoss("arcface")
