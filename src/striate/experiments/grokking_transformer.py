"""Grokking in the source's setting: Nanda et al. (2023)'s one-layer transformer on a + b mod 113.

The input is the three tokens (a, b, '=') over a vocabulary of p + 1; the model reads its
answer at '='. One layer: learned token and position embeddings, 4 attention heads of width 32
(d_model 128), a ReLU MLP of width 512, an unembedding; no LayerNorm, no attention biases.
30% of the p^2 pairs train it, full batch, with AdamW (lr 1e-3 after a 10-step linear warm-up,
betas (0.9, 0.98), weight decay 1.0), the cross-entropy taken in float64 as Nanda et al. did.
The same model trains without weight decay as the control. The claims are `grokking`'s
(`grokking.grokking_claims`), read on the normalized entropy of the singular values.

When to stop: at `stop_after` (1.5) times the grokking step, the first logged step where test
accuracy is >= 99%, so that the rank is seen to settle after the jump; at `steps` (40k) when it
never groks. The control trains exactly as many steps as the weight-decay run did, on the same
checkpoint schedule (log-spaced over [0, steps], and every `checkpoint_every` steps).

Only the logits at '=' enter the loss, and there is one layer, so queries, the MLP and the
unembedding are computed at '=' alone (`Transformer.forward`); `logits_every_position` is the
full causal computation it equals.

Time: one step of the full preset (3,830 training pairs) takes about 0.15 s of one CPU thread
(measured on this project's 2-core machine; the full forward at every position, 0.32 s), an
evaluation of all 12,769 pairs 0.17 s, tracking a checkpoint about 2 s. If it groks near step
12k as in Nanda et al., one seed is a weight-decay run of ~18k steps and a control as long:
about 1.6 hours of one thread; 3.5 to 4 hours when it never groks (2 x 40k steps). At 3 seeds
run it on a GPU (not timed here: no GPU at hand; the tracking stays on the CPU, ~5 minutes a
seed):

    striate experiment grokking-transformer --preset full --seeds 3 --device cuda --out runs/gt
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from pathlib import Path

import torch
import torch.nn.functional as F
from torch import nn

from striate.devices import resolve_device
from striate.experiments import grokking
from striate.experiments.figures import draw_curves
from striate.experiments.harness import Condition, Experiment, over_seeds
from striate.experiments.measures import weight_matrices
from striate.experiments.setting import Setting


@dataclass(frozen=True)
class Config:
    p: int = 113  # modulus: a, b in [0, p), label (a + b) mod p; the vocabulary adds '=' (p)
    train_fraction: float = 0.3  # share of the p^2 pairs used for training
    d_model: int = 128  # residual width
    n_heads: int = 4  # attention heads, each of width d_model / n_heads
    d_mlp: int = 512  # hidden width of the ReLU MLP
    lr: float = 1e-3  # AdamW learning rate after the warm-up
    warmup: int = 10  # steps of linear learning-rate warm-up (Nanda et al.)
    beta1: float = 0.9  # AdamW betas
    beta2: float = 0.98
    weight_decays: tuple[float, ...] = (1.0, 0.0)  # the largest groks, 0 is the control
    steps: int = 40000  # the cap: full-batch steps when the model never groks
    stop_after: float = 1.5  # stop at this multiple of the grokking step (0: train to `steps`)
    checkpoints: int = 32  # checkpoints log-spaced over [0, steps] ...
    checkpoint_every: int = 250  # ... and one every this many steps (0: none)
    eval_every: int = 100  # accuracy and loss logged every this many steps (and at checkpoints)
    top_k: int = 8  # singular directions compared by the dynamics (striate track's default)
    device: str = "cpu"  # where it trains: cpu, cuda, cuda:N (`--device`); checkpoints on CPU
    seed: int = 0  # the split and the init


PRESETS: dict[str, Config] = {
    "full": Config(),  # Nanda et al.'s setting; on a GPU (see above)
    "quick": Config(
        p=31,
        train_fraction=0.5,
        d_model=64,
        d_mlp=256,
        lr=1e-2,
        steps=3000,
        checkpoints=12,
        checkpoint_every=25,
        eval_every=10,
    ),  # ~30 s on one CPU thread
}

# the position embedding has 3 rows: a rank of at most 3 says nothing of a low-rank solution
# (striate track gives no spectrum under 8 on a side anyway)
NOT_CLAIMED = ("W_pos",)


class Transformer(nn.Module):
    """One attention layer and one MLP on the residual stream, no LayerNorm; every weight
    N(0, 1/d_model) but W_U, N(0, 1/vocab), as in Nanda et al.'s code. Weights act as x @ W."""

    def __init__(self, cfg: Config) -> None:
        super().__init__()
        d, vocab = cfg.d_model, cfg.p + 1
        self.n_heads = cfg.n_heads

        def normal(*shape: int, std: float = d**-0.5) -> nn.Parameter:
            return nn.Parameter(torch.randn(*shape) * std)

        self.W_E = normal(vocab, d)  # token embedding
        self.W_pos = normal(3, d)  # position embedding
        self.W_Q, self.W_K, self.W_V = (normal(d, d) for _ in range(3))  # heads side by side
        self.W_O = normal(d, d)
        self.W_in, self.b_in = normal(d, cfg.d_mlp), nn.Parameter(torch.zeros(cfg.d_mlp))
        self.W_out, self.b_out = normal(cfg.d_mlp, d), nn.Parameter(torch.zeros(d))
        self.W_U = normal(d, cfg.p, std=vocab**-0.5)  # unembedding

    def forward(self, tokens: torch.Tensor) -> torch.Tensor:  # (B, 3) -> logits at '=' (B, p)
        x = self.W_E[tokens] + self.W_pos  # (B, 3, d)
        return (self._residual(x, last_only=True) @ self.W_U)[:, 0]

    def logits_every_position(self, tokens: torch.Tensor) -> torch.Tensor:
        """The full causal computation, logits at every position (B, 3, p); `forward` is its
        last position."""
        x = self.W_E[tokens] + self.W_pos  # (B, 3, d)
        return self._residual(x, last_only=False) @ self.W_U

    def _heads(self, x: torch.Tensor) -> torch.Tensor:  # (B, T, d) -> (B, H, T, d_head)
        return x.view(x.size(0), x.size(1), self.n_heads, -1).transpose(1, 2)

    def _residual(self, x: torch.Tensor, last_only: bool) -> torch.Tensor:
        """The residual stream after the layer at the query positions: '=' alone (B, 1, d),
        which attends to every position, or every position, causally (B, 3, d)."""
        xq = x[:, -1:] if last_only else x  # (B, T, d)
        q, k, v = self._heads(xq @ self.W_Q), self._heads(x @ self.W_K), self._heads(x @ self.W_V)
        scores = q @ k.transpose(-1, -2) / math.sqrt(q.size(-1))  # (B, H, T, 3)
        if not last_only:
            causal = torch.ones(3, 3, dtype=torch.bool, device=x.device).triu(1)
            scores = scores.masked_fill(causal, float("-inf"))
        z = (scores.softmax(-1) @ v).transpose(1, 2).flatten(2)  # (B, T, d)
        r = xq + z @ self.W_O
        return r + F.relu(r @ self.W_in + self.b_in) @ self.W_out + self.b_out


