"""A GPT-2 specimen, trained here: seed 000's readings of GPT-2's weights, checked on a GPT-2 we
can make ourselves.

We have no GPT-2 weights, so this trains a small model with GPT-2's exact layout
(`gpt_model.GPT2`: learned `wpe`, pre-LayerNorm blocks, Conv1D storage, GELU MLP with biases,
output tied to `wte`) on real text: the Python standard library's .py sources, byte tokens,
every 10th file held out (`data.python_corpus`). AdamW (betas 0.9, 0.95, weight decay 0.1 on
matrices and embeddings only), linear warm-up then cosine decay to 10% of the peak rate,
gradients clipped at norm 1. Checkpoints (step 0 and log-spaced after it) carry Hugging Face's
names and Conv1D storage, so `striate scan`, `striate track` and `striate.anatomy_of` read them
as family gpt2; `Experiment.track` tracks them like any experiment's.

The first and the last checkpoint are then scanned (`striate.scan`, default settings, into
`scan/init/` and `scan/trained/`) and measured (`gpt_measures`), at init and trained:

- `wpe`: the top 3 principal components of the position embedding over position, each fitted by
  a * sin(2 pi f t + phi) + c; frequency, cycles and R^2 per component, `mean_r2`. Context:
  `random_walk`, the same for a Gaussian random walk over position of wpe's shape (the top
  principal components of a random walk are themselves near-sinusoids of 0.5, 1, 1.5 cycles:
  Antognini & Sohl-Dickstein 2018), so a high R^2 says "smooth in position" as much as
  "periodic"; the cycles tell the two apart.
- `norm_lines`: the residual dims of LayerNorm-gain outliers (the scan's `norm_outlier`
  findings, |robust z| >= 8) against those of the `line` findings in the matrices the gains
  feed (`norm_links`: ln_1 -> c_attn, ln_2 -> c_fc, ln_f -> the tied wte), pooled over the
  model; the overlap and its hypergeometric p-value; `per_norm`, each gain's `norm_links` row.
- `attention_bias`: h.0.attn.c_attn.bias's q, k and v parts: norms, largest entries. The keys'
  bias gets no gradient (softmax ignores a shift common to every key), only float noise that
  Adam's normalization amplifies; its size is reported, not claimed.
- `embedding`: wte's rows of the most frequent quarter of the bytes that occur in the training
  text against the rarest quarter: mean norm, mean cosine to the quarter's mean row.
- `ffn`: the scan's per-neuron FFN statistics (in_norm, out_norm, |cos(in, out)|), with what
  GPT-2's random init gives in closed form (`expected_at_init`).

summary.json also has `corpus` (files, bytes, sha256, Python version), `model`, `anatomy`
(family, layouts and residual axes as striate reads the checkpoints), `loss` (held-out loss at
step 0 and at the end, in nats and bits per byte) and `scan` (findings per kind). The claims
(`CLAIMS`) are seed 000's sentences, decided on the trained model.

Time (measured on this project's 2-core machine while other runs shared it; one torch thread,
as every experiment trains): a step of the full preset (4 layers, d_model 128, 16 x 256 bytes,
0.86M parameters) takes 0.5-0.6 s at load 4.5 and 0.86 s at load 5.6; an evaluation 2.1 s.
3,000 steps and ~45 evaluations: 27-45 minutes; tracking 16 checkpoints ~20 s and the two
scans with images ~45 s more (a 100-step run of the full preset took 3 minutes in all). About
30 minutes a seed on a quiet machine, 45 on a busy one. The quick preset takes ~30 s.

    striate experiment gpt-specimen --preset full --out runs/gpt-specimen --seeds 3
"""

from __future__ import annotations

import math
import platform
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch

from striate.anatomy import anatomy_of
from striate.checkpoint import open_checkpoint
from striate.experiments.claims import Claim, Criterion, Summary
from striate.experiments.data import TextCorpus, python_corpus
from striate.experiments.gpt_figures import (
    draw_attention_bias,
    draw_embedding_rows,
    draw_loss,
    draw_wpe,
)
from striate.experiments.gpt_measures import (
    attention_bias,
    embedding_by_frequency,
    ffn_at_init,
    ffn_summary,
    norm_line_overlap,
    wpe_components,
)
from striate.experiments.gpt_model import GPT2, GPTShape, param_groups
from striate.experiments.harness import Condition, Experiment, log_schedule, over_seeds
from striate.experiments.setting import Setting
from striate.scan import ImagesConfig, ScanConfig, scan

