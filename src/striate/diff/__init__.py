"""`striate diff A B`: what changed between two checkpoints of one model (a fine-tune, a
quantization, a merge), down to the weights that matter.

    >>> run = striate.diff("model.safetensors", "model-Q4_0.gguf", "runs/diff")  # doctest: +SKIP
    >>> run.tensors.sort_values("rel_change").tail()                             # doctest: +SKIP
    >>> run.findings[run.findings.status != "kept"]                               # doctest: +SKIP
    >>> run.blocks.head()          # super weights whose block-mates were crushed  # doctest: +SKIP

A and B are any two models striate reads. Tensors are matched by name, or between Hugging Face
and GGUF names through the `gguf` package's name map; Conv1D against nn.Linear storage and
llama.cpp's q/k row permutation are undone, so every value is compared in A's storage
coordinates (`diff.matching`). Both tensors of a pair go through the scan's analyses with A's
anatomy (`striate.scan.analyse_tensor`), streamed one pair at a time, cached per pair in
`out/.striate-cache/`; `jobs` threads compare pairs side by side (`diff.pipeline`).

Modules: config.py (`DiffConfig`: `compare.*` and the scan's `scan.*` settings), matching.py
(pairs, name map, storage coordinates), pair.py (one pair: change, update, spectra), compare.py
(findings and the status rule), blocks.py (the quantization view), residual.py (residual dims),
run.py (`DiffRun`, the tables), pipeline.py (`diff`), images.py (A, B and B - A drawn for the
report), terminal.py (what `striate diff` prints). docs/diff.md is the user's guide.

Run directory (`out`): `manifest.json` (kind "diff"; `source` = A; `settings`; `tensors`: per
tensor of A {"status": "done"}, {"status": "failed", "error"} or {"status": "skipped",
"reason"}, B-only tensors under B's name; `a` and `b`: source, path, format, family,
n_tensors, files; `name_mapping` "names" or "names and gguf"; `n_matched`, `n_unmatched`,
`n_excluded` (left out by `compare.include`); `hidden_size`; `cache` {reused, computed};
`images`: the tensors drawn by `diff.images`), `index.html` (the report,
`striate.report.diff_html`; `striate report DIR` writes it again), `images/diff/` (A, B and
B - A of the `compare.images` tensors that changed most), and:

diff.parquet (`DiffRun.tensors`), one row per matched tensor, in A's order:
    name, name_b        the tensor's name in A and in B
    role, layer         from A's anatomy (B's where A's says "other")
    shape, shape_b      as each reader presents them (PyTorch order)
    dtype_a, dtype_b    the stored types ("F32", "BF16", "Q8_0", ...)
    transposed          B stores A's transpose (Conv1D [in, out] against nn.Linear [out, in])
    status, error       "done", or "failed" with the error (metrics null)
    numel               values in the tensor
    norm_a, norm_b      Frobenius norms |A|_F, |B|_F
    rel_change          |B - A|_F / |A|_F (0 when identical, inf when only A is 0)
    max_abs_change      max |B - A|
    cosine              cosine of the flattened tensors (1 when identical)
    update_stable_rank, update_effective_rank
                        of the update B - A as a matrix (conv kernels [out, in*kh*kw]),
                        `analyses.spectrum`'s definitions; null for vectors and a zero update
    top_k_overlap_left, top_k_overlap_right, top_k_overlap
                        overlap of the top-k (`compare.top_k`, 8) left / right singular
                        subspaces of A and B (`analyses.dynamics.subspace_overlap`, in [0, 1]),
                        and their mean
    effective_rank_a/_b, stable_rank_a/_b, spectral_norm_a/_b, alpha_a/_b
                        the scan's spectrum metrics of A and of B; spectrum_skipped: why none
    block_format, block_size, block_axis
                        the blocks of the quantization view (`diff.blocks`): a GGUF block type
                        of B (else A), or "fixed" blocks of `compare.block` (32)
    block_error_median, block_error_max, block_error_ratio_max
                        RMS of B - A per block: the median and largest over the tensor, and
                        largest / median
    n_findings_a, n_findings_b, n_kept, n_weakened, n_lost, n_new
                        the scan's findings of A and of B, and the statuses of diff_findings

diff_findings.parquet (`DiffRun.findings`), one row per finding of A and per new finding of B
(lost first, then weakened, new, kept; stronger first):
    kind, tensor, index, residual_dim, layer, role
                        as in findings.parquet (A's names and storage coordinates), plus
                        kind "residual_dim" (tensor null, index [dim]) for residual dims
    tensor_b            the tensor's name in B
    status              kept / weakened / lost / new, by the rule below
    value_a, value_b    the finding's value measured in A and in B at the same index
    rel_change          (value_b - value_a) / |value_a|
    retention           strength in B / strength in A (null for new findings)
    found_in_a, found_in_b
                        whether the scan's analysis of A, of B, reports it
    significance_a/_b, score_a/_b
                        the finding's significance and score in each (null where not found)
    block_error_ratio   for a hotspot or norm outlier: its block-mates' error over the
                        tensor's median block error (diff_blocks' error_ratio)
    detail              A's sentence (B's for a new finding)

    Status rule (`diff.compare`): the strength of a finding is, for a hotspot the weight, for
    a line log(scale / median line scale), for a norm outlier the entry minus the vector's
    median, for a residual dim its pooled z (in A's strongest sum); retention = strength in B
    / strength in A (0 for a line whose weights are all 0 in B). lost: retention < 0.2
    (`compare.lost`); kept: retention >= 0.8 (`compare.kept`) and B's analysis still reports
    the finding at that index; weakened: otherwise; new: reported in B only. Kinds without a
    value at an index (periodic, head, nonfinite, banding): kept if B reports the same
    finding, else lost.

diff_blocks.parquet (`DiffRun.blocks`), the quantization view: one row per hotspot and norm
outlier of A, and per tensor the `compare.worst_blocks` (4) other blocks with the largest error
(kind "worst", at the block's largest |A|); largest error_ratio first:
    tensor, kind, index  the weight (A's storage coordinates)
    block_axis, block_size, block_format, block_start
                        its block: along block_axis from block_start
    value_a, value_b, error
                        the weight in A and in B, |B - A|
    n_others            its block-mates (the other weights of the block)
    others_rms_a        RMS of A over them
    others_error        RMS of B - A over them
    others_rel_error    others_error / others_rms_a (1.0: as if all were set to 0)
    others_zeroed       how many were non-zero in A and are exactly 0 in B
    block_error         RMS of B - A over the whole block
    block_error_median  the tensor's median block error
    error_ratio         others_error / block_error_median
    detail              e.g. "the Q4_0 block of 32 around hotspot w[9, 40] = 2 (B: 2.001)
                        lost its other 31 weights (all 0 in B); their error is 7.7x the
                        tensor's median block error"

diff_unmatched.parquet (`DiffRun.unmatched`): name, name_b, shape_a, shape_b, dtype_a, dtype_b,
reason ("only in A", "only in B", "shape differs: A (10, 8), B (12, 8)").

diff_residual.parquet (`DiffRun.residual`), one row per residual dim, the most significant
change first (`diff.residual`): residual_dim; rel_change (sqrt of the update's energy on the dim
over A's, summed over tensors); pooled_z_update, pooled_z_update_read, pooled_z_update_write
(Stouffer's z of the update's lines on the dim, over all tensors, the readers, the writers);
significance_update (-log10 of the expected null dims as extreme, strongest sum);
pooled_z_a, pooled_z_b, significance_a, significance_b (the scan's pooled evidence in A and in
B); n_tensors (tensors whose update judged the dim).

`pair_values(a, b, name)` gives A's tensor and B's counterpart in A's coordinates (for a
report's or viewer's A, B and B - A side by side).

Errors: models with no pair to compare raise `StriateError` naming both; a tensor that cannot be
read or compared is recorded (`failed`) and the others are computed; Ctrl-C raises
`striate.scan.ScanInterrupted` saying how far it got (with `out`, a rerun continues).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from striate._lazy import callable_package, exports

if TYPE_CHECKING:  # imported on first use (below): a command loads only the modules it runs
    from striate.diff.config import CompareConfig, DiffConfig
    from striate.diff.matching import pair_values
    from striate.diff.pipeline import diff
    from striate.diff.run import TABLES, DiffRun

__getattr__ = exports(
    __name__,
    {
        "CompareConfig": "striate.diff.config:CompareConfig",
        "DiffConfig": "striate.diff.config:DiffConfig",
        "pair_values": "striate.diff.matching:pair_values",
        "diff": "striate.diff.pipeline:diff",
        "TABLES": "striate.diff.run:TABLES",
        "DiffRun": "striate.diff.run:DiffRun",
    },
)
callable_package(__name__)  # striate.diff(a, b) is striate.diff.pipeline.diff(a, b)

__all__ = ["TABLES", "CompareConfig", "DiffConfig", "DiffRun", "diff", "pair_values"]
