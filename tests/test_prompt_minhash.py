"""MinHash of prompts: normalisation, shingles, signatures against a pure-Python reference, Jaccard accuracy."""
from __future__ import annotations

import re
import unicodedata

import numpy as np
import pytest
from hypothesis import given, settings, strategies as st

from keyfarm.errors import KeyfarmConfigError
from keyfarm.signals import minhash
from keyfarm.signals.prompt import (PromptConfig, _normalized_buffer, _oph_salts, _permutations, estimate_jaccard, lsh_buckets,
                                    minhash_signatures, normalize, shingles)

M64 = (1 << 64) - 1
P31 = (1 << 31) - 1
ODD_TEXTS = ["", "   \t\n ", "hi", "Hello, World!", "你好世界，这是一个测试提示词", "😀😀😀 🚀", "🚀 launch 🚀 now",
             "Привет, КАК дела 2024?", "नमस्ते दुनिया आज", "ÉCOLE_normale  supérieure — ２０２４年",
             "a\u0000b", "x" * 50, "one two three four five six seven"]


# ------------------------------------------------------------------ pure-Python references

def ref_normalize(text: str) -> str:
    """The documented normalisation, one character at a time."""
    out, pending = [], False
    for ch in text:
        cat = unicodedata.category(ch) if ord(ch) < 0x40000 else "Cn"
        if cat == "Nd":
            ch = "0"
        elif cat[0] in "LMN":
            ch = ch.lower() if len(ch.lower()) == 1 else ch
        else:
            pending = True
            continue
        if pending and out:
            out.append(" ")
        pending = False
        out.append(ch)
    return "".join(out)


def _fnv(data: bytes) -> int:
    h = 0xCBF29CE484222325
    for c in data:
        h = ((h ^ c) * 0x100000001B3) & M64
    return h


def _mix(x: int) -> int:
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & M64
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & M64
    return x ^ (x >> 31)


def ref_shingle_hashes(text: str, kind: str, size: int) -> list[int]:
    norm = ref_normalize(text)
    if not norm:
        return []
    if kind == "word":
        words = [_fnv(w.encode()) for w in norm.split(" ")]
        grams = [words[i:i + size] for i in range(len(words) - size + 1)] or [words]
        hashes = []
        for gram in grams:
            h = 0x9E3779B97F4A7C15
            for w in gram:
                h = _mix(h ^ w)
            hashes.append(h)
    else:
        grams = [norm[i:i + size] for i in range(len(norm) - size + 1)] or [norm]
        hashes = [_mix(_fnv(g.encode())) for g in grams]
    return hashes


def ref_signature(text: str, num_perm: int, seed: int, kind: str, size: int) -> list[int]:
    """Classic MinHash: num_perm universal hash functions, the least value of each."""
    hashes = ref_shingle_hashes(text, kind, size)
    if not hashes:
        return [0xFFFFFFFF] * num_perm
    a, b = _permutations(num_perm, seed)
    return [min((int(a[p]) * (h >> 33) + int(b[p])) % P31 for h in hashes) for p in range(num_perm)]


def ref_oph_signature(text: str, k: int, seed: int, kind: str, size: int) -> list[int]:
    """One-permutation MinHash as documented: a bin and a value per shingle, least value per bin,
    then each empty bin copies the first non-empty bin along its probe sequence."""
    if kind == "word":
        hashes = ref_shingle_hashes(text, kind, size)
    else:   # character n-grams: the polynomial of their code points in GOLDEN, mod 2**64
        hashes = [sum(ord(ch) * pow(0x9E3779B97F4A7C15, len(g) - 1 - i, 1 << 64) for i, ch in enumerate(g)) & M64
                  for g in shingles(text, kind, size)]
    if not hashes:
        return [0xFFFFFFFF] * k
    salt, probe_salt = (int(x) for x in _oph_salts(seed))
    to_bin = lambda g: ((g >> 32) * k) >> 32  # noqa: E731
    mins = [None] * k
    for h in hashes:
        g = _mix(h ^ salt)
        j, v = to_bin(g), (g & 0xFFFFFFFF) >> 1
        mins[j] = v if mins[j] is None else min(mins[j], v)
    out = []
    for j in range(k):
        t = 0
        while mins[j] is None and mins[to_bin(_mix(probe_salt ^ (j << 32 | t)))] is None:
            t += 1
        out.append(mins[j] if mins[j] is not None else mins[to_bin(_mix(probe_salt ^ (j << 32 | t)))])
    return out


# ------------------------------------------------------------------ normalisation and shingles

