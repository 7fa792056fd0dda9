"""Which shingling separates paraphrased prompt templates from unrelated prompts, and which LSH banding?

    .venv/bin/python scripts/measure_shingles.py --templates 300 --pairs 3000 --seed 0
    .venv/bin/python scripts/measure_shingles.py --world 6000     # prompt evidence on a generated world

Generated world: templates of 20-120 words from a Zipf vocabulary (common English function words
plus a long tail). A paraphrase of a template fills its 3 slot words, swaps words for synonyms or
inflections (`s`/`ed`/`ing`), inserts filler words and deletes words, at an edit rate per word of
5 % (light), 10 % (medium) or 20 % (heavy). Negatives are pairs of different templates, half of
them sharing a 12-word boilerplate system prompt. For each shingling: mean exact Jaccard of
positives and negatives, AUC (probability a positive pair out-scores a negative one), and for
banding options with bands × rows <= 128 the expected recall of positives and false-positive rate
of negatives, P(candidate) = 1 - (1 - J**rows)**bands, plus the expected evidence J**rows per pair.
With --world N: a keyfarm.synth world of N keys (seed 11); per setting, w_prompt summed over key
pairs inside one farm and over all other pairs (noise), and farm keys with a same-farm prompt edge.
"""
from __future__ import annotations

import argparse

import numpy as np

from keyfarm.signals.prompt import shingles

FUNCTION = ("the a of to and in is for on with as by at from that this it be are or an which you your "
            "please can what how explain write list give step answer question problem text following").split()
SYNONYMS = {"explain": "describe", "write": "compose", "give": "provide", "list": "enumerate",
            "answer": "reply", "question": "query", "problem": "task", "text": "passage",
            "please": "kindly", "following": "next", "step": "stage", "how": "in what way"}
FILLERS = ("please", "kindly", "carefully", "briefly", "also", "now", "really", "just")
BOILERPLATE = "you are a helpful assistant answer truthfully and concisely and follow the instructions"


def make_vocab(rng, size=5000) -> np.ndarray:
    letters = np.array(list("abcdefghijklmnopqrstuvwxyz"))
    tail = ["".join(rng.choice(letters, size=rng.integers(3, 10))) for _ in range(size)]
    return np.array(FUNCTION + tail, dtype=object)


def zipf_words(rng, vocab, n) -> list[str]:
    p = 1.0 / np.arange(1, vocab.size + 1) ** 1.05
    return list(vocab[rng.choice(vocab.size, size=n, p=p / p.sum())])


def paraphrase(rng, template: list[str], slots: list[int], vocab, rate: float) -> str:
    words = list(template)
    for s in slots:                                             # the task item
        words[s] = str(vocab[rng.integers(len(FUNCTION), vocab.size)])
    out = []
    for w in words:
        r = rng.random()
        if r < rate / 3:                                        # synonym or inflection
            out.append(SYNONYMS.get(w) or w + str(rng.choice(["s", "ed", "ing"])))
        elif r < 2 * rate / 3:                                  # deletion
            continue
        elif r < rate:                                          # insertion
            out += [w, str(rng.choice(FILLERS))]
        else:
            out.append(w)
    return " ".join(out)


def auc(pos: np.ndarray, neg: np.ndarray) -> float:
    allv = np.concatenate([pos, neg])
    ranks = np.argsort(np.argsort(allv, kind="stable"), kind="stable") + 1.0
    # average ranks of ties
    _, inv, counts = np.unique(allv, return_inverse=True, return_counts=True)
    sums = np.bincount(inv, weights=ranks)
    ranks = (sums / counts)[inv]
    return float((ranks[:pos.size].sum() - pos.size * (pos.size + 1) / 2) / (pos.size * neg.size))


def jaccard(a: str, b: str, kind: str, n: int) -> float:
    x, y = set(shingles(a, kind, n)), set(shingles(b, kind, n))
    return len(x & y) / len(x | y) if x | y else 0.0


WORLD_SETTINGS = [("word", 3, 32, 4), ("word", 3, 42, 3), ("word", 2, 32, 4), ("word", 1, 16, 8),
                  ("char", 4, 25, 5), ("char", 5, 25, 5), ("char", 7, 25, 5), ("char", 7, 32, 4), ("char", 9, 32, 4)]


