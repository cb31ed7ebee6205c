"""The figure sections of a scan report: metric curves by layer, the tensor gallery, FFN
geometry, spectra and banding. Each returns HTML; names are escaped, images linked relatively."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pandas as pd

from striate.report import curves
from striate.report.claims_html import number
from striate.report.page import e, failed, figures, local, table
from striate.run import Run


def _link(name: Any, ids: dict[str, str]) -> str:
    anchor = ids.get(str(name))
    return (
        f'<a href="#{anchor}"><code>{e(name)}</code></a>' if anchor else f"<code>{e(name)}</code>"
    )


#: a metric's figure with its marked points, or the error that stopped it
Drawn = Mapping[str, curves.CurveFigure | Exception]


def curves_not_drawn(run: Run) -> str | None:
    """Why this run gets no curve figures (a note), or None when it does."""
    if run.path is None:
        return '<p class="note">Not drawn: this run has no directory.</p>'
    if run.manifest.get("settings", {}).get("images", {}).get("enabled") is False:
        return '<p class="note">Not drawn: this scan ran with images off.</p>'
    return None


def curve_figures(run: Run) -> dict[str, curves.CurveFigure | Exception]:
    """Each metric of `curves.CURVE_METRICS` drawn into the run directory, in that order, or the
    error that stopped it (one metric's figure must not lose the others); metrics that span
    fewer than two layers are left out; none without a run directory. The report's first
    screen and its curves section show the same figures, drawn once."""
    if run.path is None:
        return {}
    drawn: dict[str, curves.CurveFigure | Exception] = {}
    for metric in curves.CURVE_METRICS:
        try:
            fig = curves.draw_metric(run.tensors, metric, run.path)
        except Exception as exc:
            drawn[metric] = exc
            continue
        if fig is not None:
            drawn[metric] = fig
    return drawn


def curve_thumbnails(run: Run, drawn: Callable[[], Drawn]) -> str:
    """The curve figures small, for the first screen, each linked to its place below."""
    why = curves_not_drawn(run)
    if why:
        return why
    items = []
    for metric, fig in drawn().items():
        if isinstance(fig, Exception):
            items.append(failed(f"figure {metric} could not be drawn", fig))
            continue
        n = len(fig.marked)
        marked = f' · <span class="marked">{n} marked</span>' if n else ""
        items.append(
            f'<figure><a href="#curve-{e(metric)}"><img src="{e(fig.image)}" alt="{e(metric)}">'
            f"</a><figcaption>{e(metric)}{marked}</figcaption></figure>"
        )
    if not items:
        return '<p class="note">No metric spans two or more layers.</p>'
    return f'<div class="thumbs">{"".join(items)}</div>'


def curves_section(run: Run, ids: dict[str, str], drawn: Callable[[], Drawn] | None = None) -> str:
    """Every curve figure with the table of its marked points; `drawn` gives the figures when
    they are drawn already (`curve_figures`)."""
    why = curves_not_drawn(run)
    if why:
        return why
    figs = curve_figures(run) if drawn is None else drawn()
    parts = [
        "<p>Each tensor metric against layer, one line per kind of tensor (its name with the "
        "layer number replaced by *), coloured by role. Red rings: points whose modified "
        f"z-score within their series exceeds {curves.Z_LIMIT} (series of at least "
        f"{curves.MIN_LAYERS} layers), listed below each figure.</p>"
    ]
    for metric, fig in figs.items():
        if isinstance(fig, Exception):
            parts.append(failed(f"figure {metric} could not be drawn", fig))
            continue
        parts.append(f'<h3 id="curve-{e(metric)}">{e(metric)}</h3>{figures([fig.image])}')
        if not fig.marked.empty:
            rows = "".join(
                f'<tr><td><code>{e(r["series"])}</code></td><td class="num">{r["layer"]}</td>'
                f'<td>{_link(r["name"], ids)}</td><td class="num">{r["value"]:.4g}</td>'
                f'<td class="num">{r["z"]:.2f}</td></tr>'
                for r in fig.marked.to_dict("records")
            )
            parts.append(
                f'<table class="anomalies"><tr><th>series</th><th>layer</th><th>tensor</th>'
                f"<th>{e(metric)}</th><th>robust z</th></tr>{rows}</table>"
            )
    if not figs:
        parts.append('<p class="note">No metric spans two or more layers.</p>')
    return "".join(parts)


def _layer(value: Any) -> int | None:
    return None if value is None or pd.isna(value) else int(value)


def _count(value: Any) -> int:
    return 0 if value is None or pd.isna(value) else int(value)


def _figure(row: dict[str, Any], anchor: str, errors: dict[str, str]) -> str:
    """One tensor of the gallery: its image (or why there is none) and a caption."""
    name, shape, n = row.get("name"), row.get("shape"), _count(row.get("n_findings"))
    dims = "×".join(str(int(x)) for x in shape) if shape is not None else ""
    found = f" · {n} findings" if n else ""
    caption = f"<code>{e(name)}</code> · {e(dims)} · {e(row.get('dtype'))}{found}"
    image = local(row.get("image"))
    if image:
        body = f'<a href="{e(image)}"><img loading="lazy" src="{e(image)}" alt="{e(name)}"></a>'
    else:
        why = errors.get(str(name)) or "no image (images off, or an empty tensor)"
        body = f'<div class="failed">{e(why)}</div>'
    return f'<figure id="{e(anchor)}">{body}<figcaption>{caption}</figcaption></figure>'


def _errors(run: Run) -> dict[str, str]:
    """Tensor name -> why it has no image: its error, or its figure's error."""
    out = {}
    for name, status in run.manifest.get("tensors", {}).items():
        error = status.get("error") or status.get("image_error")
        if error:
            out[str(name)] = f"{status.get('status', '')}: {error}"
    return out


def gallery(run: Run, ids: dict[str, str]) -> str:
    """One `<details>` per layer (tensors outside layers first), figures grouped by role."""
    if run.tensors.empty:
        return '<p class="note">No tensors.</p>'
    errors = _errors(run)
    groups: dict[int | None, dict[str, list[dict[str, Any]]]] = {}
    for row in run.tensors.to_dict("records"):
        by_role = groups.setdefault(_layer(row.get("layer")), {})
        by_role.setdefault(str(row.get("role")), []).append({str(k): v for k, v in row.items()})
    parts = [
        f"<p>{len(run.tensors)} tensors. Each image: storage coordinates, a diverging colour map "
        "centred on zero, findings marked. Open a layer to load its images.</p>"
    ]
    for layer in sorted(groups, key=lambda x: -1 if x is None else x):
        by_role = groups[layer]
        rows = [r for members in by_role.values() for r in members]
        n_found = sum(_count(r.get("n_findings")) for r in rows)
        label = "not in a layer" if layer is None else f"layer {layer}"
        inner = "".join(
            f'<h4>{e(role)}</h4><div class="gallery">'
            + "".join(_figure(r, ids[str(r["name"])], errors) for r in members)
            + "</div>"
            for role, members in by_role.items()
        )
        parts.append(
            f'<details id="layer-{"none" if layer is None else layer}"><summary>{e(label)}: '
            f"{len(rows)} tensors, {n_found} findings</summary>{inner}</details>"
        )
    return "".join(parts)


FFN_COLUMNS = ("layer", "n_neurons", "gated", "alignment_mean", "share_positive",
               "share_negative", "n_clusters", "bias_mean", "slope_alignment_on_bias", "slope_se",
               "r(|M1|,b) [95%]", "r(|M2|,b) [95%]", "in_similarity_mean",
               "out_similarity_mean")  # fmt: skip


def with_intervals(layers: pd.DataFrame) -> pd.DataFrame:
    """`layers` with r(|M1_i|, b_i) and r(|M2_i|, b_i) and their bootstrap intervals as text,
    one column each (runs from before the intervals, or without biases, show none)."""
    out: pd.DataFrame = layers.copy()
    for vector, label in (("in_norm", "r(|M1|,b) [95%]"), ("out_norm", "r(|M2|,b) [95%]")):
        r, low, high = (f"pearson_{vector}_bias{end}" for end in ("", "_ci_low", "_ci_high"))
        if {r, low, high} <= set(out.columns):
            out[label] = [
                "" if pd.isna(x) else f"{number(x)} [{number(a)}, {number(b)}]"
                for x, a, b in zip(out[r], out[low], out[high], strict=True)
            ]
    return out


def ffn_section(run: Run) -> str:
    paths = list((run.manifest.get("figures") or {}).get("ffn", []))
    if run.ffn_layers.empty and not paths:
        return '<p class="note">No FFN geometry in this run (no FFN found, or images off).</p>'
    parts = ["<p>Per-layer summaries (ffn_layers.parquet; one row per neuron in ffn.parquet).</p>"]
    if not run.ffn_layers.empty:  # headers with spaces wrap: the table fits the page
        spaced = with_intervals(run.ffn_layers).rename(columns=lambda c: str(c).replace("_", " "))
        parts.append(table(spaced, [c.replace("_", " ") for c in FFN_COLUMNS], limit=500))
    skipped = run.manifest.get("ffn_skipped") or {}
    if skipped:
        items = "".join(f"<li>layer {e(k)}: {e(v)}</li>" for k, v in skipped.items())
        parts.append(f"<p>Layers skipped:</p><ul>{items}</ul>")
    parts.append(figures(paths))
    return "".join(parts)


SPECTRUM_COLUMNS = ("alpha", "stable_rank", "effective_rank", "spectral_norm", "n_spikes")


def spectra_section(run: Run, ids: dict[str, str]) -> str:
    t = run.tensors
    parts = []
    if "stable_rank" in t and t["stable_rank"].notna().any():
        matrices = t[t["stable_rank"].notna()]
        present = [c for c in SPECTRUM_COLUMNS if c in matrices]
        summary = matrices.groupby("role")[present].median().reset_index()
        summary.insert(1, "matrices", matrices.groupby("role").size().to_numpy())
        parts.append(
            f"<p>{len(matrices)} matrices with a spectrum ({len(run.spectra)} singular values in "
            "spectra.parquet); medians by role:</p>"
        )
        parts.append(table(summary, ["role", "matrices", *present], limit=100))
    if "spectrum_skipped" in t:
        reasons = t["spectrum_skipped"].dropna().value_counts()
        if len(reasons):
            items = "".join(f"<li>{e(r)}: {int(n)}</li>" for r, n in reasons.items())
            parts.append(f"<p>Tensors without a spectrum:</p><ul>{items}</ul>")
    parts.append(figures((run.manifest.get("figures") or {}).get("spectra", [])))
    if "spectrum_image" in t:
        per_tensor = t[t["spectrum_image"].map(lambda p: local(p) is not None)]
        entries = "".join(
            f'<figure><a href="{e(r["spectrum_image"])}"><img loading="lazy" '
            f'src="{e(r["spectrum_image"])}" alt="{e(r["name"])}"></a>'
            f"<figcaption>{_link(r['name'], ids)}</figcaption></figure>"
            for r in per_tensor.to_dict("records")
        )
        if entries:
            parts.append(f'<details><summary>{len(per_tensor)} spectra, one per matrix</summary>'
                         f'<div class="gallery">{entries}</div></details>')  # fmt: skip
    return "".join(parts)


BANDING_COLUMNS = ("banding_rows", "banding_cols", "banding_score", "banding_z",
                   "banding_direction", "banding_skipped")  # fmt: skip


def banding_section(run: Run, ids: dict[str, str]) -> str:
    t = run.tensors
    if "banding_score" not in t and "banding_skipped" not in t:
        return '<p class="note">No conv kernels in this model.</p>'
    has = t["banding_score"].notna() if "banding_score" in t else pd.Series(False, index=t.index)
    convs = t[has | (t["banding_skipped"].notna() if "banding_skipped" in t else False)]
    columns = [c for c in BANDING_COLUMNS if c in convs]
    head = "".join(f"<th>{e(c)}</th>" for c in ["tensor", *columns])
    rows = []
    for r in convs.to_dict("records"):
        cells = "".join(
            f'<td class="num">{r[c]:.4g}</td>' if isinstance(r[c], float) else f"<td>{e(r[c])}</td>"
            for c in columns
        )
        rows.append(f"<tr><td>{_link(r['name'], ids)}</td>{cells}</tr>")
    images = [p for p in t.get("banding_image", pd.Series(dtype=object)) if isinstance(p, str)]
    return (
        f'<p>{int(has.sum())} conv layers scored (see README, "Weight banding").</p>'
        f"<table><tr>{head}</tr>{''.join(rows)}</table>{figures(images) if images else ''}"
    )
