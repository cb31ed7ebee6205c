"""Agreement with WeightWatcher, the anchor, on MiniLM's 36 linear matrices, layer by layer.

Runs when `weightwatcher` is importable (see the `spectrum` section of README for the install
line). WeightWatcher 0.7.7 `analyze(mp_fit=True)` on an `nn.Sequential` of bias-free Linear
layers holding MiniLM's weights (~60 s on 2 cores; its MP fit is most of it).

Tolerances and why:
- alpha, xmin, D (KS), num_pl_spikes: the same estimator on the same eigenvalues
  (WeightWatcher's `WWFit`, lambda = s^2 unnormalised): equal to rel 1e-9 / exactly.
- stable_rank: the same definition, rel 1e-9. spectral_norm: WeightWatcher reports the largest
  eigenvalue lambda_1 = s_1^2; ours is s_1, so ours^2 is compared, rel 1e-9.
- spikes, square matrices (Q = 1; 24 of 36): WeightWatcher fits a quarter circle whose support
  is fixed, so its fitted sigma only scales the height and lands at ~1.01 times the entry RMS;
  compared with our `mp_noise="rms"`: bulk edge within 6%, spike count within 5.
- spikes, rectangular matrices (Q = 4; 12 of 36): its MP fit to a kernel density estimate
  (linear kernel, bandwidth 0.1 on the ESD rescaled to mean 1) against our median matching:
  sigma (relative to the entry RMS) within 20%, spike count within 35% (observed: 15%, 29%).
"""

from __future__ import annotations

import logging
import time
from typing import Any

import numpy as np
import pandas as pd
import pytest

from striate.analyses.spectrum import SpectrumConfig, as_matrix, singular_values, spectrum_metrics
from striate.anatomy import anatomy_of
from striate.checkpoint import Checkpoint

ww = pytest.importorskip("weightwatcher", reason="weightwatcher is not installed")
torch = pytest.importorskip("torch")

pytestmark = [
    pytest.mark.sample,
    pytest.mark.filterwarnings("ignore:Passing a dict to DataFrame.from_records"),  # its pandas use
]


@pytest.fixture(scope="module")
def compared(minilm: Checkpoint) -> pd.DataFrame:
    """One row per matrix: our metrics (median and rms noise) beside WeightWatcher's."""
    anatomy = anatomy_of(minilm)
    names = [
        n for n in minilm.names() if anatomy[n].layout == "linear" and anatomy[n].layer is not None
    ]
    model = torch.nn.Sequential()
    ours: list[dict[str, Any]] = []
    for name in names:
        w = np.asarray(minilm.read(name))
        linear = torch.nn.Linear(w.shape[1], w.shape[0], bias=False)
        with torch.no_grad():
            linear.weight.copy_(torch.from_numpy(w))
        key = name.replace(".", "_")
        model.add_module(key, linear)
        m = as_matrix(w, "linear")
        assert m is not None
        s = singular_values(m)
        rms = spectrum_metrics(s, m.shape, SpectrumConfig(mp_noise="rms"))
        ours.append({"name": key, "N": max(m.shape), "M": min(m.shape),
                     "entry_rms": float(np.sqrt(np.mean(np.square(m, dtype=np.float64)))),
                     **spectrum_metrics(s, m.shape),
                     "rms_edge": rms["mp_edge"], "rms_spikes": rms["n_spikes"]})  # fmt: skip
    logging.getLogger("weightwatcher").setLevel(logging.ERROR)
    start = time.perf_counter()
    theirs = ww.WeightWatcher(model=model).analyze(mp_fit=True, randomize=False)
    print(f"weightwatcher analyze(mp_fit=True): {time.perf_counter() - start:.1f} s")
    table = pd.DataFrame(ours).merge(theirs, on="name", suffixes=("", "_ww"))
    assert len(table) == 36
    return table


def test_alpha_and_its_fit_agree_exactly(compared: pd.DataFrame) -> None:
    np.testing.assert_allclose(compared["alpha"], compared["alpha_ww"], rtol=1e-9)
    np.testing.assert_allclose(compared["alpha_xmin"], compared["xmin"], rtol=1e-9)
    np.testing.assert_allclose(compared["alpha_ks"], compared["D"], rtol=1e-9)
    np.testing.assert_array_equal(compared["alpha_n_tail"], compared["num_pl_spikes"])


def test_norms_and_stable_rank_agree(compared: pd.DataFrame) -> None:
    np.testing.assert_allclose(
        compared["spectral_norm"] ** 2, compared["spectral_norm_ww"], rtol=1e-9
    )
    np.testing.assert_allclose(compared["stable_rank"], compared["stable_rank_ww"], rtol=1e-9)
    np.testing.assert_allclose(compared["frobenius_norm"] ** 2, compared["norm"], rtol=1e-9)


def test_spikes_of_square_matrices_match_the_rms_noise_level(compared: pd.DataFrame) -> None:
    square = compared[compared["N"] == compared["M"]]
    assert len(square) == 24
    np.testing.assert_allclose(square["rms_edge"], square["bulk_max"], rtol=0.06)
    assert (square["rms_spikes"] - square["num_spikes"]).abs().max() <= 5


def test_spikes_of_rectangular_matrices_match_the_median_noise_level(
    compared: pd.DataFrame,
) -> None:
    rect = compared[compared["N"] != compared["M"]]
    assert len(rect) == 12
    np.testing.assert_allclose(rect["mp_sigma"] / rect["entry_rms"], rect["sigma_mp"], rtol=0.2)
    np.testing.assert_allclose(rect["n_spikes"], rect["num_spikes"], rtol=0.35)
