"""Job configuration: signal weights, hub caps, network rules, prompt hashing, timing, communities, scoring.

One typed, frozen dataclass per section with documented defaults (keyfarm.example.toml lists them all);
`Config.from_toml(path)` reads a TOML file whose tables are the sections.
Unknown keys, wrong types and out-of-range values are KeyfarmConfigError naming the key, so a typo
never silently falls back to a default. Adding a section is one dataclass and one field of Config.
"""
from __future__ import annotations

import dataclasses
import ipaddress
import math
import tomllib
import types
import typing
from dataclasses import dataclass, field
from pathlib import Path

from keyfarm.errors import KeyfarmConfigError
from keyfarm.scoring.verdict import ScoringConfig
from keyfarm.signals.prompt import PromptConfig

# Non-routable and shared ranges: many unrelated users sit behind one such address.
DEFAULT_SPECIAL_CIDRS = (
    "10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16",   # RFC 1918 private
    "127.0.0.0/8", "169.254.0.0/16",                    # loopback, link-local
    "100.64.0.0/10",                                    # carrier-grade NAT (RFC 6598)
    "0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32",   # "this network", multicast, broadcast
    "::1/128", "::/128", "fe80::/10", "fc00::/7", "ff00::/8",  # loopback, unspecified, link-local, ULA, multicast
)


def _at_least(section: str, name: str, value, low, *, inclusive: bool = True) -> None:
    if value is None:
        return
    if value < low or (not inclusive and value == low):
        bound = f">= {low}" if inclusive else f"> {low}"
        raise KeyfarmConfigError(f"setting {section}.{name} must be {bound}, got {value!r}")


@dataclass(frozen=True)
class WeightsConfig:
    """Base weight of each token kind: the evidence of two accounts sharing a value nobody else has.

    A token shared by d accounts weighs base × log(R/d)/log(R), R = reference_accounts (see
    keyfarm.graph.weighting); a pair's `w_<signal>` sums its shared tokens' weights (× the weaker
    tie), then saturates (SaturationConfig).
    """

    account: float = 1.0      # keys of one account (not frequency-weighted)
    payment: float = 1.0      # same card or bank instrument
    ip4: float = 0.5          # same IPv4 address
    ip4_24: float = 0.08      # same IPv4 /24
    ip6: float = 0.3          # same IPv6 address (privacy addresses rotate, so rarely shared)
    ip6_64: float = 0.5       # same IPv6 /64 (one household or host)
    ip6_48: float = 0.1       # same IPv6 /48 (one site or ISP pool)
    ip_window: float = 1.0    # same address (IPv6: /64) in the same time window, × share of windows
    device: float = 0.4       # same TLS/device fingerprint
    user_agent: float = 0.05  # same User-Agent string
    prompt: float = 1.0       # near-duplicate prompts (per unit of prompt evidence)
    timing: float = 0.25      # one shared anomalous time slot (keyfarm.signals.timing)
    timing_group: float = 2.0 # one slot shared by accounts in lockstep (signals.timing.coactive_groups)
    reference_accounts: int = 1_000_000  # R of log(R/d)/log(R): fixed, so weights do not move with N

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _at_least("weights", f.name, getattr(self, f.name), 0.0)
        _at_least("weights", "reference_accounts", self.reference_accounts, 2)


@dataclass(frozen=True)
class SaturationConfig:
    """Cap of each signal's evidence on one pair: cap × (1 − exp(−s/cap)) (keyfarm.graph.weighting).

    Prompt evidence is capped below one shared card (payment's single-token weight, ≈0.76 here):
    any number of shared prompts, public or not, is one line of evidence of common interest."""

    payment: float = 2.0
    ip: float = 1.5
    device: float = 0.8
    prompt: float = 0.6
    timing: float = 1.5

    def __post_init__(self):
        for f in dataclasses.fields(self):
            _at_least("saturation", f.name, getattr(self, f.name), 0.0, inclusive=False)


