"""The report's norm-links section: do norm outliers sit on the lines of the matrices they feed?"""

from __future__ import annotations

import pandas as pd

from striate.report.page import e, table

#: the significance level, split over the norms tested (Bonferroni)
ALPHA = 0.05
_COLUMNS = (
    "norm", "kind", "layer", "fed", "n_outlier_dims", "n_line_dims", "overlap", "overlap_dims",
    "expected_overlap", "enrichment", "p_value", "note",
)  # fmt: skip
_EXPLAIN = (
    "Seed 000's conjecture: the lines of a matrix come from the LayerNorm in front of it. For "
    "each norm vector (gain and bias apart), n is the number of its outlier dimensions, K the "
    "number of residual dimensions where a matrix it feeds has a line, and the overlap k the "
    "dimensions in both. If the outliers fell among the d hidden dimensions at random, k would "
    "be hypergeometric; p_value = P(X &ge; k) for X ~ Hypergeometric(d, K, n), and 1 when n or "
    "K is 0. expected_overlap = nK/d, enrichment = k / expected."
)


def norm_links_section(links: pd.DataFrame) -> str:
    """HTML fragment: what is tested, how many norms pass a Bonferroni threshold, the table.

    `links` is `striate.analyses.norm_links.norm_links`'s table; an empty one gives a one-line note
    (with its `attrs["reason"]` when it has one).
    """
    if links.empty:
        reason = links.attrs.get("reason")
        why = f": {e(reason)}" if reason else ""
        return f'<p class="note">No norm vector could be tested against its matrices{why}.</p>'
    testable = links["note"] == ""
    tested, untested = int(testable.sum()), int((~testable).sum())
    if tested:
        threshold = ALPHA / tested
        passing = int((testable & (links["p_value"] < threshold)).sum())
        summary = (
            f"{passing} of the {tested} norm vectors that have outlier dims and feed matrices "
            f"with line dims have p < {threshold:.3g} ({ALPHA} / {tested}, Bonferroni); "
            f"{untested} more lack one or the other (p = 1)."
        )
    else:
        summary = (
            f"None of the {untested} norm vectors could be tested: each lacks outlier dims or "
            "feeds no matrix with line dims (p = 1 throughout)."
        )
    return f"<p>{_EXPLAIN}</p>\n<p>{e(summary)}</p>\n{table(links, _COLUMNS)}"
