"""Prompt signal incidence: paraphrased templates link farms, popular prompts are hubs, evidence units, odd inputs."""
from __future__ import annotations

import dataclasses

import numpy as np
import pandas as pd
import pytest

from keyfarm.config import Config
from keyfarm.graph import build_graph
from keyfarm.io import tables_from_frames
from keyfarm.signals import INCIDENCE_COLUMNS, prompt
from keyfarm.signals.prompt import PromptConfig

TEMPLATE = ("you are an expert tutor explain step by step how to solve the following {} problem "
            "show every intermediate result and give the final answer as json with fields "
            "reasoning and answer do not skip any step and keep the explanation concise")
FILLERS = ["kindly", "please", "carefully", "clearly", "briefly"]


def _letters(i: int, width: int = 4) -> str:
    return "".join(chr(97 + int(d)) for d in f"{i:0{width}d}")  # letters only: digits would normalise to 0


def _world(prompts_by_account: dict[str, list[str | None]], shuffle_seed: int | None = None):
    keys, rows = [], []
    for acc, prompts in prompts_by_account.items():
        keys.append({"key_id": f"k_{acc}", "account_id": acc, "created_at": "2026-10-01"})
        for i, p in enumerate(prompts):
            rows.append({"key_id": f"k_{acc}", "ts": f"2026-11-01T{i % 24:02d}:{i // 24 % 60:02d}:00Z",
                         "ip": f"203.0.{len(keys)}.{i % 250 + 1}", "prompt": p})
    requests = pd.DataFrame(rows)
    if shuffle_seed is not None:
        requests = requests.sample(frac=1.0, random_state=shuffle_seed).reset_index(drop=True)
    return tables_from_frames(pd.DataFrame(keys), requests=requests)


def _paraphrase(rng, topic: str) -> str:
    """The template with its slot filled, three words swapped for fillers, one word dropped."""
    words = TEMPLATE.format(topic).split()
    for i in rng.choice(len(words), size=3, replace=False):
        words[i] = rng.choice(FILLERS)
    del words[rng.integers(len(words))]
    return " ".join(words)


def _unrelated(rng, n_words: int = 30) -> str:
    return " ".join(_letters(int(i)) for i in rng.integers(0, 3000, size=n_words))


def _tokens_by_account(tables, inc) -> pd.Series:
    acc = tables.keys["account_id"].to_numpy()[inc["key"].to_numpy()]
    return pd.Series(acc).groupby(inc["token"].to_numpy()).agg(lambda s: frozenset(s))


def test_incidence_has_the_contract_columns_and_types():
    rng = np.random.default_rng(0)
    inc = prompt.incidence(_world({"a": [_paraphrase(rng, "algebra")], "b": [_paraphrase(rng, "algebra")]}),
                           Config.default())
    assert tuple(inc.columns) == INCIDENCE_COLUMNS and len(inc) > 0
    assert inc["key"].dtype == np.int64 and inc["count"].dtype == np.int64
    assert (inc["signal"] == "prompt").all() and ((inc["weight"] > 0) & (inc["weight"] <= 1)).all()
    assert str(inc["first_seen"].dtype) == "datetime64[ns, UTC]"
    assert inc["token"].str.match(r"^(lsh:\d+:[0-9a-f]{16}|pdup:[0-9a-f]{16})$").all()
    assert not inc.duplicated(["key", "token"]).any()


@pytest.mark.parametrize("method", ["oph", "classic"])
def test_paraphrased_templates_link_farm_accounts_and_unrelated_prompts_do_not(method):
    config = dataclasses.replace(Config.default(), prompt=PromptConfig(minhash=method))
    rng = np.random.default_rng(0)
    farm = {f"farm{i}": [_paraphrase(rng, t) for t in ("algebra", "geometry", "calculus")] for i in range(4)}
    others = {f"user{i}": [_unrelated(rng) for _ in range(3)] for i in range(6)}
    tables = _world({**farm, **others})
    members = _tokens_by_account(tables, prompt.incidence(tables, config))
    assert len(members) > 0 and all(all(a.startswith("farm") for a in m) for m in members)

    graph, _, _ = build_graph(tables, config)
    accounts = tables.keys["account_id"].to_numpy()
    linked = {tuple(sorted((accounts[a], accounts[b])))
              for a, b, w in zip(graph.src, graph.dst, graph.w["prompt"]) if w > 0}
    assert linked == {(f"farm{i}", f"farm{j}") for i in range(4) for j in range(i + 1, 4)}


