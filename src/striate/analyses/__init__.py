"""Analyses: pure functions from arrays (and the anatomy's facts) to typed results or Findings.

No I/O, no plotting, no globals; randomized methods take a seed. Each analysis module defines a
frozen `...Config` dataclass of its thresholds with documented defaults.
"""

from striate.analyses.finding import KINDS, Finding

__all__ = ["KINDS", "Finding"]
