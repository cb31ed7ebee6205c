"""The data the settings train on: synthetic sparse features for the lab's toy models, and
real image sets for the experiments.

Synthetic. A feature is zero with probability S (its sparsity) and otherwise uniform in [0, 1];
its importance scales its term of the loss (Elhage et al. 2022). Henighan et al. (2023) scale
each input to unit norm and train on a fixed set of T points. Hobbhahn (2023) adds noise,
one-hot and antipodal sets, and a fixed random projection E in front of an MLP. A `Task` turns
a toy-model instance into tensors: (inputs, targets, row weights). A row of weight 0 does not
count in the loss: the all-zero inputs of a cross-entropy task, and padding.

Real image sets that ship with installed packages (shared/ASSETS.md):

    digits          scikit-learn's 1,797 8x8 handwritten digits (bundled with scikit-learn);
                    a seeded split of 1,297 train / 500 test.
    fashion-mnist   Zalando's 60,000 + 10,000 28x28 clothing images, read from the IDX files
                    of Debian's `dataset-fashion-mnist` (`$STRIATE_FASHION_MNIST` overrides
                    the folder).

Images come back as float32 in [0, 1], shape (N, 1, H, W); labels as int64 (N,).

Real text: `python_corpus`, the Python standard library's own .py sources (the running
interpreter's, `sysconfig.get_paths()["stdlib"]` without site-packages), as bytes.
"""

from __future__ import annotations

import gzip
import hashlib
import os
import sysconfig
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import torch
from torch import Tensor

from striate.errors import StriateError

if TYPE_CHECKING:
    from striate.experiments.toy.instance import Instance

# --- synthetic sparse features (the toy models) --------------------------------------------------


def importance(kind: str, n: int) -> Tensor:
    """Per-feature loss weights, shape (n,): "uniform", "decay" or a ratio r giving r ** i.

    >>> importance("0.5", 4)
    tensor([1.0000, 0.5000, 0.2500, 0.1250])
    """
    if kind == "uniform":
        return torch.ones(n)
    if kind == "decay":
        return 100.0 ** -torch.linspace(0, 1, n)  # Hobbhahn (2023), footnote 3
    try:
        r = float(kind)
    except ValueError:
        raise StriateError(
            f"unknown importance {kind!r}", hint='use "uniform", "decay" or a ratio like 0.7'
        ) from None
    return r ** torch.arange(n, dtype=torch.float32)


def sparse_features(rows: int, n: int, sparsity: float, gen: torch.Generator) -> Tensor:
    """x of shape (rows, n): each entry 0 with probability `sparsity`, else uniform [0, 1].

    One uniform u per entry decides both: the entry is active when u < p = 1 - S, and then
    u / p is uniform on [0, 1). Half the random draws of a mask plus a value.
    """
    p = 1.0 - sparsity
    u = torch.rand(rows, n, generator=gen)
    return torch.where(u < p, u / max(p, 1e-30), 0.0)


def unit_rows(x: Tensor) -> Tensor:
    """Rows scaled to unit length; all-zero rows stay zero."""
    norm = x.norm(dim=-1, keepdim=True)
    return torch.where(norm > 0, x / norm.clamp_min(1e-30), x)


def one_hot_set(n: int) -> Tensor:
    return torch.eye(n)  # (n, n)


def antipodal_set(n: int) -> Tensor:
    """Rows e_0, -e_0, e_1, -e_1, ...: shape (2n, n)."""
    eye = torch.eye(n)
    return torch.stack([eye, -eye], dim=1).reshape(2 * n, n)


@dataclass
class Batch:
    """Inputs (rows, n_in), targets (rows, n_out) and row weights (rows,) of one instance."""

    x: Tensor
    y: Tensor
    w: Tensor