def test_popular_prompts_are_high_degree_tokens_and_graph_hubs_while_farm_buckets_stay_in_the_farm():
    rng = np.random.default_rng(2)
    accounts = {f"a{i:02d}": ["hello", "Summarize the following text:", _unrelated(rng)] for i in range(80)}
    accounts.update({f"farm{i}": ["Hello!", _paraphrase(rng, "physics")] for i in range(5)})
    tables = _world(accounts)
    inc = prompt.incidence(tables, Config.default())
    degree = _tokens_by_account(tables, inc).map(len)
    assert degree.max() == 85  # "hello" (the farm says it too)
    assert (degree > Config.default().caps.prompt).sum() == 2  # one pdup token per popular prompt

    _, hubs, _ = build_graph(tables, Config.default())
    prompt_hubs = hubs[hubs["signal"] == "prompt"]
    assert len(prompt_hubs) == 2 and sorted(prompt_hubs["n_accounts"]) == [80, 85]
    members = _tokens_by_account(tables, inc)
    farm_tokens = members[members.map(lambda m: all(a.startswith("farm") for a in m))]
    assert frozenset().union(*farm_tokens) == {f"farm{i}" for i in range(5)}  # every farm account is tied
    assert farm_tokens.map(len).max() <= Config.default().caps.prompt        # by tokens that are not hubs


def test_one_shared_identical_prompt_is_one_unit_of_evidence_however_often_sent():
    text = TEMPLATE.format("chemistry")
    rng = np.random.default_rng(3)
    tables = _world({"a": [text] * 50, "b": [text, text.upper() + "!!"], "c": [_paraphrase(rng, "chemistry")]})
    inc = prompt.incidence(tables, Config.default())
    per_key = inc.groupby("key").agg(weight=("weight", "sum"), count=("count", "max"))
    key_a, key_b, key_c = (int(np.flatnonzero(tables.keys["account_id"] == x)[0]) for x in "abc")
    assert per_key.loc[key_a, "weight"] == pytest.approx(1.0) and per_key.loc[key_b, "weight"] == pytest.approx(1.0)
    assert per_key.loc[key_a, "count"] == 50
    # the paraphrase shares some but not all bands: less than one unit
    assert 0 < per_key.loc[key_c, "weight"] < 1.0


def test_a_chatty_key_ties_weakly_and_gains_less_evidence_than_a_quiet_one():
    rng = np.random.default_rng(1)
    shared = TEMPLATE.format("biology")
    chatty = [_unrelated(rng, 12) for _ in range(400)] + [shared]
    background = {f"user{i}": [_unrelated(rng)] for i in range(20)}  # so that the shared prompt is rare
    tables = _world({"chatty": chatty, "quiet1": [shared], "quiet2": [shared], **background})
    inc = prompt.incidence(tables, Config.default())
    by_acc = inc.assign(acc=tables.keys["account_id"].to_numpy()[inc["key"]]).groupby("acc")["weight"].sum()
    assert by_acc["chatty"] == pytest.approx(100 / 401)
    assert by_acc["quiet1"] == pytest.approx(1.0)

    graph, _, _ = build_graph(tables, Config.default())
    acc = tables.keys["account_id"].to_numpy()
    w = {tuple(sorted((acc[a], acc[b]))): x for a, b, x in zip(graph.src, graph.dst, graph.w["prompt"])}
    assert w[("chatty", "quiet1")] < 0.5 * w[("quiet1", "quiet2")]


def test_incidence_does_not_depend_on_request_order():
    rng = np.random.default_rng(4)
    prompts = {f"acc{i}": [_paraphrase(rng, t) for t in ("art", "law")] + [_unrelated(rng), "hello"]
               for i in range(6)}
    first = prompt.incidence(_world(prompts), Config.default())
    again = prompt.incidence(_world(prompts, shuffle_seed=7), Config.default())
    pd.testing.assert_frame_equal(first, again)


def test_empty_emoji_and_whitespace_prompts_emit_nothing_and_short_prompts_do_not_collapse():
    odd = {"a": ["", "   ", "😀😀", None, "hi"], "b": ["", "\t\n", "😀😀", None, "yo"], "c": ["ok", "🚀"]}
    tables = _world(odd)
    assert len(prompt.incidence(tables, Config.default())) == 0
    # equal short prompts do link
    inc = prompt.incidence(_world({"a": ["hi!"], "b": ["Hi"]}), Config.default())
    assert inc["key"].nunique() == 2 and inc["token"].nunique() == 1


