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


def _levels(values: np.ndarray) -> np.ndarray:
    """Shade 1..SHADES of each positive value (square-root scale against the largest)."""
    top = values.max() if values.size else 1
    return np.clip(np.ceil(np.sqrt(values / max(top, 1)) * SHADES), 1, SHADES).astype(np.int64)


def _fmt_seconds(seconds: int) -> str:
    if seconds % 86400 == 0:
        return f"{seconds // 86400} d"
    if seconds % 3600 == 0:
        return f"{seconds // 3600} h"
    return f"{seconds // 60} min"


def _cell_paths(rows: np.ndarray, cols: np.ndarray, levels: np.ndarray, x, cw: float, top: float) -> list[str]:
    """One SVG path per shade: runs of adjacent cells of one shade in a row become one rectangle
    (cells are sorted by row, then column), so a busy cluster's timeline stays a few kB."""
    if rows.size == 0:
        return []
    rows, cols, levels = (np.asarray(v, np.int64) for v in (rows, cols, levels))
    # a run ends where the next cell is in another row, not adjacent, or of another shade
    last = np.ones(rows.size, bool)
    last[:-1] = (rows[1:] != rows[:-1]) | (cols[1:] != cols[:-1] + 1) | (levels[1:] != levels[:-1])
    ends = np.flatnonzero(last)
    starts = np.r_[0, ends[:-1] + 1]
    paths: dict[int, list[str]] = {}
    for c0, c1, row, level in zip(cols[starts].tolist(), cols[ends].tolist(), rows[ends].tolist(),
                                  levels[ends].tolist()):
        w = max((c1 - c0 + 1) * cw - 0.2, 0.6)
        paths.setdefault(level, []).append(f"M{x(c0):.1f} {top + row * ROW_H}h{w:.1f}v{ROW_H - 1}h{-w:.1f}z")
    return [f'<path class="s{lv}" d="{"".join(d)}"/>' for lv, d in sorted(paths.items())]


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
    if not activity or not len(activity["bin"]):
        return '<p class="muted">No activity recorded for this cluster (no requests in the logs, or an OUT_DIR ' \
               "written without activity.parquet).</p>"
    fine = activity["bin"] // BIN_SECONDS
    t0, t1 = int(fine.min()), int(fine.max())
    step = _bin_step(t1 - t0 + 1)
    n_cols = (t1 - t0) // step + 1
    col = (fine - t0) // step
    width_s = step * BIN_SECONDS
    start_s = t0 * BIN_SECONDS

    names, acc = np.unique(np.asarray(activity["account_id"]).astype(str), return_inverse=True)
    tokens = np.asarray(activity["tokens"], np.int64)
    requests = np.asarray(activity["n_requests"], np.int64)
    acc_tokens = np.bincount(acc, tokens, names.size)
    acc_requests = np.bincount(acc, requests, names.size)
    acc_first = np.full(names.size, n_cols, np.int64)
    np.minimum.at(acc_first, acc, col)
    busiest = np.lexsort((np.arange(names.size), -acc_requests, -acc_tokens))[:TIMELINE_ROWS]
    shown = busiest[np.lexsort((names[busiest], acc_first[busiest]))]   # in order of first activity
    others = names.size - shown.size
    row_of = np.full(names.size, shown.size, np.int64)
    row_of[shown] = np.arange(shown.size)
    n_rows = shown.size + (1 if others else 0)
    cell, cell_of = np.unique(row_of[acc] * n_cols + col, return_inverse=True)
    cells = {"row": cell // n_cols, "col": cell % n_cols,
             "tokens": np.bincount(cell_of, tokens, cell.size), "requests": np.bincount(cell_of, requests, cell.size)}

    cw = PLOT_W / n_cols
    top = STRIP_H + 6
    height = top + n_rows * ROW_H + AXIS_H
    width = LABEL_W + PLOT_W + 10
    x = lambda c: LABEL_W + c * cw  # noqa: E731
    out = [f'<svg class="timeline" role="img" width="{width}" height="{height}" viewBox="0 0 {width} {height}" '
           f'><title>activity of the cluster\'s accounts per {_fmt_seconds(width_s)}'
           "</title>"]

    # shared slots: per column, the most accounts acting in one slot
    n_accounts = max(names.size, 1)
    if slots and len(slots["slot"]):
        s_col = (slots["slot"] - start_s) // width_s
        ok = (s_col >= 0) & (s_col < n_cols)
        per_col = np.zeros(n_cols, np.int64)
        np.maximum.at(per_col, s_col[ok], np.asarray(slots["n_accounts"], np.int64)[ok])
        peak = max(int(per_col.max()), 2)
        band_at = max(3, int(np.ceil(0.5 * n_accounts)))
        for c in np.flatnonzero(per_col).tolist():
            n = int(per_col[c])
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
        values = cells[name]
        keep = values > 0
        level = np.zeros(values.size, np.int64)
        level[keep] = _levels(values[keep].astype(np.float64))
        hidden = ' style="display:none"' if name == "requests" else ""
        out.append(f'<g class="tl-{name}"{hidden}>')
        out.extend(_cell_paths(cells["row"][keep], cells["col"][keep], level[keep], x, cw, top))
        out.append("</g>")
    for i, j in enumerate(shown.tolist()):
        y = top + i * ROW_H
        acc = str(names[j])
        when = created.get(acc)
        when = None if when is None or pd.isna(when) else pd.Timestamp(when)
        tip = f"{acc}: {fmt_int(acc_tokens[j])} tokens, {fmt_int(acc_requests[j])} requests"
        if when is not None:
            tip += f"; first key created {when.isoformat()}"
        out.append(f'<text x="{LABEL_W - 6}" y="{y + ROW_H - 1}" text-anchor="end" class="tl-acc"><title>{esc(tip)}'
                   f"</title>{esc(acc if len(acc) <= 28 else acc[:27] + '…')}</text>")
        first_x = x(int(acc_first[j]))
        out.append(f'<line x1="{first_x:.1f}" y1="{y}" x2="{first_x:.1f}" y2="{y + ROW_H - 1}" class="tl-first"/>')
        if when is not None:
            cs = (when.value // 10**9 - start_s) / width_s
            cx = LABEL_W + min(max(cs, 0), n_cols) * cw
            mark = "◀" if cs < 0 else ("▶" if cs > n_cols else "▲")
            out.append(f'<text x="{cx:.1f}" y="{y + ROW_H - 1}" class="tl-created" text-anchor="middle">{mark}</text>')
    if others:
        y = top + shown.size * ROW_H
        out.append(f'<text x="{LABEL_W - 6}" y="{y + ROW_H - 1}" text-anchor="end" class="muted">{fmt_int(others)} '
                   "other accounts</text>")

    # time axis: a tick per day (or per 6 h on short logs), UTC
    axis_y = top + n_rows * ROW_H
    span_s = n_cols * width_s
    tick_s = 86400 if span_s > 2 * 86400 else 6 * 3600
    first_tick = -(-start_s // tick_s) * tick_s
    for t in range(first_tick, start_s + span_s + 1, tick_s):
        tx = LABEL_W + (t - start_s) / width_s * cw
        label = _dt.datetime.fromtimestamp(t, _dt.timezone.utc).strftime("%m-%d" if tick_s == 86400 else "%m-%d %H:%M")
        out.append(f'<line x1="{tx:.1f}" y1="{top}" x2="{tx:.1f}" y2="{axis_y + 4}" class="tl-tick"/>'
                   f'<text x="{tx:.1f}" y="{axis_y + 16}" text-anchor="middle" class="muted">{esc(label)}</text>')
    out.append("</svg>")
    legend = (f'<p class="muted">One column per {esc(_fmt_seconds(width_s))} (UTC); darker: more of the row\'s use '
              "in that bin. ▲ first key created (◀ before the logs), | first request. Top strip: the most of the "
              "cluster's accounts acting in one timing slot; shaded columns: half the cluster or more at once.</p>")
    return "".join(out) + legend
