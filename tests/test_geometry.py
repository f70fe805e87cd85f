"""The Poincaré ball and the sphere (hierstudy.geometry, docs/hier.md §Embedding): the maps and
the distance against geoopt (a dev/test-only dependency) and the literal Möbius formula
(tests/reference_hier.py)."""

import math
import warnings

import pytest
import torch
from reference_hier import assert_close, gen, mobius_distance

from hierstudy.geometry import (
    PoincareProjection,
    RiemannianGradient,
    clip_tangent,
    expmap0,
    pairwise_distance,
    project,
    sphere_distance,
    to_ball,
)

# geoopt scripts its functions with torch.jit at import; compiling them costs ~1.5 s on the first
# call. Imported with scripting off (if no other module imported geoopt first), they are plain
# Python functions computing the same thing.
torch.jit._state.disable()
try:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        import geoopt
        from geoopt.manifolds.stereographic import math as gmath
finally:
    torch.jit._state.enable()

C = 0.1
K = torch.tensor(-C, dtype=torch.float64)  # geoopt's curvature k = −c
MAX_NORM = (1 - 1e-3) / math.sqrt(C)


def ball_points(n, d, seed, max_radius=0.95):
    """n points in the ball, radii spread over [0, max_radius/√c), float64."""
    g = gen(seed)
    direction = torch.nn.functional.normalize(torch.randn(n, d, generator=g, dtype=torch.float64))
    radius = torch.rand(n, 1, generator=g, dtype=torch.float64) * max_radius / math.sqrt(C)
    return direction * radius


def test_geoopt_convention_and_distance():
    ball = geoopt.PoincareBall(c=C)
    assert float(ball.k) == pytest.approx(-C)  # c > 0 means curvature −c, as here
    x, y = ball_points(7, 5, 0), ball_points(6, 5, 1)
    expected = gmath.dist(x[:, None], y[None], k=K)
    assert_close(pairwise_distance(x, y, C), expected, rtol=1e-10, atol=1e-10)
    x32, y32 = x.float(), y.float()
    assert_close(
        pairwise_distance(x32, y32, C), ball.dist(x32[:, None], y32[None]), rtol=1e-4, atol=1e-4
    )


def test_expmap0_project_clip_match_geoopt():
    g = gen(2)
    u = torch.randn(20, 6, generator=g, dtype=torch.float64) * torch.logspace(-3, 1.5, 20)[:, None]
    assert_close(expmap0(u, C), gmath.expmap0(u, k=K), rtol=1e-12, atol=1e-12)
    z = torch.randn(20, 6, generator=g, dtype=torch.float64) * torch.linspace(0.1, 2, 20)[:, None]
    assert_close(project(z, C), gmath.project(z, k=K, eps=1e-3))
    assert (z.norm(dim=1) > MAX_NORM).any() and (z.norm(dim=1) < MAX_NORM).any()
    clipped = clip_tangent(u, 2.3)
    literal = u * torch.clamp(2.3 / (u.norm(dim=1, keepdim=True) + 1e-5), max=1)
    assert_close(clipped, literal)
    expected = gmath.project(gmath.expmap0(literal, k=K), k=K, eps=1e-3)
    assert_close(to_ball(u, C, 2.3), expected, rtol=1e-12, atol=1e-12)
    assert_close(PoincareProjection(C, 2.3)(u), expected, rtol=1e-12, atol=1e-12)
    big = u.norm(dim=1) > 2.4  # clipped points land at radius tanh(√c·2.3)/√c ≈ 1.965
    radius = math.tanh(math.sqrt(C) * 2.3) / math.sqrt(C)
    radii = to_ball(u)[big].norm(dim=1)
    assert_close(radii, torch.full_like(radii, radius), rtol=1e-5, atol=0)


def test_riemannian_gradient_matches_geoopt_egrad2rgrad():
    z = ball_points(9, 4, 3).requires_grad_()
    upstream = torch.randn(9, 4, generator=gen(4), dtype=torch.float64)
    (RiemannianGradient.apply(z, C) * upstream).sum().backward()
    assert_close(z.grad, gmath.egrad2rgrad(z.detach(), upstream, k=K))
    u = torch.randn(5, 4, dtype=torch.float64, requires_grad=True)
    plain = torch.autograd.grad(to_ball(u, riemannian=False).sum(), u)[0]
    scaled = torch.autograd.grad(to_ball(u).sum(), u)[0]
    assert not torch.allclose(plain, scaled)


