import math

import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, TensorDataset
from toy_training import Linear, RandomTripletLoss

from hierstudy.models import build_model
from hierstudy.optim import lr_at, make_optimizer
from hierstudy.train import Term, TrainConfig, fit

# --- schedules -----------------------------------------------------------------------------------


def test_constant_linear_and_cosine_schedules():
    steps, epochs = 5, 4  # 20 steps, p = step / 19
    const = TrainConfig(epochs=epochs, lr=0.1)
    assert [lr_at(const, s, steps) for s in (0, 7, 19)] == [0.1, 0.1, 0.1]
    lin = TrainConfig(epochs=epochs, lr=1e-3, lr_end=1e-4, schedule="linear")
    assert lr_at(lin, 0, steps) == pytest.approx(1e-3)
    assert lr_at(lin, 19, steps) == pytest.approx(1e-4)
    assert lr_at(lin, 10, steps) == pytest.approx(1e-3 - 9e-4 * 10 / 19)
    cos = TrainConfig(epochs=epochs, lr=1e-3, lr_end=1e-4, schedule="cosine")
    assert lr_at(cos, 0, steps) == pytest.approx(1e-3)
    assert lr_at(cos, 19, steps) == pytest.approx(1e-4)
    assert lr_at(cos, 19 / 2, steps) == pytest.approx(5.5e-4)  # halfway: the mean
    assert lr_at(cos, 4, steps) == pytest.approx(1e-4 + 9e-4 * (1 + math.cos(math.pi * 4 / 19)) / 2)


def test_sgdr_restarts_with_doubling_cycles():
    """Barz: 0.1 → 1e-6 over 12 epochs, then 24, 48, ... (5 cycles = 372 epochs)."""
    cfg = TrainConfig(epochs=372, lr=0.1, lr_end=1e-6, schedule="sgdr", sgdr_cycle_epochs=12)
    steps = 10

    def literal(epoch_float):  # SGDR eq. 5 with T_cur in (fractional) epochs
        t_i, t_cur = 12, epoch_float
        while t_cur >= t_i:
            t_cur -= t_i
            t_i *= 2
        return 1e-6 + 0.5 * (0.1 - 1e-6) * (1 + math.cos(math.pi * t_cur / t_i))

    for epoch in (0, 12, 36, 84, 180):  # cycle starts
        assert lr_at(cfg, epoch * steps, steps) == pytest.approx(0.1)
    assert lr_at(cfg, 6 * steps, steps) == pytest.approx((0.1 + 1e-6) / 2)  # middle of cycle 1
    assert lr_at(cfg, 24 * steps, steps) == pytest.approx((0.1 + 1e-6) / 2)  # middle of cycle 2
    assert lr_at(cfg, 12 * steps - 1, steps) < 0.002  # end of cycle 1: nearly lr_end
    for step in (3, 57, 119, 121, 359, 360, 1000, 3719):
        assert lr_at(cfg, step, steps) == pytest.approx(literal(step / steps), rel=1e-9)


# --- loss-module learning rates -------------------------------------------------------------------


def test_loss_module_parameters_get_their_own_scaled_learning_rate(tmp_path):
    loss = RandomTripletLoss(12)
    opt = make_optimizer(Linear(), [loss], TrainConfig(lr=1e-3))
    assert [g["lr_scale"] for g in opt.param_groups] == [1.0, 10.0]
    assert opt.param_groups[1]["params"] == [loss.proxy]
    # one plain SGD step: the proxy moves by lr × lr_scale × gradient
    x, y = torch.randn(4, 12), torch.arange(4) % 3
    proxy0 = loss.proxy.detach().clone()
    g_state = loss.generator.get_state()
    model = Linear()
    fit(
        model,
        [Term("ce", nn.CrossEntropyLoss()), Term("t", loss, input="features")],
        DataLoader(TensorDataset(x, y), batch_size=4),
        run_dir=tmp_path,
        optimizer="sgd",
        lr=0.01,
        momentum=0.0,
        weight_decay=0.0,
    )
    reference = RandomTripletLoss(12)
    reference.proxy.data.copy_(proxy0)
    reference.generator.set_state(g_state)
    reference(x.flatten(1), y).backward()
    torch.testing.assert_close(loss.proxy.detach(), proxy0 - 0.01 * 10.0 * reference.proxy.grad)


# --- SAM and clipping ------------------------------------------------------------------------------


def test_sam_step_matches_the_literal_two_pass_update(tmp_path):
    torch.manual_seed(2)
    x, y = torch.randn(5, 12), torch.tensor([0, 1, 2, 1, 0])
    model = Linear()
    start = {k: v.clone() for k, v in model.state_dict().items()}
    fit(
        model,
        [Term("ce", nn.CrossEntropyLoss())],
        DataLoader(TensorDataset(x, y), batch_size=5),
        run_dir=tmp_path,
        optimizer="sgd",
        lr=0.5,
        momentum=0.0,
        weight_decay=0.0,
        sam_rho=0.2,
    )
    # Foret et al. eq. 2-3 by hand: g at w, ε = ρ g/‖g‖, gradient at w + ε, step from w
    w, b = start["fc.weight"].clone().requires_grad_(), start["fc.bias"].clone().requires_grad_()
    gw, gb = torch.autograd.grad(nn.functional.cross_entropy(x @ w.T + b, y), (w, b))
    norm = torch.sqrt(gw.pow(2).sum() + gb.pow(2).sum())
    w2 = (w + 0.2 * gw / norm).detach().requires_grad_()
    b2 = (b + 0.2 * gb / norm).detach().requires_grad_()
    hw, hb = torch.autograd.grad(nn.functional.cross_entropy(x @ w2.T + b2, y), (w2, b2))
    torch.testing.assert_close(model.fc.weight, start["fc.weight"] - 0.5 * hw)
    torch.testing.assert_close(model.fc.bias, start["fc.bias"] - 0.5 * hb)


def test_sam_updates_batchnorm_statistics_once_per_step(tmp_path):
    x, y = torch.rand(8, 3, 8, 8), torch.arange(8) % 3
    stats = []
    for rho in (None, 0.5):
        torch.manual_seed(0)
        model = build_model("tiny_cnn", 3)
        fit(
            model,
            [Term("ce", nn.CrossEntropyLoss())],
            DataLoader(TensorDataset(x, y), 8),
            run_dir=tmp_path / str(rho),
            sam_rho=rho,
        )
        bn = model.backbone.blocks[0][1]
        stats.append((bn.running_mean.clone(), int(bn.num_batches_tracked)))
    torch.testing.assert_close(stats[0][0], stats[1][0])
    assert stats[0][1] == stats[1][1] == 1


def test_gradient_clipping_bounds_the_step(tmp_path):
    x, y = torch.randn(4, 12) * 100, torch.arange(4) % 3
    model = Linear()
    w0 = torch.cat([p.detach().flatten().clone() for p in model.parameters()])
    fit(
        model,
        [Term("ce", nn.CrossEntropyLoss())],
        DataLoader(TensorDataset(x, y), 4),
        run_dir=tmp_path,
        optimizer="sgd",
        lr=1.0,
        momentum=0.0,
        weight_decay=0.0,
        grad_clip=0.01,
    )
    w1 = torch.cat([p.detach().flatten() for p in model.parameters()])
    assert (w1 - w0).norm().item() == pytest.approx(0.01, rel=1e-4)