SEED_000 = "shared/seeds/000_e4c65f3ff722b613.txt"
WTE, WPE, BIAS0 = (
    "transformer.wte.weight",
    "transformer.wpe.weight",
    "transformer.h.0.attn.c_attn.bias",
)


@dataclass(frozen=True)
class Config:
    n_layer: int = 4  # blocks
    n_head: int = 4  # attention heads, each d_model / n_head wide
    d_model: int = 128  # residual width; must differ from 256 (vocab) and n_ctx
    n_ctx: int = 256  # context, in bytes: the rows of wpe
    batch_size: int = 16  # sequences of n_ctx + 1 bytes per step, at random offsets
    steps: int = 3000  # AdamW steps
    lr: float = 1e-3  # peak learning rate, after the warm-up
    warmup: int = 100  # steps of linear warm-up
    min_lr_ratio: float = 0.1  # the cosine decay ends at this share of lr
    weight_decay: float = 0.1  # on matrices and embeddings; none on biases and LayerNorms
    beta1: float = 0.9  # AdamW betas (GPT-2 / nanoGPT)
    beta2: float = 0.95
    grad_clip: float = 1.0  # gradient norm clipped to this (0: no clipping)
    max_bytes: int = 0  # corpus: the first sorted stdlib files within this size (0: all, ~31 MB)
    val_every: int = 10  # every this-many-th file is held out
    eval_every: int = 100  # held-out loss logged every this many steps (and at checkpoints)
    eval_batches: int = 8  # batches of held-out windows, at fixed evenly spaced offsets
    checkpoints: int = 16  # checkpoints, log-spaced over [0, steps]
    scan_images: bool = True  # draw the tensor images of the two scans (scan/*/images)
    seed: int = 0  # init and batch order (the corpus and its split do not depend on it)


PRESETS: dict[str, Config] = {
    "full": Config(),  # 30-45 minutes a seed on one thread (see the docstring)
    "quick": Config(
        n_layer=2,
        d_model=48,
        n_ctx=64,
        batch_size=8,
        steps=300,
        lr=3e-3,
        warmup=20,
        max_bytes=1_000_000,
        eval_every=50,
        eval_batches=4,
        checkpoints=6,
        scan_images=False,
    ),
}


def shape_of(cfg: Config) -> GPTShape:
    return GPTShape(vocab=256, n_ctx=cfg.n_ctx, n_layer=cfg.n_layer, n_head=cfg.n_head,
                    d_model=cfg.d_model)  # fmt: skip


def lr_factor(step: int, cfg: Config) -> float:
    """The learning rate at `step` as a share of `lr`: linear warm-up, then a cosine to
    min_lr_ratio at `steps`."""
    if step < cfg.warmup:
        return (step + 1) / cfg.warmup
    progress = min(1.0, (step - cfg.warmup) / max(1, cfg.steps - cfg.warmup))
    return cfg.min_lr_ratio + (1 - cfg.min_lr_ratio) * 0.5 * (1 + math.cos(math.pi * progress))


def windows(
    text: torch.Tensor, starts: torch.Tensor, n_ctx: int
) -> tuple[torch.Tensor, torch.Tensor]:
    """Inputs and next-byte targets (B, n_ctx) of the windows of `text` at `starts` (B,)."""
    xy = text[starts[:, None] + torch.arange(n_ctx + 1)].long()  # (B, n_ctx + 1)
    return xy[:, :-1], xy[:, 1:]


@torch.no_grad()
def held_out_loss(model: GPT2, val: torch.Tensor, cfg: Config) -> float:
    """Mean loss over eval_batches x batch_size windows at evenly spaced offsets of `val`."""
    n = cfg.eval_batches * cfg.batch_size
    starts = torch.linspace(0, val.numel() - cfg.n_ctx - 2, n).long()
    model.eval()
    losses = [float(model.loss(*windows(val, s, cfg.n_ctx)))
              for s in torch.split(starts, cfg.batch_size)]  # fmt: skip
    model.train()
    return float(np.mean(losses))


