"""One matched tensor: A and B compared, as a `PairResult` (its row of diff.parquet, its
findings and blocks, and its residual-stream evidence). Pure: arrays in, records out."""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from striate.analyses.dynamics import TopFactors, dynamics_from_factors
from striate.analyses.lines import line_z
from striate.analyses.residual import vector_z
from striate.analyses.spectrum import SpectrumConfig, as_matrix, rank_tolerance, skip_reason
from striate.anatomy.heads import HeadCounts
from striate.anatomy.records import READS, WRITES
from striate.diff.blocks import BlockGrid, block_view
from striate.diff.compare import POINTS, compare_findings
from striate.diff.config import DiffConfig
from striate.diff.matching import Pair, to_a
from striate.scan import TensorResult, analyse_tensor
from striate.scan.pipeline import EMBEDS
from striate.scan.tensor import failure, line_axes

#: the columns of diff.parquet
COLUMNS = [
    "name", "name_b", "role", "layer", "shape", "shape_b", "dtype_a", "dtype_b", "transposed",
    "status", "error", "numel", "norm_a", "norm_b", "rel_change", "max_abs_change", "cosine",
    "update_stable_rank", "update_effective_rank", "top_k_overlap", "top_k_overlap_left",
    "top_k_overlap_right", "effective_rank_a", "effective_rank_b", "stable_rank_a",
    "stable_rank_b", "spectral_norm_a", "spectral_norm_b", "alpha_a", "alpha_b",
    "spectrum_skipped", "block_format", "block_size", "block_axis", "block_error_median",
    "block_error_max", "block_error_ratio_max", "n_findings_a", "n_findings_b", "n_kept",
    "n_weakened", "n_lost", "n_new",
]  # fmt: skip
#: the spectrum metrics of A and B side by side (`analyses.spectrum`), as <key>_a, <key>_b
SPECTRUM = ("effective_rank", "stable_rank", "spectral_norm", "alpha")
_CHUNK = 1 << 20  # elements per float64 chunk of `change`


@dataclass
class PairResult:
    """What a diff keeps of one matched tensor; `evidence` is None for a tensor that touches
    no residual dimension (keys: tag, z_a, z_b, z_update, energy_update, energy_a)."""

    row: dict[str, Any]
    findings: list[dict[str, Any]] = field(default_factory=list)
    blocks: list[dict[str, Any]] = field(default_factory=list)
    evidence: dict[str, Any] | None = None
    status: dict[str, Any] = field(default_factory=lambda: {"status": "done"})

    def entry(self) -> TensorResult:
        """As the scan's cache stores results (`striate.scan.cache`)."""
        data = {"row": self.row, "findings": self.findings, "blocks": self.blocks,
                "evidence": self.evidence}  # fmt: skip
        return TensorResult(data, [], dict(self.status))

    @classmethod
    def from_entry(cls, entry: TensorResult) -> PairResult:
        data = entry.row
        return cls(data["row"], data["findings"], data["blocks"], data["evidence"], entry.status)


def base_row(pair: Pair) -> dict[str, Any]:
    """The columns every matched tensor has, failed or not."""
    return {
        "name": pair.name,
        "name_b": pair.name_b,
        "role": pair.part.role,
        "layer": pair.part.layer,
        "shape": list(pair.info_a.shape),
        "shape_b": list(pair.info_b.shape),
        "dtype_a": pair.info_a.dtype,
        "dtype_b": pair.info_b.dtype,
        "transposed": pair.transposed,
        "status": "done",
        "error": None,
        "numel": pair.info_a.numel,
    }


def failed_pair(pair: Pair, exc: Exception) -> PairResult:
    """A tensor that could not be read or compared (the scan's failure policy: `failure`)."""
    message = failure(exc)
    row = base_row(pair) | {"status": "failed", "error": message}
    return PairResult(row, status={"status": "failed", "error": message})