@dataclass(frozen=True)
class CapsConfig:
    """Hub caps: a token on more distinct accounts than its signal's cap, or on more keys than
    `max_keys`, is a hub: never projected (no O(d²) pairs), listed in run.json. None: no cap."""

    payment: int | None = 50
    ip: int | None = 40
    device: int | None = 60
    prompt: int | None = 60
    timing: int | None = 200
    timing_group: int | None = 2_000  # one scheduler's group token (tset:): a clique of its accounts
    max_keys: int | None = None   # optional cap on keys per token (projection is per account, so keys cost nothing)
    max_judged_hub: int = 50_000  # hubs of payment, IP or timing up to this many accounts are judged as groups
    max_share: float = 0.005      # a device fingerprint on more than this share of the job's accounts is a hub
    min_share_cap: int = 10       # ... but never below this many accounts (tiny jobs)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            if f.name != "max_share":
                _at_least("caps", f.name, getattr(self, f.name), 1)
        _at_least("caps", "max_share", self.max_share, 0.0, inclusive=False)
        if self.max_share > 1:
            raise KeyfarmConfigError(f"setting caps.max_share must be <= 1, got {self.max_share!r}")


@dataclass(frozen=True)
class NetworkConfig:
    """How addresses become tokens (keyfarm.signals.network)."""

    window_seconds: int = 3600                     # co-occurrence window of `ipw:` tokens
    special_ranges: str = "ignore"                 # special_cidrs and the file: "ignore" or "weak"
    weak_factor: float = 0.1                       # tie multiplier of special addresses when "weak"
    special_cidrs: tuple[str, ...] = DEFAULT_SPECIAL_CIDRS
    shared_infrastructure_file: str | None = None  # CIDRs (one per line, # comments) of VPN/cloud egress

    def __post_init__(self):
        _at_least("network", "window_seconds", self.window_seconds, 1)
        _at_least("network", "weak_factor", self.weak_factor, 0.0, inclusive=False)
        if self.weak_factor > 1:
            raise KeyfarmConfigError(f"setting network.weak_factor must be <= 1, got {self.weak_factor!r}")
        if self.special_ranges not in ("ignore", "weak"):
            raise KeyfarmConfigError("setting network.special_ranges must be 'ignore' or 'weak', "
                                     f"got {self.special_ranges!r}")
        for text in self.special_cidrs:
            try:
                ipaddress.ip_network(text, strict=False)
            except ValueError:
                raise KeyfarmConfigError(f"setting network.special_cidrs: {text!r} is not a CIDR") from None