def test_non_latin_and_very_long_prompts_link():
    long = "Опишите подробно " + "длинный текст " * 8000   # ~120 kB, cut at max_chars
    tables = _world({"a": [long, "你好世界，这是一个测试提示词，请帮我翻译"], "b": [long + "!", "你好世界 这是一个测试提示词 请帮我翻译"]})
    inc = prompt.incidence(tables, Config.default())
    assert inc.groupby("key")["weight"].sum().round(9).tolist() == [2.0, 2.0]


def test_incidence_reads_the_prompt_section_of_any_config_object():
    class Tiny:
        prompt = PromptConfig(num_perm=64, bands=16, rows=4, shingle="char", shingle_chars=4)

    rng = np.random.default_rng(5)
    tables = _world({"a": [_paraphrase(rng, "music")], "b": [_paraphrase(rng, "music")]})
    inc = prompt.incidence(tables, Tiny())
    assert inc["key"].nunique() == 2
    assert inc.loc[inc["token"].str.startswith("lsh:"), "token"].str.split(":").str[1].astype(int).max() < 16


def test_token_examples_pick_the_smallest_hash_prompt_per_key_and_token_and_only_wanted_ones():
    """Of a key's prompts reaching a wanted token (here the pdup token of one normalised text and
    an LSH band bucket), the example is the raw prompt of smallest 64-bit hash; a key or token not
    wanted gets nothing, a wanted token the key does not reach gets nothing."""
    from keyfarm.signals.prompt import band_buckets, distinct_normalized
    from keyfarm.signals.prompt_examples import token_examples

    config = Config.default()
    variants = ["Summarise this report about the harbour, please", "summarise THIS report about the harbour please!",
                "Summarise  this report about the harbour, please."]
    other = "an unrelated question about compilers and linkers"
    raw = np.array(variants + [other], dtype=object)
    _, text_hash, _, _ = distinct_normalized(raw, config.prompt)
    bucket = band_buckets(raw, config.prompt)
    pdup = f"pdup:{int(text_hash[0]):016x}"
    lsh = f"lsh:3:{int(bucket[0, 3]):016x}"
    pairs = pd.DataFrame({"key": [0, 0, 0, 0, 1, 2], "prompt": variants + [other, variants[0], variants[1]]})
    needed = pd.DataFrame({"key": [0, 0, 1, 3], "token": [pdup, lsh, lsh, pdup]})
    got = token_examples(pairs, needed, config)
    rank = pd.util.hash_array(np.array(variants, dtype=object), categorize=False)
    best = variants[int(np.argmin(rank))]
    assert got.to_dict("list") == {"key": [0, 0, 1], "token": sorted([pdup, lsh])[:2] + [lsh],
                                   "prompt": [best, best, variants[0]]}


def test_shared_bucket_ids_number_shared_buckets_band_by_band_in_order_of_first_appearance():
    """Against pd.factorize per band: buckets of one prompt get −1, shared ones consecutive ids
    (band after band, first appearance within a band), and (band, hash) per id."""
    rng = np.random.default_rng(11)
    values = rng.integers(0, 2**63, 40, dtype=np.int64).astype(np.uint64)
    buckets = values[rng.integers(0, 40, (300, 6))]
    buckets[rng.uniform(size=buckets.shape) < 0.3] = rng.integers(0, 2**63, 1, dtype=np.int64).astype(np.uint64)
    fresh = rng.uniform(size=buckets.shape) < 0.2
    buckets[fresh] = rng.integers(0, 2**63, int(fresh.sum()), dtype=np.int64).astype(np.uint64)
    expected, table, start = np.empty(buckets.shape, np.int64), [], 0
    for band in range(buckets.shape[1]):
        codes, uniques = pd.factorize(buckets[:, band])
        shared = np.bincount(codes) >= 2
        number = np.where(shared, np.cumsum(shared) - 1 + start, -1)
        expected[:, band] = number[codes]
        table += [(band, int(h)) for h in np.asarray(uniques, np.uint64)[shared]]
        start += int(shared.sum())
    ids, bucket_hash = prompt.shared_bucket_ids(buckets.copy())
    assert (expected >= 0).any() and (expected < 0).any()
    assert ids.tolist() == expected.tolist()
    assert [(int(b), int(h)) for b, h in bucket_hash] == table
