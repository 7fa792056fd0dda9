"""The next period of a generated world (`keyfarm generate OUT --continue PREV_WORLD`): the same
accounts with new traffic, some new benign accounts, and banned farms coming back.

Period p+1 is drawn from period p's tables and seed alone (same PREV_WORLD and seed, same bytes):
  * a share `ban_share` of the farms with 3+ accounts is banned at the end of the period: their
    accounts are gone (listed in banned.parquet); of those, a share `return_share` comes back with
    new accounts, each copying an old account's keys and traffic, on *part* of the old evidence:
    each of cards, device fingerprints and addresses is kept with probability `keep_p` (at least
    one kept), the others replaced by fresh values with the same sharing structure;
  * every other account keeps its keys and draws new traffic: a share of its period-p requests
    per key, moved one period later (timing patterns, addresses and devices stay its own);
  * `new_share` × the benign accounts join as new benign accounts: a plain account's volume and
    rhythm with fresh addresses, cards, prompts and rare devices (nothing shared with it).
truth.parquet gains `period` (when the key's account appeared) and `returning` (a new account of a
banned farm that came back); params.json gains a `continue` section naming what was drawn.
"""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.synth._base import DAY, POPULAR_PROMPTS, START, _WORDS

BAN_SHARE = 0.5
RETURN_SHARE = 0.7
KEEP_P = 0.6
NEW_SHARE = 0.03


def continue_world(prev_dir, *, ban_share: float = BAN_SHARE, return_share: float = RETURN_SHARE,
                   keep_p: float = KEEP_P, new_share: float = NEW_SHARE) -> tuple[dict, dict]:
    """(tables, params) of the period after PREV_WORLD (see the module docstring)."""
    prev = Path(prev_dir)
    params = json.loads((prev / "params.json").read_text())
    tables = {n: read_table(prev / f"{n}.parquet") for n in ("keys", "accounts", "payments", "requests", "truth")}
    cont = params.get("continue", {})
    period = int(cont.get("period", 1)) + 1
    rng = np.random.default_rng([int(params["seed"]), 16, period])
    span = float(params["days"]) * DAY
    keys, truth = tables["keys"], tables["truth"]
    if "period" not in truth:
        truth = truth.assign(period=1, returning=False)
    req = _valid_requests(tables["requests"], keys)
    tables["requests"] = req.iloc[:0]   # only its columns are read from here on; the rows are req's

    acc_farm = keys[["account_id"]].assign(farm_id=truth.set_index("key_id")["farm_id"].reindex(keys["key_id"]).to_numpy()) \
        .dropna().drop_duplicates("account_id")
    sizes = acc_farm.groupby("farm_id").size()
    candidates = np.array(sorted(sizes.index[sizes.to_numpy() >= 3].tolist()), dtype=object)
    n_ban = int(round(ban_share * candidates.size))
    banned_farms = sorted(rng.permutation(candidates)[:n_ban].tolist()) if candidates.size else []
    n_back = int(round(return_share * len(banned_farms)))
    returning_farms = sorted(rng.permutation(np.array(banned_farms, dtype=object))[:n_back].tolist()) \
        if banned_farms else []
    banned_acc = acc_farm[acc_farm["farm_id"].isin(banned_farms)]
    stay_keys = keys[~keys["account_id"].isin(banned_acc["account_id"])]

    stay_rows = np.flatnonzero(req["key_id"].isin(stay_keys["key_id"]).to_numpy())
    parts = {"keys": [stay_keys], "requests": [_resample(req, rng, span, rows=stay_rows)],
             "accounts": [tables["accounts"][~tables["accounts"]["account_id"].isin(banned_acc["account_id"])]],
             "payments": [tables["payments"][~tables["payments"]["account_id"].isin(banned_acc["account_id"])]],
             "truth": [truth[truth["key_id"].isin(stay_keys["key_id"])]]}
    t_start = START + pd.Timedelta(seconds=span * (period - 1))
    kept_evidence = {}
    by_farm = _rows_by_farm(tables, req, truth, banned_acc[banned_acc["farm_id"].isin(returning_farms)])
    for n, farm in enumerate(returning_farms):
        olds = banned_acc.loc[banned_acc["farm_id"] == farm, "account_id"].to_numpy(dtype=object)
        n_new = max(2, int(round(olds.size * rng.uniform(0.5, 1.0))))
        donors = np.sort(rng.choice(olds, size=n_new, replace=n_new > olds.size))
        kept = rng.random(3) < keep_p
        if not kept.any():
            kept[rng.integers(0, 3)] = True
        kept_evidence[farm] = [name for name, k in zip(("cards", "devices", "addresses"), kept) if k]
        burst = t_start + pd.Timedelta(seconds=float(rng.uniform(0, DAY)))
        f_tables, f_req, f_truth = by_farm[farm]
        _copy_accounts(parts, f_tables, f_req, f_truth, donors, f"p{period}f{n:03d}", rng, span, burst,
                       fresh_cards=not kept[0], fresh_devices=not kept[1], fresh_addresses=not kept[2],
                       period=period, farm_id=farm, created_spread=3600.0, benign=False)
    plain = truth.loc[truth["pattern"] == "plain", "key_id"]
    plain_acc = np.sort(keys.loc[keys["key_id"].isin(plain) & keys["account_id"].isin(stay_keys["account_id"]),
                                 "account_id"].unique())
    n_benign = int(round(new_share * truth.loc[truth["farm_id"].isna(), "key_id"].size))
    if plain_acc.size and n_benign:
        donors = np.sort(rng.choice(plain_acc, size=n_benign, replace=n_benign > plain_acc.size))
        _copy_accounts(parts, tables, req, truth, donors, f"p{period}b", rng, span, t_start,
                       fresh_cards=True, fresh_devices=True, fresh_addresses=True, period=period, farm_id=None,
                       created_spread=span * 0.8, benign=True)
    for name in ("keys", "accounts"):
        for i, frame in enumerate(parts[name]):
            parts[name][i] = frame.assign(created_at=pd.to_datetime(frame["created_at"], utc=True, format="ISO8601"))
    del req, by_farm
    out = {name: pd.concat(_like_first(parts.pop(name)), ignore_index=True) for name in list(parts)}
    out["keys"] = out["keys"].sort_values("key_id", kind="stable").reset_index(drop=True)
    out["requests"] = _sorted_by(out["requests"], ["ts", "key_id"])
    out["truth"] = out["truth"].sort_values("key_id", kind="stable").reset_index(drop=True)
    out["banned"] = banned_acc.sort_values("account_id").reset_index(drop=True)
    new_params = dict(params)
    new_params["continue"] = {"period": period, "ban_share": ban_share, "return_share": return_share,
                              "keep_p": keep_p, "new_share": new_share, "banned_farms": banned_farms,
                              "returning_farms": returning_farms, "kept_evidence": kept_evidence}
    return out, new_params


