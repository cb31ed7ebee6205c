"""The six toy models, each batched over a leading instance axis K.

Every parameter has shape (K, ...): instance k is an independent model, and einsum keeps the
instances apart. Inputs are (K, B, n_in), outputs (K, B, n_out).

- `ReluOutput`  x' = ReLU(W^T W x + b)            the bottleneck (Elhage et al. 2022)
- `Linear`      x' = W^T W x + b                  its linear control (Elhage et al. 2022)
- `ReluHidden`  x' = ReLU(W^T ReLU(W x) + b)      the privileged basis (Elhage et al. 2022)
- `MLP`         x' = W2 ReLU(W1 x + b1) + b2      an MLP block (Hobbhahn 2023)
- `MLPCrossEntropy`  the same, its outputs logits  the final layer, cross-entropy (Hobbhahn 2023)
- `Unembed`     logits = W^T W x + b              a toy unembedding, cross-entropy (Hobbhahn 2023)
"""

from __future__ import annotations

import math

import torch
import torch.nn.functional as F
from torch import Tensor, nn

from striate.errors import StriateError


class ToyModel(nn.Module):
    """Common interface: `forward`, `hidden` (the vectors whose geometry we study), `features`."""

    loss: str = "mse"  # "mse" (importance-weighted) or "ce" (cross-entropy)

    def hidden(self, x: Tensor) -> Tensor:
        """(K, B, n_in) -> (K, B, m)."""
        raise NotImplementedError

    def features(self) -> Tensor:
        """(K, n_in, m): row i is the direction W_i that input feature i writes to."""
        raise NotImplementedError

    def output_bias(self) -> Tensor:
        """(K, n_out)."""
        raise NotImplementedError


class ReluOutput(ToyModel):
    def __init__(self, k: int, n: int, m: int) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(k, m, n))  # (K, m, n): column i is feature i
        self.b = nn.Parameter(torch.zeros(k, n))  # (K, n)

    def hidden(self, x: Tensor) -> Tensor:
        return torch.einsum("kmn,kbn->kbm", self.W, x)  # h = W x  (K, B, m)

    def forward(self, x: Tensor) -> Tensor:
        h = self.hidden(x)
        return F.relu(torch.einsum("kmn,kbm->kbn", self.W, h) + self.b[:, None])  # (K, B, n)

    def features(self) -> Tensor:
        return self.W.transpose(1, 2)

    def output_bias(self) -> Tensor:
        return self.b


class Linear(ReluOutput):
    """The bottleneck without the ReLU: its optimum is PCA of the importance-weighted inputs,
    the m most important features on orthogonal directions, whatever the sparsity."""

    def forward(self, x: Tensor) -> Tensor:
        h = self.hidden(x)
        return torch.einsum("kmn,kbm->kbn", self.W, h) + self.b[:, None]


class ReluHidden(ReluOutput):
    """The hidden layer has a ReLU, so its basis (the neurons) is privileged."""

    def hidden(self, x: Tensor) -> Tensor:
        return F.relu(torch.einsum("kmn,kbn->kbm", self.W, x))  # (K, B, m)


class MLP(ToyModel):
    """Two independent weight matrices, two biases, a ReLU between; hidden = W1 x + b1."""

    def __init__(self, k: int, n_in: int, m: int, n_out: int) -> None:
        super().__init__()
        self.W1 = nn.Parameter(torch.zeros(k, m, n_in))  # (K, m, n_in)
        self.b1 = nn.Parameter(torch.zeros(k, m))
        self.W2 = nn.Parameter(torch.zeros(k, n_out, m))  # (K, n_out, m)
        self.b2 = nn.Parameter(torch.zeros(k, n_out))

    def hidden(self, x: Tensor) -> Tensor:
        return torch.einsum("kmn,kbn->kbm", self.W1, x) + self.b1[:, None]  # pre-ReLU (K, B, m)

    def forward(self, x: Tensor) -> Tensor:
        a = F.relu(self.hidden(x))
        return torch.einsum("kom,kbm->kbo", self.W2, a) + self.b2[:, None]  # (K, B, n_out)

    def features(self) -> Tensor:
        return self.W1.transpose(1, 2)

    def output_bias(self) -> Tensor:
        return self.b2


