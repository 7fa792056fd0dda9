// keyfarm cluster page: draw the precomputed graph with vis-network; tooltips and the selection
// panel are built as DOM nodes with textContent, so no data string is ever parsed as HTML.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("kf-data").textContent);
  var container = document.getElementById("graph");

  function el(tag, cls, text) {
    var e = document.createElement(tag);
    if (cls) { e.className = cls; }
    if (text !== undefined && text !== null) { e.textContent = String(text); }
    return e;
  }
  function int(v) { return (v === null || v === undefined) ? null : Math.round(Number(v)).toLocaleString("en-US"); }
  function num(v, d) { return (v === null || v === undefined) ? null : Number(v).toFixed(d === undefined ? 3 : d); }
  function addRow(table, label, value, mono) {
    if (value === null || value === undefined || value === "") { return; }
    var tr = el("tr");
    tr.appendChild(el("th", null, label));
    tr.appendChild(el("td", mono ? "mono" : null, value));
    table.appendChild(tr);
  }
  function usageText(info) {
    var limit = info.daily_token_limit, peak = info.peak_daily_tokens;
    if (peak === null || peak === undefined) { return null; }
    if (!limit) { return int(peak) + " tokens on its peak day (no limit recorded)"; }
    return int(peak) + " of " + int(limit) + " tokens/day on its peak day (" + Math.round(100 * peak / limit) + "%)";
  }

  function nodeDetails(info) {
    var box = el("div", "kf-tip");
    var t = el("table");
    if (data.level === "key") {
      addRow(t, "key", info.key_id, true);
      addRow(t, "account", info.account_id, true);
    } else {
      addRow(t, "account", info.account_id, true);
      addRow(t, "keys", int(info.n_keys));
      addRow(t, "first key", info.example_key, true);
    }
    addRow(t, "created", info.created_at);
    addRow(t, "usage vs limit", usageText(info));
    if (info.usage !== null && info.usage !== undefined) { addRow(t, "mean daily use / limit", num(info.usage, 2)); }
    addRow(t, "total tokens", int(info.total_tokens));
    addRow(t, "requests", int(info.n_requests));
    addRow(t, "org", info.org_id, true);
    addRow(t, "email domain", info.email_domain, true);
    box.appendChild(t);
    return box;
  }

  function edgeDetails(info) {
    var box = el("div", "kf-tip");
    var t = el("table");
    addRow(t, data.level === "key" ? "keys" : "accounts", info.a + "  ↔  " + info.b, true);
    if (data.level === "account") {
      addRow(t, "strongest key pair", info.key_a + "  ↔  " + info.key_b, true);
      addRow(t, "linked key pairs", int(info.n_key_pairs));
    }
    addRow(t, "link weight", num(info.weight));
    addRow(t, "strongest signal", info.signal);
    Object.keys(info.weights).forEach(function (s) { addRow(t, "  w_" + s, num(info.weights[s])); });
    var ev = info.evidence || {};
    addRow(t, "shared payment (prefix)", ev.payment, true);
    addRow(t, "shared IP / range", ev.ip, true);
    addRow(t, "shared device", ev.device, true);
    addRow(t, "prompt LSH bucket", ev.prompt, true);
    box.appendChild(t);
    (ev.prompts || []).forEach(function (p, i) {
      box.appendChild(el("div", "muted", "near-duplicate prompt of " + (i === 0 ? info.a : info.b) + ":"));
      box.appendChild(el("blockquote", null, p));
    });
    return box;
  }

  if (typeof vis === "undefined") {
    var msg = el("div", null, "The graph library (assets/vis-network.min.js) did not load; " +
      "the tables below still hold the cluster.");
    msg.id = "graph-error";
    container.appendChild(msg);
    return;
  }

  var nodes = new vis.DataSet(data.nodes.map(function (n) {
    var c = {};
    Object.keys(n).forEach(function (k) { if (k !== "info") { c[k] = n[k]; } });
    c.title = nodeDetails(n.info);
    return c;
  }));
  var edges = new vis.DataSet(data.edges.map(function (e, i) {
    var c = {id: i};
    Object.keys(e).forEach(function (k) { if (k !== "info") { c[k] = e[k]; } });
    c.title = edgeDetails(e.info);
    c.signal = e.info.signal;
    return c;
  }));
  var network = new vis.Network(container, {nodes: nodes, edges: edges}, data.options);
  window.kfNetwork = network;
  network.once("afterDrawing", function () {
    document.body.setAttribute("data-graph-ready", String(nodes.length));
  });

  var selection = document.getElementById("selection");
  network.on("click", function (params) {
    while (selection.firstChild) { selection.removeChild(selection.firstChild); }
    if (params.nodes.length) {
      selection.appendChild(el("h2", null, data.level === "key" ? "Selected key" : "Selected account"));
      selection.appendChild(nodeDetails(data.nodes[params.nodes[0]].info));
    } else if (params.edges.length) {
      selection.appendChild(el("h2", null, "Selected link"));
      selection.appendChild(edgeDetails(data.edges[params.edges[0]].info));
    }
  });

  // legend: click a signal to hide or show its links
  Array.prototype.forEach.call(document.querySelectorAll(".legend li[data-signal]"), function (li) {
    li.classList.add("toggle");
    li.addEventListener("click", function () {
      var off = li.classList.toggle("off");
      var s = li.getAttribute("data-signal");
      edges.update(edges.get({filter: function (e) { return e.signal === s; }})
        .map(function (e) { return {id: e.id, hidden: off}; }));
    });
  });

  // find: select and zoom to nodes whose key or account contains the text
  var find = document.getElementById("find");
  find.addEventListener("change", function () {
    var q = find.value.trim().toLowerCase();
    if (!q) { network.unselectAll(); network.fit(); return; }
    var hits = data.nodes.filter(function (n) {
      return String(n.info.key_id || "").toLowerCase().indexOf(q) >= 0 ||
             String(n.info.account_id || "").toLowerCase().indexOf(q) >= 0;
    }).map(function (n) { return n.id; });
    network.selectNodes(hits);
    if (hits.length) { network.fit({nodes: hits, animation: false}); }
  });
})();
