"""Small problems shared by several test files: a linear model with a closed-form loss, a
PINN and a small CNN."""

import torch
from torch import nn

import topo_landscape as tl

MSE = tl.supervised(nn.MSELoss())


def linear_problem(seed=0):
    g = torch.Generator().manual_seed(seed)
    model = nn.Linear(4, 3).double()
    x = torch.randn(20, 4, generator=g, dtype=torch.float64)
    y = torch.randn(20, 3, generator=g, dtype=torch.float64)
    return model, x, y


def pinn_problem():
    model = tl.examples.mlp(2, 1, hidden=(16, 16))
    batch = tl.examples.convection_points(64, 16, 16, seed=0)
    return model, tl.examples.convection_loss(5.0), batch


def cnn_problem():
    model = tl.examples.small_cnn(width=4)
    x, y = tl.examples.random_images(8)
    return model, tl.supervised(nn.CrossEntropyLoss()), (x, y)