class MLPCrossEntropy(MLP):
    """The MLP block trained as a classifier: its outputs are logits, cross-entropy on the
    class of the input (Hobbhahn 2023's final layer)."""

    loss = "ce"


class Unembed(ToyModel):
    """No ReLU; the outputs are logits over the n features. Tied: W2 = W1^T."""

    loss = "ce"

    def __init__(self, k: int, n: int, m: int, tied: bool) -> None:
        super().__init__()
        self.W = nn.Parameter(torch.zeros(k, m, n))  # (K, m, n)
        self.W2 = None if tied else nn.Parameter(torch.zeros(k, n, m))  # (K, n, m)
        self.b = nn.Parameter(torch.zeros(k, n))

    def hidden(self, x: Tensor) -> Tensor:
        return torch.einsum("kmn,kbn->kbm", self.W, x)

    def forward(self, x: Tensor) -> Tensor:
        h = self.hidden(x)
        if self.W2 is None:
            return torch.einsum("kmn,kbm->kbn", self.W, h) + self.b[:, None]
        return torch.einsum("knm,kbm->kbn", self.W2, h) + self.b[:, None]

    def features(self) -> Tensor:
        return self.W.transpose(1, 2)

    def output_bias(self) -> Tensor:
        return self.b


def build(kind: str, k: int, n_in: int, m: int, n_out: int, tied: bool = True) -> ToyModel:
    """A batch of K models of one kind, all parameters zero (see `init_`)."""
    if kind == "relu-output":
        return ReluOutput(k, n_in, m)
    if kind == "relu-hidden":
        return ReluHidden(k, n_in, m)
    if kind == "linear":
        return Linear(k, n_in, m)
    if kind == "mlp":
        return MLP(k, n_in, m, n_out)
    if kind == "mlp-ce":
        return MLPCrossEntropy(k, n_in, m, n_out)
    if kind == "unembed":
        return Unembed(k, n_in, m, tied)
    raise StriateError(
        f"unknown model {kind!r}", hint="relu-output, linear, relu-hidden, mlp, mlp-ce, unembed"
    )


WEIGHT_INITS = ("xavier-normal", "xavier-uniform")
BIAS_INITS = ("zero", "uniform")


@torch.no_grad()
def init_(
    model: ToyModel, gens: list[torch.Generator], weight_init: str, bias_init: str
) -> ToyModel:
    """Draw instance k's parameters from `gens[k]`, parameter by parameter in a fixed order.

    Weights: Xavier (Glorot) normal or uniform per instance, fan_in + fan_out = sum of the
    matrix's two sizes. Biases: zero (Hobbhahn 2023 finds the results depend on it) or
    PyTorch's nn.Linear default U(-1/sqrt(fan_in), 1/sqrt(fan_in)).
    """
    for k, gen in enumerate(gens):
        for name, p in model.named_parameters():
            if p.ndim == 3:  # a weight matrix (K, out, in)
                out, inp = p.shape[1:]
                std = math.sqrt(2.0 / (out + inp))
                if weight_init == "xavier-normal":
                    p[k] = std * torch.randn(out, inp, generator=gen)
                else:  # uniform with the same variance
                    p[k] = std * math.sqrt(3.0) * (2 * torch.rand(out, inp, generator=gen) - 1)
            elif bias_init == "uniform":
                bound = 1.0 / math.sqrt(_bias_fan_in(model, name))
                p[k] = bound * (2 * torch.rand(p.shape[1], generator=gen) - 1)
    return model


def _bias_fan_in(model: ToyModel, name: str) -> int:
    """The fan-in of the layer a bias belongs to."""
    if isinstance(model, MLP):
        return model.W1.shape[2] if name == "b1" else model.W2.shape[2]
    return model.features().shape[2]  # the output layer reads the m hidden units
