"""striate: a microscope for neural-network weights."""

from __future__ import annotations

__version__ = "0.1.0"