@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text(alphabet=st.characters(max_codepoint=127), max_size=80))
def test_ascii_normalisation_matches_the_regex_definition(text):
    expected = re.sub(r"\s+", " ", re.sub(r"[^\w\s]|_", " ", re.sub(r"\d", "0", text.lower()))).strip()
    assert normalize(text) == expected


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.text(max_size=60))
def test_unicode_normalisation_matches_the_reference(text):
    assert normalize(text) == ref_normalize(text)


def test_normalisation_keeps_non_latin_words_and_drops_emoji():
    assert normalize("Привет, КАК дела 2024?! 😀") == "привет как дела 0000"
    assert normalize("你好世界，这是一个测试提示词") == "你好世界 这是一个测试提示词"
    assert normalize("नमस्ते दुनिया") == "नमस्ते दुनिया"   # combining vowel signs stay inside words
    assert normalize("😀😀😀 🚀") == "" and normalize("  \t\n") == ""
    assert normalize("２０２４年") == "0000年"


def test_shingles_are_ngrams_and_short_texts_are_one_shingle():
    assert shingles("The quick, brown fox jumps!", kind="word", size=3) == ["the quick brown", "quick brown fox", "brown fox jumps"]
    assert shingles("Hello there", kind="word", size=3) == ["hello there"]
    assert shingles("") == [] and shingles("🚀") == []
    assert shingles("Héllo", kind="char", size=3) == ["hél", "éll", "llo"]
    assert shingles("ab", kind="char", size=5) == ["ab"]


# ------------------------------------------------------------------ signatures

@pytest.mark.parametrize("kind,size", [("word", 3), ("word", 1), ("char", 4)])
@pytest.mark.parametrize("method,reference", [("classic", ref_signature), ("oph", ref_oph_signature)])
def test_signatures_equal_the_pure_python_reference(kind, size, method, reference):
    sig = minhash_signatures(ODD_TEXTS, 32, seed=7, shingle=kind, size=size, method=method)
    assert sig.dtype == np.uint32 and sig.shape == (len(ODD_TEXTS), 32)
    for text, row in zip(ODD_TEXTS, sig):
        assert row.tolist() == reference(text, 32, 7, kind, size), text


def test_one_permutation_is_the_default_and_fills_every_bin_of_a_short_text():
    texts = ["a short one", "hi"]   # 3 and 1 shingles into 128 bins
    sig = minhash_signatures(texts, 128)
    np.testing.assert_array_equal(sig, minhash_signatures(texts, 128, method="oph"))
    assert not np.array_equal(sig, minhash_signatures(texts, 128, method="classic"))
    assert (sig < 2**31).all() and len(set(sig[1].tolist())) == 1 and len(set(sig[0].tolist())) <= 3


@settings(max_examples=150, derandomize=True, deadline=None)
@given(st.lists(st.text(max_size=40), min_size=1, max_size=8), st.integers(1, 30))
def test_normalising_on_the_fly_signs_as_the_normalised_copy_does(texts, max_chars):
    # the default path reads raw UTF-8 (oph_raw_*); the same kernel over normalize()'s output must agree
    buf, offsets = _normalized_buffer(texts, max_chars)
    copied = minhash.oph_serial(buf, offsets, minhash.CHARS, np.int64(4), _oph_salts(2), np.int64(16),
                                np.array([0, len(texts)]))
    np.testing.assert_array_equal(minhash_signatures(texts, 16, seed=2, size=4, max_chars=max_chars), copied)


def _branchy_signatures(buf, offsets, max_chars, size, k, seed):
    """Each document through the general one-pass kernel (oph_raw_char_doc) alone."""
    cls, lower = minhash.char_tables()
    salt, probe = _oph_salts(seed)
    out = np.empty((offsets.size - 1, k), np.uint32)
    for d in range(offsets.size - 1):
        mins = np.full(k + 1, minhash.EMPTY, np.uint32)
        m = minhash.oph_raw_char_doc(buf, offsets[d], offsets[d + 1], cls, lower, minhash.ascii_outputs(),
                                     np.int64(max_chars), np.int64(size), salt, mins)
        out[d] = minhash.EMPTY if m == 0 else 0
        if m:
            minhash.densify(mins[:k], probe, out[d])
    return out


@settings(max_examples=200, derandomize=True, deadline=None)
@given(st.lists(st.binary(max_size=60) | st.text(alphabet="ab .,\t-É日😀\u00a0", max_size=60).map(
    lambda t: t.encode("utf-8")), min_size=1, max_size=6), st.sampled_from([3, 7, 1000]), st.integers(2, 9))
