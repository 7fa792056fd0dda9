"""Analyst reports: offline HTML pages of a linkage run (index + one pyvis page per cluster).

Stage: report (after outputs). `write_report(out_dir)` reads OUT_DIR and writes
`report/index.html`, `report/clusters/<cluster_id>.html` and `report/assets/` (vis-network, copied
from the pyvis package). Pages make no network request and escape every data string.
"""
from __future__ import annotations

import logging
import shutil
from pathlib import Path

from keyfarm.report.cluster import cluster_page
from keyfarm.report.index import index_page
from keyfarm.report.outputs import ReportData, load_outputs
from keyfarm.report.page import VIS_JS, vis_network_source

__all__ = ["write_report", "load_outputs", "cluster_page", "index_page", "cluster_html", "ReportData"]
log = logging.getLogger(__name__)
DEFAULT_MAX_NODES = 500


def _cluster_parts(data: ReportData, cluster_id: int):
    from keyfarm.errors import KeyfarmInputError

    rows = data.clusters[data.clusters["cluster_id"] == cluster_id]
    if len(rows) == 0:
        raise KeyfarmInputError(f"cluster {cluster_id} is not in clusters.parquet (clusters of 2+ accounts)",
                                table="clusters", column="cluster_id", row=cluster_id)
    members = data.members[data.members["cluster_id"] == cluster_id]
    edges = data.edges[data.edges["cluster_id"] == cluster_id]
    return rows.iloc[0].to_dict(), members, edges


def cluster_html(out_dir, cluster_id: int, *, max_nodes: int = DEFAULT_MAX_NODES) -> str:
    """A self-contained page (vis-network inlined) of one cluster, e.g. for a notebook's IFrame."""
    data = load_outputs(out_dir)
    cluster, members, edges = _cluster_parts(data, int(cluster_id))
    return cluster_page(cluster, members, edges, run=data.run, max_nodes=max_nodes, vis="inline", index_href=None)


def write_report(out_dir, *, max_nodes: int = DEFAULT_MAX_NODES, progress=None) -> Path:
    """Write OUT_DIR/report/ (index, one page per cluster of 2+ accounts, assets); return the index path.

    Clusters with more than `max_nodes` keys are drawn at account level (the page says so).
    `progress`: a keyfarm.progress.Progress for a bar over the cluster pages.
    """
    from keyfarm.errors import KeyfarmConfigError

    if max_nodes < 2:
        raise KeyfarmConfigError(f"max_nodes must be at least 2, got {max_nodes}")
    data = load_outputs(out_dir)
    report = Path(out_dir) / "report"
    pages = report / "clusters"
    if pages.is_dir():
        shutil.rmtree(pages)   # pages of clusters that no longer exist must not linger
    pages.mkdir(parents=True)
    (report / "assets").mkdir(exist_ok=True)
    (report / "assets" / VIS_JS).write_text(vis_network_source(), encoding="utf-8")

    ids = data.clusters["cluster_id"].to_numpy()
    members_of = dict(tuple(data.members[data.members["cluster_id"].isin(ids)].groupby("cluster_id")))
    edges_of = dict(tuple(data.edges[data.edges["cluster_id"].isin(ids)].groupby("cluster_id")))
    empty_members, empty_edges = data.members.iloc[:0], data.edges.iloc[:0]
    records = data.clusters.to_dict("records")
    iterator = progress.bar(records, total=len(records), desc="cluster pages") if progress else records
    for cluster in iterator:
        cid = int(cluster["cluster_id"])
        html = cluster_page(cluster, members_of.get(cid, empty_members), edges_of.get(cid, empty_edges),
                            run=data.run, max_nodes=max_nodes)
        (pages / f"{cid}.html").write_text(html, encoding="utf-8")
    index = report / "index.html"
    index.write_text(index_page(data.run, data.clusters, data.quarantined, changes=data.changes), encoding="utf-8")
    log.info("report: %d cluster pages in %s", len(records), pages)
    return index
