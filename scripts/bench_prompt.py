"""Benchmark: MinHash signatures of prompts, keyfarm (Numba) against datasketch on the same shingles.

    .venv/bin/python scripts/bench_prompt.py --sizes 100000 --sample 2000 --repeat 5
    .venv/bin/python scripts/bench_prompt.py --world /work/q13/world-1000000-s1-d3   # the prompt signal
    .venv/bin/python scripts/bench_prompt.py --lsh 2000                              # LSH recall, accuracy
Prompts are 20-400 words drawn from a Zipf vocabulary. Both sides sign the same sample with the same
num_perm, and their shingle sets are identical: datasketch gets the shingles as strings
(keyfarm.signals.prompt.shingles, by default character 9-grams of the normalised text), checked
to be the sets keyfarm hashes (its exact Jaccard estimates are compared on pairs). datasketch uses
`update_batch`, its fastest per-document path, and is timed on the shingles alone (making them not
counted); keyfarm's time includes UTF-8 encoding, normalisation, shingling and hashing, from
Python strings to the signature matrix. Each repeat times datasketch and then every keyfarm variant
(method oph / classic, serial / parallel kernels), so a ratio compares timings taken back to back;
the ratio printed is the median over repeats of (keyfarm prompts/s) / (datasketch prompts/s).
Accuracy: on pairs of sample prompts (a prompt and a paraphrase of it), the mean and largest
|estimate - exact Jaccard| over the pairs, for each signature.

With --lsh N: LSH candidates of both methods against the S-curve of the exact Jaccard on N pairs
near the threshold and N distant pairs, and the estimate's spread by size of the shingle union.

With --world: load a world's tables, then run the prompt signal (keyfarm.signals.prompt.incidence)
alone and print its time and its peak memory above the loaded tables (Linux: the peak is reset
through /proc/self/clear_refs after loading and read from VmHWM).
"""
from __future__ import annotations

import argparse
import gc
import time

import numpy as np


def make_prompts(n: int, seed: int = 0, min_words: int = 20, max_words: int = 400) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)], dtype=object)
    common = ("the a of to and in is for on with as by at from that this it be are or an which you "
                  "your please can what how explain write list give step answer question problem text "
                  "following code").split()
    vocab[:len(common)] = common
    p = 1.0 / np.arange(1, vocab.size + 1) ** 1.05
    lengths = rng.integers(min_words, max_words + 1, size=n)
    words = rng.choice(vocab.size, size=int(lengths.sum()), p=p / p.sum())
    cuts = np.cumsum(lengths)[:-1]
    return [" ".join(vocab[chunk]) for chunk in np.split(words, cuts)]


def paraphrase(text: str, rng, rate: float) -> str:
    """The text with a share `rate` of its words replaced by other words."""
    words = text.split()
    for i in np.flatnonzero(rng.random(len(words)) < rate):
        words[i] = f"x{rng.integers(10**6)}"
    return " ".join(words)


def _timed(fn) -> float:
    t = time.perf_counter()
    fn()
    return time.perf_counter() - t