def test_two_pass_kernel_signs_as_the_one_pass_kernel(docs, max_chars, size):
    # oph_raw_* takes the branch-free two passes (flat_code_points, oph_code_points) for most
    # documents; any bytes (invalid UTF-8, trailing separators, cuts) must sign as the one pass does
    buf = np.frombuffer(b"".join(docs), np.uint8) if any(docs) else np.zeros(0, np.uint8)
    offsets = np.concatenate([[0], np.cumsum([len(d) for d in docs])]).astype(np.int64)
    cls, lower = minhash.char_tables()
    got = minhash.oph_raw_serial(buf, offsets, cls, lower, minhash.ascii_outputs(), np.int64(max_chars),
                                 np.int64(size), _oph_salts(3), np.int64(16), np.array([0, len(docs)]))
    np.testing.assert_array_equal(got, _branchy_signatures(buf, offsets, max_chars, size, 16, 3))


@pytest.mark.parametrize("method", ["oph", "classic"])
def test_serial_and_parallel_kernels_agree(method):
    rng = np.random.default_rng(0)
    texts = [" ".join(rng.choice(["alpha", "beta", "гамма", "δέλτα", "数据", "x"], size=rng.integers(0, 30)))
             for _ in range(300)]
    for kind in ("word", "char"):
        np.testing.assert_array_equal(minhash_signatures(texts, 64, shingle=kind, parallel=False, method=method),
                                      minhash_signatures(texts, 64, shingle=kind, parallel=True, method=method))


@pytest.mark.parametrize("method", ["oph", "classic"])
@settings(max_examples=60, derandomize=True, deadline=None)
@given(a=st.sets(st.integers(0, 400), min_size=1, max_size=120), b=st.sets(st.integers(0, 400), min_size=1, max_size=120),
       seed=st.integers(0, 2**32))
def test_estimated_jaccard_is_within_four_standard_errors_of_exact(method, a, b, seed):
    # one word per element and 1-word shingles: the shingle sets are exactly a and b. The classic
    # estimate is a binomial share over num_perm functions: standard error sqrt(J(1-J)/num_perm);
    # one-permutation hashing with optimal densification is at least as accurate (Shrivastava 2017).
    num_perm = 256
    word = lambda i: "w" + "".join(chr(97 + int(d)) for d in str(i))  # noqa: E731  (letters only)
    texts = [" ".join(word(i) for i in sorted(a)), " ".join(word(i) for i in sorted(b))]
    sig = minhash_signatures(texts, num_perm, seed=seed, shingle="word", size=1, method=method)
    exact = len(a & b) / len(a | b)
    tolerance = 4 * np.sqrt(exact * (1 - exact) / num_perm) + 1e-12
    assert abs(estimate_jaccard(sig[0], sig[1]) - exact) <= tolerance


@pytest.mark.parametrize("method", ["oph", "classic"])
def test_estimated_jaccard_is_unbiased_over_many_pairs(method):
    rng = np.random.default_rng(5)
    errors = []
    for k in range(300):
        a = set(rng.choice(300, size=60, replace=False).tolist())
        b = set(rng.choice(300, size=60, replace=False).tolist()) | set(list(a)[:30])
        texts = [" ".join(f"t{chr(97 + i % 26)}{chr(97 + i // 26)}" for i in sorted(s)) for s in (a, b)]
        sig = minhash_signatures(texts, 128, seed=k, shingle="word", size=1, method=method)  # independent per pair
        errors.append(estimate_jaccard(sig[0], sig[1]) - len(a & b) / len(a | b))
    # mean of 300 independent errors, each with sd <= 0.5/sqrt(128): sd of the mean <= 0.0026
    assert abs(np.mean(errors)) < 4 * 0.0026


def _word(i: int, first: str = "w") -> str:
    return first + "".join(chr(97 + int(d)) for d in str(i))   # letters only: digits normalise to 0


def _edited(rng, words: list[str], rate: float) -> str:
    return " ".join(_word(rng.integers(10**6), "z") if rng.random() < rate else w for w in words)


