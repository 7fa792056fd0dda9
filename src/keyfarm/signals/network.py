"""Network signal: exact IPv4/IPv6 address, IPv4 /24, IPv6 /64 and /48, and same-window addresses.

Each level is its own token kind with its own weight (config.weights). Sharing an address within the
same time window (config.network.window_seconds) adds an `ipw:` token, so co-occurrence counts more
than sharing weeks apart. Private, loopback, link-local and CGNAT ranges, and a user's CIDR list of
shared infrastructure, are ignored or weakened (config.network.special_ranges). Works on the integer
form of addresses (io.py parsed each distinct address once); only surviving tokens become text.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmConfigError
from keyfarm.ipaddr import format_ipv4
from keyfarm.signals import make_incidence, ts_ns

SPECIAL_RANGES = ("10.0.0.0/8", "172.16.0.0/12", "192.168.0.0/16", "127.0.0.0/8", "169.254.0.0/16",
                  "100.64.0.0/10", "0.0.0.0/8", "224.0.0.0/4", "255.255.255.255/32",
                  "::1/128", "::/128", "fe80::/10", "fc00::/7", "ff00::/8")
_M64 = (1 << 64) - 1


def read_cidr_file(path: str | Path) -> list:
    """Networks listed one per line (blank lines and # comments allowed)."""
    nets = []
    try:
        lines = Path(path).read_text().splitlines()
    except OSError as exc:
        raise KeyfarmConfigError(f"shared infrastructure file {path}: {exc.strerror}") from None
    for number, line in enumerate(lines, 1):
        text = line.split("#", 1)[0].strip()
        if not text:
            continue
        try:
            nets.append(ipaddress.ip_network(text, strict=False))
        except ValueError:
            raise KeyfarmConfigError(f"shared infrastructure file {path}, line {number}: "
                                     f"{text!r} is not a CIDR") from None
    return nets


def in_networks(version: np.ndarray, hi: np.ndarray, lo: np.ndarray, networks) -> np.ndarray:
    """Mask of addresses inside any of `networks` (ipaddress objects), vectorised per network."""
    out = np.zeros(version.size, bool)
    for net in networks:
        value = int(net.network_address)
        if net.version == 4:
            mask = np.uint64((0xFFFFFFFF << (32 - net.prefixlen)) & 0xFFFFFFFF)
            out |= (version == 4) & ((lo & mask) == np.uint64(value))
        else:
            plen = net.prefixlen
            mask_hi = np.uint64((_M64 << (64 - min(plen, 64))) & _M64) if plen else np.uint64(0)
            mask_lo = np.uint64((_M64 << (128 - plen)) & _M64) if plen > 64 else np.uint64(0)
            out |= (version == 6) & ((hi & mask_hi) == np.uint64((value >> 64) & int(mask_hi))) & \
                ((lo & mask_lo) == np.uint64(value & _M64 & int(mask_lo)))
    return out


def _ipv6_text(hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    return np.array([ipaddress.IPv6Address((int(h) << 64) | int(l)).compressed for h, l in zip(hi, lo)],
                    dtype=object)


def _level_tokens(kind: str, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Text of distinct (hi, lo) values at one level."""
    if kind in ("ip4", "ip4/24"):
        return kind + ":" + format_ipv4(lo)
    return kind + ":" + _ipv6_text(hi, lo)


def _aggregate(frame: pd.DataFrame, by: list[str]) -> pd.DataFrame:
    return frame.groupby(by, sort=True).agg(count=("count", "sum"), first_seen=("first_seen", "min"),
                                            last_seen=("last_seen", "max"), weight=("weight", "max")) \
        .reset_index()


def incidence(tables, config) -> pd.DataFrame:
    requests = tables.requests
    if len(requests) == 0:
        return make_incidence([], [], "ip")
    net = config.network
    # distinct (key, address) with count and first/last seen
    base = pd.DataFrame({"key": requests["key"].to_numpy(), "v": requests["ip_version"].to_numpy(),
                         "hi": requests["ip_hi"].to_numpy(), "lo": requests["ip_lo"].to_numpy(),
                         "ts": ts_ns(requests["ts"])})
    pairs = base.groupby(["key", "v", "hi", "lo"], sort=True).agg(
        count=("ts", "size"), first_seen=("ts", "min"), last_seen=("ts", "max")).reset_index()

    special = [ipaddress.ip_network(c) for c in SPECIAL_RANGES]
    if net.shared_infrastructure_file:
        special += read_cidr_file(net.shared_infrastructure_file)
    v, hi, lo = pairs["v"].to_numpy(), pairs["hi"].to_numpy(), pairs["lo"].to_numpy()
    is_special = in_networks(v, hi, lo, special)
    if net.special_ranges == "ignore":
        keep = ~is_special
        pairs, v, hi, lo, is_special = pairs[keep], v[keep], hi[keep], lo[keep], is_special[keep]
    elif net.special_ranges != "weak":
        raise KeyfarmConfigError("network.special_ranges must be 'ignore' or 'weak'")
    pairs = pairs.assign(weight=np.where(is_special, net.weak_factor, 1.0))
    if len(pairs) == 0:
        return make_incidence([], [], "ip")

    levels = []
    v4 = v == 4
    p4 = pairs[v4]
    levels.append(("ip4", p4.assign(hi=np.uint64(0))))
    levels.append(("ip4/24", p4.assign(hi=np.uint64(0), lo=p4["lo"].to_numpy() & np.uint64(0xFFFFFF00))))
    p6 = pairs[~v4]
    levels.append(("ip6", p6))
    levels.append(("ip6/64", p6.assign(lo=np.uint64(0))))
    levels.append(("ip6/48", p6.assign(hi=p6["hi"].to_numpy() & np.uint64(0xFFFFFFFFFFFF0000), lo=np.uint64(0))))

    acc = tables.keys["account"].to_numpy()
    parts = []
    for kind, frame in levels:
        if len(frame) == 0:
            continue
        agg = _aggregate(frame, ["hi", "lo", "key"])
        parts.append(_tokens(kind, agg, acc))
    # same-window co-occurrence on exact addresses shared by two or more accounts
    window = _window_pairs(base, pairs, acc, net.window_seconds, config.caps.ip)
    if len(window):
        parts.append(_tokens("ipw", window, acc))
    if not parts:
        return make_incidence([], [], "ip")
    return pd.concat(parts, ignore_index=True).sort_values(["key", "token"], kind="stable") \
        .reset_index(drop=True)


def _tokens(kind: str, agg: pd.DataFrame, account: np.ndarray) -> pd.DataFrame:
    """Incidence rows of one level, keeping only values on two or more accounts (others link nothing)."""
    value = pd.factorize(pd.MultiIndex.from_arrays([agg["hi"], agg["lo"]] +
                                                   ([agg["w"]] if "w" in agg else [])))[0]
    n_acc = pd.Series(account[agg["key"].to_numpy()]).groupby(value).nunique().to_numpy()
    keep = n_acc[value] >= 2
    agg = agg[keep]
    value = value[keep]
    if len(agg) == 0:
        return make_incidence([], [], "ip")
    codes, uniq = pd.factorize(value)
    first = np.zeros(len(uniq), np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    hi = agg["hi"].to_numpy()[first]
    lo = agg["lo"].to_numpy()[first]
    if kind == "ipw":
        version = agg["v"].to_numpy()[first]
        text = np.empty(len(uniq), dtype=object)
        is4 = version == 4
        text[is4] = format_ipv4(lo[is4])
        if (~is4).any():
            text[~is4] = _ipv6_text(hi[~is4], lo[~is4])
        text = "ipw:" + text + "@" + agg["w"].to_numpy()[first].astype(str)
    else:
        text = _level_tokens(kind, hi, lo)
    return make_incidence(agg["key"], np.asarray(text, dtype=object)[codes], "ip",
                          weight=agg["weight"], count=agg["count"],
                          first_seen=agg["first_seen"], last_seen=agg["last_seen"])


def _window_pairs(base: pd.DataFrame, pairs: pd.DataFrame, account: np.ndarray,
                  window_seconds: int, cap: int) -> pd.DataFrame:
    """(key, address, window) for addresses kept above that two or more accounts use. An address
    over the hub cap (a NAT) gets no window tokens: co-occurring behind a NAT is expected."""
    addr = pd.factorize(pd.MultiIndex.from_arrays([pairs["v"], pairs["hi"], pairs["lo"]]))[0]
    n_acc = pd.Series(account[pairs["key"].to_numpy()]).groupby(addr).nunique().to_numpy()
    shared = pairs.loc[(n_acc[addr] >= 2) & (n_acc[addr] <= cap), ["v", "hi", "lo", "weight"]].drop_duplicates(["v", "hi", "lo"])
    if len(shared) == 0:
        return shared
    rows = base.merge(shared, on=["v", "hi", "lo"], how="inner")
    rows["w"] = rows["ts"].to_numpy() // (window_seconds * 10**9)
    return rows.groupby(["hi", "lo", "w", "v", "key"], sort=True).agg(
        count=("ts", "size"), first_seen=("ts", "min"), last_seen=("ts", "max"),
        weight=("weight", "max")).reset_index()
