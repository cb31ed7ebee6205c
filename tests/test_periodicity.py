"""Periodicity: the Vaswani encoding, a planted 37.3-position sinusoid, noise, layouts, NaN."""

from __future__ import annotations

import numpy as np
import pytest

from striate.analyses.periodicity import PeriodicityConfig, find_periodic

ALL = PeriodicityConfig(max_per_tensor=10_000)


def _vaswani(n_pos: int, d: int) -> tuple[np.ndarray, np.ndarray]:
    """PE[pos, 2i] = sin(pos / 10000^(2i/d)), PE[pos, 2i+1] = cos(...); each channel's period."""
    pos = np.arange(n_pos)[:, None]
    div = 10000.0 ** (2 * np.arange(d // 2) / d)
    pe = np.empty((n_pos, d), np.float32)
    pe[:, 0::2], pe[:, 1::2] = np.sin(pos / div), np.cos(pos / div)
    return pe, np.repeat(2 * np.pi * div, 2)


def _planted(
    n: int = 1024, d: int = 48, channel: int = 12, period: float = 37.3, seed: int = 0
) -> np.ndarray:
    """Noise [n, d] (sd 0.3) plus, in one channel, a sinusoid of amplitude 1 and this period."""
    rng = np.random.default_rng(seed)
    w = 0.3 * rng.standard_normal((n, d))
    w[:, channel] += np.sin(2 * np.pi * np.arange(n) / period + 0.7)
    return w.astype(np.float32)


def test_vaswani_encoding_periods() -> None:
    pe, true = _vaswani(1024, 64)
    found, spectrum = find_periodic(pe, ALL)
    period = {f.index[1]: f.value for f in found}
    short = np.nonzero(true < 1024 / 4)[0]  # at least 4 cycles: must be found, within 1%
    assert set(short) <= set(period)
    np.testing.assert_allclose([period[c] for c in short], true[short], rtol=0.01)
    for c, p in period.items():  # every report is right, and none beyond min_cycles
        assert p == pytest.approx(true[c], rel=0.01)
        assert true[c] <= 1024 / ALL.min_cycles * 1.01
    assert not set(np.nonzero(true > 1024)[0]) & set(period)
    assert all(f.index == (None, f.index[1]) and f.kind == "periodic" for f in found)
    assert spectrum.period.shape == spectrum.power_share.shape == (64,)
    np.testing.assert_allclose(spectrum.power_share[short], 1.0, atol=0.03)


def test_planted_period_37_3_in_noise() -> None:
    found, spectrum = find_periodic(_planted(), PeriodicityConfig())
    (f,) = found
    assert f.index == (None, 12)
    assert f.value == pytest.approx(37.3, rel=0.01)
    assert 0.5 < f.score <= 1.0
    assert f.extra == {"period": f.value, "frequency": 1 / f.value, "power_share": f.score}
    share = f"{100 * f.score:.0f}%"
    assert (
        f.detail == f"channel 12 is periodic, period {f.value:.1f} positions ({share} of its power)"
    )
    assert spectrum.period[12] == f.value
    assert spectrum.frequency[12] == pytest.approx(1 / 37.3, rel=0.01)


def test_linear_trend_does_not_hide_or_shift_the_period() -> None:
    t = np.arange(800)
    w = np.stack([0.02 * t + np.sin(2 * np.pi * t / 50), 0.02 * t], axis=1).astype(np.float32)
    found, _ = find_periodic(w, PeriodicityConfig())
    assert [f.index for f in found] == [(None, 0)]
    assert found[0].value == pytest.approx(50.0, rel=1e-3)


@pytest.mark.parametrize("shape", [(1024, 64), (512, 128), (197, 96), (96, 256)])
def test_pure_noise_has_no_findings(shape: tuple[int, int]) -> None:
    for seed in range(5):
        w = np.random.default_rng(seed).standard_normal(shape).astype(np.float32)
        found, spectrum = find_periodic(w, PeriodicityConfig())
        assert found == []
        assert np.all(spectrum.power_share < 0.5)


def test_vit_layout_1_n_d() -> None:
    w = _planted(n=197, d=32, channel=5)[None]  # [1, n, d], positions on axis 1
    found, spectrum = find_periodic(w, PeriodicityConfig(), position_axis=1)
    (f,) = found
    assert f.index == (0, None, 5)
    assert f.value == pytest.approx(37.3, rel=0.01)
    assert f.detail.startswith("channel (0, 5) is periodic")
    assert spectrum.period.shape == (1, 32) and spectrum.position_axis == 1
    again, _ = find_periodic(w, PeriodicityConfig(), position_axis=-2)
    assert again == found


def test_positions_on_the_last_axis() -> None:
    w = _planted().T  # [d, n]
    found, _ = find_periodic(w, PeriodicityConfig(), position_axis=1)
    assert [f.index for f in found] == [(12, None)]


def test_nonfinite_channel_is_skipped_others_found() -> None:
    w = _planted(d=8, channel=2)
    w[:, 3] = w[:, 2]
    w[100, 2] = np.nan
    found, spectrum = find_periodic(w, PeriodicityConfig())
    assert [f.index for f in found] == [(None, 3)]
    assert np.isnan(spectrum.period[2]) and np.isnan(spectrum.power_share[2])


def test_cap_keeps_the_strongest() -> None:
    pe, _ = _vaswani(1024, 64)
    rng = np.random.default_rng(0)
    pe += (0.02 * np.arange(64) * rng.standard_normal((1024, 64))).astype(np.float32)
    found, spectrum = find_periodic(pe, PeriodicityConfig(max_per_tensor=5))
    share = spectrum.power_share
    eligible = share[(spectrum.frequency * 1024 >= 2.0) & (share >= 0.5)]
    assert len(eligible) > 5
    assert [f.score for f in found] == sorted(eligible, reverse=True)[:5]


def test_nyquist_and_short_tensors() -> None:
    alternating = np.where(np.arange(256) % 2, 1.0, -1.0)[:, None].astype(np.float32)
    (f,), _ = find_periodic(alternating, PeriodicityConfig())
    assert f.value == pytest.approx(2.0, rel=1e-3)
    short = _planted(n=48, d=4, channel=0, period=9.7)
    found, spectrum = find_periodic(short, PeriodicityConfig())
    assert found == [] and np.isfinite(spectrum.period).all()
    found, _ = find_periodic(short, PeriodicityConfig(min_positions=32))
    assert [f.index for f in found] == [(None, 0)]
    assert found[0].value == pytest.approx(9.7, rel=0.02)  # 5 cycles in noise: less precise


def test_bad_position_axis() -> None:
    with pytest.raises(ValueError, match="position_axis=2 is out of range for shape"):
        find_periodic(np.zeros((8, 8), np.float32), PeriodicityConfig(), position_axis=2)
