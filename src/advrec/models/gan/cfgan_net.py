"""CFGAN's networks (Chae et al., CIKM'18): the generator and discriminator MLPs, in their own
module so that importing the model class does not import PyTorch."""

from __future__ import annotations

import math

import torch
from torch import nn


def _activation(name: str) -> nn.Module:
    return {"sigmoid": nn.Sigmoid, "tanh": nn.Tanh, "relu": nn.ReLU}[name]()


class MLP(nn.Module):
    """``n_layers`` hidden layers of width ``hidden`` (activation ``act``), then a linear output."""

    def __init__(self, n_in: int, hidden: int, n_layers: int, n_out: int, act: str = "sigmoid"):
        super().__init__()
        sizes = [n_in] + [hidden] * n_layers
        layers: list[nn.Module] = []
        for a, b in zip(sizes[:-1], sizes[1:], strict=True):
            layers += [nn.Linear(a, b), _activation(act)]
        layers.append(nn.Linear(sizes[-1], n_out))
        self.layers = nn.Sequential(*layers)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.layers(x)

    def l2(self) -> torch.Tensor:
        """TensorFlow's ``l2_loss`` summed over every weight and bias: ½ Σ θ²."""
        return sum(p.square().sum() for p in self.parameters()) / 2

def init_mlp(mlp: MLP, gen: torch.Generator) -> None:
    """Glorot-uniform weights and biases uniform in ±0.01 (the official initialisers)."""
    with torch.no_grad():
        for layer in mlp.modules():
            if isinstance(layer, nn.Linear):
                bound = math.sqrt(6.0 / (layer.in_features + layer.out_features))
                layer.weight.uniform_(-bound, bound, generator=gen)
                layer.bias.uniform_(-0.01, 0.01, generator=gen)

class CFGANNet(nn.Module):
    """Generator ``gen``: condition → vector; discriminator ``dis``: [condition ‖ vector] → 1."""

    def __init__(self, n_dims: int, g_hidden: int, g_layers: int, d_hidden: int, d_layers: int,
                 activation: str = "sigmoid", g_output: str = "linear"):
        super().__init__()
        self.gen = MLP(n_dims, g_hidden, g_layers, n_dims, activation)
        self.dis = MLP(2 * n_dims, d_hidden, d_layers, 1, activation)
        self.g_output = g_output

    def generate(self, cond: torch.Tensor) -> torch.Tensor:
        """G(c): one real-valued vector per condition row."""
        out = self.gen(cond)
        return torch.sigmoid(out) if self.g_output == "sigmoid" else out

    def discriminate(self, cond: torch.Tensor, vec: torch.Tensor) -> torch.Tensor:
        """D's logit for (condition, vector) pairs, shape ``[B]``."""
        return self.dis(torch.cat([cond, vec], dim=1)).squeeze(1)