def measure_world(n_keys: int) -> None:
    import dataclasses

    import pandas as pd

    from keyfarm.config import Config
    from keyfarm.graph import build_graph
    from keyfarm.io import tables_from_frames
    from keyfarm.signals.prompt import PromptConfig
    from keyfarm.synth import generate_world

    w = generate_world(n_keys, seed=11)
    t = tables_from_frames(w["keys"], accounts=w["accounts"], payments=w["payments"], requests=w["requests"])
    farm = w["truth"].set_index("key_id")["farm_id"].reindex(t.keys["key_id"]).to_numpy()
    print(f"world of {n_keys} keys, {int(pd.notna(farm).sum())} farm keys")
    for kind, n, b, r in WORLD_SETTINGS:
        pc = PromptConfig(shingle=kind, shingle_words=n, shingle_chars=n, bands=b, rows=r)
        g, _, _ = build_graph(t, dataclasses.replace(Config.default(), prompt=pc))
        wp = g.w["prompt"]
        m = wp > 0
        fa, fb = farm[g.src[m]], farm[g.dst[m]]
        same = (fa == fb) & pd.notna(fa)
        linked = np.unique(np.concatenate([g.src[m][same], g.dst[m][same]])).size
        print(f"{kind}-{n} {b}x{r}: prompt edges {m.sum():>6}, inside farms {same.sum():>5} "
              f"(w {wp[m][same].sum():7.1f}), outside {(~same).sum():>6} (w {wp[m][~same].sum():7.1f}), "
              f"farm keys linked {linked}")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--templates", type=int, default=300)
    parser.add_argument("--pairs", type=int, default=3000)
    parser.add_argument("--seed", type=int, default=0)
    parser.add_argument("--world", type=int, default=0, help="measure on a generated world of this many keys")
    args = parser.parse_args()
    if args.world:
        measure_world(args.world)
        return
    rng = np.random.default_rng(args.seed)
    vocab = make_vocab(rng)
    templates = [zipf_words(rng, vocab, int(rng.integers(20, 121))) for _ in range(args.templates)]
    slots = [list(rng.choice(len(t), size=3, replace=False)) for t in templates]

    shinglings = [("word", 1), ("word", 2), ("word", 3), ("word", 4), ("char", 4), ("char", 5), ("char", 7),
                  ("char", 9)]
    bandings = [(64, 2), (42, 3), (32, 4), (25, 5), (21, 6), (16, 8)]
    rates = {"light": 0.05, "medium": 0.10, "heavy": 0.20}
    pos_pairs = {}
    for name, rate in rates.items():
        pos_pairs[name] = []
        for _ in range(args.pairs):
            t = int(rng.integers(args.templates))
            pos_pairs[name].append((paraphrase(rng, templates[t], slots[t], vocab, rate),
                                    paraphrase(rng, templates[t], slots[t], vocab, rate)))
    neg_pairs = []
    for i in range(args.pairs):
        s, t = rng.choice(args.templates, size=2, replace=False)
        a = paraphrase(rng, templates[s], slots[s], vocab, 0.1)
        b = paraphrase(rng, templates[t], slots[t], vocab, 0.1)
        if i % 2:
            a, b = BOILERPLATE + " " + a, BOILERPLATE + " " + b
        neg_pairs.append((a, b))

    print(f"{args.pairs} pairs per class, {args.templates} templates, seed {args.seed}")
    print("shingle  | mean J: light medium heavy  negative | AUC (medium vs neg) AUC (heavy vs neg)")
    results = {}
    for kind, n in shinglings:
        pos = {name: np.array([jaccard(a, b, kind, n) for a, b in pairs]) for name, pairs in pos_pairs.items()}
        neg = np.array([jaccard(a, b, kind, n) for a, b in neg_pairs])
        results[(kind, n)] = (pos, neg)
        print(f"{kind}-{n:<3}  |         {pos['light'].mean():.3f}  {pos['medium'].mean():.3f} "
              f" {pos['heavy'].mean():.3f}  {neg.mean():.4f}   | {auc(pos['medium'], neg):.4f}"
              f"              {auc(pos['heavy'], neg):.4f}")
    print("\nLSH banding (expected): recall of medium / heavy paraphrase pairs, false-positive rate of negatives,"
          " mean evidence J**rows of medium pairs")
    for kind, n in shinglings:
        pos, neg = results[(kind, n)]
        cells = []
        for b, r in bandings:
            def cand(j):
                return 1 - (1 - j ** r) ** b
            cells.append(f"{b}x{r} (t={(1 / b) ** (1 / r):.2f}): {cand(pos['medium']).mean():.3f}/"
                         f"{cand(pos['heavy']).mean():.3f} fp {cand(neg).mean():.5f} ev {(pos['medium'] ** r).mean():.3f}")
        print(f"{kind}-{n}:\n    " + "\n    ".join(cells))


if __name__ == "__main__":
    main()