class Task:
    """How one instance's inputs and targets are made; fixed draws happen at construction.

    Draws from the data stream come in a fixed order (E, E', the training set, then fresh
    batches), so an instance's data never depends on what else trains beside it.
    """

    def __init__(
        self, inst: Instance, data: torch.Generator, test: torch.Generator, test_size: int
    ) -> None:
        self.inst = inst
        n, d = inst.n_features, inst.n_embed
        self.embed = torch.randn(d, n, generator=data) if d else None  # E (d, n)
        reproject = bool(d) and inst.target == "reprojected"
        self.reproject = torch.randn(d, n, generator=data) if reproject else None  # E' (d, n)
        weights = importance(inst.importance, n)
        self.importance = weights if inst.n_out == n else torch.ones(inst.n_out)  # (n_out,)
        self.train_set = self.sample(inst.rows, data) if inst.rows else None
        self.test_set = self.sample(test_size, test)

    def sample(self, rows: int, gen: torch.Generator) -> Batch:
        """`rows` fresh points (sparse data), or the whole fixed set (one-hot, antipodal)."""
        inst = self.inst
        if inst.data == "one-hot":
            x = one_hot_set(inst.n_features)
        elif inst.data == "antipodal":
            x = antipodal_set(inst.n_features)
        else:
            x = sparse_features(rows, inst.n_features, inst.sparsity, gen)
            x = unit_rows(x) if inst.unit_norm else x
        return self.batch(x, gen)

    def probes(self) -> Batch:
        """The n one-hot features as noise-free inputs with their targets (probe accuracy)."""
        return self.batch(one_hot_set(self.inst.n_features), None)

    def batch(self, x: Tensor, gen: torch.Generator | None) -> Batch:
        """(inputs, targets, weights) for clean features x (rows, n); noise needs `gen`."""
        inst = self.inst
        if inst.noise and gen is not None:
            x_in = x + inst.noise * torch.randn(x.shape, generator=gen)
        else:
            x_in = x
        inputs = x_in @ self.embed.T if self.embed is not None else x_in  # (rows, n_in)
        if self.reproject is not None:
            y = x @ self.reproject.T
        elif self.embed is not None and inst.target == "embedded":
            y = x @ self.embed.T
        else:
            y = x
        w = torch.ones(x.shape[0])
        if inst.cross_entropy:  # a class distribution: the argmax of x, or x / sum(x)
            total = x.sum(-1)
            w = (total > 0).float()  # an all-zero input has no class
            if inst.labels == "hard":
                y = torch.nn.functional.one_hot(x.argmax(-1), x.shape[-1]).float()
            else:
                y = x / total.clamp_min(1e-30)[:, None]
        return Batch(inputs, y, w)


# --- real image sets (the experiments) -----------------------------------------------------------

FASHION_MNIST = Path("/usr/share/datasets/fashion-mnist")
DATASETS = ("digits", "fashion-mnist")


@dataclass(frozen=True)
class Dataset:
    name: str
    x_train: torch.Tensor  # (N, 1, H, W) float32 in [0, 1]
    y_train: torch.Tensor  # (N,) int64
    x_test: torch.Tensor
    y_test: torch.Tensor

    @property
    def n_classes(self) -> int:
        return int(self.y_train.max().item()) + 1

    @property
    def n_inputs(self) -> int:
        return int(np.prod(self.x_train.shape[1:]))


def load(name: str, *, n_train: int = 0, n_test: int = 0, seed: int = 0) -> Dataset:
    """The data set `name`, its train (test) part cut to the first `n_train` (`n_test`)
    examples of a seeded shuffle when those are > 0."""
    if name == "digits":
        x, y = _digits()
        order = np.random.default_rng(seed).permutation(len(y))
        x, y = x[order], y[order]
        x_train, y_train, x_test, y_test = x[500:], y[500:], x[:500], y[:500]
    elif name == "fashion-mnist":
        folder = Path(os.environ.get("STRIATE_FASHION_MNIST", FASHION_MNIST))
        x_train, y_train = _idx_pair(folder, "train")
        x_test, y_test = _idx_pair(folder, "t10k")
    else:
        raise StriateError(f"unknown data set {name!r}", hint=f"one of: {', '.join(DATASETS)}")
    rng = np.random.default_rng(seed + 1)
    if n_train:
        keep = rng.permutation(len(y_train))[:n_train]
        x_train, y_train = x_train[keep], y_train[keep]
    if n_test:
        keep = rng.permutation(len(y_test))[:n_test]
        x_test, y_test = x_test[keep], y_test[keep]
    return Dataset(
        name,
        torch.from_numpy(np.ascontiguousarray(x_train, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y_train, dtype=np.int64)),
        torch.from_numpy(np.ascontiguousarray(x_test, dtype=np.float32)),
        torch.from_numpy(np.ascontiguousarray(y_test, dtype=np.int64)),
    )


def _digits() -> tuple[np.ndarray, np.ndarray]:
    from sklearn.datasets import load_digits

    bunch = load_digits()
    return bunch.images[:, None].astype(np.float32) / 16.0, bunch.target.astype(np.int64)


