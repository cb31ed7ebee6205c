"""The figure sections of a scan report: metric curves by layer, the tensor gallery, FFN
geometry, spectra and banding. Each returns HTML; names are escaped, images linked relatively."""

from __future__ import annotations

from typing import Any

import pandas as pd

from striate.report import curves
from striate.report.page import e, failed, figures, local, table
from striate.run import Run


def _link(name: Any, ids: dict[str, str]) -> str:
    anchor = ids.get(str(name))
    return (
        f'<a href="#{anchor}"><code>{e(name)}</code></a>' if anchor else f"<code>{e(name)}</code>"
    )


def curves_section(run: Run, ids: dict[str, str]) -> str:
    if run.path is None:
        return '<p class="note">Not drawn: this run has no directory.</p>'
    if run.manifest.get("settings", {}).get("images", {}).get("enabled") is False:
        return '<p class="note">Not drawn: this scan ran with images off.</p>'
    parts = [
        "<p>Each tensor metric against layer, one line per kind of tensor (its name with the "
        "layer number replaced by *), coloured by role. Red rings: points whose modified "
        f"z-score within their series exceeds {curves.Z_LIMIT} (series of at least "
        f"{curves.MIN_LAYERS} layers), listed below each figure.</p>"
    ]
    drawn = 0
    for metric in curves.CURVE_METRICS:
        try:
            fig = curves.draw_metric(run.tensors, metric, run.path)
        except Exception as exc:  # one metric's figure must not lose the others
            parts.append(failed(f"figure {metric} could not be drawn", exc))
            continue
        if fig is None:
            continue
        drawn += 1
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
    if drawn == 0:
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
               "in_similarity_mean", "out_similarity_mean")  # fmt: skip


def ffn_section(run: Run) -> str:
    paths = list((run.manifest.get("figures") or {}).get("ffn", []))
    if run.ffn_layers.empty and not paths:
        return '<p class="note">No FFN geometry in this run (no FFN found, or images off).</p>'
    parts = ["<p>Per-layer summaries (ffn_layers.parquet; one row per neuron in ffn.parquet).</p>"]
    if not run.ffn_layers.empty:
        parts.append(table(run.ffn_layers, FFN_COLUMNS, limit=500))
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
