// keyfarm cluster page: draw the precomputed account graph with vis-network, one line per signal
// of each linked pair; tooltips and the details panel are built as DOM nodes with textContent, so
// no data string is ever parsed as HTML. Example prompts are read from the page's prompts table.
(function () {
  "use strict";
  var data = JSON.parse(document.getElementById("kf-data").textContent);
  var container = document.getElementById("graph");

  // the page stores its pairs as columns (a few numbers per pair); one object per pair here:
  // w {signal: weight} for the signals it carries, ev {signal: string ref}, k [key refs], p [prompt refs]
  function unpackPairs(c) {
    var out = [];
    for (var j = 0; j < c.a.length; j++) {
      var w = {}, ev = {};
      Object.keys(c.w).forEach(function (s) { if (c.w[s][j] > 0) { w[s] = c.w[s][j]; } });
      Object.keys(c.ev).forEach(function (s) { if (c.ev[s][j] >= 0) { ev[s] = c.ev[s][j]; } });
      var pair = {a: c.a[j], b: c.b[j], weight: c.weight[j], n: c.n[j], k: [c.ka[j], c.kb[j]], w: w, ev: ev};
      if (c.pa[j] >= 0 || c.pb[j] >= 0) { pair.p = [c.pa[j] >= 0 ? c.pa[j] : null, c.pb[j] >= 0 ? c.pb[j] : null]; }
      out.push(pair);
    }
    return out;
  }
  data.edges = unpackPairs(data.pairs);

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
  function prompt(i) {
    var row = document.getElementById("prompt-" + i);
    return row ? row.querySelector("blockquote").textContent : null;
  }
  function usageText(info) {
    var limit = info.daily_token_limit, peak = info.peak_daily_tokens;
    if (peak === null || peak === undefined) { return null; }
    if (!limit) { return int(peak) + " tokens on its keys' peak days (no limit recorded)"; }
    return int(peak) + " of " + int(limit) + " tokens/day on its keys' peak days (" + Math.round(100 * peak / limit) + "%)";
  }

  function nodeDetails(info, withKeys) {
    var box = el("div", "kf-tip");
    var t = el("table");
    addRow(t, "account", info.account_id, true);
    addRow(t, "label", data.labels[info.account_id]);
    addRow(t, "keys", int(info.n_keys));
    addRow(t, "first key created", info.created_at);
    addRow(t, "usage vs limit", usageText(info));
    if (info.usage !== null && info.usage !== undefined) { addRow(t, "mean daily use / limit", num(info.usage, 2)); }
    addRow(t, "total tokens", int(info.total_tokens));
    addRow(t, "requests", int(info.n_requests));
    addRow(t, "org", info.org_id, true);
    addRow(t, "email domain", info.email_domain, true);
    box.appendChild(t);
    if (withKeys) {
      box.appendChild(el("div", "muted", "keys" + (info.keys.length < info.n_keys ? " (first " + info.keys.length + ")" : "") + ":"));
      var ul = el("ul", "keys");
      info.keys.forEach(function (k) { ul.appendChild(el("li", "mono", k)); });
      box.appendChild(ul);
    }
    return box;
  }

  function pairDetails(pair, withPrompts) {
    var box = el("div", "kf-tip");
    var t = el("table");
    var a = data.nodes[pair.a].info.account_id, b = data.nodes[pair.b].info.account_id;
    addRow(t, "accounts", a + "  ↔  " + b, true);
    var keys = pair.k.map(function (i) { return data.strings[i]; });
    addRow(t, "strongest key pair", keys[0] + "  ↔  " + keys[1], true);
    addRow(t, "linked key pairs", int(pair.n));
    addRow(t, "link weight", num(pair.weight));
    if (pair.p === undefined && pair.w.prompt !== undefined) { addRow(t, "prompts", "see the strongest pairs' examples"); }
    Object.keys(pair.w).forEach(function (s) {
      var token = pair.ev[s] === undefined ? "" : data.strings[pair.ev[s]];
      if (s === "payment" && token.length > 12) { token = token.slice(0, 12) + "…"; }   // a prefix is enough to compare
      token = token ? "  " + token : "";
      addRow(t, s, num(pair.w[s]) + token, true);
    });
    box.appendChild(t);
    (pair.p || []).forEach(function (i, end) {
      if (i === null) { return; }
      box.appendChild(el("div", "muted", "prompt #" + (i + 1) + " of " + keys[end] + ":"));
      if (withPrompts) { box.appendChild(el("blockquote", null, prompt(i))); }
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
    var labelled = data.labels[n.info.account_id];
    var c = {id: n.id, x: n.x, y: n.y, size: n.size, label: n.label, physics: false,
             color: labelled === "farm" ? "#dc2626" : (labelled === "benign" ? "#16a34a" : "#4e79a7")};
    c.title = nodeDetails(n.info, false);
    return c;
  }));
  var lines = [];
  var maxW = 0;
  data.edges.forEach(function (p) { Object.keys(p.w).forEach(function (s) { maxW = Math.max(maxW, p.w[s]); }); });
  data.edges.forEach(function (p, j) {
    var signals = Object.keys(p.w);
    signals.forEach(function (s, k) {
      var bend = signals.length === 1 ? false :
        {enabled: true, type: k % 2 ? "curvedCCW" : "curvedCW", roundness: 0.08 * (1 + Math.floor(k / 2))};
      lines.push({id: lines.length, from: p.a, to: p.b, color: {color: data.colours[s], opacity: 0.8},
                  width: 1 + 4 * p.w[s] / (maxW || 1), smooth: bend, signal: s, pair: j,
                  title: pairDetails(p, true)});
    });
  });
  var edges = new vis.DataSet(lines);
  var network = new vis.Network(container, {nodes: nodes, edges: edges}, data.options);
  window.kfNetwork = network;
  network.once("afterDrawing", function () {
    document.body.setAttribute("data-graph-ready", String(nodes.length));
  });

  var selection = document.getElementById("selection");
  network.on("click", function (params) {
    if (!params.nodes.length && !params.edges.length) { return; }
    while (selection.firstChild) { selection.removeChild(selection.firstChild); }
    if (params.nodes.length) {
      selection.appendChild(el("h2", null, "Selected account"));
      selection.appendChild(nodeDetails(data.nodes[params.nodes[0]].info, true));
    } else {
      selection.appendChild(el("h2", null, "Selected link"));
      selection.appendChild(pairDetails(data.edges[edges.get(params.edges[0]).pair], true));
    }
  });

  // legend: click a signal to hide or show its lines (a pair's other signals stay)
  Array.prototype.forEach.call(document.querySelectorAll(".legend li[data-signal]"), function (li) {
    li.classList.add("toggle");
    li.addEventListener("click", function () {
      var off = li.classList.toggle("off");
      var s = li.getAttribute("data-signal");
      edges.update(edges.get({filter: function (e) { return e.signal === s; }})
        .map(function (e) { return {id: e.id, hidden: off}; }));
    });
  });

  // find: select and zoom to accounts whose id, or one of whose keys, contains the text
  var find = document.getElementById("find");
  find.addEventListener("change", function () {
    var q = find.value.trim().toLowerCase();
    if (!q) { network.unselectAll(); network.fit(); return; }
    var hits = data.nodes.filter(function (n) {
      return String(n.info.account_id).toLowerCase().indexOf(q) >= 0 ||
        n.info.keys.some(function (k) { return String(k).toLowerCase().indexOf(q) >= 0; });
    }).map(function (n) { return n.id; });
    network.selectNodes(hits);
    if (hits.length) { network.fit({nodes: hits, animation: false}); }
  });
})();

// timeline: show tokens or requests
(function () {
  "use strict";
  Array.prototype.forEach.call(document.querySelectorAll('input[name="tl"]'), function (radio) {
    radio.addEventListener("change", function () {
      var show = radio.value;
      ["tokens", "requests"].forEach(function (name) {
        Array.prototype.forEach.call(document.querySelectorAll("svg.timeline g.tl-" + name), function (g) {
          g.style.display = name === show ? "" : "none";
        });
      });
    });
  });
  document.body.setAttribute("data-timeline", String(document.querySelectorAll("svg.timeline path").length));
})();