def read_idx(path: Path) -> np.ndarray:
    """An IDX file (gzipped or not): magic 0x0000 + dtype code + ndim, big-endian uint32 dims,
    then the data. Only unsigned bytes (code 0x08), the code of every MNIST-style file."""
    opener = gzip.open if path.suffix == ".gz" else open
    try:
        with opener(path, "rb") as fh:
            data = fh.read()
    except OSError as exc:
        raise StriateError(f"cannot read IDX data: {exc}", path=path) from None
    if len(data) < 4 or data[:2] != b"\0\0" or data[2] != 0x08:
        raise StriateError("not an unsigned-byte IDX file (bad magic)", path=path)
    ndim = data[3]
    dims = np.frombuffer(data, ">u4", count=ndim, offset=4).astype(np.int64)
    start = 4 + 4 * ndim
    if len(data) - start != int(np.prod(dims)):
        raise StriateError(
            f"IDX header says {tuple(dims)} = {int(np.prod(dims))} bytes, "
            f"the file holds {len(data) - start}",
            path=path,
        )
    return np.frombuffer(data, np.uint8, offset=start).reshape(tuple(dims))


def _idx_pair(folder: Path, split: str) -> tuple[np.ndarray, np.ndarray]:
    images, labels = (
        folder / f"{split}-images-idx3-ubyte.gz",
        folder / f"{split}-labels-idx1-ubyte.gz",
    )
    if not images.is_file() or not labels.is_file():
        raise StriateError(
            "Fashion-MNIST is not installed",
            path=folder,
            hint="apt-get install -y dataset-fashion-mnist, or set STRIATE_FASHION_MNIST to a "
            "folder holding the four IDX files",
        )
    x = read_idx(images)[:, None].astype(np.float32) / 255.0
    y = read_idx(labels).astype(np.int64)
    if len(x) != len(y):
        raise StriateError(f"{len(x)} images but {len(y)} labels", path=folder)
    return x, y


# --- real text: the Python standard library's sources ------------------------------------------


@dataclass(frozen=True)
class TextCorpus:
    """Byte tokens (vocabulary 256) of a sorted list of files, whole files to each split."""

    root: str  # the folder the files are under
    train: torch.Tensor  # (N,) uint8: the training files, concatenated in sorted order
    val: torch.Tensor  # (M,) uint8: the held-out files
    train_files: int
    val_files: int
    sha256: str  # of the training bytes, then the held-out bytes: which text this was

    def facts(self) -> dict[str, object]:
        """What summary.json records of the corpus."""
        return {"root": self.root, "train_bytes": int(self.train.numel()),
                "val_bytes": int(self.val.numel()), "train_files": self.train_files,
                "val_files": self.val_files, "sha256": self.sha256}  # fmt: skip


def python_corpus(max_bytes: int = 0, val_every: int = 10, root: Path | None = None) -> TextCorpus:
    """The .py files under `root` (default: the standard library, site-packages left out),
    sorted by relative path, cut to the first files that fit in `max_bytes` (0: all); every
    `val_every`-th of them (the 10th, 20th, ...) is held out. Deterministic for one Python.
    """
    root = Path(sysconfig.get_paths()["stdlib"]) if root is None else root
    skip = {"site-packages", "dist-packages", "__pycache__"}
    found = []
    for folder, dirs, names in os.walk(root):
        dirs[:] = [d for d in dirs if d not in skip]  # not walked into at all
        found += [Path(folder, n) for n in names if n.endswith(".py")]
    files = sorted((f for f in found if f.is_file()), key=lambda f: f.relative_to(root).as_posix())
    chosen, total = [], 0
    for f in files:
        size = f.stat().st_size
        if max_bytes and total + size > max_bytes:
            break
        chosen.append(f)
        total += size
    if len(chosen) < val_every:
        raise StriateError(f"{len(chosen)} .py files fit in {max_bytes} bytes under {root}",
                           hint=f"give at least {val_every} files: raise max_bytes")  # fmt: skip
    held = [i % val_every == val_every - 1 for i in range(len(chosen))]
    parts = {
        split: b"".join(f.read_bytes() for f, h in zip(chosen, held, strict=True) if h == out)
        for split, out in (("train", False), ("val", True))
    }
    digest = hashlib.sha256(parts["train"] + parts["val"]).hexdigest()
    as_tensor = {k: torch.frombuffer(bytearray(v), dtype=torch.uint8) for k, v in parts.items()}
    return TextCorpus(str(root), as_tensor["train"], as_tensor["val"], held.count(False),
                      held.count(True), digest)  # fmt: skip
