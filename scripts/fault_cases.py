"""Run `keyfarm link` on broken copies of a world and print a Markdown table of the outcomes.

    PYTHONPATH=src python scripts/fault_cases.py --world datasets/sample [--src OTHER/src]

Each case copies the world (keys, accounts, payments, requests), breaks one thing the way an
operator or an attacker would (a folder of parts, numeric JSONL ids, a NUL in a CSV field, token
counts at 2**63-1, a limit of 0, extra columns named like keyfarm's own, a year-3000 timestamp, a
bad setting, ...), runs the CLI in a subprocess (`--src` picks the keyfarm source tree to run, e.g.
an older checkout) and reports the exit code, the counts line or the first line of the error, and
whether a traceback was printed. Issue 20's table of cases comes from this script.
"""
from __future__ import annotations

import argparse
import json
import os
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

TABLES = ("keys", "accounts", "payments", "requests")


def _load(world: Path) -> dict:
    return {t: pd.read_parquet(world / f"{t}.parquet") for t in TABLES if (world / f"{t}.parquet").is_file()}


def _write(folder: Path, frames: dict, formats: dict | None = None) -> None:
    for name, frame in frames.items():
        fmt = (formats or {}).get(name, "parquet")
        if fmt == "parquet":
            frame.to_parquet(folder / f"{name}.parquet", index=False)
        elif fmt == "csv":
            frame.to_csv(folder / f"{name}.csv", index=False)
        elif fmt == "jsonl":
            rows = frame.astype(object).where(frame.notna(), None).to_dict("records")
            (folder / f"{name}.jsonl").write_text("".join(json.dumps(r, default=str) + "\n" for r in rows))