def change(a: np.ndarray, b: np.ndarray) -> dict[str, float]:
    """|A|_F, |B|_F, rel_change = |B - A|_F / |A|_F, max |B - A| and the cosine of the
    flattened tensors, summed in float64 over chunks. Identical tensors: 0 and cosine 1
    exactly; rel_change inf when only A is 0, cosine NaN when either is 0."""
    fa, fb = a.reshape(-1), b.reshape(-1)
    aa = bb = ab = dd = 0.0
    largest = 0.0
    for start in range(0, fa.size, _CHUNK):
        x = fa[start : start + _CHUNK].astype(np.float64)
        y = fb[start : start + _CHUNK].astype(np.float64)
        aa, bb, ab = aa + float(x @ x), bb + float(y @ y), ab + float(x @ y)
        y -= x
        dd += float(y @ y)
        largest = max(largest, float(np.abs(y).max())) if y.size else largest
    norm_a, norm_b = math.sqrt(aa), math.sqrt(bb)
    if dd == 0:
        rel, cosine = 0.0, 1.0 if aa > 0 else math.nan
    else:
        rel = math.sqrt(dd) / norm_a if norm_a else math.inf
        cosine = ab / (norm_a * norm_b) if norm_a and norm_b else math.nan
    return {"norm_a": norm_a, "norm_b": norm_b, "rel_change": rel,
            "max_abs_change": largest, "cosine": cosine}  # fmt: skip


def top_factors(m: np.ndarray, k: int, config: SpectrumConfig) -> TopFactors:
    """`analyses.dynamics.top_factors` from the eigenvectors of the smaller Gram matrix in
    float64: the top-k singular triplets of `m` (rows, cols), k clipped to min(rows, cols), and
    the numerical rank among them (`rank_tolerance`). A 30522 x 384 embedding takes ~1 s here
    against ~13 s for the full SVD; the top singular vectors carry an error ~ eps64 * s_1^2 /
    (gap to the next s^2), far below what a subspace overlap can show. All NaN when m holds NaN
    or Inf."""
    rows, cols = m.shape
    k = max(0, min(k, rows, cols))
    if not np.isfinite(m).all():
        return TopFactors(np.full((rows, k), np.nan), np.full(k, np.nan),
                          np.full((k, cols), np.nan), 0)  # fmt: skip
    m64 = np.asarray(m, dtype=np.float64)
    tall = rows >= cols
    lam, vectors = np.linalg.eigh(m64.T @ m64 if tall else m64 @ m64.T)
    s = np.sqrt(np.clip(lam[::-1][:k], 0, None))
    vectors = np.ascontiguousarray(vectors[:, ::-1][:, :k])
    tol = rank_tolerance((rows, cols), config) * (s[0] if k else 0.0)
    rank = int(np.count_nonzero(s > tol)) if k and s[0] > 0 else 0
    other = (m64 @ vectors if tall else m64.T @ vectors) / np.where(s > 0, s, 1.0)
    u, v = (other, vectors) if tall else (vectors, other)
    return TopFactors(u, s, np.ascontiguousarray(v.T), rank)


def update(
    a: np.ndarray, b: np.ndarray, layout: str | None, config: DiffConfig
) -> dict[str, float]:
    """The update B - A of a matrix (conv kernels as [out, in*kh*kw]): its stable and effective
    rank, and the overlap of the top-k left and right singular subspaces of A and B
    (`analyses.dynamics`); NaN for what is not a matrix the spectrum analyses."""
    out = dict.fromkeys(("update_stable_rank", "update_effective_rank", "top_k_overlap",
                         "top_k_overlap_left", "top_k_overlap_right"), math.nan)  # fmt: skip
    ma, mb = as_matrix(a, layout), as_matrix(b, layout)
    if ma is None or mb is None or skip_reason(ma.shape, config.scan.spectrum) is not None:
        return out
    k, spectrum = config.compare.top_k, config.scan.spectrum
    top_a, top_b = top_factors(ma, k, spectrum), top_factors(mb, k, spectrum)
    values = dynamics_from_factors(mb, ma, None, top_b, None, top_a)
    left, right = values["overlap_left_final"], values["overlap_right_final"]
    return out | {
        "update_stable_rank": values["update0_stable_rank"],
        "update_effective_rank": values["update0_effective_rank"],
        "top_k_overlap": (left + right) / 2,
        "top_k_overlap_left": left,
        "top_k_overlap_right": right,
    }


