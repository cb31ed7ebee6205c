"""A figure was drawn: a PNG with more than a blank canvas's few colours (palette PNGs are small,
so a file size says little)."""

from __future__ import annotations

from pathlib import Path

import PIL.Image


def assert_drawn(path: Path, min_colors: int = 20) -> None:
    with PIL.Image.open(path) as image:
        assert image.format == "PNG", path
        colors = image.convert("RGB").getcolors(1 << 24) or []
    assert len(colors) >= min_colors, (path, len(colors))
