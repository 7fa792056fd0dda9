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

Two group-level token kinds sit on top (coactive_groups): `tgrp:` — the slots shared by accounts in
lockstep — and `tset:` — one token per scheduler found as a group of accounts and its slot set
(scheduler_sets), which keeps a scheduler that gives each account only a few requests together.

Limit: a slot's excess must stand out of its count's Poisson noise (≈ z_min × sqrt(e)), so a farm
that puts few accounts in each slot is invisible against a busy population at 60-second slots;
finer slots lower e.

Near-linear: one hash-unique of (account, slot) codes over requests, then NumPy over the distinct
active slots (unique/bincount/searchsorted; no Python loop over rows or slots), and one groupby over
the requests in member slots only. The population counts are global, so on Spark each part of
incidence_parts (a population's slots or lockstep groups) runs as one task on the distinct
(key, slot, prefix) rows. Rows are sorted by (key, token): the output does not depend on the
input's row order.
"""
from __future__ import annotations

from dataclasses import dataclass, replace

import numpy as np
import pandas as pd

from keyfarm.arrays import csr_rows
from keyfarm.signals import make_incidence, pair_stats, ts_ns

_SECOND = 10**9
BUSY_CHANCE = 0.16   # P(count ≥ expected + sqrt(expected + 1)), at most, for Poisson-like slot counts
GROUP_RESOLUTION = 1.0  # scheduler_sets: modularity resolution of the lockstep accounts × busy slots
GROUP_DENSITY = 0.005  # split_groups: CPM density of one scheduler's accounts x slots block
SPLIT_SHARE = 0.1    # split_groups: a part must hold this share of its group's accounts
GROUP_ROUNDS = 10    # scheduler_sets: rounds of slot set from accounts, accounts from slot set, at most


def incidence(tables, config, *, part: int | None = None) -> pd.DataFrame:
    """Incidence of the anomalous time-slot tokens of tables.requests (see the module docstring):
    slots of the whole population (`slot:<slot>`) and, with timing.network_context, slots of each
    network context (`slot:n<context>@<slot>`). `part` (an index into incidence_parts) computes
    that one part only: the Spark engine runs each part as its own task."""
    cfg = config.timing
    requests = tables.requests
    if len(requests) == 0:
        return make_incidence([], [], "timing")
    key = requests["key"].to_numpy(np.int64)
    ts = ts_ns(requests["ts"])
    slot = ts // (cfg.slot_seconds * _SECOND)
    account = tables.keys["account"].to_numpy(np.int64)[key]
    todo = incidence_parts(config) if "ip_version" in requests else [("slots", None), ("lockstep", None)]
    # (kind, prefix bits, population number p of a lockstep part: its tokens are `t…:<p>.…`)
    todo = [(kind, bits, sum(k == "lockstep" for k, _ in todo[:i])) for i, (kind, bits) in enumerate(todo)]
    todo = todo if part is None else [todo[part]]
    contexts: dict = {None: None}

    def context(bits):
        if bits not in contexts:
            contexts[bits] = network_contexts(requests, v4_bits=bits, v6_bits=2 * bits)
        return contexts[bits]
    parts = [_anomalies(key, ts, slot, account, context(bits), cfg) for kind, bits, _ in todo if kind == "slots"]
    lockstep = [(bits, p) for kind, bits, p in todo if kind == "lockstep"]
    if lockstep:
        parts.append(coactive_groups(key, ts, slot, account, [context(b) for b, _ in lockstep], cfg,
                                     first=lockstep[0][1]))
    parts = [p for p in parts if len(p)]
    if not parts:
        return make_incidence([], [], "timing")
    return pd.concat(parts, ignore_index=True).sort_values(["key", "token"], kind="stable") \
        .reset_index(drop=True)


def incidence_parts(config) -> list[tuple[str, int | None]]:
    """The parts of the signal that are computed apart, in order: ("slots", None) the whole
    population's anomalous slots; with timing.network_context ("slots", 16) each network
    context's; then ("lockstep", bits) one coactive_groups population each (None: the whole
    population, else the IPv4 /bits and IPv6 /2·bits prefixes). A part's key, token and weight
    columns depend only on each request's key, slot and that prefix: one row per distinct
    (key, slot, prefix) gives them (count, first_seen and last_seen need every request)."""
    cfg = config.timing
    if not cfg.network_context:
        return [("slots", None), ("lockstep", None)]
    return [("slots", None), ("slots", 16), ("lockstep", None)] + [("lockstep", b) for b in cfg.lockstep_prefixes]


def coactive_groups(key, ts, slot, account, groups, cfg, *, first: int = 0) -> pd.DataFrame:
    """`tgrp:` tokens: the slots shared by accounts whose requests keep falling into slots busier
    than expected (CopyCatch's lockstep, found per account).

    A scheduler that spreads a few requests of each account over hundreds of slots puts only a
    handful of accounts in any one slot, invisible slot by slot; but each of its accounts acts, slot
    after slot, in company the population does not explain. Per account and population (the whole
    population, and each IPv4 prefix of timing.lockstep_prefixes with the IPv6 prefix twice as long):
    of its n active slots, k are *busy*
    (the others in it exceed expectation by one standard error, sqrt(expected + 1), which chance
    gives at most BUSY_CHANCE of the time); the account is in lockstep when k ≥ timing.min_slots,
    k/n ≥ timing.min_busy_share and the binomial z of k against n × BUSY_CHANCE is at least
    timing.account_z. Counting busy slots, not summing their excess, keeps out the account that
    happened to be online during two of a farm's bursts: two huge slots are two, not a pattern.
    Every slot shared by ≥ 2 lockstep accounts of one population is a token on them, when their
    lockstep also holds at false discovery rate timing.group_alpha (Benjamini–Hochberg over the
    binomial tails of every account of the population: a 1M-account job has ~1,000 accounts at
    z ≥ 3 by chance, and they would tie each other); the others still seed scheduler_sets, which
    tests them again as a group. One shared slot is strong evidence (weights.timing_group), and a scheduler's accounts share many
    slots with many of each other, so community detection keeps them together while a stray
    account tied by a slot or two stays out."""
    rows = []
    # the whole population's activity, where every scheduler group grows: built in the loop, or
    # here when this call holds network contexts only (the Spark engine runs each part alone)
    base = None if not groups or groups[0] is None else whole_population(account, slot, cfg)
    for p, group in enumerate(groups, start=first):   # `first`: the number of groups[0] (one part alone)
        s_min = int(slot.min())
        span = int(slot.max()) - s_min + 1
        code = slot if group is None else group * span + (slot - s_min)
        pair_account, pair_code = active_pairs(account, code)
        codes, counts = np.unique(pair_code, return_counts=True)
        slots, gr = (codes, np.zeros(codes.size, np.int64)) if group is None else (codes % span + s_min, codes // span)
        expected = expected_counts(slots, counts, cfg.slot_seconds, min_expected=cfg.min_expected, group=gr)
        at = np.searchsorted(codes, pair_code)
        # a slot is busy for an account when the others in it exceed expectation by one standard
        # error; by chance that happens in at most BUSY_CHANCE of an account's slots
        busy = (counts[at] - 1.0 - expected[at]) >= np.sqrt(expected[at] + 1.0)
        # per (account, population group): the node that is scored
        node_key = pair_account * np.int64(1 << 20) + (gr[at] % (1 << 20))
        _, node_of = np.unique(node_key, return_inverse=True)
        k = np.bincount(node_of, weights=busy.astype(np.float64))
        n = np.bincount(node_of).astype(np.float64)
        z = (k - n * BUSY_CHANCE) / np.sqrt(n * BUSY_CHANCE * (1 - BUSY_CHANCE))
        lockstep = (z >= cfg.account_z) & (k >= cfg.min_slots) & (k / n >= cfg.min_busy_share)
        keep = lockstep[node_of]
        shared = np.bincount(at[keep], minlength=codes.size) >= 2
        hit = keep & shared[at]   # the seeds of scheduler groups, which are tested again as groups
        # a slot token is evidence by itself: its accounts' lockstep must also hold at false
        # discovery rate group_alpha over every account tested, or a big population's chance
        # lockstep accounts tie each other in small crowds
        proven = np.zeros(lockstep.size, bool)
        cand = np.flatnonzero(lockstep)
        proven[cand[benjamini_hochberg(binom_logsf(k[cand], n[cand], BUSY_CHANCE), cfg.group_alpha,
                                       n_tests=lockstep.size)]] = True
        token_keep = proven[node_of]
        token_hit = token_keep & (np.bincount(at[token_keep], minlength=codes.size) >= 2)[at]
        if group is None:   # the whole population: where every scheduler group grows
            hour = np.unique(slots // (3600 // cfg.slot_seconds), return_inverse=True)[1].ravel()
            base = population_context(pair_account, at, expected, hour, cfg.slot_seconds)
        if token_hit.any():
            rows.append(pd.DataFrame({"acc": pair_account[token_hit], "p": p, "code": pair_code[token_hit],
                                      "kind": "tgrp"}))
        if hit.any():
            sets = scheduler_sets(pair_account, hit, at, base, cfg,
                                  context=None if group is None else gr[at])
            if len(sets):
                rows.append(sets.assign(p=p, kind="tset"))
    if not rows:
        return make_incidence([], [], "timing")
    pairs = pd.concat(rows, ignore_index=True)
    # every key of the account ties to the slot (an account's keys are one actor)
    keys_of = pd.DataFrame({"acc": account, "key": key}).drop_duplicates()
    frame = pairs.merge(keys_of, on="acc").drop_duplicates(["key", "kind", "p", "code"])
    token = (frame["kind"] + ":" + frame["p"].astype(str) + "." + frame["code"].astype(str)).to_numpy(dtype=object)
    return make_incidence(frame["key"].to_numpy(np.int64), token, "timing", weight=1.0)


def whole_population(account, slot, cfg) -> "_GroupContext":
    """The whole population's _GroupContext (what coactive_groups builds for its group None)."""
    pair_account, pair_code = active_pairs(account, slot)
    codes, counts = np.unique(pair_code, return_counts=True)
    expected = expected_counts(codes, counts, cfg.slot_seconds, min_expected=cfg.min_expected,
                               group=np.zeros(codes.size, np.int64))
    hour = np.unique(codes // (3600 // cfg.slot_seconds), return_inverse=True)[1].ravel()
    return population_context(pair_account, np.searchsorted(codes, pair_code), expected, hour, cfg.slot_seconds)


def scheduler_sets(pair_account, hit, at, base: "_GroupContext", cfg, *,
                   context: np.ndarray | None = None) -> pd.DataFrame:
    """`tset:` rows (acc, code = the group's id): the accounts of one scheduler, found as a group.

    A scheduler that gives each account a few requests puts any two of its accounts in a slot or
    two together: pairwise, too little for community detection to keep hundreds of them in one
    cluster. As a group they are plain (CopyCatch's dense block of accounts × moments):
    - candidates: the lockstep accounts and their shared busy slots (`hit`) form a bipartite
      graph; its modularity communities (Leiden) of at least timing.group_min_accounts accounts
      are candidate schedulers, their accounts the first holders;
    - rounds (until no group changes, at most GROUP_ROUNDS; CopyCatch alternates the same way
      to convergence: a group seeded by a few of a big scheduler's accounts grows a share of it
      per round): a group's slot set S is the slots
      where one of its holders acts (for a holder itself: another one). An account with m of its
      n slots in S holds the group when m ≥ timing.min_slots, m/n ≥ timing.group_min_share and m
      is beyond chance: its binomial tail P(≥ m | n, p) is among those the Benjamini–Hochberg
      procedure accepts at false discovery rate timing.group_alpha over every account that met
      a group (m ≥ 1): of the accounts a group takes in, that share at most joins by chance,
      which is the precision a verdict on them needs. p is the mean over the account's own slots of
      S's share of that slot's hour, each slot weighed by its expected crowd (expected_counts: a
      popular minute such as :00 weighs more). Conditioned on the account's own hours, an account
      that works when the scheduler works is expected to meet it more; and unlike the population's
      activity in S, which a big scheduler fills itself, the expectation is one a farm barely
      moves. The first round keeps every lockstep member, later ones hold them to the test;
    - a group counts only when, in the first round, its lockstep members act mostly
      (group_min_share) where the others act: strangers who met in a few busy slots do not, and a
      group that does not count is dropped before its slot set can grow and sweep in others.
    Seeds come from the population whose lockstep found them (the whole population or a network
    context), but the rounds run over `base`, the whole population's activity (population_context):
    a scheduler behind a carrier's NAT spreads its accounts over several of the carrier's prefixes,
    so each context holds only part of an account's slots and of the group's; counted on plain
    slots, an account's share in the group's set is its share of all its activity. The accounts
    tested for a group found in a context (`context`: each activity pair's, of `pair_account`'s
    population) are those active in the contexts its holders act in: the group is a scheduler there,
    and the false discovery rate is over the accounts that could join it. One token per
    group ties its holders (weights.timing_group; more than caps.timing_group accounts make it a
    hub)."""
    from keyfarm.community.leiden import leiden

    none = pd.DataFrame({"acc": np.zeros(0, np.int64), "code": np.zeros(0, np.int64)})
    acc_ids, acc_node = np.unique(pair_account[hit], return_inverse=True)
    slot_ids, slot_node = np.unique(at[hit], return_inverse=True)
    if acc_ids.size < cfg.group_min_accounts:
        return none
    community = leiden(acc_node.astype(np.int64), (slot_node + acc_ids.size).astype(np.int64),
                       np.ones(acc_node.size), acc_ids.size + slot_ids.size, objective="modularity",
                       resolution=GROUP_RESOLUTION, seed=0, n_iterations=-1)[:acc_ids.size]
    big = np.bincount(community)[community] >= cfg.group_min_accounts
    if not big.any():
        return none
    seeds = acc_ids[big]
    seed_group = pd.factorize(community[big], sort=True)[0].astype(np.int64)
    n_groups = int(seed_group.max()) + 1
    # a group's id: its smallest lockstep member (stable under relabelling of the others)
    first = np.full(n_groups, np.iinfo(np.int64).max)
    np.minimum.at(first, seed_group, seeds)
    group_of = np.full(base.n.size, -1, np.int64)
    group_of[seeds] = seed_group
    contexts = None if context is None else _Contexts.of(np.asarray(pair_account, np.int64),
                                                           np.asarray(context, np.int64))
    ctx = replace(base, group_of=group_of, n_groups=n_groups, contexts=contexts)
    holder_a, holder_g = seeds, seed_group
    memo: dict = {}   # per group: its tests, kept while its holders stay the same from round to round
    for r in range(GROUP_ROUNDS):   # the slots from the accounts, the accounts from the slots
        before = (holder_a, holder_g)
        holder_a, holder_g, counted = _group_round(ctx, holder_a, holder_g, cfg, first_round=r == 0, memo=memo)
        if r == 0:   # a group that does not count from its members alone never grows
            keep_groups = counted
        ok = keep_groups[holder_g]
        holder_a, holder_g = holder_a[ok], holder_g[ok]
        if r and holder_a.size == before[0].size and (holder_a == before[0]).all() \
                and (holder_g == before[1]).all():
            break   # stable: every group holds what its slot set holds
    part = split_groups(ctx, holder_a, holder_g, cfg.group_min_accounts)
    order = np.lexsort((holder_a, part, holder_g))
    code = first[holder_g[order]].astype(str)
    code = np.where(part[order] > 0, np.char.add(np.char.add(code, "s"), part[order].astype(str)), code)
    return pd.DataFrame({"acc": holder_a[order], "code": code})


@dataclass
class _Contexts:
    """The network contexts of a population's activity: per account its contexts, per context its
    accounts (both CSR, sorted), so a group's testable accounts follow its holders' contexts."""

    account_start: np.ndarray
    account_context: np.ndarray
    context_ids: np.ndarray
    context_start: np.ndarray
    context_account: np.ndarray

    @classmethod
    def of(cls, pair_account, context) -> "_Contexts":
        from keyfarm.arrays import sorted_unique

        n_acc = int(pair_account.max()) + 1
        n_ctx = int(context.max()) + 1
        ac = sorted_unique(np.asarray(pair_account, np.int64) * n_ctx + context)   # by account
        a_of, c_of = ac // n_ctx, ac % n_ctx
        by_ctx = np.lexsort((a_of, c_of))
        ctx_ids, ctx_start = np.unique(c_of[by_ctx], return_index=True)
        return cls(account_start=np.searchsorted(a_of, np.arange(n_acc + 1)), account_context=c_of,
                   context_ids=ctx_ids, context_start=np.append(ctx_start, ac.size),
                   context_account=a_of[by_ctx])

    def accounts_near(self, accounts) -> np.ndarray:
        """The accounts active in any context where one of `accounts` acts (unordered, an account
        once per such context)."""
        from keyfarm.arrays import sorted_unique

        contexts = sorted_unique(self.account_context[csr_rows(self.account_start, accounts)])
        where = np.searchsorted(self.context_ids, contexts)
        return self.context_account[csr_rows(self.context_start, where)]


def split_groups(ctx, holder_a, holder_g, min_accounts: int) -> np.ndarray:
    """Per holder, its part of its group (0: the largest): a group whose holders form two or more
    dense blocks of accounts × slots is split into them.

    Modularity's resolution limit lets two schedulers that meet in a few slots start as one
    community once the graph is large, and the rounds keep both: every holder passes against the
    union of their slots. Both pass because each is dense with its own half, so the group's holders
    × the slots where another holder acts are partitioned by CPM at density GROUP_DENSITY (a
    scheduler's block is denser, two schedulers' cross links far sparser); parts of at least
    min_accounts accounts become groups, and each account of a smaller part joins the big part it
    shares most slots with (ties: the larger part). A part must also hold SPLIT_SHARE of the group:
    CPM also carves a few small blocks out of one big scheduler, which are not another. One CPM
    run over every group at once, each group's accounts and slots its own nodes."""
    from keyfarm.arrays import sorted_unique
    from keyfarm.community.leiden import leiden

    part = np.zeros(holder_a.size, np.int64)
    if holder_a.size < 2 * min_accounts:
        return part
    pa, ps = ctx.pair_account, ctx.pair_slot
    # edges: (holder h of group g, slot s of h where another holder of g acts)
    order = np.argsort(holder_a, kind="stable")
    ha = holder_a[order]
    lo, hi = np.searchsorted(ha, pa, "left"), np.searchsorted(ha, pa, "right")
    reps = hi - lo      # an activity pair of an account holding several groups: one row each
    row = np.repeat(np.arange(pa.size), reps)
    h = order[np.repeat(lo - np.cumsum(reps) + reps, reps) + np.arange(int(reps.sum()))]
    gs = holder_g[h] * np.int64(ctx.expected.size) + ps[row]
    gs_code = sorted_unique(gs)
    inv = np.searchsorted(gs_code, gs)
    shared = np.bincount(inv, minlength=gs_code.size) >= 2
    keep = shared[inv]
    h, inv = h[keep], inv[keep]
    if not h.size:
        return part
    slot_nodes, slot_node = np.unique(inv, return_inverse=True)
    labels = leiden(h.astype(np.int64), (slot_node + holder_a.size).astype(np.int64), np.ones(h.size),
                    holder_a.size + slot_nodes.size, objective="cpm", resolution=GROUP_DENSITY,
                    seed=0, n_iterations=-1)
    acc_label, slot_label = labels[:holder_a.size], labels[holder_a.size:]
    for grp in np.unique(holder_g):
        mine = np.flatnonzero(holder_g == grp)
        sizes = pd.Series(acc_label[mine]).value_counts()
        big = sizes[sizes >= max(min_accounts, SPLIT_SHARE * mine.size)]
        if len(big) < 2:
            continue
        rank = {lab: r for r, lab in enumerate(sorted(big.index, key=lambda x: (-big[x], x)))}
        # each holder: the big part it shares most slots with (its own when it is in one)
        e = np.isin(h, mine)
        votes = pd.DataFrame({"h": h[e], "lab": slot_label[slot_node[e]]})
        votes = votes[votes["lab"].isin(big.index)]
        votes["r"] = votes["lab"].map(rank)
        best = votes.groupby(["h", "r"]).size().reset_index(name="n") \
            .sort_values(["h", "n", "r"], ascending=[True, False, True]).drop_duplicates("h")
        choice = pd.Series(0, index=mine)
        choice.loc[best["h"].to_numpy()] = best["r"].to_numpy()
        own = pd.Series(acc_label[mine]).map(rank).fillna(-1).to_numpy(np.int64)
        part[mine] = np.where(own >= 0, own, choice.to_numpy())
    return part


@dataclass
class _GroupContext:
    """What every round of scheduler_sets reads: the distinct (account, slot) activity pairs of the
    whole population (sorted by account), per slot its expected crowd and hour bucket, per hour
    bucket the expected crowds of all its slots (slots with no activity at the hour's mean), per
    account its number of slots and where its pairs start, the pairs by slot, the seed groups."""

    pair_account: np.ndarray
    pair_slot: np.ndarray
    expected: np.ndarray
    hour: np.ndarray
    hour_total: np.ndarray
    n: np.ndarray
    group_of: np.ndarray
    n_groups: int
    account_start: np.ndarray | None = None
    slot_order: np.ndarray | None = None
    slot_start: np.ndarray | None = None
    contexts: "_Contexts | None" = None   # a group may test the accounts near its holders; None: all

    def __post_init__(self):
        if self.account_start is None:   # CSR indices: a group's work is its own slots' crowds
            pa, ps = self.pair_account, self.pair_slot
            if pa.size and (np.diff(pa) < 0).any():
                raise ValueError("activity pairs must be sorted by account")
            self.account_start = np.searchsorted(pa, np.arange(self.n.size + 1))
            self.slot_order = np.argsort(ps, kind="stable")
            self.slot_start = np.searchsorted(ps[self.slot_order], np.arange(self.expected.size + 1))


def population_context(pair_account, at, expected, hour, slot_seconds: int) -> _GroupContext:
    """The _GroupContext of a population's activity pairs (sorted by account), without groups."""
    per_hour = 3600 // slot_seconds
    hour = np.asarray(hour, np.int64)
    hour_mean = np.bincount(hour, weights=expected) / np.maximum(np.bincount(hour), 1)
    pa = np.asarray(pair_account, np.int64)
    return _GroupContext(pair_account=pa, pair_slot=np.asarray(at, np.int64),
                         expected=np.asarray(expected, np.float64), hour=hour,
                         hour_total=per_hour * hour_mean,
                         n=np.bincount(pa).astype(np.float64) if pa.size else np.zeros(0),
                         group_of=np.zeros(0, np.int64), n_groups=0)


def _group_round(ctx: _GroupContext, holder_a, holder_g, cfg, *, first_round: bool, memo: dict | None = None):
    """One round of scheduler_sets: each group's slot set from its holders, its holders from the
    slot set. Returns the new holders (accounts, groups) and which groups count.

    A group's tests depend only on the set of its holders (and the fixed context), so `memo`
    (group → its sorted holders and tests, carried from round to round) gives them again for a
    group whose holders did not change: most groups settle in a round or two, the rounds go on
    while any one still grows.

    One group at a time, each over its own slot set's activity only (the CSR indices of the
    context), so time follows the groups' crowds and memory that of the pairs. The
    Benjamini–Hochberg step runs over the eligible tests (m ≥ min_slots, share ≥ group_min_share)
    of every group, with M = every (account, group) that met (m ≥ 1): the others cannot be
    accepted, and counting them only in M keeps the step conservative."""
    n_acc = ctx.n.size
    counted = np.zeros(ctx.n_groups, bool)
    cand_a, cand_g, cand_lp, kept_a, kept_g = [], [], [], [], []
    n_tests = 0
    order = np.argsort(holder_g, kind="stable")
    bounds = np.searchsorted(holder_g[order], np.arange(ctx.n_groups + 1))
    seeds = np.flatnonzero(ctx.group_of >= 0)
    seeds = seeds[np.argsort(ctx.group_of[seeds], kind="stable")]
    seed_bounds = np.searchsorted(ctx.group_of[seeds], np.arange(ctx.n_groups + 1))
    is_holder = np.zeros(n_acc, bool)
    is_near = np.zeros(n_acc, bool)
    for g in range(ctx.n_groups):
        accs = holder_a[order[bounds[g]:bounds[g + 1]]]
        member = seeds[seed_bounds[g]:seed_bounds[g + 1]]
        if first_round:
            kept_a.append(member)
            kept_g.append(np.full(member.size, g, np.int64))
        if not accs.size:
            continue
        key = np.sort(accs)
        if memo is not None and g in memo and np.array_equal(memo[g][0], key):
            tests = memo[g][1]
        else:
            tests = _group_tests(ctx, accs, member, is_holder, is_near, cfg)
            if memo is not None:
                memo[g] = (key, tests)
        counted[g], n_met, found = tests
        n_tests += n_met
        if found is not None:
            cand_a.append(found[0])
            cand_g.append(np.full(found[0].size, g, np.int64))
            cand_lp.append(found[1])
    if cand_a:
        a, gg, lp = np.concatenate(cand_a), np.concatenate(cand_g), np.concatenate(cand_lp)
        accepted = benjamini_hochberg(lp, cfg.group_alpha, n_tests=max(n_tests, lp.size))
        kept_a.append(a[accepted])
        kept_g.append(gg[accepted])
    if not kept_a:
        return np.zeros(0, np.int64), np.zeros(0, np.int64), counted
    out = pd.DataFrame({"a": np.concatenate(kept_a), "g": np.concatenate(kept_g)}).drop_duplicates()
    return out["a"].to_numpy(np.int64), out["g"].to_numpy(np.int64), counted


def _group_tests(ctx: _GroupContext, accs, member, is_holder, is_near, cfg):
    """One group's tests in a round of _group_round, from its holders `accs` and lockstep
    members: (whether it counts, the number of accounts that met it, None or (the eligible
    accounts, their binomial log tails)). is_holder and is_near are all-False scratch masks over
    the accounts, left all False."""
    pa, ps = ctx.pair_account, ctx.pair_slot
    n_acc, n_hours = ctx.n.size, ctx.hour_total.size
    is_holder[accs] = True
    # S: the slots where a holder acts, and k: how many holders act in each
    s_set, k = np.unique(ps[csr_rows(ctx.account_start, accs)], return_counts=True)
    rows = ctx.slot_order[csr_rows(ctx.slot_start, s_set)]
    k_row = np.repeat(k, ctx.slot_start[s_set + 1] - ctx.slot_start[s_set])
    # a pair counts when another holder acts in its slot (for a holder: not only itself)
    other = rows[k_row - is_holder[pa[rows]] >= 1]
    is_holder[accs] = False
    met_acc = pa[other]
    if 8 * met_acc.size > n_acc:   # a count over all accounts is cheaper than sorting
        m = np.bincount(met_acc, minlength=n_acc)
        met = np.flatnonzero(m)
        m = m[met]
    else:
        met, m = np.unique(met_acc, return_counts=True)
    if ctx.contexts is not None:   # only the accounts of the contexts the holders act in
        near = ctx.contexts.accounts_near(accs)
        is_near[near] = True
        inside = is_near[met]
        is_near[near] = False
        met, m = met[inside], m[inside]
    m = m.astype(np.float64)
    at_member = np.searchsorted(met, member)
    hit = at_member < met.size
    hit[hit] = met[at_member[hit]] == member[hit]
    counted = m[at_member[hit]].sum() / max(ctx.n[member].sum(), 1.0) >= cfg.group_min_share
    ok = (m >= cfg.min_slots) & (m >= cfg.group_min_share * ctx.n[met])
    eligible, m_e = met[ok], m[ok]
    if not eligible.size:
        return counted, int(met.size), None
    # S's share of each hour, by expected crowd; an account's chance: the mean over its slots
    p_hour = np.clip(np.bincount(ctx.hour[s_set], weights=ctx.expected[s_set], minlength=n_hours)
                     / np.maximum(ctx.hour_total, 1e-12), 1e-9, 1.0)
    e_rows = csr_rows(ctx.account_start, eligible)
    local = np.repeat(np.arange(eligible.size), ctx.account_start[eligible + 1] - ctx.account_start[eligible])
    p_sum = np.bincount(local, weights=p_hour[ctx.hour[ps[e_rows]]], minlength=eligible.size)
    p_mean = np.clip(p_sum / ctx.n[eligible], 1e-9, 1.0)
    return counted, int(met.size), (eligible, binom_logsf(m_e, ctx.n[eligible], p_mean))


def benjamini_hochberg(log_p: np.ndarray, q: float, *, n_tests: int | None = None) -> np.ndarray:
    """Mask of the hypotheses the Benjamini–Hochberg step-up procedure rejects at false discovery
    rate q, from their log p-values: the k smallest, for the largest k with p_(k) ≤ k·q/M, where
    M = n_tests (default: the hypotheses given; more when others were tested that cannot pass)."""
    if not log_p.size:
        return np.zeros(0, bool)
    total = log_p.size if n_tests is None else max(int(n_tests), log_p.size)
    order = np.argsort(log_p, kind="stable")
    ranks = np.arange(1, log_p.size + 1)
    ok = log_p[order] <= np.log(ranks * q / total)
    out = np.zeros(log_p.size, bool)
    if ok.any():
        out[order[:int(np.flatnonzero(ok).max()) + 1]] = True
    return out


def binom_logsf(m: np.ndarray, n: np.ndarray, p: np.ndarray) -> np.ndarray:
    """log P(X ≥ m) for X ~ Binomial(n, p), elementwise."""
    from scipy.stats import binom

    return binom.logsf(m - 1, n, p)


def network_contexts(requests: pd.DataFrame, *, v4_bits: int = 16, v6_bits: int = 32) -> np.ndarray:
    """Per request, its network context: the IPv4 /v4_bits or the IPv6 /v6_bits prefix (special
    ranges included: a carrier's NAT pool is where a scheduler on mobile addresses stands out), as
    an int64 code."""
    version = requests["ip_version"].to_numpy(np.int64)
    v4 = (requests["ip_lo"].to_numpy(np.uint64) >> np.uint64(32 - v4_bits)).astype(np.int64)
    v6 = (requests["ip_hi"].to_numpy(np.uint64) >> np.uint64(64 - v6_bits)).astype(np.int64)
    return np.where(version == 6, v6 + (1 << 32), v4)


def _anomalies(key, ts, slot, account, group, cfg) -> pd.DataFrame:
    """Rows of the anomalous slots of the population (group None) or of each group of requests."""
    s_min = int(slot.min())
    span = int(slot.max()) - s_min + 1
    code = slot if group is None else group * span + (slot - s_min)
    pair_account, pair_code = active_pairs(account, code)
    codes, counts = np.unique(pair_code, return_counts=True)
    if group is None:
        slots, groups = codes, np.zeros(codes.size, np.int64)
    else:
        slots, groups = codes % span + s_min, codes // span
    expected = expected_counts(slots, counts, cfg.slot_seconds, min_expected=cfg.min_expected, group=groups)
    anomalous = anomalous_slots(counts, expected, z_min=cfg.z_min, min_excess=cfg.min_excess)
    if not anomalous.any():
        return make_incidence([], [], "timing")
    slot_tie = np.where(anomalous, (counts - expected) / counts, 0.0)
    account_tie = _account_ties(pair_account, float(span), cfg.busy_share)
    if group is None:
        def text(c):
            return ("slot:" + pd.Series(c).astype(str)).to_numpy(dtype=object)
    else:
        def text(c):
            g, s_ = pd.Series(c // span).map("{:x}".format), pd.Series(c % span + s_min).astype(str)
            return ("slot:n" + g + "@" + s_).to_numpy(dtype=object)
    return _rows(key, ts, code, account, pair_account, pair_code, codes, anomalous, slot_tie,
                 account_tie, cfg.min_slots, text)


def active_pairs(account: np.ndarray, slot: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Distinct (account, slot) pairs of request rows, sorted by (account, slot)."""
    s_min = int(slot.min())
    span = int(slot.max()) - s_min + 1
    if account.size and int(account.max()) >= np.iinfo(np.int64).max // span:
        # codes of (context, slot) span too much: rank the distinct values (monotone, so the
        # order is the same) and pair accounts with ranks
        codes, uniques = pd.factorize(slot)
        order = np.argsort(uniques, kind="stable")
        rank = np.empty(order.size, np.int64)
        rank[order] = np.arange(order.size)
        a, r = active_pairs(account, rank[codes])
        return a, uniques[order][r]
    code = np.sort(pd.unique(account * span + (slot - s_min)))   # hash-unique, then sort the few
    return code // span, code % span + s_min


def expected_counts(slots: np.ndarray, counts: np.ndarray, slot_seconds: int, *,
                    min_expected: float = 1.0, group: np.ndarray | None = None) -> np.ndarray:
    """Expected distinct-account count of each active slot from the population's rhythm.

    `slots` are the active slot indices (ts // slot_seconds), sorted within each `group` (one
    population per group, e.g. a network context; default: one group), `counts` their distinct
    accounts; slots absent count zero. The largest of the hour baseline, the clock position, the
    daily and weekly recurrence and `min_expected` (see the module docstring), each per group.
    """
    c = counts.astype(np.float64)
    g = np.zeros(slots.size, np.int64) if group is None else np.asarray(group, np.int64)
    per_hour = 3600 // slot_seconds
    per_day = 86400 // slot_seconds
    _, g_inv = np.unique(g, return_inverse=True)

    g_total = np.bincount(g_inv, weights=c)[g_inv]
    hour = slots // per_hour
    g_first_hour = np.full(g_inv.max() + 1, np.iinfo(np.int64).max) if g_inv.size else np.zeros(0, np.int64)
    g_last_hour = np.full(g_inv.max() + 1, np.iinfo(np.int64).min) if g_inv.size else np.zeros(0, np.int64)
    np.minimum.at(g_first_hour, g_inv, hour)
    np.maximum.at(g_last_hour, g_inv, hour)

    hour_inv = _within(g_inv, hour)
    hour_total = np.bincount(hour_inv, weights=c)[hour_inv]
    e_hour = (hour_total - c) / max(per_hour - 1, 1)

    # the mean excess of the slot's clock position over its hour's mean in the other hours (hours
    # without requests count, as zero excess); a cron adds a constant crowd whatever the hour's volume
    position = slots % per_hour
    pos_inv = _within(g_inv, position)
    position_total = np.bincount(pos_inv, weights=c)[pos_inv]
    n_hours = (g_last_hour - g_first_hour + 1)[g_inv]
    others = position_total - g_total / per_hour - (c - hour_total / per_hour)
    e_clock = np.where(n_hours >= 2, e_hour + others / np.maximum(n_hours - 1, 1), e_hour)
    expected = np.maximum(np.maximum(e_hour, e_clock), min_expected)
    lo = np.full(g_inv.max() + 1, np.iinfo(np.int64).max) if g_inv.size else np.zeros(0, np.int64)
    hi = np.full(g_inv.max() + 1, np.iinfo(np.int64).min) if g_inv.size else np.zeros(0, np.int64)
    np.minimum.at(lo, g_inv, slots)
    np.maximum.at(hi, g_inv, slots)
    for period in (per_day, 7 * per_day):
        # the periods whose part of the span holds this slot's phase: a log that ends at 03:54 has
        # no 06:00 on its last day, and counting that day as a zero would lower a daily job's mean
        phase = slots % period
        n_periods = (hi[g_inv] - phase) // period + (phase - lo[g_inv]) // period + 1
        if (n_periods >= 2).any():
            ph_inv = _within(g_inv, slots % period)
            phase_total = np.bincount(ph_inv, weights=c)[ph_inv]
            recur = np.where(n_periods >= 2, (phase_total - c) / np.maximum(n_periods - 1, 1), 0.0)
            expected = np.maximum(expected, recur)
    return expected


def _within(g_inv: np.ndarray, values: np.ndarray) -> np.ndarray:
    """Dense codes of distinct (group, value) pairs (values ≥ 0 or any int64 within a group)."""
    v = values - values.min() if values.size else values
    return np.unique(g_inv.astype(np.int64) * (int(v.max()) + 1 if v.size else 1) + v, return_inverse=True)[1].ravel()


def anomalous_slots(counts: np.ndarray, expected: np.ndarray, *, z_min: float,
                    min_excess: float) -> np.ndarray:
    """Mask of slots whose count is far above expectation: c − e ≥ min_excess and
    (c − e)/sqrt(e + 1) ≥ z_min (a Poisson-scaled excess; +1 keeps quiet slots from passing on a
    handful of accounts)."""
    excess = counts - expected
    return (excess >= min_excess) & (excess / np.sqrt(expected + 1.0) >= z_min)


def _account_ties(pair_account: np.ndarray, span: float, busy_share: float) -> np.ndarray:
    """Per account index: min(1, busy_share / share of the span's slots it is active in)."""
    n_active = np.bincount(pair_account)
    return np.minimum(1.0, busy_share * span / np.maximum(n_active, 1))


def _rows(key, ts, slot, account, pair_account, pair_slot, slots, anomalous, slot_tie, account_tie,
          min_slots: int, text) -> pd.DataFrame:
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
    # a key's account is one: its max over the rows is their first
    agg = pair_stats(key[row], slot[row], ts[row], names=("key", "slot"), extra={"acc": account[row]})
    s = agg["slot"].to_numpy(np.int64)
    tie = slot_tie[np.searchsorted(slots, s)] * account_tie[agg["acc"].to_numpy(np.int64)]
    token = text(s)
    out = make_incidence(agg["key"].to_numpy(np.int64), token, "timing", weight=tie,
                         count=agg["count"].to_numpy(np.int64), first_seen=agg["first_seen"].to_numpy(),
                         last_seen=agg["last_seen"].to_numpy())
    return out.sort_values(["key", "token"], kind="stable").reset_index(drop=True)
