"""Fit the package's default verdict weights on generated worlds (never by hand).

    .venv/bin/python scripts/calibrate_defaults.py --seeds 1 2 3 --keys 50000 --work /tmp/q

For every seed: the world of scripts/quality.py (cached in --work), and worlds of the first
generator's patterns (--legacy-seeds, 10k keys: the detector must keep finding those too), `keyfarm
link` with the current
defaults, labels from truth.parquet (an account is `farm` when its keys belong to a farm); then
`keyfarm.scoring.calibrate` over all runs writes src/keyfarm/scoring/defaults.toml. Farm hubs
become clusters by the verdict, so the fit is repeated (--rounds) until the weights settle. Evaluate
on other seeds (scripts/quality.py --seeds 4 5 6 7): held-out seeds are never the fitting seeds.
"""
from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

sys.path.insert(0, str(Path(__file__).parent))
from quality import world_dir  # noqa: E402  (the same cached worlds as the quality loop)

from keyfarm.pipeline import run_link  # noqa: E402
from keyfarm.scoring.calibrate import calibrate  # noqa: E402
from keyfarm.scoring.verdict import DEFAULTS_FILE  # noqa: E402


def legacy_world(work: Path, keys: int, seed: int, days: int) -> Path:
    """A cached world of the first generator's patterns (keyfarm.synth.LEGACY_PATTERNS/OVERRIDES)."""
    from keyfarm.synth import LEGACY_OVERRIDES, LEGACY_PATTERNS, generate_world, write_world

    folder = work / f"legacy-{keys}-s{seed}-d{days}"
    if not (folder / "truth.parquet").is_file():
        write_world(generate_world(keys, seed, days=days, patterns=LEGACY_PATTERNS,
                                   overrides=LEGACY_OVERRIDES), folder)
    return folder


def truth_labels(world: Path) -> pd.DataFrame:
    """One label per account of a generated world: farm when its keys are a farm's."""
    truth = pd.read_parquet(world / "truth.parquet")
    keys = pd.read_parquet(world / "keys.parquet", columns=["key_id", "account_id"])
    frame = keys.merge(truth[["key_id", "farm_id"]], on="key_id")
    farm = frame.groupby("account_id")["farm_id"].agg(lambda s: s.notna().any())
    return pd.DataFrame({"account_id": farm.index, "label": pd.Series(farm.to_numpy()).map({True: "farm", False: "benign"}),
                         "source": "truth"})


def main(argv=None) -> int:
    ap = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--seeds", type=int, nargs="+", default=[1, 2, 3])
    ap.add_argument("--keys", type=int, default=50_000)
    ap.add_argument("--days", type=int, default=3)
    ap.add_argument("--work", type=Path, default=Path("/tmp/keyfarm-quality"))
    ap.add_argument("--rounds", type=int, default=2)
    ap.add_argument("--legacy-seeds", type=int, nargs="*", default=[1, 2, 3],
                    help="also fit on worlds of the first generator's patterns (LEGACY_PATTERNS)")
    ap.add_argument("--legacy-keys", type=int, default=10_000)
    ap.add_argument("--C", type=float, default=1.0)
    ap.add_argument("--dry-run", action="store_true", help="print the fit, do not write defaults.toml")
    args = ap.parse_args(argv)
    worlds = [world_dir(args.work, args.keys, s, args.days) for s in args.seeds]
    outs = [args.work / f"calib-{args.keys}-s{seed}" for seed in args.seeds]
    seeds = list(args.seeds)
    for seed in args.legacy_seeds:   # the first generator's patterns are patterns too
        worlds.append(legacy_world(args.work, args.legacy_keys, seed, args.days))
        outs.append(args.work / f"calib-legacy-{args.legacy_keys}-s{seed}")
        seeds.append(seed)
    # account ids repeat across generated worlds: each label belongs to its own run
    labels = pd.concat([truth_labels(w).assign(out_dir=str(o)) for w, o in zip(worlds, outs)],
                       ignore_index=True)
    for round_ in range(1, args.rounds + 1):
        for world, seed, out in zip(worlds, seeds, outs):
            run_link(world, out, seed=seed, quiet=True, report=False)
        result = calibrate(outs, labels, C=args.C, seed=0, fitted_on=(
            f"scripts/calibrate_defaults.py: generated worlds, seeds {','.join(map(str, args.seeds))} x "
            f"{args.keys:,} keys and legacy-pattern seeds {','.join(map(str, args.legacy_seeds)) or 'none'} x "
            f"{args.legacy_keys:,} keys, {args.days} days; sign-constrained logistic regression C={args.C:g} on the clusters passing the gates, sqrt(n_keys) weights"))
        print(f"round {round_}:\n{result.report()}\n", file=sys.stderr)
        if not args.dry_run:
            DEFAULTS_FILE.write_text(
                "# The verdict model's fitted weights (keyfarm.scoring.verdict). Written by\n"
                "# scripts/calibrate_defaults.py (keyfarm calibrate on generated worlds); do not edit by hand.\n"
                + result.to_toml())
    print(result.report())
    return 0


if __name__ == "__main__":
    sys.exit(main())
