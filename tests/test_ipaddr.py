"""The vectorised address parser against Python's `ipaddress` (the oracle) on random text: IPv4,
IPv6 in every written form (compressed, exploded, upper case, dotted tail, IPv4-mapped, zones), and
garbage near both."""
from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd
from hypothesis import given, settings
from hypothesis import strategies as st

from keyfarm.ipaddr import format_ipv4, parse_addresses, parse_ips

FAST = settings(max_examples=150, deadline=None, derandomize=True, database=None)


def oracle(text: str) -> tuple[int, int, str | None]:
    """(version, 128-bit value, canonical text) as the loader defines them with `ipaddress`."""
    try:
        return 4, int(ipaddress.IPv4Address(text)), text
    except ValueError:
        pass
    if ":" not in text:
        return 0, 0, None
    try:
        addr = ipaddress.IPv6Address(text)
    except ValueError:
        return 0, 0, None
    if addr.ipv4_mapped is not None:
        return 4, int(addr.ipv4_mapped), str(addr.ipv4_mapped)
    return 6, int(addr), addr.compressed


def _check(texts: list[str]) -> None:
    """parse_addresses against the oracle on the text without the whitespace around it."""
    version, hi, lo, canon = parse_addresses(np.array(texts, dtype=object))
    for i, text in enumerate(texts):
        got = (int(version[i]), (int(hi[i]) << 64) | int(lo[i]), canon[i])
        assert got == oracle(text.strip()), repr(text)


def _v6_forms(value: int, style: int, run: int) -> str:
    addr = ipaddress.IPv6Address(value)
    hextets = addr.exploded.split(":")
    if style == 0:
        return addr.compressed
    if style == 1:
        return addr.exploded.upper()
    if style == 2:   # hextets without leading zeros, no '::'
        return ":".join(h.lstrip("0") or "0" for h in hextets)
    if style == 3:   # a '::' at a run that need not be the longest (still valid if it spans zeros)
        start = run % 8
        end = start + 1 + (run // 8) % (8 - start)
        if all(h == "0000" for h in hextets[start:end]):
            return ":".join(hextets[:start]) + "::" + ":".join(hextets[end:])
        return addr.compressed
    # a dotted IPv4 tail
    return ":".join(hextets[:6]) + ":" + str(ipaddress.IPv4Address(value & 0xFFFFFFFF))


sparse128 = st.lists(st.sampled_from([0, 0, 0, 1, 0xFFFF, 0xDB8, 0x2001, 0xFE80]) | st.integers(0, 0xFFFF),
                     min_size=8, max_size=8).map(lambda h: sum(v << (16 * (7 - i)) for i, v in enumerate(h)))
v6_text = st.builds(_v6_forms, sparse128 | st.integers(0, 2**128 - 1), st.integers(0, 4), st.integers(0, 63))
v4_text = st.integers(0, 2**32 - 1).map(lambda v: str(ipaddress.IPv4Address(v)))
mapped = v4_text.map(lambda t: "::ffff:" + t) | v4_text.map(lambda t: "::FFFF:" + t)
zoned = st.tuples(v6_text | mapped, st.text(min_size=0, max_size=4)).map(lambda p: p[0] + "%" + p[1])


@st.composite
def mutated(draw, base):
    """A valid address with a character inserted, deleted or replaced by one from the grammar."""
    text = draw(base)
    i = draw(st.integers(0, len(text)))
    c = draw(st.sampled_from(list(":.%/0fFg9 ") + ["::", "00000", "256", "\x00", "é"]))
    op = draw(st.integers(0, 2))
    if op == 0:
        return text[:i] + c + text[i:]
    if op == 1:
        return text[:i] + text[i + 1:]
    return text[:i] + c + text[i + 1:]


garbage = st.text(alphabet="0123456789abcdefABCDEF:.%/", max_size=46) | st.text(max_size=12)
addresses = v4_text | v6_text | mapped | zoned | mutated(v4_text) | mutated(v6_text) | mutated(mapped) | garbage


@FAST
@given(st.lists(addresses, max_size=40))
def test_parse_addresses_agrees_with_ipaddress(texts):
    _check(texts)


def test_edge_cases_agree_with_ipaddress():
    _check(["", "::", ":", ":::", "1::", "::1", "1:2:3:4:5:6:7:8", "1:2:3:4:5:6:7::", "::2:3:4:5:6:7:8",
            "1:2:3:4:5:6:7:8:9", "1::2::3", "::1.2.3.4", "1:2:3:4:5:6:1.2.3.4", "1:2:3:4:5:6:7:1.2.3.4",
            "fe80::1%eth0", "fe80::1%", "fe80::1%a%b", "00000::1", "0000::1", "01.2.3.4", "0.0.0.0",
            "255.255.255.255", "256.1.1.1", "1.2.3", "1.2.3.4.", ".1.2.3", "1.2.3.4/32", "::/0", "::1.2.3",
            ":1::2", "1::2:", "::1:2:3:4:5:6:7", "1:2:3:4:5:6:7::8", "1:2:3:4::5:6:7:8", "::ffff:0:0",
            "1:0:0:1:0:0:0:1", "0:0:1:0:0:1:0:0", "a\x00b", "1.2.3.4%x", "::ffff:1.2.3.4%x",
            "\u0661.2.3.4", "ABCD::EF", "::1.2.3.04", "\ud800::1", "1:2:3:4:5:6:7:8%z\u00e9",
            "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.255", "ffff:ffff:ffff:ffff:ffff:ffff:255.255.255.2555"])


def test_parse_ips_strips_whitespace_and_nulls_missing_values():
    out = parse_ips(pd.Series([" 10.0.0.1 ", None, "::FFFF:198.51.100.2", "2001:DB8::1", "10.0.0.1", "x"]))
    assert out["ip"].tolist() == ["10.0.0.1", None, "198.51.100.2", "2001:db8::1", "10.0.0.1", None]
    assert out["ip_version"].tolist() == [4, 0, 4, 6, 4, 0]
    assert int(out["ip_hi"].iloc[3]) == 0x20010DB8 << 32 and int(out["ip_lo"].iloc[3]) == 1


def test_format_ipv4_is_dotted_quad():
    values = np.array([0, 1, 0xC0A80001, 0xFFFFFFFF], np.uint64)
    assert format_ipv4(values).tolist() == [str(ipaddress.IPv4Address(int(v))) for v in values]


_SPACES = [chr(c) for c in range(0x3001) if chr(c).isspace()]
padding = st.text(alphabet=_SPACES + ["\u200b", "\ufeff", "x", "é"], max_size=3)


@FAST
@given(st.lists(st.tuples(padding, addresses, padding), max_size=30))
def test_whitespace_around_an_address_is_what_str_strip_removes(padded):
    _check([a + t + b for a, t, b in padded])