def tokens(cfg: Config) -> dict[str, torch.Tensor]:
    """`grokking.modular_addition`'s split with '=' (token p) after every pair: x (N, 3)."""
    data = grokking.modular_addition(cfg.p, cfg.train_fraction, cfg.seed)
    for split in ("train", "test"):
        x = data[f"x_{split}"]
        data[f"x_{split}"] = torch.cat([x, torch.full_like(x[:, :1], cfg.p)], 1)
    return data


def _cpu(model: nn.Module, device: str) -> nn.Module:
    return model if device == "cpu" else copy.deepcopy(model).to("cpu")


def train(cfg: Config, ex: Experiment, name: str, weight_decay: float, last: int) -> Condition:
    """Train one model with `weight_decay` for `last` steps at most, as condition `name`;
    with `stop_after`, the run with weight decay stops at that multiple of its grokking step."""
    device = resolve_device(cfg.device)
    data = {k: v.to(device) for k, v in tokens(cfg).items()}
    torch.manual_seed(cfg.seed)  # the same init in every condition
    model = Transformer(cfg).to(device)
    opt = torch.optim.AdamW(model.parameters(), lr=cfg.lr, betas=(cfg.beta1, cfg.beta2),
                            weight_decay=weight_decay)  # fmt: skip
    warmup = torch.optim.lr_scheduler.LambdaLR(opt, lambda s: min((s + 1) / cfg.warmup, 1.0))
    schedule = grokking.checkpoint_schedule(cfg.steps, cfg.checkpoints, cfg.checkpoint_every)
    cond = ex.condition(name, schedule, weight_decay=weight_decay)
    stop_early = weight_decay > 0 and cfg.stop_after > 0
    for step in range(last + 1):
        if cond.due(step) or step % cfg.eval_every == 0 or step == last:
            metrics = grokking.evaluate(model, data)
            cond.log(step, **metrics)
            if stop_early and metrics["test_acc"] >= 0.99:  # the grokking step
                last, stop_early = min(last, math.ceil(cfg.stop_after * step)), False
        if cond.due(step) or step == last:
            cond.save(step, _cpu(model, device))
        if step == last:
            break
        logits = model(data["x_train"]).double()  # float64, as Nanda et al.: no loss spikes
        loss = F.cross_entropy(logits, data["y_train"])
        opt.zero_grad(set_to_none=True)
        loss.backward()  # type: ignore[no-untyped-call]
        opt.step()
        warmup.step()
    return cond


