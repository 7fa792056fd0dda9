"""Analyst reports: offline HTML pages of a linkage run (index + one page per cluster).

Stage: report (after outputs). `write_report(out_dir)` reads OUT_DIR and writes
`report/index.html`, `report/clusters/<cluster_id>.html` and `report/assets/` (vis-network, copied
from the pyvis package, and the index's members lookup), and `run-info.html` (run.json's timings). Pages make no network request and
escape every data string. `explore()` gives a page of a cluster, an account or a key as an object a
notebook displays (and `.path`, `.html`).
"""
from __future__ import annotations

import logging
from functools import partial
from pathlib import Path

import numpy as np

from keyfarm.report.cluster import cluster_page
from keyfarm.report.explore import Page, explore
from keyfarm.report.index import index_page, members_lookup_js
from keyfarm.report.outputs import ReportData, load_outputs
from keyfarm.report.page import ASSET_FILES, VIS_JS, asset, vis_network_source
from keyfarm.report.runinfo import write_run_info
from keyfarm.report.workers import auto_workers, write_pages

__all__ = ["write_report", "load_outputs", "cluster_page", "index_page", "cluster_html", "ReportData",
           "explore", "Page", "refresh_pages"]
log = logging.getLogger(__name__)
DEFAULT_MAX_NODES = 500
LOOKUP_JS = "members.js"


def _of_clusters(frame, ids):
    """The rows of `frame` (None: absent table) in the clusters `ids`."""
    return None if frame is None else frame[frame["cluster_id"].isin(ids)]


def _labels_of(data: ReportData, cluster_id: int, accounts: set):
    """The labels (oldest first) of the cluster and of its accounts, or None."""
    labels = data.labels
    if labels is None:
        return None
    mine = (labels["cluster_id"] == cluster_id).fillna(False).to_numpy(bool) | \
        labels["account_id"].astype(str).isin(accounts).to_numpy() & labels["account_id"].notna().to_numpy()
    return labels[mine]


class _Pages:
    """Everything per cluster a page needs, grouped once for a whole report."""

    def __init__(self, data: ReportData, ids):
        from keyfarm.report.breakdown import all_contributions, scoring_config
        from keyfarm.report.cluster import KEY_COLUMNS
        from keyfarm.report.timeline import Timelines
        from keyfarm.report.graph import (ColumnsByCluster, account_nodes, account_pairs, keys_by_account,
                                          rows_by_cluster)

        self.data = data
        self.scoring = scoring_config(data.run)
        self.contrib = all_contributions(data.clusters[data.clusters["cluster_id"].isin(ids)], self.scoring)
        inside = data.members[data.members["cluster_id"].isin(ids)]
        self.nodes = rows_by_cluster(account_nodes(inside), ids)
        self.pairs = ColumnsByCluster(account_pairs(inside, data.edges[data.edges["cluster_id"].isin(ids)]), ids)
        self.key_rows = rows_by_cluster(inside[["cluster_id"] + KEY_COLUMNS], ids)   # members are by key_id
        self.keys_of = keys_by_account(inside)
        self.timelines = Timelines(_of_clusters(data.activity, ids), _of_clusters(data.slots, ids))
        self.empty_members, self.empty_edges = data.members.iloc[:0], data.edges.iloc[:0]

    def html(self, cluster: dict, *, max_nodes: int, vis: str = "../assets/vis-network.min.js",
             index_href: str | None = "../index.html") -> str:
        cid = int(cluster["cluster_id"])
        nodes = self.nodes.get(cid, [])
        # every per-cluster part is precomputed: the page needs no members or edges frames
        return cluster_page(cluster, self.empty_members, self.empty_edges, run=self.data.run,
                            max_nodes=max_nodes, vis=vis, index_href=index_href,
                            timeline=self.timelines.svg(cid, {n["account_id"]: n["created_at"] for n in nodes}),
                            labels=_labels_of(self.data, cid, {n["account_id"] for n in nodes}),
                            nodes=nodes, pairs=self.pairs.get(cid),
                            keys_of=self.keys_of, key_rows=self.key_rows.get(cid, []),
                            scoring=self.scoring, contrib=self.contrib.get(cid))


def _cluster_row(data: ReportData, cluster_id: int) -> dict:
    from keyfarm.errors import KeyfarmInputError

    rows = data.clusters[data.clusters["cluster_id"] == cluster_id]
    if len(rows) == 0:
        raise KeyfarmInputError(f"cluster {cluster_id} is not in clusters.parquet (clusters of 2+ accounts)",
                                table="clusters", column="cluster_id", row=cluster_id)
    return rows.iloc[0].to_dict()