def read_table(path) -> pd.DataFrame:
    """A world table as pd.read_parquet reads it, but text columns as Arrow-backed strings
    (StringDtype("pyarrow")): a 1M-key world's 10M request rows held as Python str objects took
    ~8 GiB before any work started; Arrow holds the same text in ~2 GiB."""
    import pyarrow as pa
    import pyarrow.parquet as pq

    text = pd.StringDtype("pyarrow")
    return pq.read_table(path).to_pandas(types_mapper={pa.string(): text, pa.large_string(): text}.get)


def _like_first(frames: list[pd.DataFrame]) -> list[pd.DataFrame]:
    """`frames` with each later frame's object columns cast to the first frame's string dtype, so
    concatenating keeps Arrow-backed text (object + string would make every cell a Python str)."""
    first = frames[0].dtypes
    out = [frames[0]]
    for frame in frames[1:]:
        cast = {c: first[c] for c in frame.columns
                if c in first.index and isinstance(first[c], pd.StringDtype) and frame[c].dtype == object}
        out.append(frame.astype(cast) if cast else frame)
    return out


def _sorted_by(frame: pd.DataFrame, columns: list[str]) -> pd.DataFrame:
    """frame.sort_values(columns, kind="stable").reset_index(drop=True), ordering a frame of the
    sort columns only and taking the rows once (one copy of a wide frame, not two)."""
    order = frame[columns].reset_index(drop=True).sort_values(columns, kind="stable").index.to_numpy()
    return frame.iloc[order].reset_index(drop=True)


def _valid_requests(req: pd.DataFrame, keys: pd.DataFrame) -> pd.DataFrame:
    """Rows of known keys with a readable time (the previous period's malformed rows stay behind),
    sorted by key and time."""
    ts = pd.to_datetime(req["ts"], utc=True, errors="coerce", format="ISO8601")
    rows = np.flatnonzero(ts.notna().to_numpy() & req["key_id"].isin(keys["key_id"]).to_numpy())
    order = pd.DataFrame({"key_id": req["key_id"].iloc[rows].reset_index(drop=True),
                          "ts": ts.iloc[rows].reset_index(drop=True)}).sort_values(["key_id", "ts"], kind="stable")
    take = rows[order.index.to_numpy()]
    out = req.iloc[take].reset_index(drop=True)
    out["ts"] = order["ts"].reset_index(drop=True)
    return out


