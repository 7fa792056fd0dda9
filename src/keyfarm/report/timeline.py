"""When a cluster's accounts acted: an inline SVG timeline of one cluster, drawn in Python.

Stage: report. One row per account (the busiest TIMELINE_ROWS; the rest summed in one row), one
column per time bin over the logs (BIN_SECONDS merged to at most MAX_COLUMNS columns); a cell's
shade is the account's tokens (or requests: the page toggles) in the bin. A triangle marks when
the account's first key was created, a tick its first request. The strip on top counts, per
column, the most accounts of the cluster that acted in one timing slot (slots.parquet), and
columns where most of the cluster acted together are banded across all rows: synchrony one can see.
"""
from __future__ import annotations

import datetime as _dt
from functools import lru_cache

import numpy as np
import pandas as pd

from keyfarm.activity import BIN_SECONDS
from keyfarm.report.escape import esc, fmt_int

MAX_COLUMNS = 192
TIMELINE_ROWS = 60
STEPS = (1, 2, 4, 8, 12, 24, 48, 96, 192, 384, 672)   # multiples of 15 min: 15 min … 1 week
LABEL_W, ROW_H, STRIP_H, AXIS_H, PLOT_W = 190, 9, 34, 26, 760
SHADES = 5


def _bin_step(n_fine: int) -> int:
    for step in STEPS:
        if n_fine / step <= MAX_COLUMNS:
            return step
    return int(np.ceil(n_fine / MAX_COLUMNS))


