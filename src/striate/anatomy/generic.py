"""The fallback for models no family recognises: block indices and norms by common patterns,
4-D weights as convolutions, everything else "other". Residual axes only for norm gains, and
only when the config gives the hidden size (norm widths prove nothing in an unknown model)."""

from __future__ import annotations

from collections.abc import Mapping

from striate.anatomy import evidence
from striate.anatomy.convnet import conv_or_batchnorm
from striate.anatomy.family import Direction, Family, Rule, layer_patterns
from striate.anatomy.specimen import Param, View

_NORMS = r"\w*norm\w*|\w*Norm\w*|ln(?:_\w+)?|bn\d*|\w*_bn\d*|batch_normalization\w*"


class Generic(Family):
    name = "generic"
    rules = (Rule(_NORMS, "norm"),)
    layer_patterns = layer_patterns(
        r"(?:layers?|h|blocks?|blk|stages?)\.(\d+)", r"(?:layer|block|blk)_?(\d+)"
    )

    def classify(
        self, name: str, param: Param, shape: tuple[int, ...], view: View
    ) -> tuple[str, Direction] | None:
        return conv_or_batchnorm(name, param, view) or super().classify(name, param, shape, view)

    def hidden_size(self, view: View, roles: Mapping[str, str]) -> int | None:
        return evidence.hidden_size(view.spec.config, view.spec.metadata)