def _rows_by_farm(tables: dict, req: pd.DataFrame, truth: pd.DataFrame, farm_acc: pd.DataFrame) -> dict:
    """farm_id → (tables, requests, truth) holding only that farm's accounts' rows, in their
    original order: what _copy_accounts reads of a returning farm. Sliced once for all farms
    (each farm merging the whole tables made the continuation quadratic in the world's size)."""
    farm_of = farm_acc.set_index("account_id")["farm_id"]
    key_farm = tables["keys"]["account_id"].map(farm_of)
    key_farm.index = tables["keys"]["key_id"].to_numpy(dtype=object)

    def split(frame: pd.DataFrame, farm: pd.Series) -> dict:
        farm = farm.to_numpy(dtype=object)
        rows = np.flatnonzero(pd.notna(farm))
        groups = pd.Series(rows).groupby(farm[rows], sort=False).indices   # positions ascending
        return {f: frame.iloc[rows[pos]] for f, pos in groups.items()}

    parts = {"keys": split(tables["keys"], tables["keys"]["account_id"].map(farm_of)),
             "accounts": split(tables["accounts"], tables["accounts"]["account_id"].map(farm_of)),
             "payments": split(tables["payments"], tables["payments"]["account_id"].map(farm_of)),
             "requests": split(req, key_farm.reindex(req["key_id"])),
             "truth": split(truth, key_farm.reindex(truth["key_id"]))}
    out = {}
    for farm in pd.unique(farm_acc["farm_id"]):
        def get(name):
            return parts[name].get(farm, (req if name == "requests" else tables[name]).iloc[:0])
        out[farm] = ({"keys": get("keys"), "accounts": get("accounts"), "payments": get("payments"),
                      "requests": tables["requests"].iloc[:0]}, get("requests"), get("truth"))
    return out


def _resample(req: pd.DataFrame, rng, span: float, rows: np.ndarray | None = None) -> pd.DataFrame:
    """New traffic of the same keys: per key a share U(0.6, 1) of its rows (at least one), one
    period later. Thinning, not a bootstrap: a key's next period is like its last, with some of its
    values (prompts, addresses, slots) not seen again, and none made up. `rows` (positions, in
    order) resamples those rows of `req` only, taking the kept ones once."""
    if rows is None:
        rows = np.arange(len(req))
    if not rows.size:
        return req.iloc[rows]
    codes = pd.factorize(req["key_id"].iloc[rows], sort=False)[0]
    share = rng.uniform(0.6, 1.0, size=int(codes.max()) + 1)
    keep = rng.random(codes.size) < share[codes]
    first = np.r_[True, codes[1:] != codes[:-1]]
    has = np.bincount(codes, weights=keep, minlength=share.size) > 0
    keep |= first & ~has[codes]
    out = req.iloc[rows[keep]].reset_index(drop=True)
    out["ts"] = out["ts"] + pd.Timedelta(seconds=span)
    return out


def _fresh(values: np.ndarray, rng, make) -> np.ndarray:
    """Each distinct value mapped to a fresh one (the same old value, the same new one)."""
    codes, uniq = pd.factorize(pd.Series(values, dtype=object))
    new = make(len(uniq))
    return np.where(codes >= 0, new[np.maximum(codes, 0)], None)


