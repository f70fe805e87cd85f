"""HIER (docs/hier.md): the loss against its literal per-triplet transcription
(tests/reference_hier.py); the ball and its distances are tested in tests/test_geometry.py."""

import math

import pytest
import torch
from reference_hier import (
    assert_close,
    gen,
    literal_hier,
    literal_lca_term,
    literal_triplet_sets,
    mobius_distance,
)

from hierstudy.geometry import expmap0, pairwise_distance, project, to_ball
from hierstudy.losses import hier
from hierstudy.losses.hier import HIER, HIERSph, lca_triplet_loss, reciprocal_triplets

C = 0.1
MAX_NORM = (1 - 1e-3) / math.sqrt(C)


def random_triplets(n, t, seed, self_negatives=5):
    g = gen(seed)
    trip = torch.randint(0, n, (t, 3), generator=g)
    trip[:self_negatives, 2] = trip[:self_negatives, 0]  # k = i: ties in max(m_ij, C[k])
    return trip


def gumbel(t, p, seed, dtype=torch.float64):
    u = torch.rand(2, t, p, generator=gen(seed), dtype=dtype)
    return -torch.log(-torch.log(u))


# --- triplet mining --------------------------------------------------------------------------


def test_reciprocal_triplets_follow_the_rules():
    sim = torch.rand(14, 14, generator=gen(12))
    sim = sim + sim.T * 0.5  # partly symmetric: some reciprocal pairs
    sets = literal_triplet_sets(sim, k=5)
    trip = reciprocal_triplets(sim, k=5, per_anchor=400, generator=gen(13))
    anchors = trip[:, 0].unique().tolist()
    assert anchors == sorted(sets) and len(sets) > 2
    assert len(trip) == 400 * len(sets)
    for a in anchors:
        rows = trip[trip[:, 0] == a]
        pos, neg = sets[a]
        assert set(rows[:, 1].tolist()) == set(pos)  # every positive drawn, nothing else
        assert set(rows[:, 2].tolist()) == set(neg)  # negatives include the anchor itself
        assert a in neg
        counts = torch.bincount(rows[:, 1], minlength=14)[pos].float()
        assert counts.min() > 0.5 * 400 / len(pos)  # uniform, with replacement


def test_reciprocal_triplets_edge_cases():
    sim = torch.rand(6, 6, generator=gen(14))
    assert reciprocal_triplets(sim, k=1).shape == (0, 3)  # top-1 is the row itself: no pairs
    trip = reciprocal_triplets(sim, k=50, per_anchor=3, generator=gen(15))
    assert len(trip) == 18 and (trip[:, 2] == trip[:, 0]).all()  # k ≥ N: only self negatives
    with pytest.raises(ValueError, match="square"):
        reciprocal_triplets(sim[:4])
    with pytest.raises(ValueError, match="k and per_anchor"):
        reciprocal_triplets(sim, k=0)


# --- the LCA triplet term ---------------------------------------------------------------------


@pytest.mark.parametrize("tau, margin, chunk", [(0.1, 0.1, 7), (1.0, 0.1, None), (2.0, -0.3, 5)])
def test_lca_term_matches_literal(monkeypatch, tau, margin, chunk):
    if chunk is not None:
        monkeypatch.setattr(hier, "_chunk_rows", lambda cols: chunk)
    cand = torch.rand(9, 13, generator=gen(16), dtype=torch.float64) * 3
    cand[8] = cand[7]  # duplicate nodes: ties in max(C[i], C[j]) and max(m_ij, C[k])
    cand.requires_grad_()
    trip, noise = random_triplets(9, 40, 17), gumbel(40, 13, 18)
    trip[5:9] = torch.tensor([[7, 8, 0], [8, 7, 1], [0, 7, 8], [1, 8, 7]])
    fast = lca_triplet_loss(cand, trip, noise, margin=margin, tau=tau)
    slow = literal_lca_term(cand, trip, noise, margin=margin, tau=tau)
    assert_close(fast, slow, rtol=1e-12, atol=1e-12)
    g_fast, g_slow = (torch.autograd.grad(v, cand)[0] for v in (fast, slow))
    assert_close(g_fast, g_slow, rtol=1e-10, atol=1e-12)
    assert g_slow.abs().sum() > 0


