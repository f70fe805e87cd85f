"""L_CORR (Barz & Denzler (WACV 2019), eq. 8), nearest-class prediction and the center loss."""

import numpy as np
import pytest
import torch

from hierstudy.losses.semantic import CenterLoss, CorrelationLoss, nearest_class_prediction

EYE2 = np.eye(2)


def assert_close(actual, expected, atol=1e-6):
    # numpy's check: torch.testing.assert_close's first call imports for ~2 s
    np.testing.assert_allclose(actual.detach().numpy(), expected.numpy(), rtol=0, atol=atol)


def test_correlation_loss_hand_computed_value_and_gradient():
    # ψ_0 = (3, 4)/5 = (.6, .8) against φ_0 = (1, 0): 1 - .6 = .4
    # ψ_1 = (0, -1) against φ_1 = (0, 1): 1 - (-1) = 2; mean 1.2
    x = torch.tensor([[3.0, 4.0], [0.0, -2.0]], requires_grad=True)
    loss = CorrelationLoss(EYE2)(x, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(1.2)
    loss.backward()
    # d/dx (1 - ψᵀφ)/m = -(φ - ψ ψᵀφ) / (|x| m): (-.064, .048); the antipodal sample: 0
    expected = torch.tensor([[-0.064, 0.048], [0.0, 0.0]])
    assert_close(x.grad, expected, atol=1e-7)


def test_correlation_loss_without_normalisation_uses_raw_dot_products():
    x = torch.tensor([[3.0, 4.0], [0.0, -2.0]], requires_grad=True)
    loss = CorrelationLoss(EYE2, normalise=False)(x, torch.tensor([0, 1]))
    assert loss.item() == pytest.approx(((1 - 3) + (1 + 2)) / 2)
    loss.backward()
    assert_close(x.grad, -torch.tensor([[1.0, 0.0], [0.0, 1.0]]) / 2)


def test_correlation_loss_matches_a_loop_over_samples():
    rng = np.random.default_rng(0)
    phi = rng.normal(size=(7, 5))
    phi /= np.linalg.norm(phi, axis=1, keepdims=True)
    x = rng.normal(size=(16, 5))
    labels = rng.integers(0, 7, 16)
    loop = np.mean([1 - x[b] @ phi[labels[b]] / np.linalg.norm(x[b]) for b in range(16)])
    value = CorrelationLoss(phi)(torch.tensor(x, dtype=torch.float32), torch.tensor(labels))
    assert value.item() == pytest.approx(loop, abs=1e-6)


def test_correlation_loss_is_zero_on_the_class_embeddings_and_has_no_parameters():
    phi = torch.linalg.qr(torch.randn(6, 6))[0]
    loss = CorrelationLoss(phi)
    labels = torch.tensor([0, 3, 5, 5])
    assert loss(phi[labels], labels).item() == pytest.approx(0.0, abs=1e-6)
    assert list(loss.parameters()) == []
    assert "class_embeddings" in dict(loss.named_buffers())


def test_correlation_loss_is_float32_under_low_precision_and_follows_dtype():
    loss = CorrelationLoss(EYE2)
    x = torch.tensor([[3.0, 4.0]], dtype=torch.bfloat16)
    out = loss(x, torch.tensor([0]))
    assert out.dtype == torch.float32 and out.item() == pytest.approx(0.4, abs=1e-2)
    assert loss.double().class_embeddings.dtype == torch.float64


@pytest.mark.parametrize(
    "x, labels, message",
    [
        (torch.ones(2, 3), torch.tensor([0, 1]), "3 dimensions"),
        (torch.ones(2, 2), torch.tensor([0, 2]), r"\[0, 2\)"),
        (torch.ones(2, 2), torch.tensor([-1, 0]), r"\[0, 2\)"),
        (torch.ones(2, 2), torch.tensor([0.0, 1.0]), "integer"),
        (torch.ones(2, 2), torch.tensor([0]), "1 labels for 2"),
        (torch.ones(2), torch.tensor([0, 1]), r"\[B, D\]"),
        (torch.ones(0, 2), torch.tensor([], dtype=torch.long), "non-empty"),
    ],
)
def test_correlation_loss_rejects_bad_batches(x, labels, message):
    with pytest.raises(ValueError, match=message):
        CorrelationLoss(EYE2)(x, labels)


@pytest.mark.parametrize(
    "table, message",
    [
        (np.ones(3), "matrix"),
        (np.array([[np.nan, 1.0]]), "non-finite"),
        (np.eye(2, dtype=int), "floating"),
    ],
)
def test_bad_class_embeddings_raise(table, message):
    with pytest.raises(ValueError, match=message):
        CorrelationLoss(table)


def test_nearest_class_prediction_is_euclidean_not_max_dot_product():
    psi = torch.tensor([[0.6, 0.8], [-0.6, 0.8]])
    # unit class embeddings: nearest = largest dot product
    assert nearest_class_prediction(psi, EYE2).tolist() == [1, 1]
    # a long φ_0 has the larger dot product with ψ_0 (1.2 > 0.7) but φ_1 is nearer (0.1 < 2.6)
    table = np.array([[2.0, 0.0], [0.5, 0.5]])
    assert nearest_class_prediction(psi[:1], table).tolist() == [1]
    with pytest.raises(ValueError, match="3 dimensions"):
        nearest_class_prediction(torch.ones(1, 3), EYE2)
    with pytest.raises(ValueError, match=r"\[B, D\]"):
        nearest_class_prediction(np.ones((1, 2)), EYE2)


def test_nearest_class_prediction_recovers_labels_of_noisy_embeddings():
    phi = torch.linalg.qr(torch.randn(10, 10, generator=torch.Generator().manual_seed(0)))[0]
    labels = torch.arange(10).repeat(3)
    noisy = phi[labels] + 0.05 * torch.randn(30, 10, generator=torch.Generator().manual_seed(1))
    assert torch.equal(nearest_class_prediction(noisy, phi), labels)


def test_center_loss_hand_computed_value_and_gradients():
    loss = CenterLoss(2, 2, lr_scale=0.5)
    with torch.no_grad():
        loss.centers.copy_(torch.tensor([[0.0, 0.0], [1.0, 1.0]]))
    x = torch.tensor([[3.0, 4.0], [1.0, 2.0], [0.0, 0.0]], requires_grad=True)
    value = loss(x, torch.tensor([0, 1, 1]))
    # ½(25 + 1 + 2) / 3
    assert value.item() == pytest.approx(28 / 6)
    value.backward()
    assert_close(x.grad, torch.tensor([[3.0, 4.0], [0.0, 1.0], [-1.0, -1.0]]) / 3)
    # d/dc_k = -(1/m) Σ_{y_b = k} (x_b - c_k)
    assert_close(loss.centers.grad, -torch.tensor([[3.0, 4.0], [-1.0, 0.0]]) / 3)
    assert loss.lr_scale == 0.5


def test_center_loss_centers_move_to_the_class_means():
    torch.manual_seed(0)
    x = torch.randn(40, 3) + torch.tensor([4.0, 0.0, 0.0]) * (torch.arange(40) % 2)[:, None]
    labels = torch.arange(40) % 2
    loss = CenterLoss(2, 3)
    for _ in range(50):  # plain gradient descent (torch.optim's first step costs seconds)
        (grad,) = torch.autograd.grad(loss(x, labels), loss.centers)
        with torch.no_grad():
            loss.centers -= 1.0 * grad
    means = torch.stack([x[labels == k].mean(0) for k in range(2)])
    assert_close(loss.centers, means, atol=1e-4)


@pytest.mark.parametrize(
    "args, kwargs, message",
    [((0, 2), {}, "num_classes"), ((2, 2.0), {}, "dim"), ((2, 2), {"lr_scale": 0}, "lr_scale")],
)
def test_center_loss_bad_arguments(args, kwargs, message):
    with pytest.raises(ValueError, match=message):
        CenterLoss(*args, **kwargs)
    with pytest.raises(ValueError, match=r"\[0, 2\)"):
        CenterLoss(2, 2)(torch.ones(1, 2), torch.tensor([2]))


def test_center_initialisation_comes_from_its_generator_not_the_global_rng():
    torch.manual_seed(1)
    first = CenterLoss(4, 3, generator=torch.Generator().manual_seed(7)).centers.detach()
    state = torch.random.get_rng_state()
    torch.manual_seed(2)  # whatever ran before in the process
    second = CenterLoss(4, 3, generator=torch.Generator().manual_seed(7)).centers.detach()
    torch.manual_seed(1)
    assert torch.equal(torch.random.get_rng_state(), state)  # the global RNG was not drawn from
    assert torch.equal(first, second)
    other = CenterLoss(4, 3, generator=torch.Generator().manual_seed(8)).centers.detach()
    assert not torch.equal(first, other)
    expected = torch.randn(4, 3, generator=torch.Generator().manual_seed(7)) * 0.01
    assert torch.equal(first, expected)