@dataclass(frozen=True)
class TimingConfig:
    """Which time slots are anomalous, and how accounts tie to them (keyfarm.signals.timing).

    A slot's expected account count is the largest of its hour's baseline, its clock position's
    popularity, its daily and weekly recurrence and `min_expected`; it is anomalous when the count
    exceeds it by `min_excess` accounts and by `z_min` × sqrt(expected + 1)."""

    slot_seconds: int = 60        # slot width; divides 3600 so slots have clock positions
    z_min: float = 4.0            # (c − e)/sqrt(e + 1) of an anomalous slot
    min_excess: float = 4.0       # accounts above expectation in an anomalous slot
    min_expected: float = 1.0     # floor of the expected count (a quiet night is not empty)
    min_slots: int = 2            # anomalous slots an account needs before it ties to any
    busy_share: float = 0.05      # accounts active in a larger share of slots tie × busy_share / share
    network_context: bool = True  # also find anomalous slots within each IPv4 /16 or IPv6 /32 (SynchroTrap)
    account_z: float = 3.0        # lockstep: an account's busy slots above chance, in standard errors
    min_busy_share: float = 0.3   # lockstep: share of an account's slots that are busier than expected
    lockstep_prefixes: tuple[int, ...] = (8, 16)  # IPv4 prefix lengths of the lockstep populations
    group_min_accounts: int = 5   # scheduler groups (tset:): lockstep accounts in one community, at least
    group_min_share: float = 0.5  # ... and each holder's (and the members') share of slots in the group's set
    group_alpha: float = 0.01     # ... accounts join a group at this false discovery rate (Benjamini–Hochberg)

    def __post_init__(self):
        _at_least("timing", "slot_seconds", self.slot_seconds, 1)
        if 3600 % self.slot_seconds:
            raise KeyfarmConfigError(f"setting timing.slot_seconds must divide 3600, got {self.slot_seconds!r}")
        _at_least("timing", "z_min", self.z_min, 0.0)
        _at_least("timing", "min_excess", self.min_excess, 1.0)
        _at_least("timing", "min_expected", self.min_expected, 0.0)
        _at_least("timing", "min_slots", self.min_slots, 1)
        _at_least("timing", "account_z", self.account_z, 0.0)
        _at_least("timing", "min_busy_share", self.min_busy_share, 0.0)
        _at_least("timing", "group_min_accounts", self.group_min_accounts, 2)
        _at_least("timing", "group_min_share", self.group_min_share, 0.0)
        if self.group_min_share > 1:
            raise KeyfarmConfigError(f"setting timing.group_min_share must be <= 1, got {self.group_min_share!r}")
        _at_least("timing", "group_alpha", self.group_alpha, 0.0, inclusive=False)
        if self.group_alpha >= 1:
            raise KeyfarmConfigError(f"setting timing.group_alpha must be < 1, got {self.group_alpha!r}")
        for bits in self.lockstep_prefixes:
            if not 1 <= bits <= 32:
                raise KeyfarmConfigError(f"setting timing.lockstep_prefixes: {bits!r} is not an IPv4 prefix length")
        _at_least("timing", "busy_share", self.busy_share, 0.0, inclusive=False)
        if self.busy_share > 1:
            raise KeyfarmConfigError(f"setting timing.busy_share must be <= 1, got {self.busy_share!r}")


ALGORITHMS = ("leiden", "louvain", "components", "label_propagation")
OBJECTIVES = ("cpm", "modularity")


@dataclass(frozen=True)
class CommunityConfig:
    """Community detection on the account graph (see keyfarm.pipeline)."""

    algorithm: str = "leiden"     # leiden | louvain | components | label_propagation
    objective: str = "cpm"        # cpm | modularity
    resolution: float = 0.2
    n_iterations: int = 2         # Leiden iterations; -1: until stable (a long tail at 1M nodes: see note)
    min_edge_weight: float = 0.0  # edges lighter than this are left out of community detection
    strong_link: float = 0.3      # after CPM, loose communities joined by links at least this heavy (one
    #                               rare exact value: an address, a card, a device, a prompt; no range)
    #                               are one when the group is apart from the rest (0: off)
    strong_max_accounts: int = 5000  # ... of at most this many accounts (larger: a NAT's or cloud's web)
    absorb: float = 0.5           # then an account joins the community it is tied to as a typical
    #                               member is, at this share of the median member's tie (0: off)
    control_link: float = 0.3     # ... or, whatever its share, when it shares a card or a device worth at
    #                               least this with the community's members (0: off; community.absorb)
    # daily runs (--previous): in the run from yesterday's partition, two accounts of one previous
    # community are also linked with weight hysteresis × resolution (history.warmstart.memory_links);
    # 0.5: a community stays together down to half the density a new one needs. 0: off
    hysteresis: float = 0.0

    def __post_init__(self):
        _one_of("community", "algorithm", self.algorithm, ALGORITHMS)
        _at_least("community", "hysteresis", self.hysteresis, 0.0)
        if self.hysteresis >= 1.0:   # at 1 a previous community with no evidence left ties with its parts
            raise KeyfarmConfigError(f"setting community.hysteresis must be below 1, got {self.hysteresis!r}")
        _one_of("community", "objective", self.objective, OBJECTIVES)
        _at_least("community", "resolution", self.resolution, 0.0)
        _at_least("community", "min_edge_weight", self.min_edge_weight, 0.0)
        _at_least("community", "absorb", self.absorb, 0.0)
        _at_least("community", "control_link", self.control_link, 0.0)
        _at_least("community", "strong_link", self.strong_link, 0.0)
        _at_least("community", "strong_max_accounts", self.strong_max_accounts, 2)
        if self.n_iterations != -1 and self.n_iterations < 1:   # 0 iterations would find no clusters at all
            raise KeyfarmConfigError("setting community.n_iterations must be -1 (until stable) or >= 1, "
                                     f"got {self.n_iterations!r}")


