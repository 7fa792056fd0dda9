"""Shared fixtures: small generated worlds, written once per session."""
from __future__ import annotations

import pytest

from keyfarm.synth import LEGACY_PATTERNS, generate_world, write_world

# What today's detector assumes beyond the first generator's patterns: benign keys use about 12 %
# of their limit (Beta(1.2, 9)), and heavy use is the `heavy_user` pattern's alone (no power users
# inside households, campuses or orgs); every member of an org declares it; popular prompts are popular
# enough to be hubs (30 % of benign requests: even the twelfth most popular prompt reaches more
# accounts than caps.prompt, whereas on a few dozen accounts it links them like a kit); and farms
# stay below the hub caps (35 accounts; a farm's address or client on more accounts than caps.ip /
# caps.device is a hub and links nothing). The generator draws all four per world; the
# detection-quality tests guard today's detector on the world it was built for, while
# scripts/quality.py measures it on the drawn worlds.
_UNDER_CAPS = {"accounts": [6, 35]}
LEGACY_OVERRIDES = {
    "world": {"benign_usage_beta": [1.2, 9.0], "power_user_share": 0.0, "popular_prompt_p": 0.3},
    "benign": {"org": {"declared_share": 1.0}},
    "farms": {t: _UNDER_CAPS for t in ("naive", "card_rotation", "proxy_rotation", "ipv6_rotation",
                                       "slow_burn", "prompt_only", "mixed_prompts")},
}


@pytest.fixture(scope="session")
def small_world():
    """A 3,000-key world of the first generator's patterns and the two assumptions above, as
    DataFrames (read-only: copy before changing)."""
    return generate_world(3000, seed=11, patterns=LEGACY_PATTERNS, overrides=LEGACY_OVERRIDES)


@pytest.fixture(scope="session")
def small_world_dir(tmp_path_factory, small_world):
    """The same world written as Parquet tables."""
    return write_world(small_world, tmp_path_factory.mktemp("world"))
