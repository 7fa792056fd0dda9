"""Synthetic worlds with ground truth: benign crowds that look coordinated and evade nothing, and
key farms that hide behind camouflage but still leave evidence of common control.

Every pattern's parameters are drawn per world (and per group) from wide ranges (params.py), one
module per family of patterns: people.py (individuals, households, carriers), institutions.py
(campuses, companies, cloud regions, hackathons), crowds.py (CI schedules, gateways, benchmarks,
framework templates), farms.py (farms behind infrastructure) and kits.py (farms defined by their
prompts); traffic.py turns accounts into requests, vectorised; world.py assembles and writes.
Same seed, same bytes.
"""
from keyfarm.synth.params import (BENIGN_PATTERNS, FARM_TACTICS, LEGACY_OVERRIDES, LEGACY_PATTERNS,
                                  MIN_KEYS, world_parameters)
from keyfarm.synth.world import generate_world, write_world

__all__ = ["BENIGN_PATTERNS", "FARM_TACTICS", "LEGACY_OVERRIDES", "LEGACY_PATTERNS", "MIN_KEYS", "generate_world",
           "world_parameters", "write_world"]