def train(cfg: Config, model: GPT2, corpus: TextCorpus, cond: Condition) -> None:
    """AdamW on random windows of the training text; checkpoints and held-out loss on schedule."""
    gen = torch.Generator().manual_seed(cfg.seed)
    opt = torch.optim.AdamW(param_groups(model, cfg.weight_decay), lr=cfg.lr,
                            betas=(cfg.beta1, cfg.beta2))  # fmt: skip
    schedule = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: lr_factor(s, cfg))
    last_start = corpus.train.numel() - cfg.n_ctx - 1
    recent: list[float] = []  # training losses since the last log
    for step in range(cfg.steps + 1):
        if cond.due(step):
            cond.save(step, model)
        if cond.due(step) or step % cfg.eval_every == 0 or step == cfg.steps:
            train_loss = {"train_loss": float(np.mean(recent))} if recent else {}
            cond.log(step, val_loss=held_out_loss(model, corpus.val, cfg), **train_loss)
            recent = []
        if step == cfg.steps:
            break
        starts = torch.randint(0, last_start, (cfg.batch_size,), generator=gen)
        loss = model.loss(*windows(corpus.train, starts, cfg.n_ctx))
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        if cfg.grad_clip > 0:
            torch.nn.utils.clip_grad_norm_(model.parameters(), cfg.grad_clip)
        opt.step()
        schedule.step()
        recent.append(loss.item())


def _anatomy(path: Path) -> tuple[dict[str, Any], dict[str, np.ndarray]]:
    """What striate reads of a checkpoint's anatomy, and the tensors the measures need."""
    with open_checkpoint(path) as ckpt:
        anat = anatomy_of(ckpt)
        arrays = {name: np.asarray(ckpt.read(name)) for name in (WTE, WPE, BIAS0)}
    parts = {n: {"role": t.role, "layout": t.layout, "residual_axis": t.residual_axis}
             for n, t in anat.tensors.items() if t.layer in (None, 0)}  # fmt: skip
    facts = {"family": anat.family, "hidden_size": anat.hidden_size, "n_layers": anat.n_layers,
             "roles": anat.role_counts(), "tensors": parts}  # fmt: skip
    return facts, arrays


def measure(path: Path, out: Path, cfg: Config, counts: np.ndarray) -> dict[str, Any]:
    """Scan one checkpoint into `out` and measure it (the module docstring's list); the arrays
    the figures draw under `arrays`."""
    found = scan(path, out, config=ScanConfig(images=ImagesConfig(enabled=cfg.scan_images)))
    anatomy, a = _anatomy(path)
    return {
        "anatomy": anatomy,
        "wpe": wpe_components(a[WPE]),
        "norm_lines": norm_line_overlap(
            found.findings, found.tensors, found.norm_links, cfg.d_model
        ),
        "attention_bias": attention_bias(a[BIAS0]),
        "embedding": embedding_by_frequency(a[WTE], counts),
        "ffn": ffn_summary(found.ffn),
        "scan": {str(k): int(v) for k, v in found.findings["kind"].value_counts().items()},
        "arrays": a,
    }


def random_walk_wpe(shape: tuple[int, int], seed: int) -> np.ndarray:
    """A Gaussian random walk over positions, (n_ctx, d): the control of `wpe`'s fits."""
    return np.cumsum(np.random.default_rng(seed).standard_normal(shape), axis=0)


