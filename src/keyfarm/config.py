"""Job configuration: signal weights, hub caps, network rules, prompt hashing, communities, scoring.

One typed dataclass per section with documented defaults; `Config.from_toml(path)` reads a TOML file
whose tables are the sections (see keyfarm.example.toml). Unknown keys and wrong types are errors
naming the key, so a typo never silently falls back to a default.
"""
from __future__ import annotations

import dataclasses
import tomllib
from dataclasses import dataclass, field
from pathlib import Path

from keyfarm.errors import KeyfarmConfigError
from keyfarm.scoring import ScoringConfig
from keyfarm.signals.prompt import PromptConfig


@dataclass(frozen=True)
class WeightsConfig:
    """Base weight of each token kind: the evidence of two accounts sharing a value nobody else has.

    A token shared by d accounts out of N weighs base × log(N/d)/log(N) (see keyfarm.graph.weighting).
    """

    account: float = 1.0      # keys of one account (not frequency-weighted)
    payment: float = 1.0      # same card or bank instrument
    ip4: float = 0.5          # same IPv4 address
    ip4_24: float = 0.08      # same IPv4 /24
    ip6: float = 0.3          # same IPv6 address (privacy addresses rotate, so rarely shared)
    ip6_64: float = 0.5       # same IPv6 /64 (one household or host)
    ip6_48: float = 0.1       # same IPv6 /48 (one site or ISP pool)
    ip_window: float = 0.4    # same address within the same time window (added to the above)
    device: float = 0.4       # same TLS/device fingerprint
    user_agent: float = 0.05  # same User-Agent string
    prompt: float = 1.0       # near-duplicate prompts (per unit of prompt evidence)


@dataclass(frozen=True)
class CapsConfig:
    """Hub caps: a token shared by more distinct accounts than this is a hub and is never projected."""

    payment: int = 50
    ip: int = 40
    device: int = 60
    prompt: int = 60
    max_keys: int = 2000      # a token on more keys than this is a hub too (bounds any O(d²) work)


@dataclass(frozen=True)
class NetworkConfig:
    """How addresses become tokens."""

    window_seconds: int = 3600                     # co-occurrence window for `ip_window` tokens
    special_ranges: str = "ignore"                 # private/loopback/link-local/CGNAT: "ignore" or "weak"
    weak_factor: float = 0.1                       # weight multiplier for special ranges when "weak"
    shared_infrastructure_file: str | None = None  # CIDRs (one per line, # comments) of VPN/cloud egress


@dataclass(frozen=True)
class CommunityConfig:
    """Community detection on the account graph (see keyfarm.pipeline)."""

    algorithm: str = "leiden"     # leiden | louvain | components | label_propagation
    objective: str = "cpm"        # cpm | modularity
    resolution: float = 0.2
    n_iterations: int = 2         # Leiden iterations; -1: until stable (a long tail at 1M nodes: see note)
    min_edge_weight: float = 0.0  # edges lighter than this are left out of community detection


@dataclass(frozen=True)
class Config:
    """Every setting of a linkage job."""

    weights: WeightsConfig = field(default_factory=WeightsConfig)
    caps: CapsConfig = field(default_factory=CapsConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    community: CommunityConfig = field(default_factory=CommunityConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    @classmethod
    def default(cls) -> "Config":
        return cls()

    @classmethod
    def from_dict(cls, data: dict) -> "Config":
        """Build from nested dicts (sections → keys); unknown keys and wrong types are errors."""
        if not isinstance(data, dict):
            raise KeyfarmConfigError("configuration must be a table of sections")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, values in data.items():
            if name not in sections:
                raise KeyfarmConfigError(f"unknown configuration section [{name}] "
                                         f"(known: {', '.join(sections)})")
            kwargs[name] = _section(sections[name].default_factory, name, values)
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise KeyfarmConfigError(f"configuration file {path} not found") from None
        except tomllib.TOMLDecodeError as exc:
            raise KeyfarmConfigError(f"configuration file {path}: {exc}") from None
        return cls.from_dict(data)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (for run.json)."""
        return dataclasses.asdict(self)


def _section(factory, name: str, values) -> object:
    default = factory()
    if not isinstance(values, dict):
        raise KeyfarmConfigError(f"[{name}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(default)}
    checked = {}
    for key, value in values.items():
        if key not in fields:
            raise KeyfarmConfigError(f"unknown setting {name}.{key} (known: {', '.join(fields)})")
        current = getattr(default, key)
        ok = (isinstance(value, bool) == isinstance(current, bool)) and (
            current is None or isinstance(value, type(current))
            or (isinstance(current, float) and isinstance(value, int) and not isinstance(value, bool)))
        if not ok:
            raise KeyfarmConfigError(f"setting {name}.{key} must be {type(current).__name__}, "
                                     f"got {value!r}")
        if isinstance(current, dict):
            unknown = set(value) - set(current)
            if unknown:
                raise KeyfarmConfigError(f"unknown key {name}.{key}.{sorted(unknown)[0]}")
            value = {**current, **value}
        checked[key] = float(value) if isinstance(current, float) else value
    return dataclasses.replace(default, **checked)
