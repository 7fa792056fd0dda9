"""Remembered evidence (history stage): the rare values that tie a cluster's accounts, kept in
state/ for later runs, and the accounts of today that come back on them.

A value *ties* a cluster when two or more of its accounts hold it and at least half of all accounts
holding it are in the cluster: a farm's card, its rare device fingerprint, its proxy exits; never
the campus NAT or the popular SDK. A card held only by accounts of the cluster is kept too, even
on one account: a farm that gives each account its own card comes back on those cards. Of a
`farm` cluster, its own device fingerprints, IPv4 addresses and IPv6 /64s (OWN_KINDS, held by
its accounts alone) are kept the same way: a farm whose accounts each have their own device and
exits, tied by its prompts, comes back on the devices and exits of its old accounts. Values are
kept as blake2b digests of the token text (payment fingerprints, device fingerprints, User-Agents,
exact addresses and IPv6 /64s; not prompts, and not time slots, which are absolute times and never
recur).

An account of today *returns* to a remembered farm F when the previous run did not have it and it
holds one of F's remembered payment or device fingerprints (STRONG_KINDS: a card, or a device
that tied the farm and few others), or two or more of F's remembered values; values held today by
more than MAX_TOKEN_ACCOUNTS accounts do not count. The accounts returning to F and F's
remembered accounts still present are joined into one cluster (`join_returning`), which the
verdict model then scores as any other; history.lineage gives it F's id when no account overlap
gave it another.

An account of F that the previous run had *stays* with F (`staying`, `keep_staying`) when today
it shares one of F's remembered cards or devices, or two of F's remembered values, with another
of F's accounts: a farm member whose irregular time slots moved on (they are absolute times and
never recur) or whose proxy exits thinned out, but which still pays with the farm's card, is not
let go by community detection's density threshold. Only evidence in today's logs keeps it there.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

from keyfarm.arrays import sorted_unique

REMEMBERED_KINDS = ("pay", "dev", "ua", "ip4", "ip6", "ip6/64")
# signals whose tokens are never of a remembered kind (acct:, pdup:/lsh:, slot:/tset:): their
# incidences (the prompt signal's are the largest of all) are skipped without reading a token
UNREMEMBERED_SIGNALS = ("account", "prompt", "timing")
STRONG_KINDS = ("pay", "dev")
# a farm's values held by its accounts alone are kept even on one account (a card of any cluster's)
OWN_KINDS = ("pay", "dev", "ip4", "ip6/64")
MAX_TOKEN_ACCOUNTS = 200
TIE_SHARE = 0.5


def token_digest(tokens) -> np.ndarray:
    """blake2b (96 bits, hex) of each token text: state/ stores values only as digests. Each
    distinct text is hashed once (hash-based codes: no sort of a fixed-width text array)."""
    tokens = np.asarray(tokens, dtype=object)
    if not tokens.size:
        return np.zeros(0, dtype=object)
    codes, uniq = pd.factorize(tokens)
    if (codes < 0).any():   # a null is digested as its text ('None', 'nan'), as str() spells it
        codes, uniq = pd.factorize(tokens.astype(str))
    digests = np.array([hashlib.blake2b(str(t).encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
                        for t in uniq], dtype=object)
    return digests[codes]


def _kinds(tokens: np.ndarray):
    """The kind of each token text, what stands before its first ':', as an Arrow array (Arrow's
    string kernels: a 1M-key run has millions of distinct address and device tokens)."""
    import pyarrow as pa
    import pyarrow.compute as pc

    text = pa.array(np.asarray(tokens, dtype=object), type=pa.string(), from_pandas=True)
    return pc.list_element(pc.split_pattern(text, ":", max_splits=1), 0)


def _remembered(tokens: np.ndarray) -> np.ndarray:
    """Mask of the token texts of a REMEMBERED_KINDS kind."""
    import pyarrow as pa
    import pyarrow.compute as pc

    hit = pc.is_in(_kinds(tokens), value_set=pa.array(REMEMBERED_KINDS))
    return pc.fill_null(hit, False).to_numpy(zero_copy_only=False).astype(bool)


def _only_unremembered(frame: pd.DataFrame) -> bool:
    """Does every row of the incidence `frame` come from one of UNREMEMBERED_SIGNALS?"""
    if "signal" not in frame:
        return False
    signal = frame["signal"].to_numpy(dtype=object)
    return signal[0] in UNREMEMBERED_SIGNALS and bool((signal == signal[0]).all())


def account_tokens(incidences, account: np.ndarray) -> pd.DataFrame:
    """Distinct (account, kind, token text) of the remembered kinds, over all signals' incidences,
    sorted by account (an account's tokens in order of first appearance). Kinds are read once per
    distinct token, and `kind` and `token` are categoricals, so a 1M-key run holds integer codes,
    not a string per row."""
    accounts, codes, texts = [], [], []
    n_texts = 0
    for frame in incidences:
        if not len(frame) or _only_unremembered(frame):
            continue
        code, uniq = pd.factorize(frame["token"].to_numpy(dtype=object))
        keep_uniq = _remembered(np.asarray(uniq, dtype=object))
        if not keep_uniq.any():
            continue
        local = np.full(len(uniq), -1, np.int64)
        local[keep_uniq] = n_texts + np.arange(int(keep_uniq.sum()))
        n_texts += int(keep_uniq.sum())
        texts.append(np.asarray(uniq, dtype=object)[keep_uniq])
        row_code = local[code[code >= 0]]
        keep = row_code >= 0
        accounts.append(account[frame["key"].to_numpy(np.int64)[code >= 0][keep]])
        codes.append(row_code[keep])
    if not accounts:
        return pd.DataFrame({"account": np.zeros(0, np.int64), "kind": [], "token": []})
    # one code per distinct text over all signals (hash codes; no sort of the texts: nothing
    # downstream depends on the order of tokens within an account)
    glob, categories = pd.factorize(np.concatenate(texts))
    code = glob[np.concatenate(codes)].astype(np.int64)
    acc = np.concatenate(accounts).astype(np.int64)
    pair = sorted_unique(acc * np.int64(len(categories)) + code)   # distinct, sorted by account
    acc, code = pair // len(categories), pair % len(categories)
    categories = np.asarray(categories, dtype=object)
    kind_code, kinds = pd.factorize(_kinds(categories).to_numpy(zero_copy_only=False), sort=True)
    return pd.DataFrame({
        "account": acc.astype(np.int64),
        "kind": pd.Categorical.from_codes(kind_code[code], categories=np.asarray(kinds, dtype=object), validate=False),
        "token": pd.Categorical.from_codes(code, categories=categories, validate=False)})


def tying_tokens(tokens: pd.DataFrame, label: np.ndarray, own_labels=()) -> pd.DataFrame:
    """Rows of `tokens` (account_tokens) whose value ties the account's cluster (`label` per
    account), or is one of OWN_KINDS held by the cluster's accounts alone when the cluster is one of
    `own_labels` (the farms); with the cluster's label as column `label` and the token as a digest.
    Counts are bincounts over integer codes of tokens and of (label, token) pairs."""
    if not len(tokens):
        return pd.DataFrame({"label": np.zeros(0, np.int64), "account": np.zeros(0, np.int64),
                             "kind": [], "token": []})
    account = tokens["account"].to_numpy(np.int64)
    lab = np.asarray(label, np.int64)[account]
    code, uniq = pd.factorize(tokens["token"])
    total = np.bincount(code)[code]
    pair = pd.factorize((lab - lab.min()) * np.int64(len(uniq)) + code)[0]   # hash codes: no sort needed
    inside = np.bincount(pair)[pair]
    kind = tokens["kind"].to_numpy(dtype=object)
    own = (inside == total) & ((kind == "pay") |
                               (np.isin(kind, OWN_KINDS) & np.isin(lab, np.asarray(list(own_labels), np.int64))))
    tie = np.flatnonzero(((inside >= 2) & (inside >= TIE_SHARE * total)) | own)
    text = np.asarray(uniq, dtype=object)
    tie_code = code[tie]
    back, used = pd.factorize(tie_code)
    return pd.DataFrame({"label": lab[tie], "account": account[tie], "kind": kind[tie],
                         "token": token_digest(text[used])[back] if tie.size else np.zeros(0, dtype=object)})


def returning_matches(tokens: pd.DataFrame, account_id: np.ndarray, remembered: pd.DataFrame, *,
                      seen=(), touching: bool = False) -> pd.DataFrame:
    """Accounts of today that return to a remembered farm: (account, farm_id, group, n_values), one
    row per account. Remembered farms sharing a value are one group (`farm_groups`); an account
    returns to the group it shares most values with (ties: smaller id), named by the group's farm it
    shares most with. `remembered` has state/'s evidence columns (cluster_id, account_id, kind, token).
    Accounts in `seen` (the previous run's) never return: today's graph judged them on the same
    evidence yesterday, and pulling them in would change an unchanged day. With `touching`, the
    other new accounts holding one of a group's remembered values instead (they do not return
    alone; join_returning counts them when a cluster of today joins whole)."""
    empty = pd.DataFrame({"account": np.zeros(0, np.int64), "farm_id": np.zeros(0, np.int64),
                          "group": np.zeros(0, np.int64), "n_values": np.zeros(0, np.int64)})
    if not len(tokens) or not len(remembered):
        return empty
    code = pd.factorize(tokens["token"])[0]
    degree = np.bincount(code)[code]
    fresh = ~pd.Index(account_id[tokens["account"].to_numpy(np.int64)]).isin(pd.Index(seen))
    now = tokens[(degree <= MAX_TOKEN_ACCOUNTS) & fresh]
    now = now.assign(digest=token_digest(now["token"].to_numpy(dtype=object)),
                     account_id=account_id[now["account"].to_numpy(np.int64)])
    known = remembered[["cluster_id", "account_id", "kind", "token"]].rename(
        columns={"cluster_id": "farm_id", "account_id": "old_account", "token": "digest"})
    hit = now[["account", "account_id", "digest"]].merge(known, on="digest", how="inner")
    members = known[["farm_id", "old_account"]].drop_duplicates()
    own = hit.merge(members, left_on=["farm_id", "account_id"], right_on=["farm_id", "old_account"],
                    how="left", indicator=True, suffixes=("", "_m"))["_merge"].to_numpy() == "both"
    hit = hit[~own]
    if not len(hit):
        return empty
    group = farm_groups(known[["farm_id", "digest"]])
    hit = hit.assign(group=group.reindex(hit["farm_id"]).to_numpy(np.int64),
                     strong=hit["kind"].isin(STRONG_KINDS).to_numpy())
    per = hit.groupby(["account", "group"]).agg(n_values=("digest", "nunique"),
                                                strong=("strong", "any")).reset_index()
    returns = (per["strong"] | (per["n_values"] >= 2)).to_numpy()
    if touching:
        per = per[~per["account"].isin(per.loc[returns, "account"]).to_numpy()]
    else:
        per = per[returns]
    per = per.sort_values(["account", "n_values", "group"], ascending=[True, False, True], kind="stable") \
        .drop_duplicates("account")
    # the farm of the group the account shares most values with names it (ties: smaller id)
    best = hit.groupby(["account", "group", "farm_id"])["digest"].nunique().rename("n").reset_index() \
        .sort_values(["account", "group", "n", "farm_id"], ascending=[True, True, False, True], kind="stable") \
        .drop_duplicates(["account", "group"])
    per = per.merge(best[["account", "group", "farm_id"]], on=["account", "group"], how="left")
    return per[["account", "farm_id", "group", "n_values"]].astype(np.int64).reset_index(drop=True)


def staying(tokens: pd.DataFrame, account_id: np.ndarray, remembered: pd.DataFrame) -> pd.DataFrame:
    """Accounts of remembered farms that stay with their farm today: (account, group), one row per
    account. An account that held a tying value of remembered farm F stays with F when today it
    holds one of F's remembered payment or device fingerprints, or two of F's remembered values,
    that another of F's accounts also holds today: the farm's rare evidence of control, remembered
    and present in today's logs (values on more than MAX_TOKEN_ACCOUNTS accounts do not count).
    The account joins no one on memory alone: the shared value is today's. Farms sharing a value
    are one group (`farm_groups`); an account of several stays with the one it shares most values
    with (ties: the smaller group id)."""
    empty = pd.DataFrame({"account": np.zeros(0, np.int64), "group": np.zeros(0, np.int64)})
    if not len(tokens) or not len(remembered):
        return empty
    known = remembered[["cluster_id", "account_id", "kind", "token"]].rename(
        columns={"cluster_id": "farm_id", "token": "digest"})
    code = pd.factorize(tokens["token"])[0]
    degree = np.bincount(code)[code]
    holder = account_id[tokens["account"].to_numpy(np.int64)]
    mine = pd.Index(holder).isin(pd.Index(known["account_id"].unique())) & (degree <= MAX_TOKEN_ACCOUNTS)
    if not mine.any():
        return empty
    now = pd.DataFrame({"account": tokens["account"].to_numpy(np.int64)[mine], "account_id": holder[mine],
                        "digest": token_digest(tokens["token"].to_numpy(dtype=object)[mine])})
    values = known[["farm_id", "kind", "digest"]].drop_duplicates(["farm_id", "digest"])
    members = known[["farm_id", "account_id"]].drop_duplicates()
    hit = now.merge(values, on="digest").merge(members, on=["farm_id", "account_id"])   # F's values on F's accounts
    hit = hit[hit.groupby(["farm_id", "digest"])["account"].transform("nunique").to_numpy() >= 2]
    if not len(hit):
        return empty
    group = farm_groups(known[["farm_id", "digest"]])
    hit = hit.assign(group=group.reindex(hit["farm_id"]).to_numpy(np.int64),
                     strong=hit["kind"].isin(STRONG_KINDS).to_numpy())
    per = hit.groupby(["account", "group"]).agg(n_values=("digest", "nunique"), strong=("strong", "any")).reset_index()
    per = per[per["strong"] | (per["n_values"] >= 2)]
    per = per.sort_values(["account", "n_values", "group"], ascending=[True, False, True], kind="stable") \
        .drop_duplicates("account")
    return per[["account", "group"]].astype(np.int64).reset_index(drop=True)


def keep_staying(acc_label: np.ndarray, stay: pd.DataFrame) -> np.ndarray:
    """Per-account labels where each remembered farm's staying accounts (`staying`) are in one
    cluster: the cluster of today holding most of them (ties: the smaller label), when it holds
    two or more. The others move there alone; an account never leaves a cluster that is another
    farm's. Unchanged where today's communities already keep the farm together."""
    out = np.asarray(acc_label, np.int64).copy()
    if not len(stay):
        return out
    stay = stay.sort_values(["group", "account"], kind="stable")
    target = {}
    for group, rows in stay.groupby("group", sort=True):
        labs, counts = np.unique(out[rows["account"].to_numpy(np.int64)], return_counts=True)
        best = int(np.argmax(counts))
        if counts[best] >= 2 and int(labs[best]) not in target.values():
            target[int(group)] = int(labs[best])
    owned = np.asarray(sorted(target.values()), np.int64)
    for group, rows in stay.groupby("group", sort=True):
        if int(group) not in target:
            continue
        acc = rows["account"].to_numpy(np.int64)
        move = acc[~np.isin(out[acc], owned)]
        out[move] = target[int(group)]
    return out


def farm_groups(rows: pd.DataFrame) -> pd.Series:
    """farm_id → group: remembered farms that share a remembered value are one actor (the
    smallest farm id of each connected group names it); rows are (farm_id, digest)."""
    from keyfarm.community.components import union_find_roots

    farms, f_code = np.unique(rows["farm_id"].to_numpy(np.int64), return_inverse=True)
    d_code = pd.factorize(rows["digest"], sort=True)[0].astype(np.int64)
    if not farms.size:
        return pd.Series(dtype=np.int64)
    roots = union_find_roots(f_code.astype(np.int64), d_code + farms.size, np.int64(farms.size + int(d_code.max()) + 1))
    root = roots[:farms.size]
    smallest = pd.Series(farms).groupby(root).transform("min").to_numpy(np.int64)
    return pd.Series(smallest, index=farms)


def join_returning(acc_label: np.ndarray, matches: pd.DataFrame, present: pd.DataFrame,
                   touching: pd.DataFrame | None = None) -> np.ndarray:
    """Per-account labels where each group of remembered farms' returning accounts (`matches`) and
    its remembered accounts present today (`present`: account, group) form one cluster.

    A cluster of today that is at least half such accounts, or new accounts holding one of the
    group's remembered values (`touching`: account, group, returning_matches(touching=True)),
    joins whole (its other accounts are tied to them by today's evidence); of any other cluster
    only the returning accounts move. A farm that came back on one proxy exit per new account is
    one cluster of today, and joins whole. Farms are taken in id order and an account moves once."""
    present = present[present["group"].isin(matches["group"])]   # no returning account, nothing to join
    near = touching[touching["group"].isin(matches["group"])] if touching is not None else present.iloc[:0]
    group = pd.concat([matches[["account", "group"]], present[["account", "group"]]], ignore_index=True) \
        .rename(columns={"group": "farm_id"}).sort_values(["farm_id", "account"], kind="stable") \
        .drop_duplicates("account")
    out = np.asarray(acc_label, np.int64).copy()
    if not len(group):
        return out
    size = np.bincount(out)
    base = int(out.max()) + 1
    moved = np.zeros(out.size, bool)
    near_of = {int(g): rows["account"].to_numpy(np.int64) for g, rows in near.groupby("group", sort=True)}
    for n, (farm, rows) in enumerate(group.groupby("farm_id", sort=True)):
        acc = rows["account"].to_numpy(np.int64)
        acc = acc[~moved[acc]]
        if not acc.size:
            continue
        other = near_of.get(int(farm), np.zeros(0, np.int64))
        other = other[~moved[other]]
        labs, counts = np.unique(out[np.concatenate([acc, other])], return_counts=True)
        whole = labs[(counts * 2 >= size[labs]) & np.isin(labs, out[acc])]
        take = np.union1d(acc, np.flatnonzero(np.isin(out, whole) & ~moved))
        if take.size < 2:   # one account alone is no cluster: it stays where today's evidence put it
            continue
        out[take] = base + n
        moved[take] = True
    return out