def run(cfg: Config, ex: Experiment) -> Path:
    corpus = python_corpus(cfg.max_bytes, cfg.val_every)
    counts = np.bincount(corpus.train.numpy(), minlength=256)  # (256,) bytes in training text
    torch.manual_seed(cfg.seed)
    model = GPT2(shape_of(cfg))
    n_params = sum(p.numel() for p in model.parameters())
    cond = ex.condition("specimen", log_schedule(cfg.steps, cfg.checkpoints))
    ex.say(f"{corpus.train.numel():,} training bytes, {n_params:,} parameters")
    train(cfg, model, corpus, cond)
    tracked = ex.track()
    states = {}
    for when, step in (("init", 0), ("trained", cfg.steps)):
        ex.say(f"scanning and measuring the {when} checkpoint")
        states[when] = measure(cond.folder / f"step_{step:07d}.safetensors",
                               ex.out / "scan" / when, cfg, counts)  # fmt: skip
    arrays = {when: state.pop("arrays") for when, state in states.items()}
    summary: dict[str, Any] = {"anatomy": states["trained"].pop("anatomy")}
    states["init"].pop("anatomy")
    for key in states["trained"]:
        summary[key] = {when: states[when][key] for when in states}
    walk = random_walk_wpe((cfg.n_ctx, cfg.d_model), cfg.seed)
    summary["wpe"]["random_walk"] = wpe_components(walk)
    summary["ffn"]["expected_at_init"] = ffn_at_init(cfg.d_model, cfg.n_layer)
    metrics = cond.metrics()
    val, last = metrics["val_loss"], metrics.iloc[-1]
    summary |= {
        "corpus": {**corpus.facts(), "python": platform.python_version(),
                   "distinct_bytes": int((counts > 0).sum())},
        "model": {"shape": vars(shape_of(cfg)), "parameters": n_params},
        "loss": {"val_at_init": float(val.iloc[0]), "val_final": float(last["val_loss"]),
                 "train_final": float(last["train_loss"]),
                 "val_final_bits_per_byte": float(last["val_loss"]) / math.log(2)},
        "tracked_checkpoints": int(tracked.trajectories["step"].nunique()),
    }  # fmt: skip
    folder = ex.out / "figures"
    title = f"GPT-2 specimen ({cfg.n_layer} layers, d_model {cfg.d_model})"
    wpe, wte = ({w: arrays[w][name] for w in arrays} for name in (WPE, WTE))
    figures = [
        draw_wpe(wpe, folder / "wpe.png",
                 f"{title}: wpe's top principal components over position, sinusoid fits dashed"),
        draw_embedding_rows(wte, counts, folder / "embedding_rows.png",
                            f"{title}: embedding rows by byte frequency"),
        draw_attention_bias(arrays["trained"][BIAS0], folder / "attention_bias.png",
                            f"{title}: h.0.attn.c_attn.bias, trained"),
        draw_loss(metrics, folder / "loss.png", f"{title}: loss on the Python standard library"),
    ]  # fmt: skip
    return ex.finish(summary, figures)


def draw_seeds(runs: list[Path], folder: Path) -> list[str]:
    """Every seed's loss curves in one figure."""
    metrics = over_seeds(runs).metrics
    return [draw_loss(metrics, folder / "loss.png", f"GPT-2 specimen: loss, {len(runs)} seeds")]


# --- the claims, fixed before any run ------------------------------------------------------------

R2_SINUSOID = 0.8  # "very clear sinusoidal patterns": a sinusoid explains >= 80% of the variance
P_OVERLAP = 0.01  # the overlap of gain outliers and lines is beyond chance at this level


def _cos_difference(s: Summary) -> float:
    return float(s["embedding"]["trained"]["cos_difference"])


