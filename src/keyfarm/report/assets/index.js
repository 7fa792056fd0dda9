// keyfarm report index: sort the clusters table by any column; filter rows by verdict, score range,
// signal, size and text; find the cluster of a key or account id (assets/members.js); export the
// rows shown as CSV. Data strings are only ever read with textContent and written as text.
(function () {
  "use strict";
  var table = document.getElementById("clusters");
  if (!table) { return; }
  var body = table.tBodies[0];
  var rows = Array.prototype.slice.call(body.rows);
  var filter = document.getElementById("filter");
  var flaggedOnly = document.getElementById("flagged-only");
  var verdict = document.getElementById("f-verdict");
  var minScore = document.getElementById("f-min");
  var maxScore = document.getElementById("f-max");
  var signal = document.getElementById("f-signal");
  var size = document.getElementById("f-size");
  var shown = document.getElementById("shown");
  var found = document.getElementById("found");
  var members = window.kfMembers || {keys: {}, accounts: {}};
  var has = Object.prototype.hasOwnProperty;

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

  // a key or account id typed in the search box: the cluster holding it
  function lookup(q) {
    if (q === "") { return null; }
    if (has.call(members.keys, q)) { return {kind: "key", cluster: String(members.keys[q])}; }
    if (has.call(members.accounts, q)) { return {kind: "account", cluster: String(members.accounts[q])}; }
    return null;
  }

  function applyFilter() {
    var raw = filter.value.trim();
    var q = raw.toLowerCase();
    var hit = lookup(raw);
    var lo = Number(minScore.value || 0), hi = Number(maxScore.value || 1), least = Number(size.value || 0);
    var n = 0;
    rows.forEach(function (r) {
      var score = Number(r.getAttribute("data-score"));
      var signals = (r.getAttribute("data-signals") || "").split(",");
      var ok;
      if (hit) {
        ok = r.cells[0].textContent === hit.cluster;
      } else {
        ok = (!flaggedOnly.checked || r.getAttribute("data-verdict") === "farm") &&
             (verdict.value === "" || r.getAttribute("data-verdict") === verdict.value) &&
             (isNaN(score) || (score >= lo && score <= hi)) &&
             (signal.value === "" || signals.indexOf(signal.value) >= 0) &&
             Number(r.getAttribute("data-accounts")) >= least &&
             (q === "" || r.textContent.toLowerCase().indexOf(q) >= 0);
      }
      r.hidden = !ok;
      if (ok) { n += 1; }
    });
    shown.textContent = n + " of " + rows.length + " clusters shown";
    while (found.firstChild) { found.removeChild(found.firstChild); }
    if (hit) {
      found.appendChild(document.createTextNode(hit.kind + " " + raw + " is in cluster "));
      var a = document.createElement("a");
      a.href = "clusters/" + encodeURIComponent(hit.cluster) + ".html";
      a.textContent = hit.cluster;
      found.appendChild(a);
    } else if (raw !== "" && n === 0) {
      found.textContent = "No cluster of two or more accounts holds a key or account " + raw +
        ", and no row contains the text.";
    }
  }

  // CSV of the rows shown, in their current order; cells that a spreadsheet would run as a
  // formula (=, +, -, @ first) are prefixed with a quote
  function csvCell(text) {
    var t = String(text);
    if (/^[=+\-@\t\r]/.test(t)) { t = "'" + t; }
    return /[",\n\r]/.test(t) ? '"' + t.replace(/"/g, '""') + '"' : t;
  }
  function csv() {
    var head = Array.prototype.map.call(table.tHead.rows[0].cells, function (c) { return csvCell(c.textContent); });
    var lines = [head.join(",")];
    rows.forEach(function (r) {
      if (r.hidden) { return; }
      lines.push(Array.prototype.map.call(r.cells, function (c) {
        var v = c.getAttribute("data-sort");
        return csvCell(v !== null ? v : c.textContent);
      }).join(","));
    });
    return lines.join("\r\n") + "\r\n";
  }
  window.kfCsv = csv;
  document.getElementById("csv").addEventListener("click", function () {
    var url = URL.createObjectURL(new Blob([csv()], {type: "text/csv"}));
    var a = document.createElement("a");
    a.href = url;
    a.download = "keyfarm-clusters.csv";
    document.body.appendChild(a);
    a.click();
    document.body.removeChild(a);
    setTimeout(function () { URL.revokeObjectURL(url); }, 1000);
  });

  Array.prototype.forEach.call(table.tHead.rows[0].cells, function (th, col) {
    th.addEventListener("click", function () { sortBy(th, col); });
  });
  filter.addEventListener("input", applyFilter);
  [flaggedOnly, verdict, signal].forEach(function (e) { e.addEventListener("change", applyFilter); });
  [minScore, maxScore, size].forEach(function (e) { e.addEventListener("input", applyFilter); });
  applyFilter();
  document.body.setAttribute("data-index-ready", String(rows.length));
})();