def run(cfg: Config, ex: Experiment) -> Path:
    decays = sorted(cfg.weight_decays, reverse=True)  # the weight-decay run sets the length
    names = [f"wd={wd:g}" for wd in decays]
    last = cfg.steps
    for name, wd in zip(names, decays, strict=True):
        cond = train(cfg, ex, name, wd, last)
        last = min(last, int(cond.metrics()["step"].max()))
    tracked = ex.track()
    claimed = [n for n in weight_matrices(tracked.trajectories) if n not in NOT_CLAIMED]
    conditions = {n: grokking.summarize(tracked, n, claimed, cfg.checkpoint_every)
                  for n in names}  # fmt: skip
    summary = {
        "conditions": conditions,
        "weight_decay_run": names[0],  # the claims read these two conditions
        "control_run": names[-1],
        "claim_rank": grokking.CLAIM_RANK,
    }
    title = f"Grokking, one-layer transformer: a + b mod {cfg.p}"
    markers = grokking.markers(conditions)
    return ex.finish(summary, [draw_curves(tracked, markers, ex.out / "figures" / "curves.png",
                                           title)])  # fmt: skip


def deviations(cfg: Config) -> list[str]:
    """How a config differs from Nanda et al. (2023)'s setting, as issue 22 gives it."""
    source = Config()
    out = [
        f"Stops at {cfg.stop_after:g}x the grokking step (Nanda et al. train 40k steps): "
        "the rank's fall after that is not seen; the control trains as many steps."
        if cfg.stop_after > 0 else "",
    ]  # fmt: skip
    facts = {
        "p": "modulus",
        "train_fraction": "share of the pairs for training",
        "d_model": "d_model",
        "n_heads": "heads",
        "d_mlp": "d_mlp",
        "lr": "learning rate",
        "warmup": "warm-up steps",
        "beta1": "AdamW beta1",
        "beta2": "AdamW beta2",
        "steps": "step cap",
    }
    for key, what in facts.items():
        mine, theirs = getattr(cfg, key), getattr(source, key)
        if mine != theirs:
            out.append(f"{what} {mine:g}, not {theirs:g}.")
    if max(cfg.weight_decays) != 1.0 or min(cfg.weight_decays) != 0.0:
        out.append(f"weight decays {cfg.weight_decays}, not 1.0 and the control 0.")
    return [d for d in out if d]


def draw_seeds(runs: list[Path], figures: Path) -> list[str]:
    """Accuracy and effective rank against step, every seed drawn."""
    title = f"Grokking, one-layer transformer: {len(runs)} seeds (one line each)"
    return [draw_curves(over_seeds(runs), {}, figures / "curves.png", title)]


GROKKING_TRANSFORMER = Setting(
    name="grokking-transformer",
    about="Grokking in the source's setting (Nanda et al.'s one-layer transformer, a + b mod "
    "113): does the rank of the weights fall when test accuracy jumps, with weight decay, and "
    "not without?",
    presets=PRESETS,
    engine=Experiment,
    run=run,
    claims=grokking.grokking_claims(
        "every weight matrix but the position embedding W_pos (3 rows)"
    ),
    deviations=deviations,
    draw_seeds=draw_seeds,
)
