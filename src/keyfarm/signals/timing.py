"""Timing signal (signals stage): accounts active together in time slots far busier than expected.

A central scheduler dispatches its accounts' requests in the same fine time slots; unrelated actors
share slots only as much as the population's rhythm makes them (CopyCatch, Beutel et al., WWW 2013;
SynchroTrap, Cao et al., CCS 2014). So each slot's crowd is compared with what a crowd explains:

- slot s = ts // slot_seconds (epoch-aligned, so positions are UTC clock minutes); the work is on
  distinct (account, slot) pairs: an account's many keys and requests in one slot are one actor
  acting once. c_s = distinct accounts active in s.
- The expected count e_s is the largest of the marginals a crowd shares (leave-one-out, so a slot
  never explains itself):
  * hour baseline: mean c over the *other* slots of the same hour (day and hour): diurnal and
    business-hours traffic;
  * clock position: the hour baseline + the mean excess of the slot's position in the hour (its
    minute) over its hour's mean in all *other* hours: cron at :00 / :30 every hour. Additive, not
    a popularity ratio × the hour's volume: a cron's crowd is the same at 03:00 as at 14:00;
  * daily recurrence: mean c at the same slot-of-day on the other days of the span (logs of ≥ 2
    days): a job every day at 02:00 (with ≥ 2 days, every hourly cron is a daily one too);
  * weekly recurrence: the same at the same slot-of-week on the other weeks (logs of ≥ 2 weeks):
    a job every Monday at 09:00;
  * a floor, `timing.min_expected`.
  The maximum of these estimates is biased up by their noise (the daily mean of 3-day logs is a
  mean of 2 counts), which costs farm slots on busy hours; lowering each by one standard error
  found no more scheduler slots at z_min = 4 and let more benign slots through at 3–3.5, so not done.
- A slot is anomalous when c − e ≥ `timing.min_excess` accounts and z = (c − e)/sqrt(e + 1) ≥
  `timing.z_min`. Only anomalous slots become tokens `slot:<slot index>`; a key ties to each
  anomalous slot of its account when the account has at least `timing.min_slots` of them (one
  chance coincidence is no pattern) and the slot keeps ≥ 2 such accounts.
- tie = (c − e)/c × min(1, busy_share / the account's share of active slots in the span): the
  share of the slot's crowd that is excess (the chance that a given account in it is not part of
  the expected crowd), scaled down for accounts active in nearly every slot, which fall into every
  farm's slots by being always on. Measured on the test scheduler world (z_min 3): against a tie
  of 1, the share of excess lowers the farm pairs' saturated evidence by 7 % and the background's
  stray evidence by 30 %.

Evidence: a shared slot weighs weights.timing × the idf of its account count (graph.weighting), and
a pair's timing evidence saturates at saturation.timing: background accounts that fall into one or
two farm slots get little, farm accounts that share tens of slots get about the cap. Slots on more
than caps.timing accounts are hubs (never projected, listed in hubs.parquet).

Limit: a slot's excess must stand out of its count's Poisson noise (≈ z_min × sqrt(e)), so a farm
that puts few accounts in each slot is invisible against a busy population at 60-second slots;
finer slots lower e.

Near-linear: one hash-unique of (account, slot) codes over requests, then NumPy over the distinct
active slots (unique/bincount/searchsorted; no Python loop over rows or slots), and one groupby over
the requests in member slots only. The population counts are global, so on Spark the signal runs as
one task on the distinct (key, slot) rows (issue 17 will distribute the counts as a separate
reduce). Rows are sorted by (key, token): the output does not depend on the input's row order.
"""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.signals import make_incidence, ts_ns

_SECOND = 10**9


def incidence(tables, config) -> pd.DataFrame:
    """Incidence of the anomalous time-slot tokens of tables.requests (see the module docstring)."""
    cfg = config.timing
    requests = tables.requests
    if len(requests) == 0:
        return make_incidence([], [], "timing")
    key = requests["key"].to_numpy(np.int64)
    ts = ts_ns(requests["ts"])
    slot = ts // (cfg.slot_seconds * _SECOND)
    account = tables.keys["account"].to_numpy(np.int64)[key]
    pair_account, pair_slot = active_pairs(account, slot)
    slots, counts = np.unique(pair_slot, return_counts=True)
    expected = expected_counts(slots, counts, cfg.slot_seconds, min_expected=cfg.min_expected)
    anomalous = anomalous_slots(counts, expected, z_min=cfg.z_min, min_excess=cfg.min_excess)
    if not anomalous.any():
        return make_incidence([], [], "timing")
    slot_tie = np.where(anomalous, (counts - expected) / counts, 0.0)
    account_tie = _account_ties(pair_account, slots, cfg.busy_share)
    return _rows(key, ts, slot, account, pair_account, pair_slot, slots, anomalous, slot_tie,
                 account_tie, cfg.min_slots)


