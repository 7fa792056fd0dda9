"""Hub triage: a value on more accounts than its cap is judged as a group, not dropped."""
from __future__ import annotations

import numpy as np
import pandas as pd

from keyfarm.io import tables_from_frames
from keyfarm.pipeline import link

START = pd.Timestamp("2026-11-01", tz="UTC")


def _world(seed: int = 0):
    """A 500-account farm on one card (diverse prompts, own addresses, near its limits), a campus
    of 300 students behind one NAT address (low use, opened over a year), 1,500 ordinary accounts."""
    rng = np.random.default_rng(seed)
    groups = [("farm", 500), ("campus", 300), ("plain", 1500)]
    keys, payments, requests = [], [], []
    n = 0
    for group, size in groups:
        for i in range(size):
            acc = f"{group}-{i:04d}"
            created = START - pd.Timedelta(hours=float(rng.uniform(0, 2))) if group == "farm" \
                else START - pd.Timedelta(days=float(rng.uniform(1, 400)))
            keys.append({"key_id": f"k{n:05d}", "account_id": acc, "created_at": created,
                         "daily_token_limit": 100_000})
            payments.append({"account_id": acc, "payment_fingerprint": "card-farm" if group == "farm" else f"card-{n}"})
            use = 0.9 if group == "farm" else rng.uniform(0.01, 0.1)
            for r in range(6):
                ts = START + pd.Timedelta(seconds=int(rng.integers(0, 3 * 86400)))
                ip = "198.51.100.7" if group == "campus" else \
                    f"{rng.integers(11, 99)}.{rng.integers(0, 255)}.{rng.integers(0, 255)}.{rng.integers(1, 254)}"
                requests.append({"key_id": f"k{n:05d}", "ts": ts, "ip": ip,
                                 "prompt": f"question {n} {r} about {rng.integers(0, 10**9)}",
                                 "prompt_tokens": int(use * 100_000 * 3 / 6 / 2),
                                 "completion_tokens": int(use * 100_000 * 3 / 6 / 2)})
            n += 1
    return tables_from_frames(pd.DataFrame(keys), payments=pd.DataFrame(payments),
                              requests=pd.DataFrame(requests))


def test_a_500_account_farm_on_one_card_is_one_farm_cluster_and_a_campus_nat_is_not():
    result = link(_world(), seed=1)
    members = result.members
    farm = members[members["account_id"].str.startswith("farm-")]
    assert farm["cluster_id"].nunique() == 1
    cid = int(farm["cluster_id"].iloc[0])
    cluster = result.clusters.set_index("cluster_id").loc[cid]
    assert cluster["n_accounts"] == 500 and cluster["verdict"] == "farm"
    assert "500 of 500 accounts joined by shared payment instruments" in cluster["explanation"]
    # nobody else was pulled into it
    assert (members.loc[members["cluster_id"] == cid, "account_id"].str.startswith("farm-")).all()
    hubs = result.hubs.set_index("token")
    card = [t for t in hubs.index if t.startswith("pay:")]
    assert len(card) == 1 and hubs.loc[card[0], "verdict"] == "farm" and hubs.loc[card[0], "n_accounts"] == 500
    nat = hubs.loc["ip4:198.51.100.7"]
    assert nat["verdict"] != "farm"
    campus = members[members["account_id"].str.startswith("campus-")]
    flagged = result.clusters.loc[result.clusters["flagged"], "cluster_id"]
    assert not campus["cluster_id"].isin(flagged).any()
