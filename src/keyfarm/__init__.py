"""keyfarm: link API keys through what they share, find farms, score them with evidence.

Public API: `keyfarm.link(folder_or_tables, config=None, seed=0) -> LinkResult`; the stages live in
their modules (io, signals, graph, community, scoring, pipeline, report, enforce). The names below
are imported on first use, so `keyfarm --help` or a bad setting answers without loading the stages.
"""
import os

__version__ = "0.1.0"

# Numba's OpenMP threads (graph projection, MinHash, Leiden) wait for work by sleeping, not
# spinning: on a shared or oversubscribed host a spinning waiter burns the CPU its partner thread
# needs, and measured at load 10 on 2 cores a parallel loop then took 3-8x the serial time, while
# with sleeping waiters it took the serial time (scripts/bench_community.py notes). libgomp reads
# this once, when Numba first starts its threads; a value set by the user is kept.
os.environ.setdefault("OMP_WAIT_POLICY", "PASSIVE")

_LAZY = {"Config": "keyfarm.config", "Tables": "keyfarm.io", "load_tables": "keyfarm.io",
         "LinkResult": "keyfarm.pipeline", "link": "keyfarm.pipeline"}

__all__ = ["Config", "LinkResult", "Tables", "__version__", "link", "load_tables"]


def __getattr__(name):
    if name in _LAZY:
        import importlib

        return getattr(importlib.import_module(_LAZY[name]), name)
    raise AttributeError(f"module 'keyfarm' has no attribute {name!r}")
