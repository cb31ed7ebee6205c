// striate report: the findings table (sort, filter, pages) and gallery anchors that open their layer.
// Data comes from the JSON data blocks of the page; cells are filled with textContent,
// never innerHTML, so a tensor name is always text.
"use strict";
(function () {
  var PAGE_ROWS = 100; // rows of the findings table drawn at once; the pager moves through them

  function readJSON(id) {
    var el = document.getElementById(id);
    return el ? JSON.parse(el.textContent) : null;
  }

  // Open every <details> around the element a #fragment names, so a link into the gallery shows it.
  function reveal(hash) {
    if (!hash || hash.length < 2) return;
    var target = document.getElementById(decodeURIComponent(hash.slice(1)));
    if (!target) return;
    for (var el = target.parentElement; el; el = el.parentElement) {
      if (el.tagName === "DETAILS") el.open = true;
    }
    target.scrollIntoView({block: "center"});
  }
  window.addEventListener("hashchange", function () { reveal(location.hash); });
  document.addEventListener("click", function (ev) {
    var a = ev.target.closest ? ev.target.closest("a[href^='#']") : null;
    if (a && a.getAttribute("href") === location.hash) reveal(location.hash);
  });

  function findingsTable() {
    var data = readJSON("findings-data");
    var table = document.getElementById("findings-table");
    if (!data || !table) return;
    var rows = data.rows, columns = data.columns;
    var body = table.tBodies[0];
    var count = document.getElementById("findings-count");
    var f = {
      kind: document.getElementById("filter-kind"),
      role: document.getElementById("filter-role"),
      layer: document.getElementById("filter-layer"),
      tensor: document.getElementById("filter-tensor"),
      score: document.getElementById("filter-score"),
    };
    var sortKey = "score", sortDir = -1;
    var page = 0; // of the rows that match, sorted
    var pager = document.getElementById("findings-pager");
    var prev = document.getElementById("findings-prev");
    var next = document.getElementById("findings-next");
    var where = document.getElementById("findings-page");

    function options(select, key) {
      var seen = {};
      rows.forEach(function (r) { if (r[key] !== null) seen[r[key]] = true; });
      Object.keys(seen).sort().forEach(function (v) {
        var o = document.createElement("option");
        o.value = v; o.textContent = v;
        select.appendChild(o);
      });
    }
    options(f.kind, "kind");
    options(f.role, "role");

    function matches(r) {
      if (f.kind.value && r.kind !== f.kind.value) return false;
      if (f.role.value && r.role !== f.role.value) return false;
      var layer = f.layer.value.trim();
      if (layer !== "" && String(r.layer) !== layer) return false;
      var t = f.tensor.value.trim().toLowerCase();
      if (t && r.tensor.toLowerCase().indexOf(t) < 0) return false;
      var s = parseFloat(f.score.value);
      if (!isNaN(s) && !(r.score >= s)) return false;
      return true;
    }

    function compare(a, b) {
      var x = a[sortKey], y = b[sortKey];
      if (x === y) return 0;
      if (x === null) return 1; // empty cells last, either direction
      if (y === null) return -1;
      return (x < y ? -1 : 1) * sortDir;
    }

    function cell(row, key) {
      var td = document.createElement("td");
      var v = row[key];
      td.setAttribute("data-key", key); // the stylesheet sizes some columns
      if (key === "tensor" && row.anchor !== null) {
        var a = document.createElement("a");
        a.href = "#" + row.anchor;
        a.textContent = v;
        td.appendChild(a);
      } else if (typeof v === "number") {
        td.className = "num";
        td.textContent = Number.isInteger(v) ? String(v) : v.toPrecision(4);
      } else {
        td.textContent = v === null ? "" : String(v);
      }
      return td;
    }

    function draw() {
      var shown = rows.filter(matches).sort(compare);
      var pages = Math.max(1, Math.ceil(shown.length / PAGE_ROWS));
      page = Math.min(page, pages - 1);
      var first = page * PAGE_ROWS, last = Math.min(shown.length, first + PAGE_ROWS);
      body.textContent = "";
      shown.slice(first, last).forEach(function (r) {
        var tr = document.createElement("tr");
        columns.forEach(function (c) { tr.appendChild(cell(r, c)); });
        body.appendChild(tr);
      });
      count.textContent = shown.length + " of " + rows.length + " findings";
      pager.hidden = pages < 2;
      where.textContent = "rows " + (first + 1) + "\u2013" + last + " (page " + (page + 1) +
        " of " + pages + ")";
      prev.disabled = page === 0;
      next.disabled = page >= pages - 1;
      Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
        var key = th.getAttribute("data-key");
        if (key === sortKey) th.setAttribute("aria-sort", sortDir > 0 ? "ascending" : "descending");
        else th.removeAttribute("aria-sort");
      });
    }

    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th) {
      th.addEventListener("click", function () {
        var key = th.getAttribute("data-key");
        if (key === sortKey) sortDir = -sortDir;
        else { sortKey = key; sortDir = key === "score" || key === "value" ? -1 : 1; }
        page = 0;
        draw();
      });
    });
    Object.keys(f).forEach(function (k) {
      f[k].addEventListener("input", function () { page = 0; draw(); });
    });
    function turn(by) {
      return function () {
        page += by;
        draw();
        document.getElementById("findings-scroll").scrollTop = 0;
      };
    }
    prev.addEventListener("click", turn(-1));
    next.addEventListener("click", turn(1));
    draw();
  }

  document.addEventListener("DOMContentLoaded", function () {
    findingsTable();
    reveal(location.hash);
  });
})();
