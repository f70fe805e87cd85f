"""Proxy-Anchor and Multi-Similarity (through pytorch-metric-learning) against the papers' formulas,
written out one sample, proxy and pair at a time."""

import math

import pytest
import torch

from hierstudy.losses.proxy import MultiSimilarity, ProxyAnchor


def cosine(a, b):
    return float(a @ b / (a.norm() * b.norm()))


def literal_proxy_anchor(x, labels, proxies, alpha=32.0, delta=0.1):
    """Kim et al. 2020: positive term over proxies with samples in the batch, negative over all."""
    labels = labels.tolist()
    pos, neg = 0.0, 0.0
    present = sorted(set(labels))
    for p in range(len(proxies)):
        s = [cosine(x[n], proxies[p]) for n in range(len(x))]
        if p in present:
            pos += math.log(
                1 + sum(math.exp(-alpha * (s[n] - delta)) for n, y in enumerate(labels) if y == p)
            )
        neg += math.log(
            1 + sum(math.exp(alpha * (s[n] + delta)) for n, y in enumerate(labels) if y != p)
        )
    return pos / len(present) + neg / len(proxies)


def literal_multi_similarity(x, labels, alpha=2.0, beta=50.0, base=0.5):
    """Wang et al. 2019 over every positive (k ≠ i) and negative pair, mean over anchors."""
    total = 0.0
    for i in range(len(x)):
        pos = [cosine(x[i], x[k]) for k in range(len(x)) if k != i and labels[k] == labels[i]]
        neg = [cosine(x[i], x[k]) for k in range(len(x)) if labels[k] != labels[i]]
        total += math.log(1 + sum(math.exp(-alpha * (s - base)) for s in pos)) / alpha
        total += math.log(1 + sum(math.exp(beta * (s - base)) for s in neg)) / beta
    return total / len(x)


def batch(seed, b=7, d=5):
    g = torch.Generator().manual_seed(seed)
    x = torch.randn(b, d, generator=g, dtype=torch.float64)
    return x, torch.tensor([0, 0, 1, 1, 1, 3, 0])[:b]  # class 2 absent from the batch


def test_proxy_anchor_matches_the_formula():
    loss_fn = ProxyAnchor(4, 5, generator=torch.Generator().manual_seed(1)).double()
    x, labels = batch(2)
    x = x * 0.3 + loss_fn.proxies.detach()[labels] * 0.5  # a mix of easy and hard samples
    value = loss_fn(x, labels)
    assert value.item() == pytest.approx(literal_proxy_anchor(x, labels, loss_fn.proxies.detach()))
    x.requires_grad_()
    loss_fn(x, labels).backward()
    assert loss_fn.proxies.grad[2].abs().sum() > 0  # absent class: only the negative term
    assert loss_fn.lr_scale == 1e4


def test_proxy_anchor_gradient_matches_the_formula():
    loss_fn = ProxyAnchor(4, 5, alpha=4.0, margin=0.2).double()
    x, labels = batch(3)
    x.requires_grad_()
    proxies = loss_fn.proxies
    cos = torch.nn.functional.normalize(x) @ torch.nn.functional.normalize(proxies).T
    onehot = torch.nn.functional.one_hot(labels, 4).bool()
    pos = torch.where(onehot, torch.exp(-4.0 * (cos - 0.2)), 0).sum(0)
    neg = torch.where(~onehot, torch.exp(4.0 * (cos + 0.2)), 0).sum(0)
    literal = torch.log1p(pos)[onehot.any(0)].mean() + torch.log1p(neg).mean()
    grads = torch.autograd.grad(loss_fn(x, labels), (x, proxies))
    expected = torch.autograd.grad(literal, (x, proxies))
    for a, b in zip(grads, expected, strict=True):
        assert torch.allclose(a, b, rtol=1e-9, atol=1e-12)


def test_proxy_anchor_initialisation_is_seeded_and_leaves_the_global_rng():
    before = torch.random.get_rng_state()
    a = ProxyAnchor(6, 8, generator=torch.Generator().manual_seed(5))
    b = ProxyAnchor(6, 8, generator=torch.Generator().manual_seed(5))
    assert torch.equal(before, torch.random.get_rng_state())
    assert torch.equal(a.proxies, b.proxies)
    expected = torch.empty(6, 8)
    torch.nn.init.kaiming_normal_(
        expected, mode="fan_out", generator=torch.Generator().manual_seed(5)
    )
    assert torch.equal(a.proxies.detach(), expected)


def test_multi_similarity_matches_the_formula():
    x, labels = batch(4)
    value = MultiSimilarity()(x, labels)
    assert value.item() == pytest.approx(literal_multi_similarity(x, labels))
    value = MultiSimilarity(alpha=1.0, beta=3.0, base=0.2)(x, labels)
    assert value.item() == pytest.approx(literal_multi_similarity(x, labels, 1.0, 3.0, 0.2))


def test_bad_input_raises():
    loss_fn = ProxyAnchor(4, 5)
    x, labels = batch(6)
    x = x.float()
    with pytest.raises(ValueError, match="labels must lie"):
        loss_fn(x, labels + 3)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(x, labels[:3])
    with pytest.raises(ValueError, match="dimension"):
        loss_fn(x[:, :4], labels)
    with pytest.raises(ValueError, match="labels"):
        MultiSimilarity()(x, labels.float())
    with pytest.raises(ValueError, match="num_classes"):
        ProxyAnchor(0, 5)