def _one_of(section: str, name: str, value, known) -> None:
    if value not in known:
        raise KeyfarmConfigError(f"setting {section}.{name} must be one of {', '.join(known)}, got {value!r}")


def check_finite(section: str, obj) -> None:
    """Every number of a settings dataclass (and of its dict fields, e.g. scoring.weights) is finite
    and fits int64: a NaN weight makes every score NaN, an infinite one every score 0 or 1."""
    for f in dataclasses.fields(obj):
        value = getattr(obj, f.name)
        items = value.items() if isinstance(value, dict) else [(None, value)]
        for sub, v in items:
            key = f"{section}.{f.name}" + (f".{sub}" if sub is not None else "")
            if isinstance(v, bool) or not isinstance(v, (int, float)):
                continue
            if isinstance(v, float) and not math.isfinite(v):
                raise KeyfarmConfigError(f"setting {key} must be a finite number, got {v!r}")
            if isinstance(v, int) and not -2**63 < v < 2**63:
                raise KeyfarmConfigError(f"setting {key} is out of range, got {v!r}")


@dataclass(frozen=True)
class Config:
    """Every setting of a linkage job: one field per section."""

    weights: WeightsConfig = field(default_factory=WeightsConfig)
    caps: CapsConfig = field(default_factory=CapsConfig)
    saturation: SaturationConfig = field(default_factory=SaturationConfig)
    network: NetworkConfig = field(default_factory=NetworkConfig)
    prompt: PromptConfig = field(default_factory=PromptConfig)
    timing: TimingConfig = field(default_factory=TimingConfig)
    community: CommunityConfig = field(default_factory=CommunityConfig)
    scoring: ScoringConfig = field(default_factory=ScoringConfig)

    def __post_init__(self):
        for f in dataclasses.fields(self):
            check_finite(f.name, getattr(self, f.name))

    @classmethod
    def default(cls) -> "Config":
        """Every setting at its documented default."""
        return cls()

    @classmethod
    def from_dict(cls, data: dict, *, base_dir: str | Path | None = None) -> "Config":
        """Build from nested dicts (section → key → value); missing keys keep their defaults.

        Unknown sections or keys, wrong types and out-of-range values raise KeyfarmConfigError
        naming the key. A relative `network.shared_infrastructure_file` is taken relative to
        `base_dir` when given (from_toml passes the file's folder).
        """
        if not isinstance(data, dict):
            raise KeyfarmConfigError("configuration must be a table of sections")
        sections = {f.name: f for f in dataclasses.fields(cls)}
        kwargs = {}
        for name, values in data.items():
            if name not in sections:
                raise KeyfarmConfigError(f"unknown configuration section [{name}] "
                                         f"(known: {', '.join(sections)})")
            kwargs[name] = _section(sections[name].default_factory, name, values)
        network = kwargs.get("network")
        if base_dir is not None and network is not None and network.shared_infrastructure_file:
            path = Path(network.shared_infrastructure_file)
            if not path.is_absolute():
                kwargs["network"] = dataclasses.replace(
                    network, shared_infrastructure_file=str(Path(base_dir) / path))
        return cls(**kwargs)

    @classmethod
    def from_toml(cls, path: str | Path) -> "Config":
        """Read a TOML file of sections (see keyfarm.example.toml)."""
        path = Path(path)
        try:
            data = tomllib.loads(path.read_text())
        except FileNotFoundError:
            raise KeyfarmConfigError(f"configuration file {path} not found") from None
        except (OSError, UnicodeDecodeError) as exc:
            raise KeyfarmConfigError(f"configuration file {path}: {exc}") from None
        except tomllib.TOMLDecodeError as exc:
            raise KeyfarmConfigError(f"configuration file {path}: {exc}") from None
        return cls.from_dict(data, base_dir=path.parent)

    def to_dict(self) -> dict:
        """Plain JSON-serialisable dict (for run.json); from_dict(to_dict()) gives an equal Config.
        community.hysteresis is left out at 0, its default, which changes nothing: the run id is a
        digest of this dict, and a run without it keeps the id (first_seen) earlier versions gave."""
        out = _plain(dataclasses.asdict(self))
        if out["community"]["hysteresis"] == 0:
            del out["community"]["hysteresis"]
        return out


