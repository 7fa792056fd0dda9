// keyfarm report index: sort the clusters table by any column, filter rows by text and verdict.
(function () {
  "use strict";
  var table = document.getElementById("clusters");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var filter = document.getElementById("filter");
  var flaggedOnly = document.getElementById("flagged-only");
  var shown = document.getElementById("shown");

  function key(row, col) {
    var cell = row.cells[col];
    var v = cell.getAttribute("data-sort");
    if (v !== null && v !== "" && !isNaN(Number(v))) { return Number(v); }
    return (v !== null ? v : cell.textContent).toLowerCase();
  }

  function sortBy(th, col) {
    var desc = !th.classList.contains("desc");
    Array.prototype.forEach.call(table.tHead.rows[0].cells, function (c) { c.classList.remove("asc", "desc"); });
    th.classList.add(desc ? "desc" : "asc");
    rows.sort(function (a, b) {
      var x = key(a, col), y = key(b, col);
      var c = (typeof x === typeof y) ? (x < y ? -1 : x > y ? 1 : 0) : (typeof x === "number" ? -1 : 1);
      return desc ? -c : c;
    });
    rows.forEach(function (r) { body.appendChild(r); });
  }

  function applyFilter() {
    var q = filter.value.trim().toLowerCase();
    var n = 0;
    rows.forEach(function (r) {
      var ok = (!flaggedOnly.checked || r.classList.contains("flagged")) &&
               (q === "" || r.textContent.toLowerCase().indexOf(q) >= 0);
      r.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = n + " of " + rows.length + " clusters shown";
  }

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () { sortBy(th, col); });
  });
  filter.addEventListener("input", applyFilter);
  flaggedOnly.addEventListener("change", applyFilter);
  applyFilter();
  document.body.setAttribute("data-index-ready", String(rows.length));
})();
