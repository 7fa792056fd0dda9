"""Shared fixtures: small generated worlds, written once per session."""
from __future__ import annotations

import pytest

from keyfarm.pipeline import run_link
from keyfarm.synth import LEGACY_OVERRIDES, LEGACY_PATTERNS, generate_world, world_parameters, write_world
from keyfarm.synth.continuation import continue_world


@pytest.fixture(scope="session")
def small_world():
    """A 3,000-key world of the first generator's patterns and the two assumptions above, as
    DataFrames (read-only: copy before changing)."""
    return generate_world(3000, seed=11, patterns=LEGACY_PATTERNS, overrides=LEGACY_OVERRIDES)


@pytest.fixture(scope="session")
def small_world_dir(tmp_path_factory, small_world):
    """The same world written as Parquet tables."""
    return write_world(small_world, tmp_path_factory.mktemp("world"))


@pytest.fixture(scope="session")
def days(tmp_path_factory):
    """Two periods of a 3,000-key world (w1, w2: `generate --continue`) and the first period's run
    (o1, without report), in one folder (read-only: write elsewhere)."""
    root = tmp_path_factory.mktemp("days")
    params = world_parameters(3000, 11, patterns=LEGACY_PATTERNS, overrides=LEGACY_OVERRIDES)
    write_world(generate_world(3000, seed=11, patterns=LEGACY_PATTERNS, overrides=LEGACY_OVERRIDES),
                root / "w1", params=params)
    world2, params2 = continue_world(root / "w1")
    write_world(world2, root / "w2", params=params2)
    run_link(root / "w1", root / "o1", quiet=True, report=False)
    return root
