import pytest
import torch
import torch.nn.functional as F

from hierstudy.losses.dml import KINDS, UniformTupleLoss


@pytest.mark.parametrize("kind", KINDS)
def test_each_kind_gives_a_finite_differentiable_loss(kind):
    x = torch.randn(32, 8, requires_grad=True)
    labels = torch.arange(32) % 4
    loss = UniformTupleLoss(kind, generator=torch.Generator().manual_seed(0))(x, labels)
    loss.backward()
    assert torch.isfinite(loss) and loss > 0 and x.grad.abs().sum() > 0


def test_contrastive_pairs_match_a_literal_computation():
    x, labels = torch.randn(12, 5), torch.arange(12) % 3
    loss = UniformTupleLoss(
        "contrastive_l2", per_anchor=4, margin=0.5, generator=torch.Generator().manual_seed(3)
    )
    got = loss(x, labels)
    partners = torch.randint(0, 12, (2, 48), generator=torch.Generator().manual_seed(3))[0]
    z = F.normalize(x)
    pos, neg = [], []
    for a, b in zip(torch.arange(12).repeat_interleave(4).tolist(), partners.tolist(), strict=True):
        d = (z[a] - z[b]).norm()
        if labels[a] != labels[b]:
            neg.append(torch.relu(0.5 - d))
        elif a != b:
            pos.append(d)  # pos_margin 0

    def mean_nonzero(values):  # PML's default reducer: mean over the non-zero losses per kind
        values = [v for v in values if v > 0]
        return torch.stack(values).mean() if values else torch.tensor(0.0)

    assert got.item() == pytest.approx((mean_nonzero(pos) + mean_nonzero(neg)).item(), rel=1e-5)


def test_unknown_kind_is_named():
    with pytest.raises(ValueError, match="unknown DML loss 'arcface'"):
        UniformTupleLoss("arcface")
