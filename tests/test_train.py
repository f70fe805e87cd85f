import copy
import multiprocessing
import os
import signal
import socket
import time

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn
from torch.utils.data import DataLoader, Dataset, TensorDataset
from toy_training import Linear, RandomTripletLoss

from hierstudy.features import make_loader
from hierstudy.models import build_model
from hierstudy.optim import lr_at
from hierstudy.train import (
    CheckpointError,
    NonFiniteLossError,
    Term,
    TrainConfig,
    TrainError,
    fit,
    last_epochs_mean,
    load_checkpoint,
    setup_distributed,
    term_balance,
)

TIMING = ["images_per_s", "data_share", "time_s"]


class Noisy(Dataset):
    """Random augmentation from numpy's and python's global RNGs, to test their checkpointing."""

    def __init__(self, n=24, size=8, classes=3):
        g = torch.Generator().manual_seed(5)
        self.x = torch.randint(0, 256, (n, 3, size, size), dtype=torch.uint8, generator=g)
        self.y = torch.arange(n) % classes

    def __len__(self):
        return len(self.y)

    def __getitem__(self, i):
        x = self.x[i].float() / 255 + float(np.random.normal(0, 0.01))
        return (x.flip(-1) if np.random.rand() < 0.5 else x), self.y[i]


def _noisy_run(run_dir, epochs=3, on_step=None, resume=True):
    torch.manual_seed(0)
    model = build_model("tiny_cnn", 3, head="embedding+linear", embed_dim=8)
    model.backbone.blocks.append(nn.Dropout(0.2))  # dropout draws from the global torch RNG
    terms = [
        Term("ce", nn.CrossEntropyLoss()),
        Term("trip", RandomTripletLoss(8), weight=0.5, input="embedding", start_epoch=1),
    ]
    loader = make_loader(Noisy(), 8, seed=1)
    history = fit(
        model,
        terms,
        loader,
        run_dir=run_dir,
        epochs=epochs,
        lr=3e-3,
        schedule="cosine",
        lr_end=1e-4,
        seed=3,
        on_step=on_step,
        resume=resume,
    )
    return model, terms[1].loss, history


def _assert_same_state(a: nn.Module, b: nn.Module):
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for key in sa:
        assert torch.equal(sa[key], sb[key]), key


# --- learning rate per step -----------------------------------------------------------------------


def test_lr_schedule_is_applied_per_step_and_logged(tmp_path, monkeypatch):
    ds = TensorDataset(torch.randn(12, 12), torch.arange(12) % 3)
    seen, lrs = [], []
    step = torch.optim.SGD.step

    def spy(self, *args, **kwargs):
        lrs.append(self.param_groups[0]["lr"])
        return step(self, *args, **kwargs)

    monkeypatch.setattr(torch.optim.SGD, "step", spy)
    cfg = dict(epochs=3, lr=1e-2, lr_end=1e-3, schedule="linear", optimizer="sgd")
    history = fit(
        Linear(),
        [Term("ce", nn.CrossEntropyLoss())],
        make_loader(ds, 4),
        run_dir=tmp_path,
        on_step=lambda e, s: seen.append((e, s)),
        **cfg,
    )
    expected = [lr_at(TrainConfig(**cfg), s, 3) for s in range(9)]
    assert lrs == pytest.approx(expected)
    assert seen == [(e, s) for e in range(3) for s in range(3)]
    assert history["lr"].tolist() == pytest.approx(expected[::3])


# --- terms: weighting and phases ------------------------------------------------------------------


class Scaled(nn.Module):
    """loss = scale · mean(input²): known value and gradient."""

    def __init__(self, scale):
        super().__init__()
        self.scale = scale
        self.calls = []

    def forward(self, x, labels):
        self.calls.append(len(labels))
        return self.scale * x.pow(2).mean()


def test_terms_are_weighted_in_the_update_and_the_log(tmp_path):
    torch.manual_seed(0)
    x, y = torch.randn(6, 12), torch.tensor([0, 1, 2, 0, 1, 2])
    model = Linear()
    reference = copy.deepcopy(model)
    terms = [
        Term("a", Scaled(1.0), weight=2.0),
        Term("b", Scaled(3.0), weight=0.5, input="features"),
    ]
    loader = DataLoader(TensorDataset(x, y), batch_size=6)
    history = fit(
        model,
        terms,
        loader,
        run_dir=tmp_path,
        optimizer="sgd",
        lr=0.1,
        momentum=0.0,
        weight_decay=0.0,
    )
    out = reference(x)
    a, b = out.logits.pow(2).mean(), 3.0 * out.features.pow(2).mean()
    (2.0 * a + 0.5 * b).backward()
    for p, q in zip(model.parameters(), reference.parameters(), strict=True):
        torch.testing.assert_close(p.detach(), q.detach() - 0.1 * q.grad)
    row = history.iloc[0]
    assert row["loss_a"] == pytest.approx(a.item(), rel=1e-5)
    assert row["loss_b"] == pytest.approx(b.item(), rel=1e-5)
    assert row["loss"] == pytest.approx(2.0 * a.item() + 0.5 * b.item(), rel=1e-5)


