"""Remembered evidence (history stage): the rare values that tie a cluster's accounts, kept in
state/ for later runs, and the accounts of today that come back on them.

A value *ties* a cluster when two or more of its accounts hold it and at least half of all accounts
holding it are in the cluster: a farm's card, its rare device fingerprint, its proxy exits; never
the campus NAT or the popular SDK. Values are kept as blake2b digests of the token text (payment
fingerprints, device fingerprints, User-Agents, exact addresses and IPv6 /64s; not prompts, and not
time slots, which are absolute times and never recur).

An account of today *returns* to a remembered farm F when it is not one of F's remembered accounts
and holds F's remembered payment fingerprint, or two or more of F's remembered values; values held
today by more than MAX_TOKEN_ACCOUNTS accounts do not count. The accounts returning to F and F's
remembered accounts still present are joined into one cluster (`join_returning`), which the
verdict model then scores as any other; history.lineage gives it F's id when no account overlap
gave it another.
"""
from __future__ import annotations

import hashlib

import numpy as np
import pandas as pd

REMEMBERED_KINDS = ("pay", "dev", "ua", "ip4", "ip6", "ip6/64")
MAX_TOKEN_ACCOUNTS = 200
TIE_SHARE = 0.5


def token_digest(tokens) -> np.ndarray:
    """blake2b (96 bits, hex) of each token text: state/ stores values only as digests."""
    tokens = np.asarray(tokens, dtype=object)
    uniq, inverse = np.unique(tokens.astype(str), return_inverse=True)
    digests = np.array([hashlib.blake2b(t.encode("utf-8", "surrogatepass"), digest_size=12).hexdigest()
                        for t in uniq], dtype=object)
    return digests[inverse] if tokens.size else np.zeros(0, dtype=object)


def account_tokens(incidences, account: np.ndarray) -> pd.DataFrame:
    """Distinct (account, kind, token text) of the remembered kinds, over all signals' incidences."""
    parts = []
    for frame in incidences:
        if not len(frame):
            continue
        token = frame["token"].to_numpy(dtype=object)
        kind = pd.Series(token).str.split(":", n=1).str[0].to_numpy(dtype=object)
        keep = np.isin(kind, REMEMBERED_KINDS)
        if keep.any():
            parts.append(pd.DataFrame({"account": account[frame["key"].to_numpy(np.int64)[keep]],
                                       "kind": kind[keep], "token": token[keep]}))
    if not parts:
        return pd.DataFrame({"account": np.zeros(0, np.int64), "kind": [], "token": []})
    return pd.concat(parts, ignore_index=True).drop_duplicates(["account", "token"]) \
        .sort_values(["account", "token"], kind="stable").reset_index(drop=True)


def tying_tokens(tokens: pd.DataFrame, label: np.ndarray) -> pd.DataFrame:
    """Rows of `tokens` (account_tokens) whose value ties the account's cluster (`label` per
    account); with the cluster's label as column `label` and the token as a digest."""
    if not len(tokens):
        return pd.DataFrame({"label": np.zeros(0, np.int64), "account": np.zeros(0, np.int64),
                             "kind": [], "token": []})
    frame = tokens.assign(label=label[tokens["account"].to_numpy(np.int64)])
    total = frame.groupby("token")["account"].transform("size")
    inside = frame.groupby(["label", "token"])["account"].transform("size")
    tie = frame[(inside >= 2) & (inside >= TIE_SHARE * total)]
    return pd.DataFrame({"label": tie["label"].to_numpy(np.int64), "account": tie["account"].to_numpy(np.int64),
                         "kind": tie["kind"].to_numpy(dtype=object),
                         "token": token_digest(tie["token"].to_numpy(dtype=object))})


def returning_matches(tokens: pd.DataFrame, account_id: np.ndarray, remembered: pd.DataFrame) -> pd.DataFrame:
    """Accounts of today that return to a remembered farm: (account, farm_id, n_values), one row per
    account (the farm with most matched values, ties to the smaller id). `remembered` has the
    evidence columns of state/ (cluster_id, account_id, kind, token digest)."""
    empty = pd.DataFrame({"account": np.zeros(0, np.int64), "farm_id": np.zeros(0, np.int64),
                          "n_values": np.zeros(0, np.int64)})
    if not len(tokens) or not len(remembered):
        return empty
    degree = tokens.groupby("token")["account"].transform("size").to_numpy()
    now = tokens[degree <= MAX_TOKEN_ACCOUNTS]
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
    per = hit.groupby(["account", "farm_id"]).agg(n_values=("digest", "nunique"),
                                                  pay=("kind", lambda k: bool((k == "pay").any()))).reset_index()
    per = per[per["pay"] | (per["n_values"] >= 2)]
    per = per.sort_values(["account", "n_values", "farm_id"], ascending=[True, False, True], kind="stable") \
        .drop_duplicates("account")
    return per[["account", "farm_id", "n_values"]].astype(np.int64).reset_index(drop=True)


def join_returning(acc_label: np.ndarray, matches: pd.DataFrame, present: pd.DataFrame) -> np.ndarray:
    """Per-account labels where each remembered farm's returning accounts (`matches`) and its
    remembered accounts present today (`present`: account, farm_id) form one cluster.

    A cluster of today that is at least half such accounts joins whole (its other accounts are tied
    to them by today's evidence); of any other cluster only the returning accounts move. Farms are
    taken in id order and an account moves once."""
    group = pd.concat([matches[["account", "farm_id"]], present[["account", "farm_id"]]], ignore_index=True) \
        .sort_values(["farm_id", "account"], kind="stable").drop_duplicates("account")
    out = np.asarray(acc_label, np.int64).copy()
    if not len(group):
        return out
    size = np.bincount(out)
    base = int(out.max()) + 1
    moved = np.zeros(out.size, bool)
    for n, (farm, rows) in enumerate(group.groupby("farm_id", sort=True)):
        acc = rows["account"].to_numpy(np.int64)
        acc = acc[~moved[acc]]
        if not acc.size:
            continue
        labs, counts = np.unique(out[acc], return_counts=True)
        whole = labs[counts * 2 >= size[labs]]
        take = np.union1d(acc, np.flatnonzero(np.isin(out, whole) & ~moved))
        if take.size < 2:   # one account alone is no cluster: it stays where today's evidence put it
            continue
        out[take] = base + n
        moved[take] = True
    return out
