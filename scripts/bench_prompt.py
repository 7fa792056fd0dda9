"""Benchmark: MinHash signatures of prompts, keyfarm (Numba) against datasketch, in the same run.

    .venv/bin/python scripts/bench_prompt.py --sizes 100000 1000000 --sample 2000 --repeat 3

Prompts are 20-400 words drawn from a Zipf vocabulary. Both sides hash the same shingles (the
configured kind, by default character 9-grams of the normalised text, from
keyfarm.signals.prompt.shingles) with the same num_perm; datasketch runs on a sample (it is far
slower) with `update_batch`, its fastest per-document path, and is timed on the shingles alone
(shingling not counted). keyfarm's time includes UTF-8 encoding, normalisation, shingling and
hashing, from Python strings to the signature matrix. Prints prompts/s and the ratio (medians);
keyfarm is also timed on the sample (serial and parallel kernels) for a like-for-like ratio.
"""
from __future__ import annotations

import argparse
import statistics
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


def _median_time(fn, repeat: int) -> float:
    times = []
    for _ in range(repeat):
        t = time.perf_counter()
        fn()
        times.append(time.perf_counter() - t)
    return statistics.median(times)


def main() -> None:
    from datasketch import MinHash

    from keyfarm.signals.prompt import PromptConfig, minhash_signatures, shingles

    cfg = PromptConfig()
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000])
    parser.add_argument("--sample", type=int, default=2000)
    parser.add_argument("--num-perm", type=int, default=cfg.num_perm)
    parser.add_argument("--shingle", choices=["word", "char"], default=cfg.shingle)
    parser.add_argument("--size", type=int, default=cfg.shingle_size)
    parser.add_argument("--repeat", type=int, default=3)
    args = parser.parse_args()
    kw = dict(shingle=args.shingle, size=args.size)
    for par in (False, True):  # compile (or load the cache) outside the timings
        minhash_signatures(["warm up the jit"] * 10, args.num_perm, parallel=par, **kw)

    sample = make_prompts(args.sample, seed=99)
    sample_shingles = [[s.encode() for s in shingles(t, args.shingle, args.size)] for t in sample]
    print(f"{args.shingle} {args.size}-grams, num_perm={args.num_perm}, "
          f"{np.mean([len(s) for s in sample_shingles]):.0f} shingles per prompt on average")

    def run_datasketch():
        for sh in sample_shingles:
            m = MinHash(num_perm=args.num_perm, seed=1)
            m.update_batch(sh)

    ds_rate = args.sample / _median_time(run_datasketch, args.repeat)
    print(f"datasketch        {args.sample:>9,} prompts: {ds_rate:>12,.0f} prompts/s (median of {args.repeat})")
    for par in (False, True):
        rate = args.sample / _median_time(lambda: minhash_signatures(sample, args.num_perm, parallel=par, **kw),
                                          args.repeat)
        print(f"keyfarm {'parallel' if par else 'serial  '}  {args.sample:>9,} prompts: {rate:>12,.0f} prompts/s "
              f"(median of {args.repeat})  ratio {rate / ds_rate:,.1f}x datasketch")
    for n in args.sizes:
        prompts = make_prompts(n, seed=n)
        for par in (False, True):
            rate = n / _median_time(lambda: minhash_signatures(prompts, args.num_perm, parallel=par, **kw),
                                    args.repeat)
            print(f"keyfarm {'parallel' if par else 'serial  '}  {n:>9,} prompts: {rate:>12,.0f} prompts/s "
                  f"(median of {args.repeat})  ratio {rate / ds_rate:,.1f}x datasketch")
        del prompts


if __name__ == "__main__":
    main()