def test_phases_switch_a_term_on_at_its_start_epoch(tmp_path):
    ce, late = Scaled(1.0), Scaled(1.0)
    terms = [Term("ce", ce), Term("late", late, input="features", start_epoch=2)]
    loader = make_loader(TensorDataset(torch.randn(8, 12), torch.arange(8) % 3), 4)
    epochs_called = []
    history = fit(
        Linear(),
        terms,
        loader,
        run_dir=tmp_path,
        epochs=4,
        on_step=lambda e, s: epochs_called.append((e, len(late.calls))),
    )
    assert len(ce.calls) == 8 and len(late.calls) == 4
    assert [n for e, n in epochs_called if e < 2] == [0, 0, 0, 0]  # not called before epoch 2
    assert history["loss_late"].isna().tolist() == [True, True, False, False]
    total = history["loss_ce"] + history["loss_late"].fillna(0)
    np.testing.assert_allclose(history["loss"], total, rtol=1e-6)


# --- NaN -------------------------------------------------------------------------------------------


class Explodes(nn.Module):
    def __init__(self, at_call):
        super().__init__()
        self.at_call, self.calls = at_call, 0

    def forward(self, x, labels):
        self.calls += 1
        value = x.pow(2).mean()
        return value * float("nan") if self.calls == self.at_call else value


def test_nan_in_a_term_stops_the_run_naming_term_epoch_and_step(tmp_path):
    model = Linear()
    ds = TensorDataset(torch.randn(12, 12), torch.arange(12) % 3)
    before = []
    terms = [Term("ce", nn.CrossEntropyLoss()), Term("kfr", Explodes(at_call=6), input="features")]
    with pytest.raises(NonFiniteLossError, match=r"\['kfr'\] not finite at epoch 1, step 2"):
        fit(
            model,
            terms,
            make_loader(ds, 4),
            run_dir=tmp_path,
            epochs=3,
            on_step=lambda e, s: before.append(model.fc.weight.detach().clone()),
        )
    assert len(before) == 5
    assert torch.equal(model.fc.weight, before[-1])  # the bad step changed nothing
    assert load_checkpoint(tmp_path / "checkpoint.pt")["epoch"] == 1


class FiniteValueNaNGradient(nn.Module):
    """√0 = 0, whose gradient 1/(2√0) · 0 is NaN."""

    def forward(self, x, labels):
        return (x * 0).sum().sqrt()


def _refused_before_any_update(tmp_path, terms, match):
    """fit on ``terms`` raises ``match`` at the first step; the weights stay the initial ones."""
    torch.manual_seed(0)
    model = Linear()
    initial = copy.deepcopy(model.state_dict())
    ds = TensorDataset(torch.randn(12, 12), torch.arange(12) % 3)
    with pytest.raises(NonFiniteLossError, match=match) as error:
        fit(model, terms, make_loader(ds, 4), run_dir=tmp_path, epochs=2)
    assert all(torch.isfinite(p).all() for p in model.parameters())
    for key, value in initial.items():
        assert torch.equal(model.state_dict()[key], value), key
    assert not (tmp_path / "checkpoint.pt").exists()
    return str(error.value)


def test_a_weight_overflowing_float32_stops_the_run_before_the_weights_are_touched(tmp_path):
    """1e39 is finite in float64, inf in float32: the weighted total is inf at step 0."""
    terms = [Term("ce", nn.CrossEntropyLoss(), weight=1e39)]
    message = _refused_before_any_update(
        tmp_path,
        terms,
        r"weighted loss term\(s\) \['ce'\] not finite in float32 at epoch 0, step 0",
    )
    assert "ce: weight 1e+39 · " in message and "= inf" in message
    assert message.endswith("the weights were not updated")