def bench_signatures(args) -> None:
    from datasketch import MinHash

    from keyfarm.signals.prompt import estimate_jaccard, minhash_signatures, shingles

    variants = [(m, par) for m in ("oph", "classic") for par in (False, True)]
    kw = dict(shingle=args.shingle, size=args.size)
    for method, par in variants:  # compile (or load the cache) outside the timings
        minhash_signatures(["warm up the jit"] * 10, args.num_perm, parallel=par, method=method, **kw)

    sample = make_prompts(args.sample, seed=99)
    sample_shingles = [[s.encode() for s in shingles(t, args.shingle, args.size)] for t in sample]
    print(f"{args.shingle} {args.size}-grams, num_perm={args.num_perm}, "
          f"{np.mean([len(s) for s in sample_shingles]):.0f} shingles per prompt on average")

    def run_datasketch(docs):
        return [_datasketch_one(MinHash, sh, args.num_perm) for sh in docs]

    big = {n: make_prompts(n, seed=n) for n in args.sizes}
    rates = {("datasketch", args.sample): []}
    for _ in range(args.repeat):
        rates[("datasketch", args.sample)].append(args.sample / _timed(lambda: run_datasketch(sample_shingles)))
        for method, par in variants:
            for n, texts in [(args.sample, sample)] + list(big.items()):
                r = n / _timed(lambda: minhash_signatures(texts, args.num_perm, parallel=par, method=method, **kw))
                rates.setdefault((f"keyfarm {method:<7} {'parallel' if par else 'serial  '}", n), []).append(r)
    ds = np.array(rates.pop(("datasketch", args.sample)))
    print(f"{'datasketch':<28} {args.sample:>9,} prompts: {np.median(ds):>11,.0f} prompts/s "
          f"(median of {args.repeat})")
    for (name, n), r in rates.items():
        ratio = np.median(np.array(r) / ds)
        print(f"{name:<28} {n:>9,} prompts: {np.median(r):>11,.0f} prompts/s   ratio {ratio:,.1f}x datasketch "
              f"(median of {args.repeat}; range {min(np.array(r) / ds):,.0f}-{max(np.array(r) / ds):,.0f})")

    # accuracy on the same shingle sets: prompt against a paraphrase of it
    rng = np.random.default_rng(7)
    pairs = [(t, paraphrase(t, rng, rng.uniform(0.02, 0.3))) for t in sample[:args.pairs]]
    exact = []
    for a, b in pairs:
        x, y = set(shingles(a, args.shingle, args.size)), set(shingles(b, args.shingle, args.size))
        exact.append(len(x & y) / len(x | y))
    exact = np.array(exact)
    for method in ("oph", "classic"):
        sig = minhash_signatures([t for p in pairs for t in p], args.num_perm, method=method, **kw)
        err = np.abs(estimate_jaccard(sig[0::2], sig[1::2]) - exact)
        print(f"keyfarm {method:<7} |estimate - exact Jaccard| over {len(pairs)} pairs: mean {err.mean():.4f}, "
              f"max {err.max():.4f} (binomial sd at the mean J: "
              f"{np.sqrt(exact.mean() * (1 - exact.mean()) / args.num_perm):.4f})")
    err = []
    for (a, b), j in zip(pairs, exact):
        ma, mb = (_datasketch_one(MinHash, [s.encode() for s in shingles(t, args.shingle, args.size)], args.num_perm)
                  for t in (a, b))
        err.append(abs(ma.jaccard(mb) - j))
    print(f"datasketch      |estimate - exact Jaccard| over {len(pairs)} pairs: mean {np.mean(err):.4f}, "
          f"max {np.max(err):.4f}")


def _letters(i: int, first: str = "w") -> str:
    return first + "".join(chr(97 + int(d)) for d in str(i))   # letters only: digits normalise to 0