def test_closed_form_distance_matches_mobius_formula():
    x = torch.cat([ball_points(6, 5, 5, 0.99), torch.zeros(1, 5, dtype=torch.float64)])
    y = torch.cat([ball_points(5, 5, 6, 0.99), x[:2]])  # y[5], y[6] coincide with x[0], x[1]
    x.requires_grad_()
    y.requires_grad_()
    fast = pairwise_distance(x, y, C)
    slow = mobius_distance(x, y, C)
    assert_close(fast, slow, rtol=1e-9, atol=1e-7)
    weights = torch.rand(7, 7, generator=gen(7), dtype=torch.float64)
    weights[0, 5] = weights[1, 6] = 0  # d is not differentiable where x = y
    grads_fast = torch.autograd.grad((fast * weights).sum(), (x, y))
    grads_slow = torch.autograd.grad((slow * weights).sum(), (x, y))
    for a, b in zip(grads_fast, grads_slow, strict=True):
        assert_close(a, b, rtol=1e-7, atol=1e-9)
    far = ball_points(8, 5, 33, 0.99999)
    assert_close(pairwise_distance(far, c=C), mobius_distance(far, far, C))
    own = pairwise_distance(x.detach())
    assert (own.diagonal() == 0).all()
    assert_close(own, own.T)
    assert_close(own, mobius_distance(x.detach(), x.detach(), C), atol=1e-7, rtol=0)


def test_distance_guards_at_the_boundary_and_zero_vectors():
    g = gen(8)
    direction = torch.nn.functional.normalize(torch.randn(4, 6, generator=g))
    u = torch.cat([direction * 50, -direction[:1] * 50, torch.zeros(2, 6), direction[:1] * 50])
    z = project(expmap0(u, C), C).requires_grad_()  # float32, on the projection sphere
    d = pairwise_distance(z)
    near = pairwise_distance(z, z.detach() * 0.9999)
    (d.sum() + near.sum()).backward()
    assert torch.isfinite(d).all() and torch.isfinite(near).all() and torch.isfinite(z.grad).all()
    cap = 2 / math.sqrt(C) * torch.atanh(torch.tensor(1 - 1e-5))  # argument clamped to 1 − 1e-5
    assert d[0, 4].item() == pytest.approx(cap.item(), rel=1e-6)  # antipodal boundary points
    assert d[0, 7].item() < 1e-7 and d[5, 6].item() < 1e-7  # duplicates, two zero vectors
    v = torch.zeros(3, 6, requires_grad=True)
    to_ball(v).sum().backward()
    assert torch.isfinite(v.grad).all()


def test_sphere_distance_is_two_minus_two_cosine():
    x = torch.randn(5, 4, generator=gen(9), dtype=torch.float64)
    y = torch.randn(3, 4, generator=gen(10), dtype=torch.float64)
    cos = torch.nn.functional.cosine_similarity(x[:, None], y[None], dim=-1)
    assert_close(sphere_distance(x, y), 2 - 2 * cos)
    own = sphere_distance(torch.cat([x, torch.zeros(1, 4, dtype=torch.float64)]))
    assert (own.diagonal() == 0).all() and torch.isfinite(own).all()


def test_geometry_rejects_bad_input():
    inside = ball_points(3, 4, 11)
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        pairwise_distance(inside * 10, inside)
    with pytest.raises(ValueError, match="outside the Poincaré ball"):
        pairwise_distance(inside, torch.full((1, 4), float("nan"), dtype=torch.float64))
    with pytest.raises(ValueError, match="dimension"):
        pairwise_distance(inside, inside[:, :3])
    with pytest.raises(ValueError, match="matrix"):
        pairwise_distance(inside[0])
    with pytest.raises(ValueError, match="curvature"):
        expmap0(inside, c=-0.1)
    with pytest.raises(ValueError, match="clip radius"):
        clip_tangent(inside, 0.0)


def test_mobius_eps_is_the_authors_denominator_worked_by_hand():
    # x = (0.5, 0), y = (0, 0.5), c = 1: ⟨x, y⟩ = 0, ‖x‖² = ‖y‖² = 1/4, δ = 1 + 1/16 = 17/16,
    # (−x) ⊕ y = ((1 + 1/4)(−x) + (1 − 1/4) y) / (δ + ε) = (−5/8, 3/8) / (δ + ε), whose norm is
    # √(34)/8 / (δ + ε) = ‖x − y‖·√δ / (δ + ε); ε = 0 gives ‖x − y‖/√δ = √(1/2)/√(17/16).
    x = torch.tensor([[0.5, 0.0]], dtype=torch.float64)
    y = torch.tensor([[0.0, 0.5]], dtype=torch.float64)
    delta = 17 / 16
    exact = 2 * math.atanh(math.sqrt(0.5) / math.sqrt(delta))
    authors = 2 * math.atanh(math.sqrt(34) / 8 / (delta + 1e-5))
    assert pairwise_distance(x, y, 1.0).item() == pytest.approx(exact, abs=1e-14)
    assert pairwise_distance(x, y, 1.0, mobius_eps=1e-5).item() == pytest.approx(authors, abs=1e-14)
    assert abs(authors - exact) > 1e-6  # the option changes the distance
    with pytest.raises(ValueError, match="mobius_eps"):
        pairwise_distance(x, y, 1.0, mobius_eps=-1.0)