def _plain(value):
    if isinstance(value, dict):
        return {k: _plain(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v) for v in value]
    return value


def _section(factory, name: str, values) -> object:
    """One section from a dict, each value checked against the dataclass's type hints."""
    default = factory()
    if not isinstance(values, dict):
        raise KeyfarmConfigError(f"[{name}] must be a table")
    fields = {f.name: f for f in dataclasses.fields(default)}
    hints = typing.get_type_hints(type(default))
    checked = {}
    for key, value in values.items():
        if key not in fields:
            raise KeyfarmConfigError(f"unknown setting {name}.{key} (known: {', '.join(fields)})")
        checked[key] = _checked(f"{name}.{key}", value, hints[key], getattr(default, key))
    try:
        return dataclasses.replace(default, **checked)
    except (TypeError, ValueError) as exc:  # a section's own validation that is not ours
        raise KeyfarmConfigError(f"[{name}]: {exc}") from None


def _checked(key: str, value, hint, current):
    """`value` converted to the type `hint` (int → float allowed, list → tuple), or an error."""
    args = typing.get_args(hint)
    if typing.get_origin(hint) in (typing.Union, types.UnionType):
        if value is None and type(None) in args:
            return None
        inner = [a for a in args if a is not type(None)]
        return _checked(key, value, inner[0], current)
    origin = typing.get_origin(hint) or hint
    if origin is bool:
        ok = isinstance(value, bool)
    elif origin is int:
        ok = isinstance(value, int) and not isinstance(value, bool)
    elif origin is float:
        ok = isinstance(value, (int, float)) and not isinstance(value, bool)
        if ok and not math.isfinite(float(value)):
            raise KeyfarmConfigError(f"setting {key} must be a finite number, got {value!r}")
        value = float(value) if ok else value
    elif origin is str:
        ok = isinstance(value, str)
    elif origin is tuple:
        ok = isinstance(value, (list, tuple)) and all(
            isinstance(v, args[0]) and not isinstance(v, bool) for v in value)
        value = tuple(value) if ok else value
    elif origin is dict:
        ok = isinstance(value, dict)
        if ok and isinstance(current, dict) and current:
            for sub, v in value.items():
                if sub not in current:
                    raise KeyfarmConfigError(f"unknown key {key}.{sub} (known: {', '.join(current)})")
                value = {**value, sub: _checked(f"{key}.{sub}", v, type(current[sub]), current[sub])}
            value = {**current, **value}
    else:
        ok = isinstance(value, origin)
    if not ok:
        name = getattr(origin, "__name__", str(hint))
        if origin is tuple:
            name = f"a list of {args[0].__name__}"
        raise KeyfarmConfigError(f"setting {key} must be {name}, got {value!r}")
    return value
