"""Column coercion over distinct values (keyfarm.coerce) and the loader's content order, against
plain Python and pandas as references."""
from __future__ import annotations

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from keyfarm.coerce import Factor, factor, sort_ranks, text
from keyfarm.io import REQUEST_ORDER, sort_requests

FAST = settings(max_examples=80, deadline=None, derandomize=True, database=None)


@FAST
@given(st.lists(st.text(max_size=4) | st.sampled_from(["a", "\ud800", "\U0001f600", "\uffff", "é", "e"]), max_size=30))
def test_sort_ranks_are_pythons_order_of_the_values(values):
    ranks = sort_ranks(np.array(values, dtype=object))
    distinct = sorted(set(values))
    assert ranks.tolist() == [distinct.index(v) for v in values]


def test_text_merges_values_that_give_the_same_text_and_keeps_codes():
    values = pd.Series([" k1", "k1", 7, None, "k2 "], dtype=object)
    ids = text(values, factor(values), strip=True)
    assert ids.take().tolist() == ["k1", "k1", "7", None, "k2"]
    assert len(ids.values) == 3 and ids.codes[0] == ids.codes[1]
    floats = pd.Series([10.0, None, 2.5])
    assert text(floats, factor(floats)).take().tolist() == ["10", None, "2.5"]


def test_factor_ranks_put_missing_first():
    f = Factor(np.array([2, -1, 0, 1, 0]), np.array(["b", "a", "c"], dtype=object))
    assert f.ranks(np.arange(5)).tolist() == [2, -1, 1, 0, 1]   # c, missing, b, a, b


requests_rows = st.lists(st.tuples(
    st.integers(0, 2), st.integers(0, 2), st.sampled_from(["1.1.1.1", "1.1.1.2", "::1"]),
    st.sampled_from([None, "d1", "d0"]), st.sampled_from([None, "ua", "UA"]), st.sampled_from([None, "p", "", "q"]),
    st.sampled_from([None, 0, 5, 10]), st.sampled_from([None, 1, 2])), max_size=25)


@FAST
@given(requests_rows)
def test_content_order_is_a_stable_sort_by_every_column_missing_first(rows):
    frame = pd.DataFrame(rows, columns=REQUEST_ORDER).astype({"key": np.int64})
    frame["ts"] = pd.to_datetime(frame["ts"], unit="s", utc=True)
    for c in ("device_fingerprint", "user_agent", "prompt", "ip"):
        frame[c] = frame[c].astype(object)
    for c in ("prompt_tokens", "completion_tokens"):
        frame[c] = frame[c].astype("Int64")
    frame["row"] = np.arange(len(frame))
    expected = frame.sort_values(REQUEST_ORDER, kind="stable", na_position="first").reset_index(drop=True)
    pd.testing.assert_frame_equal(sort_requests(frame), expected)
