// striate view: zoom and pan any tensor down to single weights; tiles come from /api/tile.
// Every name from the model is put into the page as text (textContent), never as markup.
// It opens on the run's strongest finding unless the address names a tensor (#t=NAME).
"use strict";
(() => {
  const $ = (id) => document.getElementById(id);
  const { el, nameEl, fmt, paint, ticks, storedIndex } = window.striatePaint; // viewer_paint.js
  const MAX_SCALE = 64; // screen pixels per weight at the closest zoom
  const MAX_TILES = 600; // tiles kept in the page
  const GRID_SCALE = 12; // from this many pixels per weight, cells get grid lines
  const FOCUS_SCALE = 16; // screen pixels per weight when a finding's cell is shown
  const TICK_FONT = "10px ui-monospace, monospace"; // .ruler's font in viewer.css
  const ROW_TICK_GAP = 24; // screen pixels at least between row labels (10 px tall)
  const BAR_WIDTH = 128; // cells of the colour bar, -vmax to +vmax
  const SOURCES = { a: ["a"], b: ["b"], side: ["a", "b"], diff: ["diff"], all: ["a", "b", "diff"] };
  const LABELS = { a: "A", b: "B", diff: "A − B" };

  const S = {
    model: null, name: null, meta: {}, errors: {}, mode: "a", panes: [],
    scale: 1, minScale: 1, ox: 0, oy: 0, tiles: new Map(), pending: new Set(),
    findings: [], dims: [], mark: null, drag: null, hovered: null, frame: 0, resizes: null,
  };

  async function getJSON(path, params) {
    const r = await fetch(path + (params ? "?" + new URLSearchParams(params) : ""));
    const body = await r.json();
    if (!r.ok) throw new Error(body.error || r.statusText);
    return body;
  }

  function status(text, bad) {
    $("status").textContent = text;
    $("status").className = bad ? "bad" : "";
  }

  // The colour bar is painted by paint() itself, so it is the canvas's scale by construction.
  function colorBar() {
    const box = el("div", null, "cbar");
    const ramp = Float32Array.from({ length: BAR_WIDTH }, (_, i) => (2 * i) / (BAR_WIDTH - 1) - 1);
    const bar = paint(ramp, 1, BAR_WIDTH, 1);
    bar.className = "bar";
    const lo = el("span", "", "lo"), zero = el("span", "0", "zero"), hi = el("span", "", "hi");
    box.append(bar, lo, zero, hi, el("span", "NaN/Inf", "nonfinite"));
    box.classList.add("off"); // until the tensor's limit is in; it keeps its room meanwhile
    return { box, lo, hi };
  }

  function labelBar(p, m) {
    p.bar.box.classList.toggle("off", !m);
    if (!m) return;
    const L = level(m), v = m.vmax[L];
    p.bar.lo.textContent = fmt(-v);
    p.bar.hi.textContent = fmt(v);
    p.bar.box.title = `red positive, blue negative, white 0; ${m.scale[L]}; beyond ±${fmt(v)} the end colours`;
  }

  // ---- geometry ---------------------------------------------------------------------------------
  function meta0() { return S.meta[S.panes.length ? S.panes[0].src : "a"]; }

  function level(m) {
    if (S.scale >= 1) return 0;
    return Math.max(0, Math.min(m.levels - 1, Math.ceil(Math.log2(1 / S.scale) - 1e-9)));
  }

  function canvasSize(p) { return { w: p.canvas.width, h: p.canvas.height }; }

  function fit() {
    const m = meta0();
    if (!m || !S.panes.length) return;
    sizeCanvases(); // the layout may have changed since the last resize was seen
    const { w, h } = canvasSize(S.panes[0]);
    S.scale = Math.min(w / m.width, h / m.height, MAX_SCALE);
    S.minScale = Math.min(S.scale, 1) / 4;
    S.ox = (m.width - w / S.scale) / 2;
    S.oy = (m.height - h / S.scale) / 2;
    draw();
  }

  function centerOn(r, c, scale) {
    sizeCanvases();
    const { w, h } = canvasSize(S.panes[0]);
    S.scale = Math.max(S.minScale, Math.min(MAX_SCALE, scale));
    S.ox = c - w / S.scale / 2;
    S.oy = r - h / S.scale / 2;
    draw();
  }

  function zoomAt(x, y, factor) {
    const c = S.ox + x / S.scale, r = S.oy + y / S.scale;
    S.scale = Math.max(S.minScale, Math.min(MAX_SCALE, S.scale * factor));
    S.ox = c - x / S.scale;
    S.oy = r - y / S.scale;
    draw();
  }

  // ---- rulers: tick labels in storage coordinates -------------------------------------------------
  let charWidth = 0;
  function colGap(axis) {
    if (!charWidth) {
      const ctx = document.createElement("canvas").getContext("2d");
      ctx.font = TICK_FONT;
      charWidth = ctx.measureText("0").width;
    }
    // the widest label of depth j, "63,2" say, and room on both sides
    return (j) => {
      const chars = axis.sizes.slice(0, j + 1).reduce((a, s) => a + String(s - 1).length, j);
      return chars * charWidth + 12;
    };
  }

  function drawRulers(p, m) {
    const put = (ruler, list, side, half, length) => {
      // a label may stick out into the empty corner before its ruler, not past its far end
      const whole = list.filter((t) => t.px <= length - half(t.label));
      ruler.replaceChildren(...whole.map((t) => {
        const s = el("span", t.label);
        s.style[side] = `${t.px}px`; // CSSOM, which the CSP allows (no style attribute)
        return s;
      }));
    };
    if (!m) { p.top.replaceChildren(); p.left.replaceChildren(); return; }
    const { w, h } = canvasSize(p);
    put(p.top, ticks(m.cols, S.ox, w, colGap(m.cols), S.scale), "left", (label) => label.length * charWidth / 2, w);
    put(p.left, ticks(m.rows, S.oy, h, () => ROW_TICK_GAP, S.scale), "top", () => 5, h);
  }

  // ---- tiles --------------------------------------------------------------------------------------
  function tileKey(src, L, ty, tx) { return `${src}|${L}|${ty}|${tx}`; }

  function tileFor(src, L, ty, tx) {
    const key = tileKey(src, L, ty, tx);
    const t = S.tiles.get(key);
    if (t) return t;
    if (!S.pending.has(key)) { S.pending.add(key); loadTile(S.name, key, src, L, ty, tx); }
    return null;
  }

  async function loadTile(name, key, src, L, ty, tx) {
    try {
      const r = await fetch("/api/tile?" + new URLSearchParams({ name, src, level: L, ty, tx }));
      if (!r.ok) throw new Error((await r.json()).error);
      const [h, w] = r.headers.get("X-Tile-Shape").split(",").map(Number);
      const values = new Float32Array(await r.arrayBuffer());
      if (name !== S.name || !S.meta[src]) return;
      S.tiles.set(key, { values, h, w, canvas: paint(values, h, w, S.meta[src].vmax[L]) });
      while (S.tiles.size > MAX_TILES) S.tiles.delete(S.tiles.keys().next().value);
      draw();
      if (S.hovered) hover(...S.hovered); // the value under the mouse just arrived
    } catch (err) {
      if (name === S.name) status(`tile failed: ${err.message}`, true);
    } finally {
      S.pending.delete(key);
    }
  }

  function drawTiles(ctx, src, m, L) {
    const span = m.tile * 2 ** L, cell = 2 ** L * S.scale;
    const { width: W, height: H } = ctx.canvas;
    const r0 = Math.max(0, S.oy), r1 = Math.min(m.height, S.oy + H / S.scale);
    const c0 = Math.max(0, S.ox), c1 = Math.min(m.width, S.ox + W / S.scale);
    let complete = true;
    for (let ty = Math.floor(r0 / span); ty * span < r1; ty++) {
      for (let tx = Math.floor(c0 / span); tx * span < c1; tx++) {
        const t = tileFor(src, L, ty, tx);
        if (!t) { complete = false; continue; }
        ctx.drawImage(t.canvas, (tx * span - S.ox) * S.scale, (ty * span - S.oy) * S.scale,
          t.w * cell, t.h * cell);
      }
    }
    return complete;
  }

  // ---- drawing ------------------------------------------------------------------------------------
  function draw() {
    if (!S.frame) S.frame = requestAnimationFrame(() => { S.frame = 0; S.panes.forEach(drawPane); zoomText(); labelPanes(); });
  }

  function zoomText() {
    const m = meta0();
    if (!m) return;
    const L = level(m);
    $("zoom").textContent = L === 0
      ? `${fmt(S.scale)} px per weight (full resolution)`
      : `each pixel: largest |w| of ${2 ** L}×${2 ** L} weights (level ${L})`;
  }

  function drawPane(p) {
    const ctx = p.canvas.getContext("2d");
    const { width: W, height: H } = p.canvas;
    ctx.imageSmoothingEnabled = false;
    ctx.clearRect(0, 0, W, H);
    const m = S.meta[p.src];
    drawRulers(p, m);
    labelBar(p, m);
    if (!m) return;
    const x0 = -S.ox * S.scale, y0 = -S.oy * S.scale;
    ctx.save();
    ctx.beginPath();
    ctx.rect(x0, y0, m.width * S.scale, m.height * S.scale);
    ctx.clip();
    const L = level(m);
    if (L !== m.levels - 1) drawTiles(ctx, p.src, m, m.levels - 1); // coarse backdrop while loading
    drawTiles(ctx, p.src, m, L);
    if (S.scale >= GRID_SCALE) drawGrid(ctx, m);
    drawMarks(ctx, m);
    ctx.restore();
  }

  function drawGrid(ctx, m) {
    const { width: W, height: H } = ctx.canvas;
    ctx.strokeStyle = "rgba(0,0,0,0.15)";
    ctx.lineWidth = 1;
    ctx.beginPath();
    for (let c = Math.max(0, Math.floor(S.ox)); c <= Math.min(m.width, S.ox + W / S.scale); c++) {
      const x = Math.round((c - S.ox) * S.scale) + 0.5;
      ctx.moveTo(x, 0); ctx.lineTo(x, H);
    }
    for (let r = Math.max(0, Math.floor(S.oy)); r <= Math.min(m.height, S.oy + H / S.scale); r++) {
      const y = Math.round((r - S.oy) * S.scale) + 0.5;
      ctx.moveTo(0, y); ctx.lineTo(W, y);
    }
    ctx.stroke();
  }

  function drawMarks(ctx, m) {
    const sx = (c) => (c - S.ox) * S.scale, sy = (r) => (r - S.oy) * S.scale;
    ctx.lineWidth = 1.5;
    ctx.strokeStyle = "#000";
    for (const f of meta0().findings || []) {
      if (f.row !== null && f.col !== null) {
        const rad = Math.max(5, S.scale);
        ctx.beginPath();
        ctx.arc(sx(f.col + 0.5), sy(f.row + 0.5), rad, 0, 2 * Math.PI);
        ctx.stroke();
      } else if (f.row !== null) {
        ctx.beginPath(); ctx.moveTo(sx(0) - 8, sy(f.row + 0.5)); ctx.lineTo(sx(0) - 1, sy(f.row + 0.5)); ctx.stroke();
      } else if (f.col !== null) {
        ctx.beginPath(); ctx.moveTo(sx(f.col + 0.5), sy(0) - 8); ctx.lineTo(sx(f.col + 0.5), sy(0) - 1); ctx.stroke();
      }
    }
    const k = S.mark;
    if (!k) return;
    ctx.strokeStyle = "#ff8c00";
    ctx.lineWidth = 2;
    const rows = k.rows || [0, m.height], cols = k.cols || [0, m.width];
    const pad = 2 / S.scale;
    ctx.strokeRect(sx(cols[0] - pad), sy(rows[0] - pad), (cols[1] - cols[0] + 2 * pad) * S.scale,
      (rows[1] - rows[0] + 2 * pad) * S.scale);
  }

  // ---- hover, click, zoom, pan ----------------------------------------------------------------------
  function cellAt(p, x, y) {
    const m = S.meta[p.src];
    if (!m) return null;
    const r = Math.floor(S.oy + y / S.scale), c = Math.floor(S.ox + x / S.scale);
    if (r < 0 || c < 0 || r >= m.height || c >= m.width) return null;
    return { r, c };
  }

  function valueAt(src, r, c) {
    const m = S.meta[src];
    if (!m) return undefined;
    const L = level(m), step = 2 ** L, span = m.tile * step;
    const ty = Math.floor(r / span), tx = Math.floor(c / span);
    const t = S.tiles.get(tileKey(src, L, ty, tx));
    if (!t) return undefined;
    const i = Math.floor((r - ty * span) / step), j = Math.floor((c - tx * span) / step);
    return t.values[i * t.w + j];
  }

  function hover(p, x, y) {
    S.hovered = [p, x, y];
    const box = $("hover");
    const at = cellAt(p, x, y);
    if (!at) { box.hidden = true; return; }
    const m = meta0(), L = level(m), step = 2 ** L;
    box.replaceChildren();
    const line = (k, text) => { const d = el("div", text); d.dataset.k = k; box.append(d); };
    if (L === 0) {
      const index = storedIndex(m, at.r, at.c);
      line("index", `row ${at.r}, column ${at.c} · index [${index.join(", ")}]`);
      if (m.residual_axis !== null && m.residual_axis !== undefined) {
        line("residual", `residual dim ${index[m.residual_axis]}`);
      }
    } else {
      const r0 = Math.floor(at.r / step) * step, c0 = Math.floor(at.c / step) * step;
      line("index", `rows ${r0}–${Math.min(m.height, r0 + step) - 1}, columns ${c0}–${Math.min(m.width, c0 + step) - 1} (a ${step}×${step} block; zoom in for single weights)`);
    }
    const what = L === 0 ? "value" : "largest |w|";
    for (const q of S.panes) {
      const v = valueAt(q.src, at.r, at.c);
      const label = S.panes.length > 1 || q.src !== "a" ? `${LABELS[q.src]}: ` : "";
      line(q.src === S.panes[0].src ? "value" : `value-${q.src}`, `${label}${what} ${v === undefined ? "loading" : fmt(v)}`);
    }
    box.hidden = false;
  }

  function bindCanvas(p) {
    const c = p.canvas;
    c.addEventListener("wheel", (e) => {
      e.preventDefault();
      zoomAt(e.offsetX, e.offsetY, Math.exp(-e.deltaY * 0.0015));
      hover(p, e.offsetX, e.offsetY);
    }, { passive: false });
    c.addEventListener("mousedown", (e) => { S.drag = { x: e.clientX, y: e.clientY, ox: S.ox, oy: S.oy, moved: false }; });
    c.addEventListener("mousemove", (e) => {
      if (S.drag && e.buttons & 1) {
        const dx = e.clientX - S.drag.x, dy = e.clientY - S.drag.y;
        if (Math.abs(dx) + Math.abs(dy) > 3) S.drag.moved = true;
        S.ox = S.drag.ox - dx / S.scale;
        S.oy = S.drag.oy - dy / S.scale;
        draw();
      }
      hover(p, e.offsetX, e.offsetY);
    });
    c.addEventListener("mouseup", (e) => {
      const clicked = S.drag && !S.drag.moved;
      S.drag = null;
      const at = clicked && cellAt(p, e.offsetX, e.offsetY);
      if (at) curve($("curve-axis").value, $("curve-axis").value === "row" ? at.r : at.c, p.src);
    });
    c.addEventListener("mouseleave", () => { S.drag = null; S.hovered = null; });
  }

  // ---- a row or column as a curve -------------------------------------------------------------------
  async function curve(axis, i, src) {
    const name = S.name;
    try {
      const d = await getJSON("/api/line", { name, src, axis, i });
      if (name !== S.name) return;
      drawCurve(d, axis, i, src);
    } catch (err) { status(err.message, true); }
  }

  function drawCurve(d, axis, i, src) {
    $("curve-box").hidden = false;
    const words = axis === "row" ? "row" : "column";
    const finite = d.values.filter((v) => v !== null);
    const lo = Math.min(0, ...finite), hi = Math.max(0, ...finite);
    $("curve-title").replaceChildren(`${LABELS[src]} ${words} ${i} of `, nameEl(S.name),
      `: ${d.values.length} points` + (d.step > 1 ? ` (each the largest |w| of ${d.step})` : "") +
      ` · min ${fmt(lo)} · max ${fmt(hi)}`);
    const cv = $("curve");
    cv.width = cv.clientWidth || 900;
    const ctx = cv.getContext("2d"), W = cv.width, H = cv.height, pad = 6;
    ctx.clearRect(0, 0, W, H);
    const y = (v) => H - pad - ((v - lo) / (hi - lo || 1)) * (H - 2 * pad);
    const x = (k) => pad + (k / Math.max(1, d.values.length - 1)) * (W - 2 * pad);
    ctx.strokeStyle = "#aaa"; ctx.beginPath(); ctx.moveTo(0, y(0)); ctx.lineTo(W, y(0)); ctx.stroke();
    ctx.strokeStyle = "#2166ac"; ctx.lineWidth = 1; ctx.beginPath();
    let pen = false;
    d.values.forEach((v, k) => {
      if (v === null) { pen = false; return; }
      if (pen) ctx.lineTo(x(k), y(v)); else ctx.moveTo(x(k), y(v));
      pen = true;
    });
    ctx.stroke();
  }

  // ---- panes and tensors ------------------------------------------------------------------------------
  function buildPanes() {
    const box = $("panes");
    box.replaceChildren();
    S.panes = SOURCES[S.mode].map((src) => {
      const div = el("div", null, "pane");
      const head = el("div", null, "head");
      const label = el("div", "", "label");
      const bar = colorBar();
      head.append(label, bar.box);
      const plot = el("div", null, "plot");
      const top = el("div", null, "ruler cols"), left = el("div", null, "ruler rows");
      const area = el("div", null, "area");
      const canvas = el("canvas");
      area.append(canvas);
      plot.append(el("div", null, "corner"), top, left, area);
      div.append(head, plot);
      box.append(div);
      const p = { src, canvas, label, div, bar, top, left };
      bindCanvas(p);
      return p;
    });
    sizeCanvases();
    // a pane changes size with the window, the hover box and the curve under it
    S.resizes?.disconnect();
    S.resizes = new ResizeObserver(() => { sizeCanvases(); draw(); });
    for (const p of S.panes) S.resizes.observe(p.canvas.parentElement);
  }

  function sizeCanvases() {
    // one canvas pixel per CSS pixel of its box; the top left corner of the view stays put, so
    // the cell under the mouse stays there when the hover box below takes its room
    for (const p of S.panes) {
      const w = Math.max(50, p.canvas.clientWidth), h = Math.max(50, p.canvas.clientHeight);
      if (p.canvas.width !== w) p.canvas.width = w;
      if (p.canvas.height !== h) p.canvas.height = h;
    }
  }

  function labelPanes() {
    for (const p of S.panes) {
      const m = S.meta[p.src], err = S.errors[p.src];
      const who = p.src === "a" ? S.model.a : p.src === "b" ? S.model.b : LABELS.diff;
      p.label.textContent = `${LABELS[p.src]}: ${who}` + (m ? ` · ${m.scale[level(m)]}` : "");
      p.div.querySelector(".error")?.remove();
      if (err) p.div.append(el("div", err, "error"));
    }
  }

  async function loadMeta() {
    const name = S.name;
    await Promise.all(SOURCES[S.mode].filter((src) => !S.meta[src] && !S.errors[src]).map(async (src) => {
      try {
        const m = await getJSON("/api/tensor", { name, src });
        if (name === S.name) S.meta[src] = m;
      } catch (err) {
        if (name === S.name) S.errors[src] = err.message;
      }
    }));
  }

  async function selectTensor(name, keepView) {
    S.name = name; S.meta = {}; S.errors = {}; S.tiles.clear(); S.mark = null;
    $("tname").replaceChildren(nameEl(name));
    $("tfacts").textContent = "loading…";
    status(`reading ${name}…`);
    for (const li of $("tensors").children) li.classList.toggle("on", li.dataset.name === name);
    history.replaceState(null, "", "#" + new URLSearchParams({ t: name }));
    await loadMeta();
    if (name !== S.name) return;
    labelPanes();
    const m = meta0();
    if (!m) { $("tfacts").textContent = ""; status(S.errors[S.panes[0].src], true); draw(); return; }
    const st = m.stats;
    $("tfacts").textContent = `${m.shape.join("×") || "scalar"} ${m.dtype} · ${m.role}` +
      (m.layer !== null ? ` · layer ${m.layer}` : "") +
      ` · min ${fmt(st.min)} max ${fmt(st.max)} mean ${fmt(st.mean)} std ${fmt(st.std)}` +
      ` · NaN ${st.n_nan} Inf ${st.n_inf}` + (m.note ? ` · ${m.note}` : "");
    status(`${m.findings.length} findings in this tensor`);
    if (!keepView) fit(); else draw();
    if (!$("tab-findings").hidden) renderFindings();
  }

  function renderTensors() {
    const q = $("filter").value.toLowerCase();
    const ul = $("tensors");
    ul.replaceChildren();
    for (const t of S.model.tensors) {
      if (q && !t.name.toLowerCase().includes(q) && !t.role.includes(q)) continue;
      const li = el("li");
      li.dataset.name = t.name;
      li.append(nameEl(t.name), document.createElement("wbr"), el("span", `${t.shape.join("×")} ${t.role}`, "facts"));
      if (t.n_findings) li.append(el("span", t.n_findings, "badge"));
      if (t.name === S.name) li.classList.add("on");
      li.addEventListener("click", () => selectTensor(t.name));
      ul.append(li);
    }
  }

  // ---- findings and residual dimensions ---------------------------------------------------------------
  function renderFindings() {
    const kind = $("kind").value, dim = $("fdim").value, here = $("fhere").checked;
    const rows = S.findings.filter((f) => (!kind || f.kind === kind) &&
      (dim === "" || f.residual_dim === Number(dim)) && (!here || f.tensor === S.name));
    const body = $("findings").tBodies[0];
    body.replaceChildren();
    for (const f of rows.slice(0, 500)) {
      const tr = el("tr");
      const cell = el("td", null, "tensor");
      cell.append(nameEl(f.tensor));
      tr.append(el("td", f.kind), cell,
        el("td", "[" + f.index.map((i) => (i === null ? ":" : i)).join(", ") + "]"), el("td", fmt(f.score)));
      tr.title = f.detail;
      tr.addEventListener("click", () => jump(f));
      body.append(tr);
    }
    $("fcount").textContent = `${rows.length} of ${S.findings.length} findings` + (rows.length > 500 ? " (first 500 shown)" : "");
  }

  function renderDims() {
    const body = $("dims").tBodies[0];
    body.replaceChildren();
    for (const d of S.dims) {
      const tr = el("tr");
      tr.append(el("td", d.residual_dim), el("td", d.direction ?? ""), el("td", fmt(d.significance)),
        el("td", fmt(d.pooled_z)), el("td", d.n_lines), el("td", d.n_norm_outliers), el("td", d.n_hotspots));
      tr.title = d.tensors.join("\n");
      tr.addEventListener("click", () => { $("fdim").value = d.residual_dim; $("kind").value = ""; $("fhere").checked = false; showTab("findings"); });
      body.append(tr);
    }
  }

  async function jump(f) {
    if (f.tensor !== S.name) await selectTensor(f.tensor);
    if (f.tensor === S.name) showFinding(f); // unless another tensor was picked meanwhile
  }

  function showFinding(f) {
    // mark finding f of the open tensor and zoom onto it: a cell, a row, a column or the whole
    const m = meta0();
    if (!m) return;
    const { w, h } = canvasSize(S.panes[0]);
    if (f.row !== null && f.col !== null) {
      S.mark = { rows: [Math.floor(f.row), Math.floor(f.row) + 1], cols: [Math.floor(f.col), Math.floor(f.col) + 1] };
      centerOn(f.row + 0.5, f.col + 0.5, FOCUS_SCALE);
    } else if (f.row !== null) {
      S.mark = { rows: [Math.floor(f.row), Math.floor(f.row) + 1] };
      centerOn(f.row + 0.5, m.width / 2, Math.max(S.scale, Math.min(w / m.width, 8)));
    } else if (f.col !== null) {
      S.mark = { cols: [Math.floor(f.col), Math.floor(f.col) + 1] };
      centerOn(m.height / 2, f.col + 0.5, Math.max(S.scale, Math.min(h / m.height, 8)));
    } else {
      fit();
    }
  }

  function goToDim(d) {
    const m = meta0();
    if (!m || m.residual_axis === null || m.residual_axis === undefined) { status("this tensor has no residual axis", true); return; }
    for (const [axis, side] of [[m.rows, "row"], [m.cols, "col"]]) {
      const k = axis.axes.indexOf(m.residual_axis);
      if (k < 0) continue;
      if (k !== 0 || d >= axis.sizes[0]) { status(`residual dim ${d} is not one ${side} here`, true); return; }
      const unit = axis.sizes.slice(1).reduce((a, b) => a * b, 1);
      const f = { row: null, col: null };
      f[side] = d * unit + (unit - 1) / 2;
      f.tensor = S.name;
      jump(f);
      return;
    }
  }

  function showTab(tab) {
    for (const b of document.querySelectorAll(".tabs button")) b.classList.toggle("on", b.dataset.tab === tab);
    for (const t of ["tensors", "findings", "dims"]) $(`tab-${t}`).hidden = t !== tab;
    if (tab === "findings") renderFindings();
  }

  // ---- start ----------------------------------------------------------------------------------------------
  async function start() {
    try {
      S.model = await getJSON("/api/model");
    } catch (err) { status(err.message, true); return; }
    $("source").replaceChildren(...(S.model.b ? ["A: ", nameEl(S.model.a), " · B: ", nameEl(S.model.b)] : [nameEl(S.model.a)]));
    $("mode-box").hidden = !S.model.b;
    // a diff run shows B − A, and opens on A | B | B − A
    LABELS.diff = S.model.difference || LABELS.diff;
    for (const o of $("mode").options) o.textContent = o.textContent.replace("A − B", LABELS.diff);
    if (S.model.diff_run) { S.mode = "all"; $("mode").value = "all"; }
    renderTensors();
    buildPanes();
    const lists = Promise.all([getJSON("/api/findings"), getJSON("/api/residual")]);
    await openFirst();
    const [findings, dims] = await lists;
    S.findings = findings; S.dims = dims;
    for (const k of [...new Set(findings.map((f) => f.kind))].sort()) $("kind").append(el("option", k));
    renderDims();
    if (!$("tab-findings").hidden) renderFindings();
  }

  async function openFirst() {
    // the tensor the address names, else the strongest finding (zoomed onto), else the first
    // matrix; nothing if a tensor was picked while the model loaded
    const tensors = S.model.tensors, strongest = S.model.strongest;
    const wanted = new URLSearchParams(location.hash.slice(1)).get("t");
    const linked = tensors.find((t) => t.name === wanted);
    const first = linked || (strongest && tensors.find((t) => t.name === strongest.tensor)) ||
      tensors.find((t) => t.shape.length >= 2) || tensors[0];
    if (!first || S.name !== null) return;
    await selectTensor(first.name);
    if (linked || !strongest || S.name !== strongest.tensor) return;
    status(`opened on the strongest finding: ${strongest.kind}, index [` +
      strongest.index.map((i) => (i === null ? ":" : i)).join(", ") + `], significance ${fmt(strongest.significance)}`);
    showFinding(strongest);
  }

  $("filter").addEventListener("input", renderTensors);
  for (const id of ["kind", "fdim", "fhere"]) $(id).addEventListener("input", renderFindings);
  for (const b of document.querySelectorAll(".tabs button")) b.addEventListener("click", () => showTab(b.dataset.tab));
  $("fit").addEventListener("click", fit);
  $("zin").addEventListener("click", () => { const { w, h } = canvasSize(S.panes[0]); zoomAt(w / 2, h / 2, 2); });
  $("zout").addEventListener("click", () => { const { w, h } = canvasSize(S.panes[0]); zoomAt(w / 2, h / 2, 0.5); });
  $("dim").addEventListener("change", () => { if ($("dim").value !== "") goToDim(Number($("dim").value)); });
  $("mode").addEventListener("change", async () => {
    S.mode = $("mode").value;
    buildPanes();
    await loadMeta();
    labelPanes();
    draw();
  });

  // for tests and the console: where display cell (r, c) is on the page
  window.striate = {
    state: S, jump, selectTensor, level: () => level(meta0()),
    toPage(r, c, pane = 0) {
      const box = S.panes[pane].canvas.getBoundingClientRect();
      return { x: box.left + (c + 0.5 - S.ox) * S.scale, y: box.top + (r + 0.5 - S.oy) * S.scale };
    },
  };
  start();
})();
