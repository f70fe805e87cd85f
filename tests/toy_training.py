"""A linear model and a loss module with its own parameter, shared by the training tests."""

import torch
from torch import nn

from hierstudy.models import ModelOutput


class Linear(nn.Module):
    """A model without BatchNorm whose step is easy to write out by hand."""

    def __init__(self, d_in=12, classes=3):
        super().__init__()
        self.fc = nn.Linear(d_in, classes)

    def forward(self, x):
        f = x.flatten(1).float()
        return ModelOutput(features=f, embedding=None, logits=self.fc(f))


class RandomTripletLoss(nn.Module):
    """Draws from a private generator (as KFRLoss does) and owns a parameter with lr_scale."""

    lr_scale = 10.0

    def __init__(self, dim):
        super().__init__()
        self.generator = torch.Generator().manual_seed(0)
        self.proxy = nn.Parameter(torch.randn(dim) * 0.1)

    def forward(self, features, labels):
        a, b = torch.randint(len(labels), (2, 8), generator=self.generator)
        return ((features[a] - features[b] - self.proxy) ** 2).mean() * 1e-3
