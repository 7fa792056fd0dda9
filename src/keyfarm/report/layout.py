"""Positions of a cluster page's account graph: a deterministic Fruchterman–Reingold layout in Numba.

Stage: report. The page draws with physics off, so the layout is computed here, once per page:
all pairs of accounts repel (force 1/d), linked pairs attract (force w·d², w the pair's weight
scaled to at most 1 and divided by the pair's degrees, see `_attraction`), and each step moves an account at most a temperature that falls linearly
to zero, from a circle (Fruchterman & Reingold 1991, in the force model igraph's exact variant
uses). A graph in pieces also gets a weak attraction between all pairs, so the pieces stay near
each other. There are no random numbers: the same graph always gets the same picture. One Numba
call replaces igraph's Python-level graph building, which cost more than the layout on small
clusters, and no igraph import is needed to draw a report.
"""
from __future__ import annotations

import numba
import numpy as np

from keyfarm.community.components import find_root   # the one union-find kernel

ITERATIONS = 300        # steps of the layout (igraph's default is 500; 300 is where the pages settle)
CIRCLE_ONLY = 3         # up to this many accounts the circle is the layout


def layout(n: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray, *, iterations: int = ITERATIONS) -> np.ndarray:
    """Deterministic 2-D positions (pixels, centred, rounded to 0.1) of n nodes linked by the pairs
    (a[i], b[i]) of `weight`."""
    if n <= 1:
        return np.zeros((n, 2))
    angle = 2 * np.pi * np.arange(n) / n
    start = np.column_stack([np.cos(angle), np.sin(angle)]) * np.sqrt(n)
    if n <= CIRCLE_ONLY:   # two or three accounts (most clusters): the circle is the layout
        return np.round(start / np.abs(start).max() * (60.0 * np.sqrt(n) + 100.0), 1)
    a, b = np.asarray(a, np.int64), np.asarray(b, np.int64)
    w = _attraction(n, a, b, np.asarray(weight, np.float64))
    coords = fruchterman_reingold(start, a, b, w, np.int64(iterations), _in_one_piece(a, b, np.int64(n)))
    coords -= coords.mean(axis=0)
    span = np.abs(coords).max() or 1.0
    return np.round(coords / span * (60.0 * np.sqrt(n) + 100.0), 1)


def _attraction(n: int, a: np.ndarray, b: np.ndarray, weight: np.ndarray) -> np.ndarray:
    """Each pair's pull: its weight scaled to at most 1, times mean degree / √(degree a · degree b).
    In a dense cluster every account is pulled by most others and the core collapses into one
    disc while the few accounts with one link drift far out (and set the drawing's scale);
    dividing by the degrees lets the core spread (issue 19's screenshots of 139- and 234-account
    clusters). A graph of equal degrees (a clique, a ring) is laid out as before."""
    if not weight.size:
        return weight
    w = weight / weight.max() if weight.max() > 0 else np.ones(weight.size)
    degree = np.bincount(a, minlength=n) + np.bincount(b, minlength=n)
    return w * degree[degree > 0].mean() / np.sqrt(degree[a] * degree[b])


@numba.njit(cache=True, nogil=True)
def _in_one_piece(a, b, n):
    """True when the pairs (a[i], b[i]) join all n nodes in one piece."""
    parent = np.arange(n)
    pieces = n
    for e in range(a.size):
        ra, rb = find_root(parent, a[e]), find_root(parent, b[e])
        if ra != rb:
            parent[ra] = rb
            pieces -= 1
    return pieces == 1


@numba.njit(cache=True, nogil=True)
def fruchterman_reingold(start, a, b, w, iterations, connected):
    """The layout's steps from `start` (n × 2, not changed); returns the final positions."""
    n = start.shape[0]
    pos = start.copy()
    dx_ = np.zeros(n)
    dy_ = np.zeros(n)
    temp0 = np.sqrt(n) / 10.0
    glue = n * np.sqrt(n)   # in pieces: all pairs attract weakly (equilibrium near n^(1/2) apart)
    for step in range(iterations):
        temp = temp0 * (1.0 - step / iterations)
        dx_[:] = 0.0
        dy_[:] = 0.0
        for v in range(n):
            xv, yv = pos[v, 0], pos[v, 1]
            for u in range(v + 1, n):
                dx = xv - pos[u, 0]
                dy = yv - pos[u, 1]
                d2 = dx * dx + dy * dy
                if d2 == 0.0:   # coincident: part them along a fixed direction
                    dx, dy = 1e-9 * (v - u), 1e-9
                    d2 = dx * dx + dy * dy
                f = 1.0 / d2 if connected else (glue - d2 * np.sqrt(d2)) / (d2 * glue)
                dx_[v] += dx * f
                dy_[v] += dy * f
                dx_[u] -= dx * f
                dy_[u] -= dy * f
        for e in range(a.size):
            v, u = a[e], b[e]
            dx = pos[v, 0] - pos[u, 0]
            dy = pos[v, 1] - pos[u, 1]
            f = np.sqrt(dx * dx + dy * dy) * w[e]
            dx_[v] -= dx * f
            dy_[v] -= dy * f
            dx_[u] += dx * f
            dy_[u] += dy * f
        for v in range(n):
            length = np.sqrt(dx_[v] * dx_[v] + dy_[v] * dy_[v])
            if length > 0.0:
                pos[v, 0] += dx_[v] / length * min(abs(dx_[v]), temp)
                pos[v, 1] += dy_[v] / length * min(abs(dy_[v]), temp)
    return pos