def test_a_total_overflowing_float32_stops_the_run_before_the_weights_are_touched(tmp_path):
    terms = [  # each weighted term ≈ 2e38 · 1.1 fits in float32, their sum does not
        Term("a", nn.CrossEntropyLoss(), weight=2e38),
        Term("b", nn.CrossEntropyLoss(), weight=2e38),
    ]
    message = _refused_before_any_update(
        tmp_path, terms, "the weighted total of the loss terms is not finite in float32 at epoch 0"
    )
    assert "a: weight 2e+38 · " in message and "total = inf" in message


def test_a_non_finite_gradient_stops_the_run_before_the_weights_are_touched(tmp_path):
    terms = [Term("ce", nn.CrossEntropyLoss()), Term("sqrt", FiniteValueNaNGradient())]
    message = _refused_before_any_update(
        tmp_path,
        terms,
        r"gradients of 2 parameter\(s\) \['model.fc.weight', 'model.fc.bias'\] are not finite",
    )
    assert "at epoch 0, step 0, although the loss is" in message


# --- checkpoints and resume ------------------------------------------------------------------------


class Interrupt(Exception):
    pass


def test_resume_after_an_interruption_gives_exactly_the_uninterrupted_weights(tmp_path):
    full_model, full_loss, full = _noisy_run(tmp_path / "full")

    def crash(epoch, step):
        if (epoch, step) == (1, 1):  # mid-epoch 1, after epoch 0's checkpoint
            raise Interrupt

    with pytest.raises(Interrupt):
        _noisy_run(tmp_path / "cut", on_step=crash)
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.pt")["epoch"] == 1
    model, loss, history = _noisy_run(tmp_path / "cut")
    _assert_same_state(model, full_model)
    assert torch.equal(loss.proxy, full_loss.proxy)
    pd.testing.assert_frame_equal(history.drop(columns=TIMING), full.drop(columns=TIMING))
    on_disk = pd.read_csv(tmp_path / "cut" / "metrics.csv")
    assert on_disk["epoch"].tolist() == [0, 1, 2]
    # the test can fail: without restoring the RNG states the run diverges
    model_fresh, _, _ = _noisy_run(tmp_path / "cut", resume=False, epochs=1)
    assert not torch.equal(model_fresh.head.fc.weight, full_model.head.fc.weight)


def _run_and_die(run_dir):
    def die(epoch, step):
        if (epoch, step) == (2, 1):
            os.kill(os.getpid(), signal.SIGKILL)

    _noisy_run(run_dir, on_step=die)


def test_resume_after_a_killed_process_gives_exactly_the_uninterrupted_weights(tmp_path):
    run_dir = tmp_path / "killed"
    # fork: the child shares the imports, so it starts at once
    child = multiprocessing.get_context("fork").Process(target=_run_and_die, args=(run_dir,))
    child.start()
    child.join(timeout=60)
    assert child.exitcode == -signal.SIGKILL
    assert load_checkpoint(run_dir / "checkpoint.pt")["epoch"] == 2
    model, _, history = _noisy_run(run_dir)
    full_model, _, full = _noisy_run(tmp_path / "full")
    _assert_same_state(model, full_model)
    pd.testing.assert_frame_equal(history.drop(columns=TIMING), full.drop(columns=TIMING))


def test_a_finished_run_is_not_trained_again(tmp_path):
    first, _, history = _noisy_run(tmp_path, epochs=1)
    steps = []
    again, _, history2 = _noisy_run(tmp_path, epochs=1, on_step=lambda e, s: steps.append(s))
    assert steps == []
    _assert_same_state(first, again)
    pd.testing.assert_frame_equal(history, history2)


def test_resuming_with_another_recipe_is_refused(tmp_path):
    ds = TensorDataset(torch.randn(4, 12), torch.arange(4) % 3)
    terms = [Term("ce", nn.CrossEntropyLoss())]
    fit(Linear(), terms, make_loader(ds, 4), run_dir=tmp_path, lr=1e-3)
    with pytest.raises(CheckpointError, match=r"different recipe \(lr: 0.001 → 0.01\)"):
        fit(Linear(), terms, make_loader(ds, 4), run_dir=tmp_path, lr=1e-2)
    with pytest.raises(CheckpointError, match="does not match this model"):
        fit(Linear(d_in=12, classes=4), terms, make_loader(ds, 4), run_dir=tmp_path, lr=1e-3)