def _fmt_seconds(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def seconds(values) -> np.ndarray:
    """Epoch seconds of timestamps (a Series, tz-aware or not, or datetime64 values)."""
    if isinstance(values, pd.Series):
        values = values.to_numpy(dtype="datetime64[ns]")
    return np.asarray(values, dtype="datetime64[ns]").astype(np.int64) // 10**9


def table_arrays(frame: pd.DataFrame | dict | None, time_column: str) -> dict:
    """A table as a dict of NumPy arrays with `time_column` in epoch seconds (the form the
    report slices per cluster once, rather than one DataFrame per page)."""
    if frame is None:
        return {}
    if isinstance(frame, dict):
        return frame
    if not len(frame):
        return {}
    out = {c: frame[c].to_numpy() for c in frame.columns if c != time_column}
    out[time_column] = seconds(frame[time_column])
    return out


def timeline_svg(activity, slots, created: dict) -> str:
    """The timeline of one cluster. `activity`: its rows of activity.parquet; `slots`: its rows of
    slots.parquet (DataFrames, or `table_arrays` of them); `created`: account_id → when its first
    key was created (timestamp or ISO text)."""
    activity, slots = table_arrays(activity, "bin"), table_arrays(slots, "slot")
    if activity:
        activity = dict(activity, cluster_id=np.zeros(len(activity["bin"]), np.int64))
    if slots:
        slots = dict(slots, cluster_id=np.zeros(len(slots["slot"]), np.int64))
    return Timelines(activity, slots).svg(0, created)


class Timelines:
    """The timelines of many clusters, their arithmetic done in one pass over activity.parquet and
    slots.parquet (a report's ~10³ pages would otherwise each pay NumPy's per-call overhead on a
    few rows); `svg(cluster_id, created)` writes one cluster's SVG from it.

    `activity`, `slots`: the tables (DataFrames, or `table_arrays` of them) with `cluster_id`.
    """

    def __init__(self, activity, slots):
        activity, slots = table_arrays(activity, "bin"), table_arrays(slots, "slot")
        self.clusters = np.zeros(0, np.int64)
        if not activity or not len(activity["bin"]):
            return
        cluster = np.asarray(activity["cluster_id"], np.int64)
        self.clusters, ci = np.unique(cluster, return_inverse=True)
        n_clusters = self.clusters.size
        fine = np.asarray(activity["bin"], np.int64) // BIN_SECONDS
        t0 = np.full(n_clusters, np.iinfo(np.int64).max)
        t1 = np.full(n_clusters, np.iinfo(np.int64).min)
        np.minimum.at(t0, ci, fine)
        np.maximum.at(t1, ci, fine)
        step = np.array([_bin_step(n) for n in (t1 - t0 + 1).tolist()], np.int64)
        n_cols = (t1 - t0) // step + 1
        col = (fine - t0[ci]) // step[ci]
        self.t0, self.step, self.n_cols = t0, step, n_cols

        # accounts: per cluster in name order (global codes sorted by name keep that order)
        codes, names = pd.factorize(np.asarray(activity["account_id"]).astype(str), sort=True)
        slot_of, acc = np.unique(ci * np.int64(len(names)) + codes, return_inverse=True)   # (cluster, name)
        acc_ci = slot_of // len(names)
        self.names = np.asarray(names, dtype=object)[slot_of % len(names)]
        self.acc_bounds = np.searchsorted(acc_ci, np.arange(n_clusters + 1))
        tokens = np.asarray(activity["tokens"], np.int64)
        requests = np.asarray(activity["n_requests"], np.int64)
        n_acc = slot_of.size
        self.acc_tokens = np.bincount(acc, tokens, n_acc)
        self.acc_requests = np.bincount(acc, requests, n_acc)
        self.acc_first = n_cols[acc_ci].copy()
        np.minimum.at(self.acc_first, acc, col)
        # rows: the busiest TIMELINE_ROWS accounts of each cluster, in order of first activity
        position = np.arange(n_acc) - self.acc_bounds[acc_ci]          # rank of the name in its cluster
        busiest = np.lexsort((position, -self.acc_requests, -self.acc_tokens, acc_ci))
        rank = np.empty(n_acc, np.int64)
        rank[busiest] = np.arange(n_acc) - self.acc_bounds[acc_ci[busiest]]
        shown = rank < TIMELINE_ROWS
        by_first = np.lexsort((position, self.acc_first, acc_ci, ~shown))[:int(shown.sum())]
        self.n_shown = np.bincount(acc_ci[shown], minlength=n_clusters)
        self.shown_bounds = np.r_[0, np.cumsum(self.n_shown)]
        self.shown = by_first                                            # accounts of the rows, by cluster
        row_of = self.n_shown[acc_ci]                                    # the "other accounts" row
        row_of[by_first] = np.arange(by_first.size) - self.shown_bounds[acc_ci[by_first]]
        self.n_others = np.diff(self.acc_bounds) - self.n_shown

        # cells (cluster, row, column) with their tokens and requests, sorted by row then column
        n_rows_max, n_cols_max = TIMELINE_ROWS + 1, int(n_cols.max()) + 1
        cell, cell_of = np.unique((ci * n_rows_max + row_of[acc]) * n_cols_max + col, return_inverse=True)
        self.cell_ci = cell // (n_rows_max * n_cols_max)
        self.cell_row = cell // n_cols_max % n_rows_max
        self.cell_col = cell % n_cols_max
        self.layers = {}
        for name, values in (("tokens", tokens), ("requests", requests)):
            self.layers[name] = self._runs(np.bincount(cell_of, values, cell.size), n_clusters)

        # shared slots: per cluster and column, the most accounts acting in one slot
        self.strip_ci = self.strip_col = self.strip_n = np.zeros(0, np.int64)
        self.has_slots = np.zeros(n_clusters, bool)   # a cluster with slot rows draws the strip
        if slots and len(slots["slot"]):
            s_ci = np.searchsorted(self.clusters, np.asarray(slots["cluster_id"], np.int64))
            known = s_ci < n_clusters
            known[known] = self.clusters[s_ci[known]] == np.asarray(slots["cluster_id"], np.int64)[known]
            s_ci = s_ci[known]
            self.has_slots[s_ci] = True
            width_s = step[s_ci] * BIN_SECONDS
            s_col = (np.asarray(slots["slot"], np.int64)[known] - t0[s_ci] * BIN_SECONDS) // width_s
            ok = (s_col >= 0) & (s_col < n_cols[s_ci])
            code = s_ci[ok] * n_cols_max + s_col[ok]
            n = np.asarray(slots["n_accounts"], np.int64)[known][ok]
            order = np.lexsort((-n, code))
            first = np.r_[True, code[order][1:] != code[order][:-1]] if code.size else np.zeros(0, bool)
            best = order[first]
            keep = n[best] > 0
            self.strip_ci, self.strip_col, self.strip_n = (code[best] // n_cols_max)[keep], \
                (code[best] % n_cols_max)[keep], n[best][keep]
        self.strip_bounds = np.searchsorted(self.strip_ci, np.arange(n_clusters + 1))

    def _runs(self, values: np.ndarray, n_clusters: int) -> dict:
        """One layer's cells as runs of adjacent cells of one shade in a row (one rectangle each):
        cluster, first and last column, row and shade (1..SHADES, square-root scale against the
        cluster's largest cell), sorted by cluster, row, column."""
        keep = values > 0
        ci, row, col, values = self.cell_ci[keep], self.cell_row[keep], self.cell_col[keep], values[keep]
        top = np.zeros(n_clusters)
        np.maximum.at(top, ci, values)
        level = np.clip(np.ceil(np.sqrt(values / np.maximum(top[ci], 1)) * SHADES), 1, SHADES).astype(np.int64)
        # a run ends where the next cell is in another cluster or row, not adjacent, or of another shade
        last = np.ones(ci.size, bool)
        last[:-1] = (ci[1:] != ci[:-1]) | (row[1:] != row[:-1]) | (col[1:] != col[:-1] + 1) | \
            (level[1:] != level[:-1])
        ends = np.flatnonzero(last)
        starts = np.r_[0, ends[:-1] + 1]
        run_ci = ci[ends]
        # within a cluster, the paths come in shade order and each path's runs in row, column order
        order = np.lexsort((np.arange(ends.size), level[ends], run_ci))
        return {"ci": run_ci[order], "c0": col[starts][order], "c1": col[ends][order], "row": row[ends][order],
                "level": level[ends][order], "bounds": np.searchsorted(run_ci[order], np.arange(n_clusters + 1))}

    def svg(self, cluster_id: int, created: dict) -> str:
        """The SVG (and its legend) of one cluster; `created`: account_id → when its first key was
        created (timestamp or ISO text)."""
        i = int(np.searchsorted(self.clusters, cluster_id))
        if i == self.clusters.size or self.clusters[i] != cluster_id:
            return '<p class="muted">No activity recorded for this cluster (no requests in the logs, or an OUT_DIR ' \
                   "written without activity.parquet).</p>"
        n_cols, step = int(self.n_cols[i]), int(self.step[i])
        width_s = step * BIN_SECONDS
        start_s = int(self.t0[i]) * BIN_SECONDS
        n_shown, others = int(self.n_shown[i]), int(self.n_others[i])
        n_rows = n_shown + (1 if others else 0)
        cw = PLOT_W / n_cols
        top = STRIP_H + 6
        height = top + n_rows * ROW_H + AXIS_H
        width = LABEL_W + PLOT_W + 10
        x = lambda c: LABEL_W + c * cw  # noqa: E731
        out = [f'<svg class="timeline" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
               f'><title>activity of the cluster\'s accounts per {_fmt_seconds(width_s)}'
               "</title>"]

        # shared slots: per column, the most accounts acting in one slot
        n_accounts = max(int(self.acc_bounds[i + 1] - self.acc_bounds[i]), 1)
        lo, hi = self.strip_bounds[i], self.strip_bounds[i + 1]
        if self.has_slots[i]:
            strip = zip(self.strip_col[lo:hi].tolist(), self.strip_n[lo:hi].tolist())
            peak = max(int(self.strip_n[lo:hi].max()) if hi > lo else 0, 2)
            band_at = max(3, int(np.ceil(0.5 * n_accounts)))
            for c, n in strip:
                h = (STRIP_H - 4) * n / peak
                out.append(f'<rect x="{x(c):.1f}" y="{STRIP_H - h:.1f}" width="{max(cw - 0.3, 0.6):.1f}" height="{h:.1f}" '
                           f'class="tl-slot"><title>{fmt_int(n)} accounts in one slot</title></rect>')
                if n >= band_at:
                    out.append(f'<rect x="{x(c):.1f}" y="{top}" width="{max(cw, 0.8):.1f}" height="{n_rows * ROW_H}" '
                               'class="tl-band"/>')
            out.append(f'<text x="{LABEL_W - 6}" y="{STRIP_H - 8}" text-anchor="end">shared slots</text>'
                       f'<text x="{LABEL_W - 6}" y="{STRIP_H + 2}" text-anchor="end" class="muted">max {fmt_int(peak)} '
                       "accounts / slot</text>")
        else:
            out.append(f'<text x="{LABEL_W - 6}" y="{STRIP_H - 8}" text-anchor="end" class="muted">no shared slots</text>')

        # rows: labels, cells (tokens and requests layers), creation and first-use marks
        for name in ("tokens", "requests"):
            hidden = ' style="display:none"' if name == "requests" else ""
            out.append(f'<g class="tl-{name}"{hidden}>')
            out.extend(self._paths(self.layers[name], i, n_cols, top))
            out.append("</g>")
        lo = self.shown_bounds[i]
        for k, j in enumerate(self.shown[lo:lo + n_shown].tolist()):
            y = top + k * ROW_H
            acc = str(self.names[j])
            when = created.get(acc)
            when = None if when is None or pd.isna(when) else pd.Timestamp(when)
            tip = f"{acc}: {fmt_int(self.acc_tokens[j])} tokens, {fmt_int(self.acc_requests[j])} requests"
            if when is not None:
                tip += f"; first key created {when.isoformat()}"
            out.append(f'<text x="{LABEL_W - 6}" y="{y + ROW_H - 1}" text-anchor="end" class="tl-acc"><title>{esc(tip)}'
                       f"</title>{esc(acc if len(acc) <= 28 else acc[:27] + '…')}</text>")
            first_x = x(int(self.acc_first[j]))
            out.append(f'<line x1="{first_x:.1f}" y1="{y}" x2="{first_x:.1f}" y2="{y + ROW_H - 1}" class="tl-first"/>')
            if when is not None:
                cs = (when.value // 10**9 - start_s) / width_s
                cx = LABEL_W + min(max(cs, 0), n_cols) * cw
                mark = "◀" if cs < 0 else ("▶" if cs > n_cols else "▲")
                out.append(f'<text x="{cx:.1f}" y="{y + ROW_H - 1}" class="tl-created" text-anchor="middle">{mark}</text>')
        if others:
            y = top + n_shown * ROW_H
            out.append(f'<text x="{LABEL_W - 6}" y="{y + ROW_H - 1}" text-anchor="end" class="muted">{fmt_int(others)} '
                       "other accounts</text>")

        # time axis: a tick per day (or per 6 h on short logs), UTC
        axis_y = top + n_rows * ROW_H
        span_s = n_cols * width_s
        tick_s = 86400 if span_s > 2 * 86400 else 6 * 3600
        first_tick = -(-start_s // tick_s) * tick_s
        for t in range(first_tick, start_s + span_s + 1, tick_s):
            tx = LABEL_W + (t - start_s) / width_s * cw
            out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y + 4}" class="tl-tick"/>'
                       f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" class="muted">'
                       f'{esc(_tick_label(t, tick_s == 86400))}</text>')
        out.append("</svg>")
        legend = (f'<p class="muted">One column per {esc(_fmt_seconds(width_s))} (UTC); darker: more of the row\'s use '
                  "in that bin. ▲ first key created (◀ before the logs), | first request. Top strip: the most of the "
                  "cluster's accounts acting in one timing slot; shaded columns: half the cluster or more at once.</p>")
        return "".join(out) + legend

    @staticmethod
    def _paths(runs: dict, i: int, n_cols: int, top: float) -> list[str]:
        """One SVG path per shade of cluster `i`'s runs (so a busy cluster's timeline stays a few kB)."""
        lo, hi = runs["bounds"][i], runs["bounds"][i + 1]
        xs, widths = _column_text(n_cols)
        paths: dict[int, list[str]] = {}
        for c0, c1, row, level in zip(runs["c0"][lo:hi].tolist(), runs["c1"][lo:hi].tolist(),
                                      runs["row"][lo:hi].tolist(), runs["level"][lo:hi].tolist()):
            w = widths[c1 - c0]
            paths.setdefault(level, []).append(f"M{xs[c0]} {top + row * ROW_H}h{w}v{ROW_H - 1}h-{w}z")
        return [f'<path class="s{lv}" d="{"".join(d)}"/>' for lv, d in paths.items()]


@lru_cache(maxsize=1024)
def _column_text(n_cols: int) -> tuple[list[str], list[str]]:
    """For a timeline of `n_cols` columns: each column's x and each run length's width (1..n_cols
    columns), as the SVG text they are written with (one format per value, not per run)."""
    cw = PLOT_W / n_cols
    xs = [f"{LABEL_W + c * cw:.1f}" for c in range(n_cols)]
    widths = [f"{max(length * cw - 0.2, 0.6):.1f}" for length in range(1, n_cols + 1)]
    return xs, widths


@lru_cache(maxsize=4096)
def _tick_label(t: int, daily: bool) -> str:
    return _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%m-%d" if daily else "%m-%d %H:%M")