def test_masked_when_the_two_lcas_coincide():
    cand = (torch.rand(5, 6, generator=gen(19), dtype=torch.float64) * 3).requires_grad_()
    trip = torch.tensor([[0, 1, 2], [3, 4, 0]])
    noise = torch.zeros(2, 2, 6, dtype=torch.float64)
    noise[:, :, 2] = 1e3  # both draws of both triplets pick candidate 2
    loss = lca_triplet_loss(cand, trip, noise)
    assert loss.item() == 0
    assert (torch.autograd.grad(loss, cand)[0] == 0).all()
    assert literal_lca_term(cand, trip, noise).item() == 0
    noise[1, 0, 2], noise[1, 0, 4] = 0.0, 1e3  # first triplet: ρ_ij = 2, ρ_ijk = 4
    c = cand.detach()
    hand = (
        max(c[0, 2] - c[0, 4] + 0.1, 0)
        + max(c[1, 2] - c[1, 4] + 0.1, 0)
        + max(c[2, 4] - c[2, 2] + 0.1, 0)
    )
    assert lca_triplet_loss(cand, trip, noise).item() == pytest.approx(float(hand) / 2)


def test_lca_term_input_checks_and_empty():
    cand = torch.rand(4, 5, requires_grad=True)
    empty = lca_triplet_loss(cand, torch.empty(0, 3, dtype=torch.long))
    assert empty.item() == 0
    empty.backward()
    assert (cand.grad == 0).all()
    with pytest.raises(ValueError, match=r"\[T, 3\] long"):
        lca_triplet_loss(cand, torch.zeros(2, 3))
    with pytest.raises(ValueError, match="indices"):
        lca_triplet_loss(cand, torch.tensor([[0, 1, 4]]))
    with pytest.raises(ValueError, match="noise"):
        lca_triplet_loss(cand, torch.tensor([[0, 1, 2]]), torch.zeros(2, 1, 4))


# --- the module ------------------------------------------------------------------------------


def small_batch(seed, b=8, d=6, dtype=torch.float64):
    u = torch.randn(b, d, generator=gen(seed), dtype=dtype) * 2
    return to_ball(u).detach().requires_grad_(), torch.arange(b) // 2


@pytest.mark.parametrize("cls", [HIER, HIERSph])
def test_module_matches_literal_with_injected_draws(cls):
    loss_fn = cls(6, 10, generator=gen(20)).double()
    x, labels = small_batch(21)
    triplets = (random_triplets(8, 30, 22), random_triplets(10, 40, 23))
    noise = (gumbel(30, 10, 24), gumbel(40, 10, 25))
    fast = loss_fn(x, labels, triplets=triplets, noise=noise)
    slow = literal_hier(x, labels, loss_fn.proxy_points(), triplets, noise, sphere=cls is HIERSph)
    assert_close(fast, slow, rtol=1e-9, atol=1e-9)
    params = (x, loss_fn.proxies)
    g_fast = torch.autograd.grad(fast, params)
    g_slow = torch.autograd.grad(slow, params)
    for a, b in zip(g_fast, g_slow, strict=True):
        assert a.abs().sum() > 0
        assert_close(a, b, rtol=1e-6, atol=1e-8)


def test_module_mines_with_the_documented_similarities():
    loss_fn = HIER(6, 12, topk=4, per_anchor=7, generator=gen(26)).double()
    x, labels = small_batch(27, b=10)
    state = loss_fn.generator.get_state()
    value = loss_fn(x, labels)
    g = torch.Generator().set_state(state)
    rho = loss_fn.proxy_points()
    d_s = mobius_distance(x, x, C)
    d_p = mobius_distance(rho, rho, C)
    sim_s = torch.exp(-d_s) + (labels[:, None] == labels[None]).double()
    t_s = reciprocal_triplets(sim_s, 4, 7, g)
    expected = lca_triplet_loss(mobius_distance(x, rho, C), t_s, generator=g)
    t_p = reciprocal_triplets(torch.exp(-d_p), 4, 7, g)
    expected = expected + lca_triplet_loss(d_p, t_p, generator=g)
    assert len(t_s) and len(t_p)
    assert_close(value, expected, rtol=1e-9, atol=1e-9)


