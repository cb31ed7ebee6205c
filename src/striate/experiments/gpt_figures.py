"""The figures of `gpt-specimen`: the position embedding's top components with their sinusoid
fits, embedding rows ordered by token frequency, the layer-0 attention bias, the loss curves.
Each takes arrays, draws one figure and returns its path relative to the run directory."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd

from striate.experiments.gpt_measures import fit_sinusoid, frequency_groups, principal_components
from striate.render.ffn_panels import VERBATIM
from striate.render.png import save_figure
from striate.render.style import canvas, style

INIT_COLOR, TRAINED_COLOR, FIT_COLOR = "0.6", "#1f4e9c", "#c0392b"


def _rel(path: Path) -> str:
    return f"figures/{path.name}"


def draw_wpe(wpe: dict[str, np.ndarray], path: Path, title: str, k: int = 3) -> str:
    """One row per state (label -> wpe (n_ctx, d), e.g. init and trained), one column per top
    principal component over position: its scores and the fitted sinusoid (dashed)."""
    with style():
        fig = canvas(3.6 * k, 2.3 * len(wpe) + 0.5, dpi=110)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", **VERBATIM)
        axes = fig.subplots(len(wpe), k, squeeze=False)
        for row, (label, w) in enumerate(wpe.items()):
            scores, share = principal_components(w, k)
            color = INIT_COLOR if label == "init" else TRAINED_COLOR
            for i in range(scores.shape[1]):
                ax, y = axes[row, i], scores[:, i]
                fit = fit_sinusoid(y)
                ax.plot(y, color=color, lw=1.0)
                ax.plot(fit.curve(y.size), color=FIT_COLOR, lw=1.0, ls="--")
                ax.set_title(f"{label}: PC{i + 1} ({share[i]:.0%} of variance)\n"
                             f"{fit.cycles:.2f} cycles, R^2 = {fit.r2:.3f}", fontsize=7,
                             loc="left", **VERBATIM)  # fmt: skip
                ax.tick_params(labelsize=6)
                ax.grid(alpha=0.3)
            axes[row, 0].set_ylabel("score", fontsize=7)
        for ax in axes[-1]:
            ax.set_xlabel("position", fontsize=7)
        fig.tight_layout()
        save_figure(fig, path)
    return _rel(path)


def draw_embedding_rows(
    wte: dict[str, np.ndarray], counts: np.ndarray, path: Path, title: str
) -> str:
    """Row norms of each state's embedding (label -> wte (vocab, d)) against frequency rank of
    the tokens that occur (left), the most frequent and the rarest quarter shaded; the tokens'
    counts (right, log scale)."""
    order, frequent, _ = frequency_groups(counts)
    n, q = len(order), len(frequent)
    with style():
        fig = canvas(9.0, 3.2, dpi=110)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", **VERBATIM)
        left, right = fig.subplots(1, 2, gridspec_kw={"width_ratios": [3, 2]})
        for label, w in wte.items():
            norms = np.linalg.norm(np.asarray(w, dtype=np.float64)[order], axis=1)
            left.plot(norms, marker=".", ms=3, lw=0.8, label=label,
                      color=INIT_COLOR if label == "init" else TRAINED_COLOR)  # fmt: skip
        for lo, hi in ((0, q), (n - q, n)):
            left.axvspan(lo - 0.5, hi - 0.5, color="0.9", zorder=0)
        left.set_xlabel("token, most frequent first", fontsize=7)
        left.set_ylabel("embedding row norm", fontsize=7)
        left.legend(fontsize=7, frameon=False)
        right.bar(np.arange(n), np.asarray(counts)[order], color=TRAINED_COLOR, width=1.0)
        right.set_yscale("log")
        right.set_xlabel("token, most frequent first", fontsize=7)
        right.set_ylabel("count in the training text", fontsize=7)
        for ax in (left, right):
            ax.tick_params(labelsize=6)
            ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path)
    return _rel(path)


def draw_attention_bias(bias: np.ndarray, path: Path, title: str) -> str:
    """A (3d,) `c_attn` bias as stems, its q, k and v thirds apart."""
    b = np.asarray(bias)
    d = b.size // 3
    with style():
        fig = canvas(9.0, 2.6, dpi=110)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", **VERBATIM)
        ax = fig.subplots()
        for i, part in enumerate("qkv"):
            x = np.arange(i * d, (i + 1) * d)
            ax.vlines(x, 0, b[x], color=f"C{i}", lw=0.8, label=part)
        ax.axhline(0, color="black", lw=0.5)
        ax.set_xlabel("index in the stored (3d,) vector", fontsize=7)
        ax.legend(fontsize=7, frameon=False, ncols=3)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path)
    return _rel(path)


def draw_loss(metrics: pd.DataFrame, path: Path, title: str) -> str:
    """Training and held-out loss (nats per byte) against step."""
    with style():
        fig = canvas(6.0, 3.2, dpi=110)
        fig.suptitle(title, x=0.01, ha="left", fontsize=10, weight="bold", **VERBATIM)
        ax = fig.subplots()
        for key, color in (("train_loss", "C0"), ("val_loss", "C1")):
            rows = metrics[metrics[key].notna()] if key in metrics else metrics.iloc[:0]
            ax.plot(rows["step"], rows[key], color=color, lw=1.1, marker=".", ms=3,
                    label=key.replace("_", " "))  # fmt: skip
        if metrics["step"].max() >= 100:
            ax.set_xscale("symlog", linthresh=10)
        ax.set_xlabel("step", fontsize=7)
        ax.set_ylabel("cross-entropy (nats per byte)", fontsize=7)
        ax.legend(fontsize=7, frameon=False)
        ax.tick_params(labelsize=6)
        ax.grid(alpha=0.3)
        fig.tight_layout()
        save_figure(fig, path)
    return _rel(path)


__all__ = ["draw_attention_bias", "draw_embedding_rows", "draw_loss", "draw_wpe"]
