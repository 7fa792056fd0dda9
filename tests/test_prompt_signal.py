"""Prompt similarity: MinHash accuracy, paraphrase linking, popular prompts as hubs, odd inputs."""
from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from hypothesis import given, settings, strategies as st

from keyfarm.config import Config
from keyfarm.graph import build_graph
from keyfarm.io import tables_from_frames
from keyfarm.signals import prompt
from keyfarm.signals.prompt import estimate_jaccard, minhash_signatures, normalize

NUM_PERM = 256


@settings(max_examples=40, deadline=None)
@given(st.sets(st.integers(0, 400), min_size=5, max_size=120),
       st.sets(st.integers(0, 400), min_size=5, max_size=120))
def test_estimated_jaccard_is_within_four_standard_errors(a, b):
    # one word per element and shingles of one word: the shingle sets are exactly a and b
    # (words of letters only: normalisation turns digits into 0)
    word = lambda i: "w" + "".join(chr(97 + int(d)) for d in str(i))  # noqa: E731
    texts = [" ".join(word(i) for i in sorted(a)), " ".join(word(i) for i in sorted(b))]
    sig = minhash_signatures(texts, NUM_PERM, seed=3, shingle_words=1)
    exact = len(a & b) / len(a | b)
    tolerance = 4 * np.sqrt(max(exact * (1 - exact), 1 / NUM_PERM) / NUM_PERM)
    assert abs(estimate_jaccard(sig[0], sig[1]) - exact) <= tolerance


def test_same_seed_same_signatures_and_identical_texts_match():
    texts = ["the quick brown fox jumps over the lazy dog", "The QUICK brown fox, jumps over the lazy dog!"]
    a = minhash_signatures(texts, 128, seed=1)
    assert a.dtype == np.uint32 and a.shape == (2, 128)
    np.testing.assert_array_equal(a, minhash_signatures(texts, 128, seed=1))
    assert estimate_jaccard(a[0], a[1]) == 1.0  # equal after normalisation
    assert not np.array_equal(a, minhash_signatures(texts, 128, seed=2))


def test_odd_prompts_are_handled():
    long = "word " * 25_000  # 125 kB
    texts = ["", "   ", "你好世界，这是一个测试提示词", "😀😀😀 🚀", "Привет, как дела сегодня утром", long]
    sig = minhash_signatures(texts, 64)
    assert sig.shape == (6, 64)
    assert (sig[0] == 0xFFFFFFFF).all() and (sig[1] == 0xFFFFFFFF).all()  # no shingles
    assert normalize(["😀😀😀 🚀"]).tolist() == [""]
    assert normalize(["Привет, КАК дела 2024"]).tolist() == ["привет как дела 0000"]


def _world(prompts_by_account: dict[str, list[str]]):
    keys, rows = [], []
    for acc, prompts in prompts_by_account.items():
        keys.append({"key_id": f"k_{acc}", "account_id": acc, "created_at": "2026-10-01"})
        for i, p in enumerate(prompts):
            rows.append({"key_id": f"k_{acc}", "ts": f"2026-11-01T{i % 24:02d}:00:00Z",
                         "ip": f"203.0.{len(keys)}.{i % 250 + 1}", "prompt": p})
    return tables_from_frames(pd.DataFrame(keys), requests=pd.DataFrame(rows))


TEMPLATE = ("you are an expert tutor explain step by step how to solve the following {} problem "
            "show every intermediate result and give the final answer as json with fields "
            "reasoning and answer do not skip any step and keep the explanation concise")


def _paraphrase(rng, topic):
    words = TEMPLATE.format(topic).split()
    for i in rng.choice(len(words), size=3, replace=False):
        words[i] = rng.choice(["kindly", "please", "carefully", "clearly", "briefly"])
    return " ".join(words)


def test_paraphrased_templates_link_accounts_and_unrelated_prompts_do_not():
    rng = np.random.default_rng(0)
    farm = {f"farm{i}": [_paraphrase(rng, t) for t in ("algebra", "geometry", "calculus")] for i in range(4)}
    vocab = ["".join(chr(97 + int(d)) for d in f"{i:04d}") for i in range(3000)]  # letters only
    others = {f"user{i}": [" ".join(rng.choice(vocab, size=30)) for _ in range(3)] for i in range(6)}
    tables = _world({**farm, **others})
    graph, hubs, _ = build_graph(tables, Config.default())
    accounts = tables.keys["account_id"].to_numpy()
    linked = {tuple(sorted((accounts[a], accounts[b]))): w
              for a, b, w in zip(graph.src, graph.dst, graph.w["prompt"]) if w > 0}
    farm_pairs = {tuple(sorted((f"farm{i}", f"farm{j}"))) for i in range(4) for j in range(i + 1, 4)}
    assert farm_pairs <= set(linked)
    assert all(a.startswith("farm") and b.startswith("farm") for a, b in linked)


def test_popular_prompts_become_hubs():
    own = ["".join(chr(97 + int(d)) for d in f"{i:03d}") for i in range(80)]
    accounts = {f"a{i}": ["hello", "Summarize the following text:", f"my own question about {own[i]} and {own[i]}s"]
                for i in range(80)}
    tables = _world(accounts)
    _, hubs, _ = build_graph(tables, Config.default())
    prompt_hubs = hubs[hubs["signal"] == "prompt"]
    assert len(prompt_hubs) == 2 and (prompt_hubs["n_accounts"] == 80).all()


def test_a_chatty_key_is_scaled_down():
    rng = np.random.default_rng(1)
    chatty = [" ".join(rng.choice(["".join(chr(97 + int(d)) for d in f"{i:03d}") for i in range(500)], size=12))
              for _ in range(300)]
    tables = _world({"chatty": chatty + [TEMPLATE.format("x")], "quiet": [TEMPLATE.format("x")]})
    inc = prompt.incidence(tables, Config.default())
    chatty_key = int(np.flatnonzero(tables.keys["account_id"] == "chatty")[0])
    assert inc.loc[inc["key"] == chatty_key, "weight"].max() < 1.0