def test_checkpoint_round_trip_with_weights_only(tmp_path):
    model = build_model("tiny_cnn", 3)
    ds = TensorDataset(torch.rand(8, 3, 8, 8), torch.arange(8) % 3)
    history = fit(
        model, [Term("ce", nn.CrossEntropyLoss())], make_loader(ds, 4), run_dir=tmp_path, epochs=2
    )
    state = torch.load(tmp_path / "checkpoint.pt", weights_only=True)
    assert state["epoch"] == 2 and state["config"]["epochs"] == 2
    for key, value in model.state_dict().items():
        assert torch.equal(state["model"][key], value), key
    assert len(state["optimizer"]["state"]) == len(list(model.parameters()))
    assert pd.DataFrame(state["history"]).equals(history)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["checkpoint.pt", "metrics.csv"]


def test_a_corrupted_checkpoint_gives_a_clear_error(tmp_path):
    ds = TensorDataset(torch.randn(4, 12), torch.arange(4) % 3)
    terms = [Term("ce", nn.CrossEntropyLoss())]
    fit(Linear(), terms, make_loader(ds, 4), run_dir=tmp_path)
    path = tmp_path / "checkpoint.pt"
    data = path.read_bytes()
    path.write_bytes(data[: len(data) // 2])
    with pytest.raises(CheckpointError, match=r"checkpoint .*checkpoint.pt cannot be read"):
        fit(Linear(), terms, make_loader(ds, 4), run_dir=tmp_path, epochs=2)
    torch.save({"epoch": 1}, path)
    with pytest.raises(CheckpointError, match="not a training checkpoint"):
        load_checkpoint(path)
    # resume=False starts over and replaces the bad file
    fit(Linear(), terms, make_loader(ds, 4), run_dir=tmp_path, resume=False)
    assert load_checkpoint(path)["epoch"] == 1


# --- metrics and bad input ------------------------------------------------------------------------


def test_metrics_csv_rows_and_columns(tmp_path):
    model = build_model("tiny_cnn", 3)
    ds = TensorDataset(torch.rand(8, 3, 8, 8), torch.arange(8) % 3)
    calls = []
    fit(
        model,
        [Term("ce", nn.CrossEntropyLoss())],
        make_loader(ds, 4),
        run_dir=tmp_path,
        epochs=2,
        val_loader=make_loader(ds, 8, shuffle=False),
        eval_fn=lambda m: calls.append(m.training) or {"probe": 0.5},
    )
    frame = pd.read_csv(tmp_path / "metrics.csv")
    assert frame.columns.tolist() == [
        "epoch",
        "lr",
        "loss",
        "loss_ce",
        "train_acc",
        "val_acc",
        "probe",
        *TIMING,
    ]
    assert frame["epoch"].tolist() == [0, 1] and calls == [False, False]  # eval mode
    assert ((frame["data_share"] >= 0) & (frame["data_share"] < 1)).all()
    model.eval()
    val_acc = (model(ds.tensors[0]).logits.argmax(1) == ds.tensors[1]).float().mean().item()
    assert frame["val_acc"].iloc[-1] == pytest.approx(val_acc)


def test_bad_configurations_are_refused(tmp_path):
    ds = TensorDataset(torch.randn(4, 12), torch.arange(4) % 3)
    loader = make_loader(ds, 4)
    ce = Term("ce", nn.CrossEntropyLoss())
    with pytest.raises(TrainError, match="unknown fit\\(\\) options \\['epoch'\\]"):
        fit(Linear(), [ce], loader, run_dir=tmp_path, epoch=3)
    with pytest.raises(TrainError, match="schedule must be one of"):
        TrainConfig(schedule="step")
    with pytest.raises(TrainError, match="sam_rho must be > 0"):
        TrainConfig(sam_rho=-1.0)
    for epochs in (0, 2.5, float("inf"), float("nan")):
        with pytest.raises(TrainError, match=f"epochs must be a positive integer, got {epochs}"):
            TrainConfig(epochs=epochs)
    with pytest.raises(TrainError, match="distinct"):
        fit(Linear(), [ce, ce], loader, run_dir=tmp_path)
    with pytest.raises(TrainError, match="input must be one of"):
        fit(Linear(), [Term("x", Scaled(1.0), input="z")], loader, run_dir=tmp_path)
    with pytest.raises(TrainError, match="must start at epoch 0"):
        fit(Linear(), [Term("ce", nn.CrossEntropyLoss(), start_epoch=1)], loader, run_dir=tmp_path)
    with pytest.raises(TrainError, match="term 'corr' needs the model's embedding, which is None"):
        fit(Linear(), [Term("corr", Scaled(1.0), input="embedding")], loader, run_dir=tmp_path)
    with pytest.raises(TrainError, match="no batches"):
        fit(Linear(), [ce], DataLoader(ds, 8, drop_last=True), run_dir=tmp_path)


# --- DDP -------------------------------------------------------------------------------------------


def _ddp_worker(rank, world, workdir, port):
    torch.set_num_threads(1)
    # what torchrun sets for each process
    os.environ.update(RANK=str(rank), WORLD_SIZE=str(world), LOCAL_RANK=str(rank))
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    assert setup_distributed() == (rank, world, torch.device("cpu"))
    torch.manual_seed(rank)  # different local inits: DDP must broadcast rank 0's weights
    model = build_model("tiny_cnn", 32)
    labels_seen = []

    class Record(nn.Module):
        def forward(self, x, y):
            labels_seen.extend(y.tolist())
            return x.sum() * 0

    ds = TensorDataset(
        torch.rand(32, 3, 8, 8, generator=torch.Generator().manual_seed(0)), torch.arange(32)
    )
    loss = RandomTripletLoss(128)
    terms = [
        Term("ce", nn.CrossEntropyLoss()),
        Term("t", loss, input="features"),
        Term("rec", Record(), weight=0.0),
    ]
    fit(model, terms, make_loader(ds, 8, seed=0), run_dir=f"{workdir}/run", sam_rho=0.05)
    torch.save(
        {"model": model.state_dict(), "proxy": loss.proxy.detach(), "seen": labels_seen},
        f"{workdir}/rank{rank}.pt",
    )
    torch.distributed.destroy_process_group()


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_setup_distributed_without_torchrun_is_a_single_process(monkeypatch):
    for name in ("RANK", "WORLD_SIZE"):
        monkeypatch.delenv(name, raising=False)
    assert setup_distributed() == (0, 1, torch.device("cpu"))
    assert not torch.distributed.is_initialized()


def test_ddp_on_gloo_with_two_processes_keeps_ranks_identical(tmp_path):
    ctx = torch.multiprocessing.start_processes(
        _ddp_worker,
        args=(2, str(tmp_path), _free_port()),
        nprocs=2,
        join=False,
        start_method="fork",
    )
    deadline = time.monotonic() + 60
    while not ctx.join(timeout=1):  # raises if a rank failed
        if time.monotonic() > deadline:
            for process in ctx.processes:
                process.kill()
            pytest.fail("the DDP run did not finish within 60 s")
    r0, r1 = (torch.load(tmp_path / f"rank{r}.pt", weights_only=True) for r in (0, 1))
    for key in r0["model"]:
        assert torch.equal(r0["model"][key], r1["model"][key]), key
    assert torch.equal(r0["proxy"], r1["proxy"])
    torch.manual_seed(0)
    init = build_model("tiny_cnn", 32).state_dict()
    assert not torch.equal(init["head.fc.weight"], r0["model"]["head.fc.weight"])
    # each rank saw its own half of the 32 images (×2: SAM's second pass sees them again)
    seen0, seen1 = set(r0["seen"]), set(r1["seen"])
    assert len(r0["seen"]) == len(r1["seen"]) == 32
    assert len(seen0) == len(seen1) == 16 and seen0 | seen1 == set(range(32))
    history = pd.read_csv(tmp_path / "run" / "metrics.csv")
    assert len(history) == 1 and history["images_per_s"].iloc[0] > 0


def test_last_epochs_mean():
    assert last_epochs_mean([0.1, 0.2, 1, 2, 3, 4, 5]) == 3.0
    assert last_epochs_mean([1, 2, 3], n=2) == 2.5
    with pytest.raises(TrainError, match="at least 5 epochs"):
        last_epochs_mean([1, 2, 3])


def test_term_balance_at_the_first_epoch_the_term_is_on():
    # the logged loss is Σ weight · loss_<term>: at epoch 1, 0.8 + 3 · 0.5 = 2.3
    history = pd.DataFrame(
        {"epoch": [0, 1, 2], "loss": [1.0, 2.3, 1.6], "loss_kfr": [np.nan, 0.5, 0.3]}
    )
    balance = term_balance(history, "kfr", 3.0)
    assert balance == pytest.approx(
        {"weight": 3.0, "epoch": 1, "rest": 0.8, "term": 0.5, "ratio": 1.5 / 0.8}
    )
    assert list(balance) == ["weight", "epoch", "rest", "term", "ratio"]
    with pytest.raises(TrainError, match="'kfr' is on in no epoch"):
        term_balance(history.assign(loss_kfr=np.nan), "kfr", 3.0)
    with pytest.raises(TrainError, match="'center' is on in no epoch"):
        term_balance(history, "center", 1.0)