def _line_energy(x: np.ndarray, axis: int) -> np.ndarray:
    """Sum of squares of each line along `axis` (float64, shape (x.shape[axis],))."""
    rows = np.moveaxis(x, axis, 0).reshape(x.shape[axis], -1)
    return np.asarray(np.einsum("ij,ij->i", rows, rows, dtype=np.float64))


def evidence(
    a: np.ndarray,
    b: np.ndarray,
    pair: Pair,
    z_a: np.ndarray | None,
    z_b: np.ndarray | None,
    config: DiffConfig,
) -> dict[str, Any] | None:
    """What the residual table pools of this tensor: the z of each residual dim in A, in B and
    in the update (`line_z` of B - A along the residual axis, `vector_z` for a vector), and the
    update's and A's energy per dim; None when the tensor has no residual axis the scan judges."""
    part, axis = pair.part, pair.part.residual_axis
    if axis is None or z_a is None:
        return None
    d = np.subtract(b, a, dtype=np.float32)
    if a.ndim >= 2:
        z_update = line_z(d, axis, axes=line_axes(a.ndim, part.layout), config=config.scan.lines)
    else:
        z_update = vector_z(d, config.scan.residual)
    role = part.role
    tag = "read" if role in READS else "write" if role in WRITES | EMBEDS else "other"
    return {
        "tag": tag,
        "z_a": z_a,
        "z_b": z_b,
        "z_update": z_update,
        "energy_update": _line_energy(d, axis),
        "energy_a": _line_energy(a, axis),
    }


def compare_pair(
    w_a: np.ndarray,
    w_b: np.ndarray,
    pair: Pair,
    heads: HeadCounts,
    config: DiffConfig,
    grid: BlockGrid | None,
) -> PairResult:
    """Compare A's values `w_a` with B's `w_b` (as B stores them) of one matched tensor: the
    scan's analyses of both with A's anatomy, the change, the update's spectrum, the findings'
    statuses, the blocks and the residual evidence."""
    a = w_a
    b = np.ascontiguousarray(to_a(w_b, pair), dtype=np.float32)
    part = pair.part
    res_a = analyse_tensor(a, part, heads, config.scan)
    res_b = analyse_tensor(b, part, heads, config.scan)
    row = base_row(pair) | change(a, b) | update(a, b, part.layout, config)
    for key in SPECTRUM:
        row[f"{key}_a"] = res_a.row.get(key, math.nan)
        row[f"{key}_b"] = res_b.row.get(key, math.nan)
    row["spectrum_skipped"] = res_a.row.get("spectrum_skipped")
    names = (pair.name, pair.name_b)
    findings = compare_findings(names, part, a, b, res_a.findings, res_b.findings, config.compare)
    points = [(f.kind, tuple(i for i in f.index if i is not None)) for f in res_a.findings
              if f.kind in POINTS and None not in f.index]  # fmt: skip
    blocks: list[dict[str, Any]] = []
    if grid is not None:
        summary, blocks = block_view(pair.name, a, b, grid, points, config.compare.worst_blocks)
        row |= summary
        ratios = {(r["kind"], tuple(r["index"])): r["error_ratio"] for r in blocks}
        for r in findings:
            if r["found_in_a"] and r["kind"] in POINTS:
                r["block_error_ratio"] = ratios.get((r["kind"], tuple(r["index"])), math.nan)
    row["n_findings_a"], row["n_findings_b"] = len(res_a.findings), len(res_b.findings)
    for verdict in ("kept", "weakened", "lost", "new"):
        row[f"n_{verdict}"] = sum(r["status"] == verdict for r in findings)
    found = evidence(a, b, pair, res_a.residual_z, res_b.residual_z, config)
    return PairResult(row, findings, blocks, found)