def _copy_accounts(parts, tables, req, truth, donors, tag, rng, span, t0, *, period, fresh_cards, fresh_devices,
                   fresh_addresses, farm_id, created_spread, benign):
    """New accounts, each copying one donor account's keys and resampled traffic (see the module
    docstring for what is kept and what is made fresh)."""
    n = donors.size
    new_ids = np.array([f"acct_{tag}_{i:05d}" for i in range(n)], dtype=object)
    keys = tables["keys"].merge(pd.DataFrame({"account_id": donors, "new_account": new_ids, "j": np.arange(n)}),
                                on="account_id").sort_values(["j", "key_id"], kind="stable")
    keys = keys.assign(new_key=[f"key_{tag}_{i:06d}" for i in range(len(keys))])
    created = t0 + pd.to_timedelta(rng.uniform(0, created_spread, size=n), unit="s")
    new_keys = pd.DataFrame({"key_id": keys["new_key"].to_numpy(dtype=object),
                             "account_id": keys["new_account"].to_numpy(dtype=object),
                             "created_at": created[keys["j"].to_numpy()],
                             "daily_token_limit": keys["daily_token_limit"].to_numpy()})
    parts["keys"].append(new_keys)
    acc = tables["accounts"].set_index("account_id").reindex(donors).reset_index(drop=True)
    acc["account_id"] = new_ids
    acc["created_at"] = created
    parts["accounts"].append(acc[tables["accounts"].columns])
    pay = tables["payments"].merge(pd.DataFrame({"account_id": donors, "new_account": new_ids}), on="account_id")
    fp = pay["payment_fingerprint"].to_numpy(dtype=object)
    if fresh_cards:
        fp = _fresh(fp if not benign else np.arange(len(fp)).astype(object), rng, lambda k: np.array(
            [f"pf_{tag}_{x:012x}" for x in rng.integers(0, 2**47, size=k)], dtype=object))
    parts["payments"].append(pd.DataFrame({"account_id": pay["new_account"].to_numpy(dtype=object),
                                           "payment_fingerprint": fp}))
    rows = req.merge(keys[["key_id", "new_key", "j"]], on="key_id", sort=False)
    rows = rows.sort_values(["j", "new_key", "ts"], kind="stable").reset_index(drop=True)
    rows = _resample(rows.assign(key_id=rows["new_key"]), rng, span)
    if benign:   # a stranger with a plain account's rhythm: shift its clock by a few hours
        shift = rng.integers(-4, 5, size=n)[rows["j"].to_numpy()] * 3600.0 + rng.normal(0, 300, size=len(rows))
        rows["ts"] = rows["ts"] + pd.to_timedelta(shift, unit="s")
    else:
        rows["ts"] = rows["ts"] + pd.to_timedelta(rng.uniform(0, 20, size=len(rows)), unit="s")
    rows["ts"] = rows["ts"].where(rows["ts"] >= t0, t0 + pd.to_timedelta(rng.uniform(0, 600, size=len(rows)), unit="s"))
    per_acc = rows["j"].to_numpy() if benign else None
    if fresh_addresses:
        source = rows["ip"].to_numpy(dtype=object) if not benign else \
            (rows["ip"].astype(str) + "|" + pd.Series(per_acc).astype(str)).to_numpy(dtype=object)
        rows["ip"] = _fresh(source, rng, lambda k: np.array(
            [f"{a}.{b}.{c}.{d}" for a, b, c, d in rng.integers([11, 0, 0, 1], [200, 256, 256, 255], size=(k, 4))],
            dtype=object))
    if fresh_devices and "device_fingerprint" in rows:
        dev = rows["device_fingerprint"].astype(object)
        common = dev.map(dev.value_counts()).to_numpy() > 50 if benign else np.zeros(len(rows), bool)
        fresh = _fresh(dev.to_numpy(dtype=object) if not benign else
                       (dev.astype(str) + "|" + pd.Series(per_acc).astype(str)).to_numpy(dtype=object), rng,
                       lambda k: np.array([f"t13d_{tag}_{x:010x}" for x in rng.integers(0, 2**40, size=k)], dtype=object))
        rows["device_fingerprint"] = np.where(common | dev.isna().to_numpy(), dev.to_numpy(dtype=object), fresh)
    if benign and "prompt" in rows:
        words = np.array(_WORDS, dtype=object)
        pick = rng.integers(0, words.size, size=(len(rows), 12))
        text = words[pick[:, 0]]
        for col in range(1, pick.shape[1]):   # " ".join per row, column by column (no Python loop per row)
            text = text + " " + words[pick[:, col]]
        popular = rng.random(len(rows)) < 0.5
        rows["prompt"] = np.where(popular, np.array(POPULAR_PROMPTS, dtype=object)[rng.integers(0, len(POPULAR_PROMPTS),
                                                                                                 size=len(rows))], text)
    parts["requests"].append(rows[tables["requests"].columns.intersection(rows.columns)])
    old = truth.set_index("key_id").reindex(keys["key_id"])
    parts["truth"].append(pd.DataFrame({
        "key_id": keys["new_key"].to_numpy(dtype=object),
        "farm_id": farm_id if farm_id is not None else None,
        "pattern": old["pattern"].to_numpy(dtype=object),
        **({"group_id": farm_id if farm_id is not None else None} if "group_id" in truth else {}),
        "period": period, "returning": not benign}))


def next_period_command(prev_dir, out_dir, progress) -> None:
    """`keyfarm generate OUT --continue PREV_WORLD`: continue_world, written as write_world does."""
    from keyfarm.errors import KeyfarmInputError
    from keyfarm.synth.world import write_world

    prev = Path(prev_dir)
    missing = [n for n in ("params.json", "keys.parquet", "accounts.parquet", "payments.parquet",
                           "requests.parquet", "truth.parquet") if not (prev / n).is_file()]
    if missing:
        raise KeyfarmInputError(f"--continue {prev}: not a generated world ({missing[0]} missing)", table="world")
    with progress.stage("generate") as info:
        world, params = continue_world(prev)
        info["counts"] = ", ".join(f"{len(v):,} {k}" for k, v in world.items())
    with progress.stage("write"):
        write_world(world, out_dir, params=params)
