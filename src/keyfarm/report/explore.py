"""Finding the page of a cluster, an account or a key, in a shell or a notebook.

Stage: report (exploration). `resolve_cluster` turns an account or key id into its cluster;
`explore()` returns a `Page`: its file in OUT_DIR/report (written if absent), and, displayed in a
Jupyter notebook, the page itself in a sandboxed iframe (a self-contained copy with vis-network
inlined, since a notebook cannot load the report's relative assets).
"""
from __future__ import annotations

import html as _html
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from keyfarm.errors import KeyfarmInputError


@dataclass
class Page:
    """A report page: `path` on disk, `cluster_id` (None for the index) and what led to it."""

    out_dir: Path
    path: Path
    cluster_id: int | None = None
    found_by: str = ""

    @property
    def html(self) -> str:
        """The page as one self-contained document (vis-network inlined)."""
        if self.cluster_id is None:
            return self.path.read_text(encoding="utf-8")
        from keyfarm.report import cluster_html

        return cluster_html(self.out_dir, self.cluster_id)

    def _repr_html_(self) -> str:
        # srcdoc keeps the page's own CSP; the sandbox lets its hashed scripts run, nothing else
        return (f'<iframe srcdoc="{_html.escape(self.html, quote=True)}" sandbox="allow-scripts" '
                'style="width:100%;height:900px;border:1px solid #ddd"></iframe>')

    def __repr__(self) -> str:
        what = "index" if self.cluster_id is None else f"cluster {self.cluster_id}"
        return f"<keyfarm report page: {what}{' (' + self.found_by + ')' if self.found_by else ''} at {self.path}>"


def resolve_cluster(out_dir, *, cluster: int | None = None, account: str | None = None,
                    key: str | None = None) -> tuple[int | None, str]:
    """(cluster_id, how it was found) of the one id given; (None, "") when none is given. An
    account or key in no cluster of 2+ accounts, or unknown, is an input error naming it."""
    given = [(n, v) for n, v in (("cluster", cluster), ("account", account), ("key", key)) if v is not None]
    if len(given) > 1:
        raise KeyfarmInputError("explore: give one of --cluster, --account, --key", table="members")
    if not given:
        return None, ""
    name, value = given[0]
    if name == "cluster":
        return int(value), ""
    path = Path(out_dir) / "members.parquet"
    if not path.is_file():
        raise KeyfarmInputError(f"members: {path} not found (is this a `keyfarm link` OUT_DIR?)", table="members")
    column = "account_id" if name == "account" else "key_id"
    members = pd.read_parquet(path, columns=[column, "cluster_id"])
    rows = members[members[column].astype(str) == str(value)]
    if not len(rows):
        raise KeyfarmInputError(f"members: no {name} {value!r} in {path}", table="members", column=column, row=value)
    cid = int(rows["cluster_id"].iloc[0])
    clusters = Path(out_dir) / "clusters.parquet"
    if clusters.is_file() and cid not in set(pd.read_parquet(clusters, columns=["cluster_id"])["cluster_id"].tolist()):
        raise KeyfarmInputError(f"{name} {value!r} is in cluster {cid}, which links no other account (no page: "
                                "pages exist for clusters of 2+ accounts)", table="clusters", column="cluster_id",
                                row=cid)
    return cid, f"{name} {value}"


def explore(out_dir, *, cluster: int | None = None, account: str | None = None, key: str | None = None,
            progress=None) -> Page:
    """The report page of a cluster, of the cluster holding `account` or `key`, or the index.

    Writes the report first if OUT_DIR has none. In a notebook, the returned Page displays itself.

    >>> explore("out", key="sk-123")          # doctest: +SKIP
    """
    from keyfarm.report.command import page_path

    cid, how = resolve_cluster(out_dir, cluster=cluster, account=account, key=key)
    return Page(out_dir=Path(out_dir), path=page_path(out_dir, cid, progress=progress), cluster_id=cid, found_by=how)
