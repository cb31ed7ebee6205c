"""Real image data sets that ship with installed packages (shared/ASSETS.md), as tensors.

    digits          scikit-learn's 1,797 8x8 handwritten digits (bundled with scikit-learn);
                    a seeded split of 1,297 train / 500 test.
    fashion-mnist   Zalando's 60,000 + 10,000 28x28 clothing images, read from the IDX files
                    of Debian's `dataset-fashion-mnist` (`$STRIATE_FASHION_MNIST` overrides
                    the folder).

Images come back as float32 in [0, 1], shape (N, 1, H, W); labels as int64 (N,).
"""

from __future__ import annotations

import gzip
import os
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import torch

from striate.errors import StriateError

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
