import numpy as np
import torch
from torch.utils.data import DataLoader, TensorDataset

from hierstudy.features import extract
from hierstudy.models import build_model


def test_extract_returns_every_output_in_loader_order_in_eval_mode():
    model = build_model("tiny_cnn", 4, head="embedding+linear", embed_dim=5)
    x, y = torch.rand(10, 3, 8, 8), torch.tensor([3, 1, 0, 2, 3, 1, 0, 2, 1, 1])
    out = extract(model, DataLoader(TensorDataset(x, y), batch_size=4))
    assert model.training
    model.eval()
    with torch.no_grad():
        reference = model(x)
    np.testing.assert_allclose(out["features"], reference.features.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["embedding"], reference.embedding.numpy(), rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(out["logits"], reference.logits.numpy(), rtol=1e-5, atol=1e-5)
    assert out["labels"].tolist() == y.tolist() and out["labels"].dtype == np.int64
    assert extract(build_model("tiny_cnn", None, head="hyperbolic"), [(x, y)])["logits"] is None
