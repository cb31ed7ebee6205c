// striate view's drawing helpers: elements made from text only, number format, the colour
// map and painting, tick labels at nice steps, display cell -> stored index. Pure functions,
// loaded before viewer.js (window.striatePaint).
(() => {
  function el(tag, text, cls) {
    const e = document.createElement(tag);
    if (text !== undefined && text !== null) e.textContent = String(text);
    if (cls) e.className = cls;
    return e;
  }

  // A name that wraps only after ".", "_" or "/": each piece is an unbreakable span of text
  // (white-space: nowrap) with a <wbr> after it, so "model.layers.10.mlp" never splits "layers".
  function nameEl(name) {
    const e = el("span", null, "name");
    for (const piece of String(name).match(/[^._/]*(?:[._/]+|$)/g)) {
      if (piece) e.append(el("span", piece, "tok"), document.createElement("wbr"));
    }
    e.lastChild?.remove();
    return e;
  }

  function fmt(v) {
    if (v === null || v === undefined) return "–";
    if (typeof v !== "number") return String(v);
    if (!Number.isFinite(v)) return String(v);
    return Number.isInteger(v) && Math.abs(v) < 1e6 ? String(v) : v.toPrecision(5);
  }

  // ---- colours: matplotlib's RdBu_r (ColorBrewer RdBu, reversed); non-finite is green -------
  const ANCHORS = ["053061", "2166ac", "4393c3", "92c5de", "d1e5f0", "f7f7f7",
    "fddbc7", "f4a582", "d6604d", "b2182b", "67001f"]
    .map((h) => [0, 2, 4].map((i) => parseInt(h.slice(i, i + 2), 16)));
  const LUT = new Uint8ClampedArray(256 * 3);
  for (let k = 0; k < 256; k++) {
    const t = (k / 255) * 10, i = Math.min(9, Math.floor(t)), f = t - i;
    for (let ch = 0; ch < 3; ch++) LUT[k * 3 + ch] = ANCHORS[i][ch] * (1 - f) + ANCHORS[i + 1][ch] * f;
  }

  function paint(values, h, w, vmax) {
    const canvas = document.createElement("canvas");
    canvas.width = w; canvas.height = h;
    const ctx = canvas.getContext("2d");
    const img = ctx.createImageData(w, h);
    const px = img.data;
    for (let i = 0; i < values.length; i++) {
      const v = values[i];
      if (Number.isFinite(v)) {
        const k = Math.max(0, Math.min(255, Math.round(((v / vmax) + 1) * 127.5))) * 3;
        px[i * 4] = LUT[k]; px[i * 4 + 1] = LUT[k + 1]; px[i * 4 + 2] = LUT[k + 2];
      } else {
        px[i * 4] = 0; px[i * 4 + 1] = 192; px[i * 4 + 2] = 0;
      }
      px[i * 4 + 3] = 255;
    }
    ctx.putImageData(img, 0, 0);
    return canvas;
  }

  function niceStep(units) {
    // the smallest of 1, 2, 5 × 10^k that is at least `units`, and at least 1
    if (units <= 1) return 1;
    const p = 10 ** Math.floor(Math.log10(units));
    return [1, 2, 5, 10].map((k) => k * p).find((s) => s >= units - 1e-9);
  }

  function ticks(axis, offset, length, gap, scale) {
    // Ticks along one display axis ({axes, sizes}: stored axes, outermost first) seen from display
    // cell `offset` over `length` screen pixels -> [{px, label}]. Labels are stored indices: the
    // outermost axis at a nice step, and, once one of its indices is wide enough, the inner ones
    // too ("5,2": out channel 5, kernel row 2). gap(j): pixels a label of depth j needs.
    const n = axis.sizes.length;
    if (!n) return [];
    const unit = axis.sizes.map((_, j) => axis.sizes.slice(j + 1).reduce((a, b) => a * b, 1));
    let j = 0;
    const step = niceStep(gap(0) / (unit[0] * scale));
    while (step === 1 && j + 1 < n && unit[j + 1] * scale >= gap(j + 1)) j++;
    const stride = unit[j] * step, end = axis.sizes[0] * unit[0], half = unit[j] / 2;
    const out = [];
    let p = Math.max(0, Math.ceil((offset - half) / stride)) * stride;
    for (; p < end && (p + half - offset) * scale <= length; p += stride) {
      const label = unit.slice(0, j + 1).map((u, i) => Math.floor(p / u) % axis.sizes[i]).join(",");
      out.push({ px: (p + half - offset) * scale, label });
    }
    return out;
  }

  function storedIndex(m, r, c) {
    // display row r and column c -> one index per stored axis
    const out = new Array(m.shape.length).fill(0);
    for (const [axis, pos] of [[m.rows, r], [m.cols, c]]) {
      let rem = pos;
      for (let k = axis.sizes.length - 1; k >= 0; k--) {
        out[axis.axes[k]] = rem % axis.sizes[k];
        rem = Math.floor(rem / axis.sizes[k]);
      }
    }
    return out;
  }

  window.striatePaint = { el, nameEl, fmt, paint, niceStep, ticks, storedIndex };
})();
