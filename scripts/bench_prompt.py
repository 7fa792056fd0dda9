"""Benchmark: MinHash signatures of prompts, keyfarm (Numba) against datasketch, in the same run.

    .venv/bin/python scripts/bench_prompt.py --sizes 100000 1000000 --sample 2000 --repeat 3
Prompts are 20-200 words drawn from a Zipf vocabulary (realistic overlap). Both sides hash the same
shingles (word 3-grams of the normalised text) with num_perm=128; datasketch runs on a sample
(it is far slower) with `update_batch`, its fastest per-document path. keyfarm's time includes
normalisation, UTF-8 encoding, shingling and hashing. Prints prompts/s and the ratio (medians).
"""
from __future__ import annotations

import argparse
import statistics
import time

import numpy as np


def make_prompts(n: int, seed: int = 0) -> list[str]:
    rng = np.random.default_rng(seed)
    vocab = np.array([f"w{i}" for i in range(20_000)], dtype=object)
    p = 1.0 / np.arange(1, vocab.size + 1) ** 1.05
    lengths = rng.integers(20, 201, size=n)
    words = rng.choice(vocab.size, size=int(lengths.sum()), p=p / p.sum())
    cuts = np.cumsum(lengths)[:-1]
    return [" ".join(vocab[chunk]) for chunk in np.split(words, cuts)]


def main() -> None:
    from datasketch import MinHash

    from keyfarm.signals.prompt import minhash_signatures, normalize

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--num-perm", type=int, default=128)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    minhash_signatures(["warm up the jit"] * 3000, args.num_perm)  # compile (or load the cache)

    sample = make_prompts(args.sample, seed=99)
    shingles = []
    for text in normalize(sample):
        words = text.split(" ")
        shingles.append([" ".join(words[i:i + 3]).encode() for i in range(len(words) - 2)])
    ds_times = []
    for _ in range(args.repeat):
        t = time.perf_counter()
        for sh in shingles:
            m = MinHash(num_perm=args.num_perm, seed=1)
            m.update_batch(sh)
        ds_times.append(time.perf_counter() - t)
    ds_rate = args.sample / statistics.median(ds_times)
    print(f"datasketch  {args.sample:>9,} prompts: {ds_rate:>12,.0f} prompts/s (median of {args.repeat})")
    for n in args.sizes:
        prompts = make_prompts(n, seed=n)
        times = []
        for _ in range(args.repeat):
            t = time.perf_counter()
            minhash_signatures(prompts, args.num_perm, 1)
            times.append(time.perf_counter() - t)
        rate = n / statistics.median(times)
        print(f"keyfarm     {n:>9,} prompts: {rate:>12,.0f} prompts/s (median of {args.repeat})  "
              f"ratio {rate / ds_rate:,.1f}x datasketch")


if __name__ == "__main__":
    main()
