"""The settings of a diff: how tensors are compared (`compare`) and the scan's analyses (`scan`).

`--set compare.top_k=16` or `--set scan.hotspots.alpha=1e-4` change one field
(`striate.config.apply_overrides`); the resolved settings are in the manifest and in every cache
key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from striate.scan import ImagesConfig, ScanConfig


@dataclass(frozen=True)
class CompareConfig:
    """How two tensors are compared (the package docstring defines every column)."""

    top_k: int = 8  # top singular directions whose subspaces `top_k_overlap` compares
    kept: float = 0.8  # a finding is kept when B keeps at least this share of its strength
    lost: float = 0.2  # ... and lost when B keeps less than this share
    block: int = 32  # block along the last stored axis for formats without blocks of their own
    worst_blocks: int = 4  # per tensor, the blocks with the largest error in diff_blocks
    include: str = ""  # only A's tensors whose name matches this regex (re.search); "": all
    images: int = 6  # tensors drawn as A, B and B - A into out/images/diff/ (0: none)

    def __post_init__(self) -> None:
        if not 0 <= self.lost <= self.kept:
            raise ValueError(f"compare.lost ({self.lost}) must be in [0, compare.kept]")
        if self.block < 1 or self.top_k < 1 or self.worst_blocks < 0 or self.images < 0:
            raise ValueError(
                "compare.block and compare.top_k must be >= 1, worst_blocks and images >= 0"
            )


def _analyses() -> ScanConfig:
    return ScanConfig(images=ImagesConfig(enabled=False))  # a diff draws nothing itself


@dataclass(frozen=True)
class DiffConfig:
    """Every setting of a diff. `scan` holds the thresholds of the analyses run on both
    tensors (lines, hotspots, norms, spectrum, `spectrum.device`, ...), as in `striate scan`."""

    compare: CompareConfig = field(default_factory=CompareConfig)
    scan: ScanConfig = field(default_factory=_analyses)