def cluster_html(out_dir, cluster_id: int, *, max_nodes: int = DEFAULT_MAX_NODES) -> str:
    """A self-contained page (vis-network inlined) of one cluster, e.g. for a notebook's IFrame."""
    data = load_outputs(out_dir)
    cluster = _cluster_row(data, int(cluster_id))
    return _Pages(data, [int(cluster_id)]).html(cluster, max_nodes=max_nodes, vis="inline", index_href=None)


def _write_assets(report: Path) -> None:
    """report/assets/: vis-network and keyfarm's stylesheet and scripts, shared by every page."""
    (report / "assets").mkdir(parents=True, exist_ok=True)
    (report / "assets" / VIS_JS).write_text(vis_network_source(), encoding="utf-8")
    for name in ASSET_FILES:
        (report / "assets" / name).write_text(asset(name), encoding="utf-8")


def _write_index(data: ReportData, report: Path) -> Path:
    _write_assets(report)
    (report / "assets" / LOOKUP_JS).write_text(members_lookup_js(data.members, data.clusters), encoding="utf-8")
    index = report / "index.html"
    index.write_text(index_page(data.run, data.clusters, data.quarantined, hubs=data.hubs, labels=data.labels,
                                changes=data.changes, lookup=f"assets/{LOOKUP_JS}", assets="assets/"),
                     encoding="utf-8")
    return index


def page_costs(clusters, max_nodes: int) -> np.ndarray:
    """A guess of each cluster page's drawing time in µs, to hand the dearest out first: ~1 ms a
    page, the layout's all-pairs steps (graph.layout; nodes capped at `max_nodes`) and its keys."""
    import pandas as pd

    accounts = np.minimum(pd.to_numeric(clusters["n_accounts"], errors="coerce").fillna(2).to_numpy(np.float64),
                          max_nodes)
    keys = pd.to_numeric(clusters["n_keys"], errors="coerce").fillna(0).to_numpy(np.float64)
    return 1000.0 + 0.45 * accounts * accounts + 10.0 * np.minimum(keys, 2000)


def write_report(out_dir, *, max_nodes: int = DEFAULT_MAX_NODES, progress=None, workers: int | str = "auto",
                 tables: dict | None = None) -> Path:
    """Write OUT_DIR/report/ (index, one page per cluster of 2+ accounts, assets); return the index path.

    Clusters with more than `max_nodes` accounts draw the accounts with the most link weight
    (the page says so). `progress`: a keyfarm.progress.Progress for a bar over the cluster pages.
    `workers`: processes drawing the pages (1: this one; 2+: forked, each copying what it touches
    of this process's memory; "auto": 2 up to report.workers.AUTO_MAX_KEYS keys, else 1); the pages
    are the same bytes whichever is chosen.
    `tables`: the frames just written to OUT_DIR (LinkResult.output_tables), drawn from instead of
    reading them back (`keyfarm link` does); the same bytes as from the files.
    An earlier report's pages are replaced as a whole (report.folders): none of them lingers.
    The report folder holds no timings (the same bytes for the same input and seed): they go to
    OUT_DIR/run-info.html (report.runinfo).
    """
    from keyfarm.errors import KeyfarmConfigError
    from keyfarm.report.folders import swap_in_empty

    if max_nodes < 2:
        raise KeyfarmConfigError(f"max_nodes must be at least 2, got {max_nodes}")
    data = load_outputs(out_dir, tables=tables)
    report = Path(out_dir) / "report"
    pages = report / "clusters"
    if workers == "auto":
        workers = auto_workers(len(data.members))
    remover = swap_in_empty(pages)   # the old pages go in the background while the new are drawn
    try:
        builder = _Pages(data, data.clusters["cluster_id"].to_numpy())
        records = data.clusters.to_dict("records")
        write_pages(partial(builder.html, max_nodes=max_nodes), records, pages, workers=int(workers),
                    progress=progress, started=remover.start,   # its threads start after any fork
                    costs=page_costs(data.clusters, max_nodes))
        index = _write_index(data, report)
        write_run_info(out_dir)
    finally:
        remover.join()
    log.info("report: %d cluster pages in %s", len(records), pages)
    return index


def refresh_pages(out_dir, cluster_ids, *, max_nodes: int = DEFAULT_MAX_NODES) -> list[Path]:
    """Rewrite the index and the pages of `cluster_ids` of an existing report (after a label);
    nothing when OUT_DIR has no report yet. Returns the files written."""
    report = Path(out_dir) / "report"
    if not (report / "index.html").is_file():
        return []
    data = load_outputs(out_dir)
    ids = sorted({int(c) for c in cluster_ids} & set(data.clusters["cluster_id"].tolist()))
    builder = _Pages(data, ids)
    written = []
    for cid in ids:
        path = report / "clusters" / f"{cid}.html"
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(builder.html(_cluster_row(data, cid), max_nodes=max_nodes), encoding="utf-8")
        written.append(path)
    written.append(_write_index(data, report))
    return written