def test_deterministic_with_a_fixed_generator():
    x, labels = small_batch(28, b=12, dtype=torch.float32)
    results = []
    for seed in (3, 3, 4):
        loss_fn = HIER(6, 16, topk=5, per_anchor=10, generator=gen(seed))
        value = loss_fn(x, labels)
        results.append((value.item(), torch.autograd.grad(value, x)[0]))
    assert results[0][0] == results[1][0] and torch.equal(results[0][1], results[1][1])
    assert results[0][0] != results[2][0]
    before = torch.random.get_rng_state()
    HIER(6, 16, generator=gen(3))(x, labels)
    assert torch.equal(before, torch.random.get_rng_state())  # global RNG untouched


def test_proxy_initialisation_and_lr_scale():
    loss_fn = HIER(8, 32, generator=gen(29))
    expected = torch.randn(32, 8, generator=gen(29)) / math.sqrt(8) * 2.3 * 0.9
    assert_close(loss_fn.proxies.detach(), expected)
    assert loss_fn.lr_scale == 50
    assert loss_fn.proxy_points().norm(dim=1).max() < MAX_NORM
    assert_close(HIERSph(8, 32).proxy_points().norm(dim=1), torch.ones(32), atol=1e-6)


@pytest.mark.parametrize("cls", [HIER, HIERSph])
def test_nan_free_at_the_boundary_and_with_zero_vectors(cls):
    g = gen(30)
    u = torch.randn(12, 8, generator=g) * 100  # all clipped onto the same sphere
    u[:3] = 0  # zero vectors
    u[3] = u[4]  # a duplicate
    u.requires_grad_()
    x = project(expmap0(u, C), C) if cls is HIER else u
    loss_fn = cls(8, 24, topk=6, generator=gen(31))
    value = loss_fn(x, torch.arange(12) // 2)
    value.backward()
    assert torch.isfinite(value) and value > 0
    assert torch.isfinite(u.grad).all() and torch.isfinite(loss_fn.proxies.grad).all()


def test_module_rejects_bad_input():
    loss_fn = HIER(6, 10)
    x, labels = small_batch(32, dtype=torch.float32)
    with pytest.raises(ValueError, match="labels"):
        loss_fn(x, labels[:-1])
    with pytest.raises(ValueError, match="labels"):
        loss_fn(x, labels.float())
    with pytest.raises(ValueError, match="dimension"):
        loss_fn(x[:, :5], labels)
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        loss_fn(x * 10, labels)
    with pytest.raises(ValueError, match="together with triplets"):
        loss_fn(x, labels, noise=(None, None))
    with pytest.raises(ValueError, match="num_proxies"):
        HIER(6, 1)


def test_autocast_does_not_lower_the_precision():
    x, labels = small_batch(34, b=12, dtype=torch.float32)

    def value(inputs, autocast):
        loss_fn = HIER(6, 16, topk=5, per_anchor=10, generator=gen(35))
        with torch.autocast("cpu", dtype=torch.bfloat16, enabled=autocast):
            return loss_fn(inputs, labels)

    assert value(x, True).item() == pytest.approx(value(x, False).item(), rel=1e-6, abs=1e-7)
    half = value(x.bfloat16(), False)
    assert half.dtype == torch.float32
    assert half.item() == value(x.bfloat16().float(), False).item()


def test_mobius_eps_option_reaches_every_distance_of_the_loss():
    plain = HIER(6, 10, generator=gen(30)).double()
    authors = HIER(6, 10, generator=gen(30), mobius_eps=1e-5).double()
    x, labels = small_batch(31)
    x = x.detach()
    want = pairwise_distance(x, authors.proxy_points(), authors.c, mobius_eps=1e-5)
    assert torch.equal(authors.distance(x, authors.proxy_points()), want)
    triplets = (random_triplets(8, 30, 32), random_triplets(10, 40, 33))
    noise = (gumbel(30, 10, 34), gumbel(40, 10, 35))
    a = authors(x, labels, triplets=triplets, noise=noise)
    b = plain(x, labels, triplets=triplets, noise=noise)
    assert 0 < abs(a - b) < 1e-3  # the ε shifts distances by ~1e-5 relative, not the mining
    with pytest.raises(ValueError, match="mobius_eps"):
        HIER(6, 10, mobius_eps=-1e-5)
