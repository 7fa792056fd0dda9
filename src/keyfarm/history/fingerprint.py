"""Component fingerprints (history stage): a daily run skips community detection on the connected
components of the account graph that are exactly yesterday's, and takes yesterday's partition there.

Leiden and the settle steps read one connected component at a time (community.bycomponent,
pipeline.settle_communities), and on a component they are a function of its accounts in ascending
order, its links (weight and control part) and the job's settings and seed. A fingerprint is a
blake2b digest of all of these (`component_fingerprints`); two components with one fingerprint get
one cold partition. A run lists the fingerprints of the components where its partition is the
cold one (on the others the warm run won: cold would not give it again), so the next run, finding
a component with a listed fingerprint, gives it its previous communities (accounts.community of
state/), which is what the cold run would find and what the warm run then keeps (it runs only where
cold is not yesterday's partition: history.warmstart). The outputs are the same; only the time
differs.

    cache/components.parquet  fingerprint (hex text), one row per listed component, sorted
    cache/components.json     run_id of the state/ it goes with, sha256 of the parquet

The cache is outside state/: a run that cannot use it (missing, damaged, another run's, written
by another engine) simply detects communities everywhere, with the same result.
"""
from __future__ import annotations

import hashlib
import json
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.history.state import _sha256 as file_sha256   # streamed, as state.json's checksums

FOLDER = "cache"


def component_fingerprints(ids: np.ndarray, src, dst, weight, control, component: np.ndarray,
                           salt: bytes) -> np.ndarray:
    """Per component (labels 0..k−1 of `component`, per node), the hex blake2b digest of `salt`
    (settings and seed), its nodes' `ids` in ascending node order and its links (src, dst
    renumbered within the component, in input order, with weight and `control` part)."""
    component = np.asarray(component, np.int64)
    n_comp = int(component.max()) + 1 if component.size else 0
    src, dst = np.asarray(src, np.int64), np.asarray(dst, np.int64)
    weight = np.asarray(weight, np.float64)
    control = np.zeros(src.size) if control is None else np.asarray(control, np.float64)
    size = np.bincount(component, minlength=n_comp)
    node_order = np.argsort(component, kind="stable")
    node_start = np.concatenate([[0], np.cumsum(size)])
    position = np.empty(component.size, np.int64)
    position[node_order] = np.arange(component.size) - np.repeat(node_start[:-1], size)
    edge_comp = component[src]
    edge_order = np.argsort(edge_comp, kind="stable")
    edge_start = np.searchsorted(edge_comp[edge_order], np.arange(n_comp + 1))
    links = np.column_stack([position[src].astype(np.float64), position[dst].astype(np.float64),
                             weight, control])[edge_order]
    text = np.asarray(ids, dtype=object)[node_order]
    out = np.empty(n_comp, dtype=object)
    for c in range(n_comp):
        h = hashlib.blake2b(salt, digest_size=16)
        h.update("\0".join(text[node_start[c]:node_start[c + 1]]).encode())
        h.update(b"\1")
        h.update(np.ascontiguousarray(links[edge_start[c]:edge_start[c + 1]]).tobytes())
        out[c] = h.hexdigest()
    return out


def settings_salt(community_config: dict, seed: int) -> bytes:
    """What besides the component its partition depends on: keyfarm's version, the community
    settings, the seed."""
    from keyfarm import __version__

    return json.dumps({"version": __version__, "community": community_config, "seed": int(seed)},
                      sort_keys=True, default=str).encode()


def write_cache(out_dir, run_id: str, fingerprints) -> None:
    """OUT_DIR/cache/ for the run `run_id` (None: no fingerprints, any earlier cache removed)."""
    folder = Path(out_dir) / FOLDER
    table, meta = folder / "components.parquet", folder / "components.json"
    meta.unlink(missing_ok=True)
    if fingerprints is None:
        table.unlink(missing_ok=True)
        return
    folder.mkdir(parents=True, exist_ok=True)
    frame = pd.DataFrame({"fingerprint": pd.Series(sorted(set(fingerprints)), dtype="string")})
    frame.to_parquet(table, index=False)
    meta.write_text(json.dumps({"run_id": run_id, "sha256": file_sha256(table)}, indent=2, sort_keys=True) + "\n")


def read_cache(prev_out, run_id: str | None) -> np.ndarray:
    """The fingerprints PREV_OUT's cache lists for its state's run `run_id`; none when the cache is
    missing, damaged or of another run (the run then detects communities everywhere)."""
    folder = Path(prev_out) / FOLDER
    try:
        meta = json.loads((folder / "components.json").read_text())
        table = folder / "components.parquet"
        if not isinstance(meta, dict) or meta.get("run_id") != run_id or run_id is None \
                or meta.get("sha256") != file_sha256(table):
            return np.zeros(0, dtype=object)
        return pd.read_parquet(table)["fingerprint"].to_numpy(dtype=object)
    except (OSError, ValueError, KeyError):
        return np.zeros(0, dtype=object)