def active_pairs(account: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (account, slot) pairs of request rows, sorted by (account, slot)."""
    s_min = int(slot.min())
    span = int(slot.max()) - s_min + 1
    if account.size and int(account.max()) >= np.iinfo(np.int64).max // span:
        frame = pd.DataFrame({"a": account, "s": slot}).drop_duplicates().sort_values(["a", "s"])
        return frame["a"].to_numpy(np.int64), frame["s"].to_numpy(np.int64)
    code = np.sort(pd.unique(account * span + (slot - s_min)))   # hash-unique, then sort the few
    return code // span, code % span + s_min


def expected_counts(slots: np.ndarray, counts: np.ndarray, slot_seconds: int, *,
                    min_expected: float = 1.0) -> np.ndarray:
    """Expected distinct-account count of each active slot from the population's rhythm.

    `slots` are the sorted active slot indices (ts // slot_seconds), `counts` their distinct
    accounts; slots absent from `slots` count zero. The largest of the hour baseline, the clock
    position, the daily and weekly recurrence and `min_expected` (see the module docstring).
    """
    c = counts.astype(np.float64)
    per_hour = 3600 // slot_seconds
    per_day = 86400 // slot_seconds

    _, hour_inv = np.unique(slots // per_hour, return_inverse=True)
    hour_total = np.bincount(hour_inv, weights=c)[hour_inv]
    e_hour = (hour_total - c) / max(per_hour - 1, 1)

    # the mean excess of the slot's clock position over its hour's mean in the other hours (hours
    # without requests count, as zero excess); a cron adds a constant crowd whatever the hour's volume
    position = slots % per_hour
    position_total = np.bincount(position, weights=c, minlength=per_hour)[position]
    n_hours = int(slots[-1] // per_hour - slots[0] // per_hour) + 1
    if n_hours >= 2:
        others = position_total - c.sum() / per_hour - (c - hour_total / per_hour)
        e_clock = e_hour + others / (n_hours - 1)
    else:
        e_clock = e_hour
    expected = np.maximum(np.maximum(e_hour, e_clock), min_expected)
    for period in (per_day, 7 * per_day):
        n_periods = int(slots[-1] // period - slots[0] // period) + 1
        if n_periods >= 2:
            _, phase_inv = np.unique(slots % period, return_inverse=True)
            phase_total = np.bincount(phase_inv, weights=c)[phase_inv]
            expected = np.maximum(expected, (phase_total - c) / (n_periods - 1))
    return expected


def anomalous_slots(counts: np.ndarray, expected: np.ndarray, *, z_min: float,
                    min_excess: float) -> np.ndarray:
    """Mask of slots whose count is far above expectation: c − e ≥ min_excess and
    (c − e)/sqrt(e + 1) ≥ z_min (a Poisson-scaled excess; +1 keeps quiet slots from passing on a
    handful of accounts)."""
    excess = counts - expected
    return (excess >= min_excess) & (excess / np.sqrt(expected + 1.0) >= z_min)


def _account_ties(pair_account: np.ndarray, slots: np.ndarray, busy_share: float) -> np.ndarray:
    """Per account index: min(1, busy_share / share of the span's slots it is active in)."""
    n_active = np.bincount(pair_account)
    span = float(slots[-1] - slots[0] + 1)
    return np.minimum(1.0, busy_share * span / np.maximum(n_active, 1))


def _rows(key, ts, slot, account, pair_account, pair_slot, slots, anomalous, slot_tie, account_tie,
          min_slots: int) -> pd.DataFrame:
    """Incidence rows of keys whose account has ≥ min_slots anomalous slots, on the anomalous slots
    kept by ≥ 2 such accounts; count and first/last seen from the requests in those slots."""
    hit = anomalous[np.searchsorted(slots, pair_slot)]
    per_account = np.bincount(pair_account[hit], minlength=account_tie.size)
    keep = hit & (per_account[pair_account] >= min_slots)
    member = np.bincount(np.searchsorted(slots, pair_slot[keep]), minlength=slots.size) >= 2
    if not member.any():
        return make_incidence([], [], "timing")
    # a request in a member slot: its (account, slot) pair is a hit, so only min_slots is left to check
    row = member[np.searchsorted(slots, slot)] & (per_account[account] >= min_slots)
    frame = pd.DataFrame({"key": key[row], "slot": slot[row], "ts": ts[row], "acc": account[row]})
    agg = frame.groupby(["key", "slot"], sort=True).agg(
        count=("ts", "size"), first_seen=("ts", "min"), last_seen=("ts", "max"),
        acc=("acc", "first")).reset_index()
    s = agg["slot"].to_numpy(np.int64)
    tie = slot_tie[np.searchsorted(slots, s)] * account_tie[agg["acc"].to_numpy(np.int64)]
    token = ("slot:" + pd.Series(s).astype(str)).to_numpy(dtype=object)
    out = make_incidence(agg["key"].to_numpy(np.int64), token, "timing", weight=tie,
                         count=agg["count"].to_numpy(np.int64), first_seen=agg["first_seen"].to_numpy(),
                         last_seen=agg["last_seen"].to_numpy())
    return out.sort_values(["key", "token"], kind="stable").reset_index(drop=True)