CLAIMS = (
    Claim(
        "wpe_top_components_are_sinusoids",
        f"{SEED_000}: \"OpenAI's position embedding layer (wpe) has very clear sinusoidal "
        'patterns"',
        "The trained position embedding's top principal components over position are sinusoids.",
        "Mean over wpe's top 3 principal components (scores over position) of the R^2 of the "
        "best fit a sin(2 pi f t + phi) + c (f from half a cycle over the context to Nyquist; "
        "`gpt_measures.fit_sinusoid`), trained model. Init and a random walk are reported beside "
        "it (summary `wpe`).",
        Criterion(">=", R2_SINUSOID),
        lambda s: s["wpe"]["trained"]["mean_r2"],
        (
            "The seed sees sinusoids in the image of wpe's channels; here the top 3 principal "
            "components over position are fitted (the measure issue 23 asks for).",
        ),
    ),
    Claim(
        "wpe_more_sinusoidal_than_a_random_walk",
        f"{SEED_000}: \"OpenAI's position embedding layer (wpe) has very clear sinusoidal "
        'patterns"',
        "The sinusoids are more than any smooth curve gives: the principal components of a "
        "random walk over position are near-sinusoids too, so wpe must fit them better.",
        "The mean R^2 of wpe_top_components_are_sinusoids for the trained wpe minus the same for "
        "a Gaussian random walk over position of wpe's shape (summary `wpe.random_walk`).",
        Criterion(">", 0.0),
        lambda s: s["wpe"]["trained"]["mean_r2"] - s["wpe"]["random_walk"]["mean_r2"],
    ),
    Claim(
        "layernorm_gains_have_outliers",
        f"{SEED_000}: \"Here's a visualization of 'model/h8/ln_1/g' and 'model/h8/ln_1/b' ... "
        'Some values are very different from the others."',
        "Some LayerNorm gain values are very different from the others.",
        "Number of the scan's norm_outlier findings (|robust z| >= 8, at most 5 per vector) over "
        "every LayerNorm gain of the trained model (ln_1, ln_2 of each block, ln_f).",
        Criterion(">=", 1),
        lambda s: s["norm_lines"]["trained"]["n_gain_outliers"],
    ),
    Claim(
        "gain_outliers_sit_on_lines",
        f'{SEED_000}: "The spectral lines might correspond to the layernorm values."',
        "The residual dimensions where LayerNorm gains have outliers are the dimensions of the "
        "spectral lines in the matrices those norms feed, more often than chance.",
        "Hypergeometric P(X >= k) of k = |O & L| among d_model dims, O the residual dims of "
        "gain outliers (any gain), L those of the scan's line findings in the matrices the "
        "gains feed (ln_1 -> c_attn, ln_2 -> c_fc, ln_f -> wte); 1 when O or L is empty.",
        Criterion("<", P_OVERLAP),
        lambda s: s["norm_lines"]["trained"]["p_value"],
        (
            "The seed sets h8's ln_1 beside h8's c_attn and c_proj by eye; here every gain and "
            "the matrices it feeds, pooled over the model, one test.",
        ),
    ),
    Claim(
        "frequent_token_rows_share_a_pattern",
        f'{SEED_000}: "The first 2048 vocab embeddings from 1.5B are interesting. The next '
        "2048 vocab embeddings from 1.5B don't seem to have a clear pattern. I wonder what was "
        'special about the vertical stripes from the previous 2048..."',
        "The embedding rows of frequent tokens share a pattern (vertical stripes); those of rare "
        "tokens do not, or less.",
        "Mean cosine of each row of wte to its quarter's mean row, the most frequent quarter of "
        "the bytes that occur in the training text minus the rarest quarter, trained model.",
        Criterion(">", 0.0),
        _cos_difference,
    ),
)


def deviations(cfg: Config) -> list[str]:
    """How a config differs from the GPT-2 the seed reads."""
    corpus = (
        "the whole standard library" if not cfg.max_bytes else f"its first {cfg.max_bytes:,} bytes"
    )
    return [
        f"A GPT-2 of {cfg.n_layer} layers, d_model {cfg.d_model}, {cfg.n_head} heads and a "
        f"{cfg.n_ctx}-byte context, trained here for {cfg.steps:,} steps of {cfg.batch_size} "
        "sequences; the seed reads OpenAI's GPT-2 (up to 1.5B: 48 layers, d_model 1600, "
        "context 1024) trained on WebText.",
        f"Byte tokens (vocabulary 256) of the Python standard library's sources ({corpus}); "
        "GPT-2 has a BPE vocabulary of 50,257 whose ids follow the merge order, which is only "
        "roughly frequency order: here the quarters are taken by count in the training text.",
        "Outliers and lines are the scan's detectors at their default thresholds; the seed "
        "judged images by eye.",
    ]


GPT_SPECIMEN = Setting(
    name="gpt-specimen",
    about="A GPT-2 specimen trained here (GPT-2's layout and init, byte-level on the Python "
    "standard library): do seed 000's readings of GPT-2's weights hold on it?",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=CLAIMS,
    deviations=deviations,
    draw_seeds=draw_seeds,
)
