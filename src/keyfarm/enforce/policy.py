"""Enforcement policy: which clusters a plan acts on and which actions each one gets.

Stage: outputs → enforcement. A `Policy` is plain data (so a plan can record it and be re-derived);
the guards it names are applied by `keyfarm.enforce.plan`.
"""
from __future__ import annotations

from dataclasses import asdict, dataclass, field
from datetime import date

from keyfarm.errors import KeyfarmConfigError, KeyfarmError

ACTION_RULES = ("auto", "ban", "revoke")


class GuardRefused(KeyfarmError):
    """A guard refused the plan (over budget, reverted run); the CLI exits with code 1."""


@dataclass(frozen=True)
class LeakedKeyRule:
    """When a cluster looks like one leaked key used by many (then revoke keys, suspend no one).

    A cluster is "leaked key" when, among its edges between keys of *different* accounts, one key
    is an endpoint of at least `hub_share` of the total edge weight (a star around that key), the
    cluster has at least `min_accounts` accounts (with two or three, any path is a star), and
    payment links carry less than `max_payment_share` of that weight (a shared card means one
    payer, i.e. a farm, not a victim).
    """

    hub_share: float = 0.8
    min_accounts: int = 4
    max_payment_share: float = 0.05


@dataclass(frozen=True)
class Policy:
    """Guards and action rule of an enforcement plan; "no limit" is None.

    min_score: clusters scoring below are excluded. only_flagged: act on `flagged` clusters only.
    max_accounts: a cluster with more accounts is refused unless `force`. max_total_accounts: a
    plan touching more accounts is refused as a whole unless `force`. allowlist: entries from
    `keyfarm.enforce.allowlist.load_allowlist` (always win). action_rule: "auto" (ban + suspend,
    or revoke-only for leaked-key clusters), "ban" or "revoke" for every cluster. as_of: the date
    allowlist expiry is judged against (None: today, UTC).

    The size guards' defaults pass what a day of a 50k-key world flags (clusters of up to ~280
    accounts, ~1,100 accounts in all) and stop a run that would act on an order of magnitude more.
    """

    min_score: float = 0.5
    only_flagged: bool = True
    max_accounts: int | None = 500
    max_total_accounts: int | None = 5000
    force: bool = False
    allowlist: tuple = ()
    action_rule: str = "auto"
    leaked_key: LeakedKeyRule = field(default_factory=LeakedKeyRule)
    as_of: date | None = None

    def __post_init__(self):
        if not 0.0 <= self.min_score <= 1.0:
            raise KeyfarmConfigError(f"min_score must be in [0, 1], got {self.min_score}")
        for name in ("max_accounts", "max_total_accounts"):
            value = getattr(self, name)
            if value is not None and value < 1:
                raise KeyfarmConfigError(f"{name} must be >= 1 or None (no limit), got {value}")
        if self.action_rule not in ACTION_RULES:
            raise KeyfarmConfigError(f"action_rule must be one of {ACTION_RULES}, got {self.action_rule!r}")
        object.__setattr__(self, "allowlist", tuple(self.allowlist))

    def to_dict(self) -> dict:
        """JSON-ready form recorded in the plan (allowlist entries in full, dates as ISO text)."""
        out = asdict(self)
        out["allowlist"] = [entry.to_dict() for entry in self.allowlist]
        out["as_of"] = self.as_of.isoformat() if self.as_of else None
        return out