def test_lsh_recall_at_the_threshold_is_no_worse_than_the_classic_signatures():
    # pairs of a 60-word template and a copy with a share of its words replaced, their exact
    # Jaccard spread around the configured threshold (0.42); a pair is found when it shares a band
    cfg = PromptConfig()
    rng = np.random.default_rng(11)
    pairs, exact = [], []
    for _ in range(300):
        words = [_word(rng.integers(3000)) for _ in range(60)]
        a, b = " ".join(words), _edited(rng, words, rng.uniform(0.05, 0.35))
        x, y = set(shingles(a)), set(shingles(b))
        pairs.append((a, b))
        exact.append(len(x & y) / len(x | y))
    exact = np.array(exact)
    distant = []   # copies with most words replaced: exact Jaccard about 0.1-0.25, rarely candidates
    for _ in range(300):
        words = [_word(rng.integers(3000)) for _ in range(60)]
        distant.append((" ".join(words), _edited(rng, words, rng.uniform(0.5, 0.7))))
    found = {}
    for method in ("oph", "classic"):
        def hit(pair, k):  # independent hash functions per pair: a share over pairs estimates a probability
            sig = minhash_signatures(list(pair), cfg.num_perm, seed=k, method=method)
            buckets = lsh_buckets(sig, cfg.bands, cfg.rows)
            return bool((buckets[0] == buckets[1]).any())
        found[method] = (np.array([hit(p, k) for k, p in enumerate(pairs)]),
                         np.array([hit(p, k) for k, p in enumerate(distant)]))
    near = np.abs(exact - cfg.threshold) < 0.15
    assert near.sum() > 100
    (oph, oph_fp), (classic, classic_fp) = found["oph"], found["classic"]
    se = np.sqrt(2 * 0.25 / near.sum())   # of a difference of two shares, at its largest
    assert oph[near].mean() >= classic[near].mean() - 3 * se
    assert oph.mean() >= classic.mean() - 3 * np.sqrt(2 * 0.25 / len(pairs))
    # and it does not buy recall with more candidates among distant pairs
    assert 0 < classic_fp.mean() < 0.2
    assert oph_fp.mean() <= classic_fp.mean() + 3 * np.sqrt(2 * classic_fp.mean() / len(distant))
    # both follow the S-curve 1 - (1 - J**rows)**bands of the exact Jaccard
    expected = 1 - (1 - exact ** cfg.rows) ** cfg.bands
    for hits in (oph, classic):
        assert abs(hits.mean() - expected.mean()) < 3 * np.sqrt(0.25 / len(pairs))


def test_same_seed_same_signatures_other_seed_other_signatures():
    texts = ["the quick brown fox jumps over the lazy dog", "The QUICK brown fox, jumps over the lazy dog!"]
    first = minhash_signatures(texts, 128, seed=1)
    np.testing.assert_array_equal(first, minhash_signatures(texts, 128, seed=1))
    assert estimate_jaccard(first[0], first[1]) == 1.0  # equal after normalisation
    assert not np.array_equal(first, minhash_signatures(texts, 128, seed=2))
    # a text's signature does not depend on its neighbours
    np.testing.assert_array_equal(minhash_signatures(texts[::-1] + ["other"], 128)[1], first[0])


def test_long_prompts_are_cut_at_max_chars():
    long = "word " * 25_000 + "tail end"  # 125 kB
    sig = minhash_signatures([long, "word " * 25_000], 64, max_chars=4000)
    assert (sig[0] == sig[1]).all()
    assert not (minhash_signatures([long, "word " * 25_000], 64) == sig[1]).all(axis=1)[0]


def test_band_buckets_match_for_equal_bands_only():
    sig = minhash_signatures(["alpha beta gamma delta", "alpha beta gamma delta", "totally other words here"], 128)
    buckets = lsh_buckets(sig, 32, 4)
    assert buckets.shape == (3, 32) and buckets.dtype == np.uint64
    assert (buckets[0] == buckets[1]).all() and not (buckets[0] == buckets[2]).any()
    assert len(set(buckets[0].tolist())) == 32  # the band index is part of the hash
    with pytest.raises(ValueError):
        lsh_buckets(sig, 33, 4)


def test_bad_arguments_are_clear_errors():
    with pytest.raises(TypeError):
        minhash_signatures("not a list")
    with pytest.raises(TypeError):
        minhash_signatures(["ok", 3])
    with pytest.raises(ValueError):
        minhash_signatures(["ok"], shingle="sentence")
    with pytest.raises(ValueError, match="method must be one of oph, classic"):
        minhash_signatures(["ok"], method="superminhash")
    with pytest.raises(KeyfarmConfigError):
        PromptConfig(bands=40, rows=4)
    with pytest.raises(KeyfarmConfigError, match="prompt.minhash must be one of oph, classic"):
        PromptConfig(minhash="k-perm")
    assert abs(PromptConfig().threshold - (1 / 32) ** 0.25) < 1e-12
