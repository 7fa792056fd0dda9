"""Python's str.strip() over UTF-8 bytes (keyfarm.utf8) against str.strip itself."""
from __future__ import annotations

import numpy as np
from hypothesis import given, settings
from hypothesis import strategies as st

from keyfarm import utf8

_SPACES = [chr(c) for c in range(0x3001) if chr(c).isspace()]
# whitespace, near-misses (zero-width space, BOM), a lone surrogate, multi-byte characters
edge = st.text(alphabet=_SPACES + ["\u200b", "\ufeff", "\ud800", "é", "\U0001f600", "x"], max_size=3)


@settings(max_examples=200, deadline=None, derandomize=True, database=None)
@given(st.lists(st.tuples(edge, st.text(max_size=6), edge), max_size=30))
def test_strip_is_str_strip(padded):
    texts = np.array([a + t + b for a, t, b in padded], dtype=object)
    assert list(utf8.strip(texts)) == [t.strip() for t in texts]


def test_unchanged_strings_are_kept_as_they_are():
    texts = np.array(["a", " b ", "\u3000c", "d\x1c"], dtype=object)
    out = utf8.strip(texts)
    assert out.tolist() == ["a", "b", "c", "d"] and out[0] is texts[0]
