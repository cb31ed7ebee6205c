"""`tensor_stats`, which takes shortcuts for speed (a finite sum as the finiteness test, min, max
and zeros from the partitioned copy, the MAD partitioned in place), against a plain reference
written here with numpy and scipy, to 1e-12 relative: random, heavy-tailed, constant, sparse,
NaN / Inf-containing and overflowing inputs, odd and even sizes, float16 / float32 / float64."""

from __future__ import annotations

import math
import warnings

import numpy as np
import pytest

from striate.analyses.robust import median_sigma
from striate.analyses.stats import STAT_KEYS, summary_stats, tensor_stats

SIZES = [1, 2, 3, 5, 7, 11, 64, 1001, 4096]
COUNTS = ("numel", "n_nan", "n_inf", "n_zero")


def _reference(w: np.ndarray) -> dict[str, float]:
    """The statistics by their definitions in `striate.analyses.stats`, computed plainly."""
    stats = pytest.importorskip("scipy.stats")
    flat = w.ravel()
    v = flat[np.isfinite(flat)]  # the finite values, in their own dtype
    out: dict[str, float] = {
        "numel": flat.size,
        "n_nan": int(np.isnan(flat).sum()),
        "n_inf": int(np.isinf(flat).sum()),
        "n_zero": int((v == 0).sum()),
    }
    if v.size == 0:
        return out | {k: math.nan for k in STAT_KEYS if k not in COUNTS}
    v64 = v.astype(np.float64)
    mean = math.fsum(v64) / v.size  # exactly rounded sum
    med = float(np.median(v64))
    dev = np.abs(v - v.dtype.type(med))  # deviations in the values' dtype, as documented
    sigma = 1.4826 * float(np.median(dev.astype(np.float64)))
    if sigma == 0:
        sigma = 1.2533 * math.fsum(dev.astype(np.float64)) / v.size
    var = math.fsum((v64 - mean) ** 2) / v.size
    return out | {
        "mean": mean,
        "std": math.sqrt(var),
        "min": float(v.min()),
        "max": float(v.max()),
        "abs_max": float(np.abs(v64).max()),
        "median": med,
        "robust_sigma": sigma,
        "kurtosis": float(stats.kurtosis(v64, fisher=True, bias=True)) if var > 0 else math.nan,
        "frac_beyond_6sigma": float(np.sum(dev > 6 * sigma)) / v.size,
    }


def _assert_matches(w: np.ndarray) -> None:
    before = w.copy()
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # no warning for NaN, Inf, empty or constant inputs
        got = tensor_stats(w)
        shown = summary_stats(w)
    np.testing.assert_array_equal(w, before)  # the input is left as it was
    ref = _reference(w)
    assert list(got) == list(STAT_KEYS)
    for key in COUNTS:
        assert got[key] == ref[key] and isinstance(got[key], int), key
    for key in set(STAT_KEYS) - set(COUNTS):
        assert isinstance(got[key], float), key
        if math.isnan(ref[key]):
            assert math.isnan(got[key]), key
        else:
            assert got[key] == pytest.approx(ref[key], rel=1e-12, abs=0), key
    for key in ("mean", "std", "min", "max", "n_nan", "n_inf"):
        assert shown[key] == got[key] or (math.isnan(shown[key]) and math.isnan(got[key])), key


def _inputs(n: int, seed: int) -> dict[str, np.ndarray]:
    rng = np.random.default_rng(seed)
    gaussian = (rng.standard_normal(n) * 0.02 + 0.003).astype(np.float32)
    cauchy = rng.standard_cauchy(n).astype(np.float32)  # heavy tails: frac_beyond_6sigma > 0
    skewed = rng.lognormal(0.0, 2.0, n).astype(np.float32)  # median > 0, long right tail
    bad = gaussian.copy()
    bad[rng.random(n) < 0.2] = np.nan
    bad[rng.random(n) < 0.1] = np.inf
    bad[rng.random(n) < 0.1] = -np.inf
    sparse = np.where(rng.random(n) < 0.7, 0, gaussian).astype(np.float32)  # MAD = 0 fallback
    constant = np.full(n, -1.75, np.float32)
    return {"gaussian": gaussian, "cauchy": cauchy, "skewed": skewed, "bad": bad,
            "sparse": sparse, "constant": constant, "float16": gaussian.astype(np.float16),
            "float64": cauchy.astype(np.float64)}  # fmt: skip


@pytest.mark.parametrize("n", SIZES)
@pytest.mark.parametrize("seed", [0, 1])
@pytest.mark.parametrize(
    "kind", ["gaussian", "cauchy", "skewed", "bad", "sparse", "constant", "float16", "float64"]
)
def test_matches_plain_reference(n: int, seed: int, kind: str) -> None:
    _assert_matches(_inputs(n, seed)[kind])


@pytest.mark.parametrize("shape", [(576, 576), (1536, 576), (37, 11, 5)])
def test_matches_plain_reference_on_matrices_and_their_transposes(
    shape: tuple[int, ...],
) -> None:
    w = (np.random.default_rng(7).standard_t(3, size=shape) * 0.05).astype(np.float32)
    _assert_matches(w)
    _assert_matches(w.T)  # not contiguous: raveled to a copy


@pytest.mark.parametrize("sign", [1.0, -1.0])
@pytest.mark.parametrize("n_zero", [0, 1, 4, 5, 6, 11])
def test_zeros_are_counted_whatever_the_sign_of_the_median(sign: float, n_zero: int) -> None:
    # the zeros lie on one side of a non-zero median; with 11 values of 11 + n_zero, the
    # median is non-zero for n_zero < 11 and zero for n_zero = 11
    w = np.concatenate([np.zeros(n_zero), sign * np.arange(1, 12), [-sign * 3.0, -0.0]])
    w = w.astype(np.float32)
    assert tensor_stats(w)["n_zero"] == n_zero + 1  # -0.0 is a zero too
    _assert_matches(w)


@pytest.mark.parametrize(
    "w",
    [np.zeros(0, np.float32), np.full((3, 2), np.nan, np.float32),
     np.array([np.inf, -np.inf, np.nan], np.float32), np.array([np.inf, 1.0], np.float32),
     np.array([np.nan, 2.0, -np.inf, 2.0], np.float32), np.array([0.0, np.nan], np.float32)],
)  # fmt: skip
def test_empty_and_mostly_nonfinite_inputs(w: np.ndarray) -> None:
    _assert_matches(w)


def test_deviations_that_overflow_float32_agree_with_median_sigma() -> None:
    # |x - median| overflows float32 here; the shortcut gives way to the general helper
    w = np.array([3e38, -3e38, -3e38, 1.0, 2.0], np.float32)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # overflow in the helper's subtraction
        s = tensor_stats(w)
        med, sigma = median_sigma(w)
    assert (s["median"], s["robust_sigma"]) == (med, sigma)
    assert (s["min"], s["max"]) == (float(np.float32(-3e38)), float(np.float32(3e38)))
