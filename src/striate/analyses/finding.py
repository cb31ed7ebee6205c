"""What an analysis reports: a `Finding`, in the storage coordinates of the tensor it was given."""

from __future__ import annotations

from dataclasses import dataclass, field

#: finding kinds written by striate's analyses (later analyses add theirs)
KINDS = ("line", "hotspot", "norm_outlier", "periodic", "head", "nonfinite", "banding")


@dataclass(frozen=True)
class Finding:
    """One structure found in one tensor.

    `index` has one entry per axis of the tensor as stored: an int where the finding sits at one
    index of that axis, None along the axes it spans. A row line of a 2-D tensor is `(r, None)`,
    a column line `(None, c)`, a hotspot `(r, c)`, a 1-D outlier `(i,)`; an input-channel line of
    a conv kernel [out, in, kh, kw] is `(None, c, None, None)`.
    `score` is the strength used for ranking (larger = stronger; a robust z-score unless the
    analysis says otherwise), `value` the measured quantity (a line's scale ratio, a weight, a
    gain, a period), `detail` one human-readable sentence, `extra` analysis-specific columns.
    """

    kind: str
    index: tuple[int | None, ...]
    score: float
    value: float
    detail: str
    extra: dict[str, float | int | str] = field(default_factory=dict)
    significance: float = float("nan")

    def residual_dim(self, residual_axis: int | None) -> int | None:
        """The residual-stream index this finding touches, if the axis is known and pinned."""
        if residual_axis is None or residual_axis >= len(self.index):
            return None
        return self.index[residual_axis]
