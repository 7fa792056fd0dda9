"""The loader of two source trees on the same random broken input folders: which outcomes differ.

    PYTHONPATH=src python scripts/fuzz_compare.py --examples 500 --src /work/main/src [--seed 1]

scripts/fuzz_inputs.py's tallies do not compare across trees: hypothesis steers its later draws by
what the earlier examples did, so two loaders get different folders. Here the folders are drawn
first (writing only, keyfarm.fuzz strategies, seeded), then each tree loads every one in its own
process and prints one line per folder: the error, or rows in, quarantine and nulled counts and a
digest of the validated and quarantined tables (values and dtypes). Lines that differ are printed.
"""
from __future__ import annotations

import argparse
import os
import subprocess
import sys
import tempfile
from pathlib import Path

_OUTCOMES = """
import hashlib, sys, warnings
from pathlib import Path
import pandas as pd
warnings.simplefilter("ignore")
from keyfarm.fuzz import check_folder

def digest(h, frame):
    h.update(repr(list(frame.columns)).encode() + repr([str(d) for d in frame.dtypes]).encode())
    h.update(pd.util.hash_pandas_object(frame.astype(object).astype(str), index=True).to_numpy().tobytes())

for folder in sorted(Path(sys.argv[1]).iterdir()):
    try:
        o = check_folder(folder)
    except Exception as exc:   # a broken contract: report it, go on
        print(folder.name, "CONTRACT", type(exc).__name__, str(exc)[:200].replace(chr(10), " "))
        continue
    if o.error is not None:
        print(folder.name, "ERROR", str(o.error)[:300])
        continue
    t, h = o.tables, hashlib.sha256()
    for frame in (t.keys, t.accounts, t.payments, t.requests, *(q for _, q in sorted(t.quarantine.items()))):
        digest(h, frame)
    print(folder.name, "LOADED", t.input_rows, t.quarantine_counts(), t.nulled_counts(), h.hexdigest()[:16])
"""


def draw_folders(out: Path, n: int, seed: int) -> None:
    """Write `n` drawn input folders to out/NNNN (the draws do not depend on any loader)."""
    from hypothesis import HealthCheck, given, settings
    from hypothesis import seed as hypothesis_seed

    from keyfarm.fuzz import input_folders, write_folder
    count = [0]

    @hypothesis_seed(seed)
    @settings(max_examples=n, deadline=None, database=None, suppress_health_check=list(HealthCheck))
    @given(input_folders())
    def write(drawn):
        write_folder(out / f"{count[0]:04d}", drawn)
        count[0] += 1

    write()


def outcomes(folders: Path, src: str | None) -> list[str]:
    env = dict(os.environ)
    if src:
        env["PYTHONPATH"] = src
    proc = subprocess.run([sys.executable, "-c", _OUTCOMES, str(folders)], capture_output=True, text=True,
                          env=env, check=True)
    return proc.stdout.splitlines()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=500)
    ap.add_argument("--seed", type=int, default=1)
    ap.add_argument("--src", required=True, help="the other keyfarm source tree")
    args = ap.parse_args()
    with tempfile.TemporaryDirectory(prefix="keyfarm-fuzz-compare-") as tmp:
        folders = Path(tmp)
        draw_folders(folders, args.examples, args.seed)
        ours, theirs = outcomes(folders, None), outcomes(folders, args.src)
    differ = [(a, b) for a, b in zip(ours, theirs) if a != b]
    for a, b in differ:
        print(f"this tree: {a}\n{args.src}: {b}")
    kinds = {k: sum(line.split()[1] == k for line in ours) for k in ("LOADED", "ERROR", "CONTRACT")}
    print(f"{len(ours)} folders (seed {args.seed}): {kinds}; {len(differ)} outcomes differ from {args.src}")


if __name__ == "__main__":
    main()
