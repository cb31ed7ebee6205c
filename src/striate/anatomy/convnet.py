"""Convolutional networks: torchvision (ResNet, VGG, MobileNet, EfficientNet), lukemelas'
EfficientNet (`_conv_stem`, `_blocks.N._depthwise_conv`, `_fc`) and Keras HDF5 files.

Here structure says more than names: every 4-D weight is a convolution (PyTorch [out, in, kh, kw]
or Keras [kh, kw, in, out]), a module with running statistics is a BatchNorm, and a 2-D weight
is a dense head. Convnets have no residual stream of one fixed width, so no residual axes.
Layer indices are ranks of the block keys (`layer2.1` is the 4th block of a ResNet-18; VGG's
`features.3` is its 2nd convolution), so they count blocks whatever the module numbering.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

from striate.anatomy.family import Direction, Family, Rule
from striate.anatomy.specimen import Kind, Param, Specimen, View, split_name

_BLOCK_KEYS = (
    re.compile(r"(?:^|[./])layer(\d+)\.(\d+)[./]"),  # torchvision ResNet: layerS.B
    re.compile(r"(?:^|[./])stages?\.(\d+)\.(?:blocks|layers)\.(\d+)[./]"),  # ConvNeXt, HF ResNet
    re.compile(r"(?:^|[./])_blocks\.(\d+)[./]"),  # lukemelas EfficientNet
    re.compile(r"(?:^|[./])features\.(\d+)[./]"),  # torchvision VGG, MobileNet, EfficientNet
    re.compile(r"(?:^|[./])block_?(\d+)(?:[./_]|$)"),  # Keras: block1_conv1, block5/layers/...
)
# Keras 3 `.weights.h5`: `<layer>/vars/<i>`, the leaf's meaning depends on the layer type
_KERAS3 = re.compile(r"^(?P<module>.+)/vars/(?P<index>\d+)$")
_BATCHNORM_VARS: tuple[Kind, ...] = ("weight", "bias", "buffer", "buffer")


class ConvNet(Family):
    name = "convnet"
    model_types = ("resnet", "efficientnet", "mobilenet", "convnext", "regnet", "vgg")
    rules = (
        Rule(r"bn\d*|_bn\d+|\w*_bn|batch_normalization(?:_\d+)?|norm\d*|downsample\.1", "norm"),
        Rule(r"fc\d*|_fc|classifier(?:\.\d+)?|head|predictions|dense(?:_\d+)?", "classifier"),
    )

    def split(self, name: str, shape: tuple[int, ...], spec: Specimen) -> Param:
        match = _KERAS3.match(name)
        if match is None:
            return split_name(name)
        module, index = match["module"], int(match["index"])
        layer_type = re.sub(r"_\d+$", "", module.rsplit("/", 1)[-1])
        if layer_type == "batch_normalization" and index < len(_BATCHNORM_VARS):
            kind = _BATCHNORM_VARS[index]
        else:
            kind = "weight" if len(shape) >= 2 else "bias"
        return Param(module, f"vars/{index}", kind, tf_order=True)

    def classify(
        self, name: str, param: Param, shape: tuple[int, ...], view: View
    ) -> tuple[str, Direction] | None:
        return conv_or_batchnorm(name, param, view) or super().classify(name, param, shape, view)

    def fallback(
        self, param: Param, shape: tuple[int, ...], view: View
    ) -> tuple[str, Direction] | None:
        weight = view.sibling(param, "weight") if param.kind == "bias" else None
        rank = len(view.spec.shapes[weight]) if weight else len(shape)
        return ("classifier", "reads") if rank == 2 and param.kind != "buffer" else None

    def detect(self, view: View) -> float:
        """The table's score, scaled down when convolutions are under half of the weight
        matrices (a transformer's patch embedding does not make it a convnet)."""
        ranks = [len(s) for n, s in view.spec.shapes.items() if view.params[n].kind == "weight"]
        convs, matrices = ranks.count(4), ranks.count(2) + ranks.count(4)
        if not convs:
            return 0.0
        return super().detect(view) * min(1.0, 2 * convs / matrices)

    def layers(self, view: View) -> dict[str, int | None]:
        keys: dict[str, tuple[int, ...] | None] = {}
        for name in view.params:
            keys[name] = None
            for i, pattern in enumerate(_BLOCK_KEYS):
                if match := pattern.search(name):
                    keys[name] = (i, *(int(g) for g in match.groups()))
                    break
        rank = {key: r for r, key in enumerate(sorted({k for k in keys.values() if k}))}
        return {name: None if key is None else rank[key] for name, key in keys.items()}

    def hidden_size(self, view: View, roles: Mapping[str, str]) -> int | None:
        return None


def conv_or_batchnorm(name: str, param: Param, view: View) -> tuple[str, Direction] | None:
    """A 4-D kernel (or its bias) is a conv; a module with running statistics a BatchNorm."""
    if param.kind in ("weight", "bias"):
        weight = name if param.kind == "weight" else view.sibling(param, "weight")
        if weight is not None and len(view.spec.shapes[weight]) == 4:
            return "conv", None
        if view.has_running_stats(param):
            return "norm", "along"
    return None
