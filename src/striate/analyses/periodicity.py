"""Periodicity: channels of a position embedding that are sinusoids of the position.

GPT-2's learned `wpe` [1024, 768] has channels that are clean sinusoids of the position, as if it
had rediscovered the sinusoidal encoding of Vaswani et al.; a ViT's [1, 1 + h*w, d] embedding
can repeat with the patch-grid width. Per channel x[t], t = 0..n-1 along the position axis:

1. Remove the least-squares line a + b*t. Learned embeddings drift with position; a trend would
   leak into the lowest frequencies and pass for a sinusoid longer than the tensor.
2. Multiply by a periodic Hann window 0.5 - 0.5*cos(2*pi*t/n). It keeps the spectrum of a
   sinusoid in a lobe of 3 bins around its peak bin (>= 97% of its power, where a rectangular
   window leaks ~20% of an off-bin sinusoid into far bins), and gives position 0 (a ViT's class
   token) zero weight.
3. One-sided power spectrum P[k] = |rfft|^2, k = 1..n/2 (the DC bin is left out).
4. Dominant bin k = argmax P; `power_share` = (P[k-1] + P[k] + P[k+1]) / sum(P): 0.98-1.0 for
   a sinusoid, about 3 / (n/2) for white noise. This share, not a z-score, is `Finding.score`.
5. First guess between bins, exact for one noiseless sinusoid under a Hann window: with
   magnitudes a, b, c at bins k-1, k, k+1, delta = (2c - b) / (b + c) if c > a, else
   -(2a - b) / (a + b). Where power_share >= min_share, the frequency is then refined by least
   squares: f maximizing the (Hann-weighted) variance explained by a + b*t + c*cos(2*pi*f*t) +
   d*sin(2*pi*f*t), searched within 0.5 bin of the guess. Fitting the line jointly removes the
   bias that detrending and the sinusoid's own negative-frequency image put on periods of only
   a few cycles (1.4% at 2.2 cycles; < 0.01% after the fit). frequency = f / n cycles per
   position, period = n / f positions.

A channel is periodic when power_share >= min_share and at least min_cycles cycles fit in the n
positions (period <= n / min_cycles; period >= 2 by Nyquist). With few cycles a sinusoid and a
smooth drift look alike: of random-walk channels (cumulative sums of noise, n = 512), 42% pass
at 1.5 cycles, 22% at 2, 5% at 3 (share >= 0.5); hence min_cycles = 2, and findings are ranked
by share so the cleanest sinusoids come first. Of white-noise channels 1% pass at n = 50, 0.1%
at n = 64 and none of 100,000 at n >= 96 (the 3-bin lobe is a larger part of a short spectrum),
hence min_positions. Channels holding any non-finite value are not analysed (NaN in the
spectrum, no finding).
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from striate.analyses.finding import Finding

__all__ = ["PeriodicSpectrum", "PeriodicityConfig", "find_periodic"]


@dataclass(frozen=True)
class PeriodicityConfig:
    """Thresholds for `find_periodic` (see the module docstring for the numbers behind them).

    min_share: the dominant lobe's share of a channel's non-DC power at or above which it is
        periodic. White noise stays below 0.5 for n >= 96; noiseless sinusoids score >= 0.98.
    min_cycles: cycles that must fit in the positions; fewer look like drift.
    min_positions: shorter tensors get a spectrum but no findings (a ViT-B/32's 50 positions
        included: lower this to see them, with ~1% of noise channels passing at n = 50).
    max_per_tensor: strongest channels kept per tensor. A model has one position embedding,
        so more can be kept than elsewhere; MiniLM's [512, 384] has 72 periodic channels.
    include: a regular expression of other tensor names to test too (the scan runs this
        analysis on position embeddings, and on any tensor whose name it matches, with the
        positions along the second-to-last axis).
    """

    min_share: float = 0.5  # dominant lobe's share of non-DC power
    min_cycles: float = 2.0  # period <= n_positions / min_cycles
    min_positions: int = 96  # fewer positions: no findings
    max_per_tensor: int = 32  # strongest kept per tensor
    include: str = ""  # regex of more tensor names to test (besides position embeddings)


@dataclass(frozen=True, eq=False)
class PeriodicSpectrum:
    """Per-channel results; arrays have the tensor's shape without the position axis.

    period: dominant period in positions [*channels] (NaN: not analysed or flat channel).
    frequency: the same as cycles per position, 1 / period.
    power_share: the dominant lobe's share of non-DC power, 0..1.
    """

    period: np.ndarray
    frequency: np.ndarray
    power_share: np.ndarray
    n_positions: int
    position_axis: int


_CHUNK = 256  # channels per batch: bounds memory at a few times n * _CHUNK values


def _hann(n: int) -> np.ndarray:
    """Periodic Hann window [n]."""
    return 0.5 - 0.5 * np.cos(2 * np.pi * np.arange(n) / n)


def _spectrum(x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(frequency in bins, power share) of each column of x [n, C] (finite, float64)."""
    n = x.shape[0]
    t = np.arange(n, dtype=np.float64) - (n - 1) / 2
    x = x - x.mean(axis=0)
    x = x - np.outer(t, (t @ x) / (t @ t))  # least-squares line removed
    mag = np.abs(np.fft.rfft(x * _hann(n)[:, None], axis=0))  # [n//2 + 1, C]
    power = mag**2
    power[1 : (n + 1) // 2] *= 2  # one-sided: both signs of the frequency, except Nyquist
    total = power[1:].sum(axis=0)
    cols = np.arange(x.shape[1])
    k = 1 + np.argmax(power[1:], axis=0)
    csum = np.concatenate([np.zeros((1, x.shape[1])), np.cumsum(power[1:], axis=0)])
    lo, hi = np.maximum(k - 1, 1), np.minimum(k + 1, n // 2)
    lobe = csum[hi, cols] - csum[lo - 1, cols]
    a = mag[k - 1, cols]
    b = mag[k, cols]
    c = np.where(k + 1 <= n // 2, mag[np.minimum(k + 1, n // 2), cols], 0.0)
    with np.errstate(divide="ignore", invalid="ignore"):
        delta = np.where(c > a, (2 * c - b) / (b + c), -(2 * a - b) / (a + b))
        share = np.where(total > 0, lobe / total, 0.0)
    freq = np.where(total > 0, k + np.clip(np.nan_to_num(delta), -1.0, 1.0), np.nan)
    return freq, share


def _explained(x: np.ndarray, f: np.ndarray, hann: np.ndarray) -> np.ndarray:
    """Weighted SS of x [n, C] explained by a line + a sinusoid of frequency f [C] (in bins)."""
    n, c = x.shape
    t = np.arange(n, dtype=np.float64) / n
    phase = 2 * np.pi * np.outer(f, t)  # [C, n]
    basis = np.empty((c, 4, n))
    basis[:, 0], basis[:, 1], basis[:, 2], basis[:, 3] = 1.0, t - 0.5, np.cos(phase), np.sin(phase)
    weighted = basis * hann
    gram = weighted @ basis.transpose(0, 2, 1)  # [C, 4, 4]
    rhs = weighted @ x.T[:, :, None]  # [C, 4, 1]
    coef = np.linalg.solve(gram + 1e-12 * np.eye(4), rhs)
    explained: np.ndarray = (coef * rhs)[:, :, 0].sum(axis=1)
    return explained


def _refine(x: np.ndarray, f0: np.ndarray, hann: np.ndarray) -> np.ndarray:
    """Least-squares frequency (bins) of each column of x [n, C], searched within f0 +- 0.5.

    Fits a + b*t + c*cos + d*sin jointly with Hann weights, so a sinusoid of only 1.5 cycles is
    not biased by the trend removal or by its own negative-frequency image.
    """
    n = x.shape[0]
    lo, hi = np.clip(f0 - 0.5, 0.5, n / 2), np.clip(f0 + 0.5, 0.5, n / 2)
    ratio = (np.sqrt(5) - 1) / 2
    c, d = hi - ratio * (hi - lo), lo + ratio * (hi - lo)
    qc, qd = _explained(x, c, hann), _explained(x, d, hann)
    for _ in range(20):  # golden section, one new probe a step: bracket 0.618^20 < 1e-4 bins
        left = qc > qd  # the maximum lies in [lo, d]: d is the new hi, c the new d
        hi, lo = np.where(left, d, hi), np.where(left, lo, c)
        probe = np.where(left, hi - ratio * (hi - lo), lo + ratio * (hi - lo))
        q = _explained(x, probe, hann)
        c, d, qc, qd = (
            np.where(left, probe, d),
            np.where(left, c, probe),
            np.where(left, q, qd),
            np.where(left, qc, q),
        )
    return (lo + hi) / 2


def find_periodic(
    w: np.ndarray, config: PeriodicityConfig, *, position_axis: int = 0
) -> tuple[list[Finding], PeriodicSpectrum]:
    """Channels of `w` that are sinusoids along `position_axis`, strongest first.

    w: positions along `position_axis`, channels on every other axis: GPT-2 wpe [n_pos, d] with
        position_axis=0, a ViT embedding [1, n, d] with position_axis=1.
    Each finding: kind "periodic", index None on the position axis and the channel elsewhere,
    score = power share (0..1, not a z-score), value = period in positions,
    extra {"period", "frequency" (cycles per position), "power_share"}.

    >>> t = np.arange(512)[:, None]
    >>> w = np.sin(2 * np.pi * t / np.array([[37.3, 1e6]]))
    >>> [(f.index, round(f.value, 1)) for f in find_periodic(w, PeriodicityConfig())[0]]
    [((None, 0), 37.3)]
    """
    if not -w.ndim <= position_axis < w.ndim:
        raise ValueError(f"position_axis={position_axis} is out of range for shape {w.shape}")
    axis = position_axis % w.ndim
    x = np.moveaxis(np.asarray(w), axis, 0)
    n, channel_shape = x.shape[0], x.shape[1:]
    x = x.reshape(n, int(np.prod(channel_shape)))
    freq = np.full(x.shape[1], np.nan)
    share = np.full(x.shape[1], np.nan)
    if n >= 4:
        for start in range(0, x.shape[1], _CHUNK):
            cols = np.arange(start, min(start + _CHUNK, x.shape[1]))
            ok = cols[np.isfinite(x[:, cols]).all(axis=0)]
            if ok.size:
                xs = x[:, ok].astype(np.float64)
                freq[ok], share[ok] = _spectrum(xs)
                strong = share[ok] >= config.min_share
                if strong.any():
                    freq[ok[strong]] = _refine(xs[:, strong], freq[ok[strong]], _hann(n))
    with np.errstate(divide="ignore", invalid="ignore"):
        period = n / freq
    spectrum = PeriodicSpectrum(
        period=period.reshape(channel_shape),
        frequency=(freq / n).reshape(channel_shape),
        power_share=share.reshape(channel_shape),
        n_positions=n,
        position_axis=axis,
    )
    if n < config.min_positions:
        return [], spectrum
    keep = np.isfinite(period) & (share >= config.min_share)
    keep &= (freq >= config.min_cycles) & (period >= 2.0)
    (hits,) = np.nonzero(keep)
    hits = hits[np.argsort(-share[hits], kind="stable")][: config.max_per_tensor]
    findings = []
    for ch in hits:
        p, s = float(period[ch]), float(share[ch])
        where = [int(i) for i in np.unravel_index(int(ch), channel_shape)]
        index = (*where[:axis], None, *where[axis:])
        name = str(where[0]) if len(where) == 1 else str(tuple(where))
        findings.append(
            Finding(
                kind="periodic",
                index=index,
                score=s,
                value=p,
                detail=f"channel {name} is periodic, period {p:.1f} positions "
                f"({100 * s:.0f}% of its power)",
                extra={"period": p, "frequency": 1.0 / p, "power_share": s},
            )
        )
    return findings, spectrum
