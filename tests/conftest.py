"""Shared fixtures: small generated worlds, written once per session."""
from __future__ import annotations

import pytest

from keyfarm.synth import LEGACY_OVERRIDES, LEGACY_PATTERNS, generate_world, write_world

@pytest.fixture(scope="session")
def small_world():
    """A 3,000-key world of the first generator's patterns and the two assumptions above, as
    DataFrames (read-only: copy before changing)."""
    return generate_world(3000, seed=11, patterns=LEGACY_PATTERNS, overrides=LEGACY_OVERRIDES)


@pytest.fixture(scope="session")
def small_world_dir(tmp_path_factory, small_world):
    """The same world written as Parquet tables."""
    return write_world(small_world, tmp_path_factory.mktemp("world"))