def _parts(folder: Path, name: str, frame: pd.DataFrame, dirname: str) -> None:
    target = folder / dirname
    target.mkdir()
    n = len(frame)
    for i in range(4):
        frame.iloc[i * n // 4:(i + 1) * n // 4].to_parquet(target / f"part-{i:05d}-c000.snappy.parquet", index=False)
    (target / "_SUCCESS").write_text("")


def cases(world: Path):
    """(name, build(folder) -> extra CLI args) for every case."""
    base = _load(world)

    def plain(folder):
        _write(folder, base)
        return []

    def parts(dirname):
        def build(folder):
            _write(folder, {k: v for k, v in base.items() if k != "requests"})
            _parts(folder, "requests", base["requests"], dirname)
            return []
        return build

    def upper(folder):
        _write(folder, {k: v for k, v in base.items() if k != "requests"})
        base["requests"].to_parquet(folder / "requests.PARQUET", index=False)
        return []

    def every_request_bad(folder):
        _write(folder, {**base, "requests": base["requests"].assign(ip="not-an-ip")})
        return []

    def every_key_bad(folder):
        _write(folder, {**base, "keys": base["keys"].assign(created_at="never")})
        return []

    def numeric_jsonl(folder):
        ids = {k: str(i + 10) for i, k in enumerate(sorted(base["keys"]["key_id"].astype(str)))}
        keys = base["keys"].assign(key_id=base["keys"]["key_id"].astype(str).map(ids).astype(int))
        req = base["requests"].assign(key_id=base["requests"]["key_id"].astype(str).map(ids))
        req = req[req["key_id"].notna()].assign(key_id=lambda f: f["key_id"].astype(int))
        req = pd.concat([req, req.iloc[:1].assign(key_id=None)], ignore_index=True)   # one row without a key
        _write(folder, {**base, "keys": keys, "requests": req}, {"keys": "jsonl", "requests": "jsonl"})
        return []

    def nul_csv(folder):
        keys = base["keys"].copy()
        keys["key_id"] = keys["key_id"].astype(str) + "\x00x"
        req = base["requests"].assign(key_id=base["requests"]["key_id"].astype(str) + "\x00x")
        _write(folder, {**base, "keys": keys, "requests": req}, {"keys": "csv", "requests": "csv"})
        return []

    def huge_tokens_parquet(folder):
        req = base["requests"].copy()
        tokens = pd.to_numeric(req["completion_tokens"], errors="coerce").fillna(0).astype(np.int64).to_numpy()
        tokens[:5] = 2**63 - 1
        _write(folder, {**base, "requests": req.assign(completion_tokens=tokens)})
        return []

    def huge_tokens_csv(folder):
        req = base["requests"].astype({"completion_tokens": str}).copy()
        req.loc[req.index[:5], "completion_tokens"] = str(2**70)
        _write(folder, {**base, "requests": req}, {"requests": "csv"})
        return []

    def limit(value):
        def build(folder):
            keys = base["keys"].copy()
            lim = keys["daily_token_limit"].astype("Int64").copy()
            lim[np.arange(len(keys)) % 3 != 0] = value
            _write(folder, {**base, "keys": keys.assign(daily_token_limit=lim)})
            return []
        return build

    def internal_columns(folder):
        req = base["requests"].assign(key="x", ip_version="9", reason="mine", source_row="s")
        _write(folder, {**base, "requests": req, "keys": base["keys"].assign(account="?", key="y")})
        return []

    def year_3000(folder):
        import pyarrow as pa
        import pyarrow.parquet as pq
        _write(folder, {k: v for k, v in base.items() if k != "requests"})
        req = base["requests"].copy()
        ts = pd.to_datetime(req["ts"], utc=True, errors="coerce").dt.tz_convert(None).astype("datetime64[us]")
        ts.iloc[:3] = pd.Timestamp("3000-01-01").as_unit("us")
        table = pa.Table.from_pandas(req.drop(columns=["ts"]), preserve_index=False)
        table = table.append_column("ts", pa.array(ts.to_numpy(), pa.timestamp("us")))
        pq.write_table(table, folder / "requests.parquet")
        return []

    def jsonl_array(folder):
        _write(folder, base, {"keys": "jsonl"})
        with (folder / "keys.jsonl").open("a") as fh:
            fh.write('["k", "a"]\n')
        return []

    def jsonl_nested(folder):
        _write(folder, base, {"requests": "jsonl"})
        with (folder / "requests.jsonl").open("a") as fh:
            key = str(base["keys"]["key_id"].iloc[0])
            fh.write(json.dumps({"key_id": key, "ts": "2026-11-02T00:00:00Z", "ip": "203.0.113.9",
                                 "user_agent": {"nested": [1, 2]}}) + "\n")
        return []

    def setting(text):
        def build(folder):
            _write(folder, base)
            (folder / "job.toml").write_text(text + "\n")
            return ["--config", str(folder / "job.toml")]
        return build

    yield "plain world (reference)", plain
    yield "requests.parquet/ folder of parts", parts("requests.parquet")
    yield "requests/ folder of parts", parts("requests")
    yield "requests.PARQUET", upper
    yield "every request quarantined (bad ip)", every_request_bad
    yield "every key quarantined (bad created_at)", every_key_bad
    yield "numeric ids in JSONL", numeric_jsonl
    yield "NUL inside CSV ids", nul_csv
    yield "completion_tokens 2**63-1 (Parquet)", huge_tokens_parquet
    yield "completion_tokens 2**70 (CSV)", huge_tokens_csv
    yield "daily_token_limit 0 on 2/3 of keys", limit(0)
    yield "daily_token_limit -5 on 2/3 of keys", limit(-5)
    yield "extra columns key/ip_version/reason/source_row/account", internal_columns
    yield "Parquet ts in year 3000", year_3000
    yield "JSONL line that is an array", jsonl_array
    yield "JSONL nested value", jsonl_nested
    for text in ("[scoring]\nbias = nan", "[scoring]\nweights = { payment = nan }", "[scoring]\nthreshold = 2",
                 "[scoring]\nmin_accounts = -3", "[community]\nn_iterations = 0", "[community]\nalgorithm = 'x'",
                 "[community]\nobjective = 'x'", "[scoring]\nsync_bin_seconds = 0", "[prompt]\nnum_perm = 100000000"):
        yield "setting " + text.replace("\n", " "), setting(text)


def run_case(build, src: str | None) -> tuple[int, str, bool, float]:
    import time

    folder = Path(tempfile.mkdtemp(prefix="keyfarm-case-"))
    try:
        (folder / "in").mkdir()
        extra = build(folder / "in")
        env = dict(os.environ)
        if src:
            env["PYTHONPATH"] = src
        start = time.perf_counter()
        proc = subprocess.run([sys.executable, "-m", "keyfarm", "link", str(folder / "in"), "--out",
                               str(folder / "out"), "--quiet", "--no-report", *extra],
                              capture_output=True, text=True, env=env, timeout=900)
        elapsed = time.perf_counter() - start
        text = (proc.stdout.strip().splitlines() or [""])[-1] if proc.returncode == 0 else \
            (proc.stderr.strip().splitlines() or [""])[-1]
        text = text.replace(str(folder), "…")
        if proc.returncode == 0 and (folder / "out" / "run.json").is_file():
            run = json.loads((folder / "out" / "run.json").read_text())
            members = pd.read_parquet(folder / "out" / "members.parquet")
            usage_inf = int(np.isinf(members["usage"].astype(float)).sum()) if "usage" in members else 0
            text = text.split(": ", 1)[-1] + f"; requests {run.get('valid_rows', {}).get('requests')}" \
                + (f"; {usage_inf} keys with infinite usage" if usage_inf else "")
        return proc.returncode, text, "Traceback" in proc.stderr, elapsed
    finally:
        shutil.rmtree(folder, ignore_errors=True)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--world", default="datasets/sample")
    ap.add_argument("--src", action="append", default=[], help="keyfarm source trees to compare (default: this one)")
    ap.add_argument("--only", default=None, help="run only cases whose name contains this")
    args = ap.parse_args()
    srcs = args.src or [None]
    head = "| case | " + " | ".join(f"{s or 'this tree'}: exit, outcome" for s in srcs) + " |"
    print(head)
    print("|" + "---|" * (len(srcs) + 1))
    for name, build in cases(Path(args.world)):
        if args.only and args.only not in name:
            continue
        cells = []
        for src in srcs:
            code, text, trace, elapsed = run_case(build, src)
            cells.append(f"{code}{' TRACEBACK' if trace else ''}, {elapsed:.1f} s: {text[:110]}")
        print(f"| {name} | " + " | ".join(c.replace("|", "/") for c in cells) + " |", flush=True)


if __name__ == "__main__":
    main()