def bench_lsh(args) -> None:
    """LSH candidates of both methods against the S-curve 1 - (1 - J**rows)**bands of the exact
    Jaccard, on pairs of a 60-word text and a copy with words replaced (5-35 %: near the
    threshold; 50-70 %: distant pairs), each pair signed with its own seed; then the spread of
    the estimate's error, in classic standard errors sqrt(J(1-J)/k), by size of the union."""
    from keyfarm.signals.prompt import PromptConfig, estimate_jaccard, lsh_buckets, minhash_signatures, shingles

    cfg = PromptConfig()
    rng = np.random.default_rng(11)

    def pairs(n, lo, hi):
        out, exact = [], []
        for _ in range(n):
            words = [_letters(rng.integers(3000)) for _ in range(60)]
            b = " ".join(_letters(rng.integers(10**6), "z") if rng.random() < rng.uniform(lo, hi) else w for w in words)
            x, y = set(shingles(" ".join(words))), set(shingles(b))
            out.append((" ".join(words), b))
            exact.append(len(x & y) / len(x | y))
        return out, np.array(exact)

    for name, (ps, exact) in (("near", pairs(args.lsh, 0.05, 0.35)), ("distant", pairs(args.lsh, 0.5, 0.7))):
        expected = (1 - (1 - exact ** cfg.rows) ** cfg.bands).mean()
        line = [f"{name} pairs ({len(ps)}, mean J {exact.mean():.3f}): S-curve {expected:.4f}"]
        for method in ("oph", "classic"):
            hits = []
            for k, p in enumerate(ps):
                buckets = lsh_buckets(minhash_signatures(list(p), cfg.num_perm, seed=k, method=method),
                                      cfg.bands, cfg.rows)
                hits.append(bool((buckets[0] == buckets[1]).any()))
            line.append(f"{method} {np.mean(hits):.4f}")
        print(", ".join(line), "(share of pairs that are LSH candidates)")

    k = 256
    for method in ("oph", "classic"):
        rng = np.random.default_rng(1)
        z, union = [], []
        for seed in range(args.lsh):
            sets = [set(rng.choice(401, size=int(rng.integers(1, 121)), replace=False).tolist()) for _ in range(2)]
            exact = len(sets[0] & sets[1]) / len(sets[0] | sets[1])
            if not 0.05 < exact < 0.95:
                continue
            sig = minhash_signatures([" ".join(_letters(i) for i in sorted(s)) for s in sets], k, seed=seed,
                                     shingle="word", size=1, method=method)
            z.append((estimate_jaccard(sig[0], sig[1]) - exact) / np.sqrt(exact * (1 - exact) / k))
            union.append(len(sets[0] | sets[1]))
        z, union = np.array(z), np.array(union)
        print(f"{method:<7} sd of (estimate - J) / sqrt(J(1-J)/{k}) by union size: " + ", ".join(
            f"{lo}-{hi}: {z[(union >= lo) & (union < hi)].std():.2f}" for lo, hi in ((1, 40), (40, 100), (100, 250))))


def _datasketch_one(minhash_cls, shingle_bytes, num_perm):
    m = minhash_cls(num_perm=num_perm, seed=1)
    m.update_batch(shingle_bytes)
    return m


def _proc_status(field: str) -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith(field + ":"):
                return int(line.split()[1]) * 1024
    raise RuntimeError(f"{field} not in /proc/self/status")


def bench_world(args) -> None:
    from keyfarm.config import Config
    from keyfarm.io import load_tables
    from keyfarm.signals import prompt

    t = time.perf_counter()
    tables = load_tables(args.world)
    gc.collect()
    loaded = _proc_status("VmRSS")
    print(f"loaded {len(tables.keys):,} keys, {len(tables.requests):,} requests in {time.perf_counter() - t:.1f} s, "
          f"RSS {loaded / 2**30:.2f} GiB")
    with open("/proc/self/clear_refs", "w") as f:   # reset VmHWM (the peak) to the current RSS
        f.write("5")
    t = time.perf_counter()
    inc = prompt.incidence(tables, Config.default())
    elapsed = time.perf_counter() - t
    peak = _proc_status("VmHWM")
    print(f"prompt signal: {elapsed:.1f} s, {len(inc):,} incidence rows, peak RSS {peak / 2**30:.2f} GiB = "
          f"+{(peak - loaded) / 2**30:.2f} GiB over the loaded tables")


def main() -> None:
    from keyfarm.signals.prompt import PromptConfig

    cfg = PromptConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="*", default=[100_000])
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--pairs", type=int, default=500, help="prompt pairs of the accuracy check")
    parser.add_argument("--num-perm", type=int, default=cfg.num_perm)
    parser.add_argument("--shingle", choices=["word", "char"], default=cfg.shingle)
    parser.add_argument("--size", type=int, default=cfg.shingle_size)
    parser.add_argument("--repeat", type=int, default=5)
    parser.add_argument("--world", help="time the prompt signal and its peak memory on this world instead")
    parser.add_argument("--lsh", type=int, metavar="PAIRS", help="compare LSH candidates and estimate spread instead")
    args = parser.parse_args()
    if args.world:
        bench_world(args)
    elif args.lsh:
        bench_lsh(args)
    else:
        bench_signatures(args)


if __name__ == "__main__":
    main()
