"""Plan-building time on a large synthetic OUT_DIR (members 1M keys, clusters 200k, flagged 2k)."""
import json, sys, tempfile, time
from datetime import date
from pathlib import Path
import numpy as np, pandas as pd
from keyfarm.enforce import Policy, plan

rng = np.random.default_rng(0)
n_keys, n_clusters, n_flagged = int(sys.argv[1]), int(sys.argv[2]), int(sys.argv[3])
d = Path(tempfile.mkdtemp())
# 2 keys per account; clusters get consecutive accounts
key_id = np.char.add("k", np.arange(n_keys).astype(str)).astype(object)
account = np.arange(n_keys) // 2
cluster = np.minimum(account * n_clusters // (n_keys // 2), n_clusters - 1)
members = pd.DataFrame({"key_id": key_id, "account_id": np.char.add("a", account.astype(str)).astype(object),
                        "cluster_id": cluster.astype(np.int64)})
members.to_parquet(d / "members.parquet", index=False)
score = rng.random(n_clusters)
flagged = np.zeros(n_clusters, bool); flagged[rng.choice(n_clusters, n_flagged, replace=False)] = True
score[flagged] = 0.6 + 0.4 * rng.random(n_flagged)
pd.DataFrame({"cluster_id": np.arange(n_clusters), "n_keys": np.bincount(cluster), "n_accounts": np.bincount(cluster) // 2,
              "score": score, "flagged": flagged, "signals": "ip", "total_tokens": 1, "limit_multiplier": 1.0,
              "explanation": "x"}).to_parquet(d / "clusters.parquet", index=False)
# edges: chain within each cluster, integer endpoints
a = np.arange(n_keys - 1); same = cluster[a] == cluster[a + 1]
pd.DataFrame({"key_a": a[same], "key_b": a[same] + 1, "weight": 1.0, "w_ip": 1.0, "w_payment": 0.0}).to_parquet(d / "edges.parquet", index=False)
(d / "run.json").write_text(json.dumps({"run_id": "bench"}))
times = []

for _ in range(3):
    t = time.perf_counter(); p = plan(d, Policy(as_of=date(2025, 6, 1), max_total_accounts=None)); times.append(time.perf_counter() - t)
print(f"members {n_keys:,} clusters {n_clusters:,} flagged {n_flagged:,}: actions {len(p.actions):,} "
      f"exclusions {len(p.exclusions):,}; plan() median {sorted(times)[1]:.2f} s over 3 runs; JSON {len(p.to_json())/1e6:.1f} MB")
