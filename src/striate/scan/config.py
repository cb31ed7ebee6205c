"""The settings of a scan: one section per analysis, each a frozen dataclass.

`--set section.field=value` (or a TOML/JSON file, `striate.config`) changes one field; the
resolved settings are recorded in the run's manifest and are part of every cache key.
"""

from __future__ import annotations

from dataclasses import dataclass, field

from striate.analyses.banding import BandingConfig
from striate.analyses.ffn import FFNConfig
from striate.analyses.heads import HeadsConfig
from striate.analyses.hotspots import HotspotsConfig
from striate.analyses.lines import LinesConfig
from striate.analyses.nonfinite import NonfiniteConfig
from striate.analyses.norms import NormsConfig
from striate.analyses.periodicity import PeriodicityConfig
from striate.analyses.residual import ResidualConfig
from striate.analyses.spectrum import SpectrumConfig
from striate.errors import StriateError
from striate.render import MAX_PIXELS


@dataclass(frozen=True)
class ImagesConfig:
    enabled: bool = True  # draw one PNG per tensor into images/
    max_pixels: int = MAX_PIXELS  # longest side of a tensor image (outliers kept when shrunk)
    spectra: bool = False  # also draw each matrix's spectrum into images/spectra/ (~0.5 s each)
    renderer: str = "raster"  # "raster" (PIL, palette PNG) | "matplotlib" (antialiased, slower)

    def __post_init__(self) -> None:
        if self.renderer not in ("raster", "matplotlib"):
            raise StriateError(f"unknown images.renderer {self.renderer!r}",
                               hint='use "raster" or "matplotlib"')  # fmt: skip


@dataclass(frozen=True)
class ScanConfig:
    """Every threshold of a scan; `--set section.field=value` changes one."""

    lines: LinesConfig = field(default_factory=LinesConfig)
    hotspots: HotspotsConfig = field(default_factory=HotspotsConfig)
    norms: NormsConfig = field(default_factory=NormsConfig)
    periodicity: PeriodicityConfig = field(default_factory=PeriodicityConfig)
    heads: HeadsConfig = field(default_factory=HeadsConfig)
    nonfinite: NonfiniteConfig = field(default_factory=NonfiniteConfig)
    ffn: FFNConfig = field(default_factory=FFNConfig)
    spectrum: SpectrumConfig = field(default_factory=SpectrumConfig)
    banding: BandingConfig = field(default_factory=BandingConfig)
    residual: ResidualConfig = field(default_factory=ResidualConfig)
    images: ImagesConfig = field(default_factory=ImagesConfig)


#: the parts of a scan timed in the manifest's `stage_seconds`, in pipeline order
STAGES = ("read", "cache_key", "stats", "norms", "lines", "hotspots", "periodicity", "heads",
          "banding", "spectrum", "images", "ffn", "end_figures")  # fmt: skip
