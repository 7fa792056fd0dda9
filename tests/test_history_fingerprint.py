"""Component fingerprints (keyfarm.history.fingerprint): a daily run takes yesterday's partition on
components whose account graph is unchanged, with the same outputs as detecting them again."""
from __future__ import annotations

import json
import shutil

import numpy as np
import pandas as pd

from keyfarm.history.fingerprint import component_fingerprints, read_cache, write_cache
from keyfarm.pipeline import run_link

FILES = ("members.parquet", "clusters.parquet", "edges.parquet", "changes.parquet", "state/accounts.parquet",
         "state/ids.parquet", "state/evidence.parquet")


def test_fingerprint_is_a_function_of_its_component_alone():
    ids = np.array(["a", "b", "c", "d", "e"], dtype=object)
    comp = np.array([0, 0, 1, 1, 1])
    src, dst, w = np.array([0, 2, 3]), np.array([1, 3, 4]), np.array([1.0, 2.0, 3.0])
    base = component_fingerprints(ids, src, dst, w, None, comp, b"s")
    # the second component alone, numbered 0..2: the same digest
    alone = component_fingerprints(ids[2:], src[1:] - 2, dst[1:] - 2, w[1:], None, comp[2:] - 1, b"s")
    assert alone[0] == base[1]
    heavier = component_fingerprints(ids, src, dst, np.array([1.0, 2.0, 3.5]), None, comp, b"s")
    assert heavier[0] == base[0] and heavier[1] != base[1]
    renamed = component_fingerprints(np.array(["a", "b", "c", "d", "x"], dtype=object), src, dst, w, None, comp, b"s")
    assert renamed[0] == base[0] and renamed[1] != base[1]
    assert component_fingerprints(ids, src, dst, w, None, comp, b"other")[0] != base[0]
    assert component_fingerprints(ids, src, dst, w, np.array([0.0, 0.0, 1.0]), comp, b"s")[1] != base[1]


def test_cache_is_ignored_when_of_another_run_or_damaged(tmp_path):
    write_cache(tmp_path, "r1", ["b", "a", "a"])
    assert read_cache(tmp_path, "r1").tolist() == ["a", "b"]
    assert read_cache(tmp_path, "r2").size == 0
    with open(tmp_path / "cache" / "components.parquet", "ab") as fh:
        fh.write(b"x")
    assert read_cache(tmp_path, "r1").size == 0
    write_cache(tmp_path, "r1", None)
    assert not (tmp_path / "cache").joinpath("components.parquet").exists()
    assert read_cache(tmp_path, "r1").size == 0


def test_reused_components_give_the_same_outputs_without_detection(days, tmp_path, monkeypatch):
    cache = json.loads((days / "o1" / "cache" / "components.json").read_text())
    assert cache["run_id"] == json.loads((days / "o1" / "run.json").read_text())["run_id"]
    # PREV_OUT without its cache: every component detected again
    bare = tmp_path / "bare"
    shutil.copytree(days / "o1", bare)
    shutil.rmtree(bare / "cache")
    import keyfarm.community.bycomponent as bc

    seen = []
    real = bc.communities_by_component

    def counting(src, *args, **kwargs):
        seen.append(len(src))
        return real(src, *args, **kwargs)

    monkeypatch.setattr(bc, "communities_by_component", counting)
    for prev, out in ((bare, tmp_path / "cold"), (days / "o1", tmp_path / "warm")):
        seen.clear()
        run_link(days / "w2", out, previous=prev, quiet=True, report=False)
        out.joinpath("edges_detected.txt").write_text(str(seen[0]))
    for f in FILES:
        assert (tmp_path / "cold" / f).read_bytes() == (tmp_path / "warm" / f).read_bytes(), f
    cold_edges = int((tmp_path / "cold" / "edges_detected.txt").read_text())
    warm_edges = int((tmp_path / "warm" / "edges_detected.txt").read_text())
    assert warm_edges < cold_edges   # some components of period 2 are period 1's, left as they were
    # the same period again: every component is yesterday's, nothing is detected
    seen.clear()
    run_link(days / "w1", tmp_path / "again", previous=days / "o1", quiet=True, report=False)
    assert seen[0] == 0
    before = pd.read_parquet(days / "o1" / "members.parquet")
    after = pd.read_parquet(tmp_path / "again" / "members.parquet")
    assert (before["cluster_id"] == after["cluster_id"]).all()
