"""Network signal (signals stage): shared addresses and ranges, layered and time-aware.

Token kinds, each with its own weight in config.weights: `ip4:` exact IPv4, `ip4/24:` its /24,
`ip6:` exact IPv6, `ip6/64:` and `ip6/48:` its prefixes. Time: `ipw:<address>@<window>` (IPv6: the
/64, as privacy addresses rotate inside it) marks use of an address in one window of
config.network.window_seconds. A key ties to each of its window tokens on an address with weight
1/(its windows on that address), so two keys seen together in k windows get
ip_window × k / max(n_a, n_b): the share of their time on the address spent together, at most one
unit however long the logs, while sharing an address weeks apart adds nothing beyond the address.

Addresses in config.network.special_cidrs (RFC 1918, loopback, link-local, CGNAT, ULA…) and in the
user's shared-infrastructure CIDR file are dropped ("ignore") or tied with weak_factor ("weak").
Works on the integer form of addresses that io.py parsed (version, hi, lo), vectorised over unique
(key, address) pairs; only tokens on two or more accounts become text. Every token of a request
lives inside its IPv4 /24 or IPv6 /48, so running this per group of such blocks gives the same rows.
"""
from __future__ import annotations

import ipaddress
from pathlib import Path

import numpy as np
import pandas as pd

from keyfarm.errors import KeyfarmConfigError
from keyfarm.ipaddr import format_ipv4
from keyfarm.signals import make_incidence, ts_ns

_M64 = (1 << 64) - 1
_V6_48 = np.uint64(0xFFFFFFFFFFFF0000)
_V4_24 = np.uint64(0xFFFFFF00)


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


def special_networks(network_config) -> list:
    """The configured special ranges plus the shared-infrastructure file's, as ipaddress networks."""
    nets = [ipaddress.ip_network(c, strict=False) for c in network_config.special_cidrs]
    if network_config.shared_infrastructure_file:
        nets += read_cidr_file(network_config.shared_infrastructure_file)
    return nets


def in_networks(version: np.ndarray, hi: np.ndarray, lo: np.ndarray, networks) -> np.ndarray:
    """Mask of addresses inside any of `networks` (ipaddress objects), vectorised per network."""
    version = np.asarray(version)
    hi = np.asarray(hi, np.uint64)
    lo = np.asarray(lo, np.uint64)
    out = np.zeros(version.size, bool)
    for net in networks:
        value = int(net.network_address)
        plen = net.prefixlen
        if net.version == 4:
            mask = np.uint64((0xFFFFFFFF << (32 - plen)) & 0xFFFFFFFF)
            out |= (version == 4) & ((lo & mask) == np.uint64(value))
        else:
            mask_hi = np.uint64((_M64 << (64 - min(plen, 64))) & _M64) if plen else np.uint64(0)
            mask_lo = np.uint64((_M64 << (128 - plen)) & _M64) if plen > 64 else np.uint64(0)
            out |= (version == 6) & ((hi & mask_hi) == np.uint64((value >> 64) & int(mask_hi))) & \
                ((lo & mask_lo) == np.uint64(value & int(mask_lo)))
    return out


def address_text(version: np.ndarray, hi: np.ndarray, lo: np.ndarray) -> np.ndarray:
    """Canonical text of addresses (IPv4 dotted quad, IPv6 compressed), as an object array."""
    version = np.asarray(version)
    out = np.empty(version.size, dtype=object)
    is4 = version == 4
    if is4.any():
        out[is4] = format_ipv4(np.asarray(lo)[is4])
    idx = np.flatnonzero(~is4)
    # ipaddress per distinct IPv6 value only: tokens are few compared with requests
    out[idx] = [ipaddress.IPv6Address((int(h) << 64) | int(l)).compressed
                for h, l in zip(np.asarray(hi)[idx], np.asarray(lo)[idx])]
    return out


def incidence(tables, config) -> pd.DataFrame:
    """Incidence of the network tokens of tables.requests (see the module docstring)."""
    requests = tables.requests
    net = config.network
    if len(requests) == 0:
        return make_incidence([], [], "ip")
    base = pd.DataFrame({"key": requests["key"].to_numpy(np.int64),
                         "v": requests["ip_version"].to_numpy(np.int8),
                         "hi": requests["ip_hi"].to_numpy(np.uint64),
                         "lo": requests["ip_lo"].to_numpy(np.uint64),
                         "ts": ts_ns(requests["ts"])})
    pairs = base.groupby(["key", "v", "hi", "lo"], sort=True).agg(
        count=("ts", "size"), first_seen=("ts", "min"), last_seen=("ts", "max")).reset_index()
    special = in_networks(pairs["v"].to_numpy(), pairs["hi"].to_numpy(), pairs["lo"].to_numpy(),
                          special_networks(net))
    if net.special_ranges == "ignore":
        pairs = pairs[~special].reset_index(drop=True)
        special = special[~special]
    pairs["weight"] = np.where(special, net.weak_factor, 1.0)
    if len(pairs) == 0:
        return make_incidence([], [], "ip")

    account = tables.keys["account"].to_numpy(np.int64)
    v4 = (pairs["v"] == 4).to_numpy()
    p4, p6 = pairs[v4], pairs[~v4]
    levels = [("ip4", p4),
              ("ip4/24", p4.assign(lo=p4["lo"].to_numpy() & _V4_24)),
              ("ip6", p6),
              ("ip6/64", p6.assign(lo=np.uint64(0))),
              ("ip6/48", p6.assign(hi=p6["hi"].to_numpy() & _V6_48, lo=np.uint64(0)))]
    parts = []
    for kind, frame in levels:
        if len(frame):
            agg = frame.groupby(["v", "hi", "lo", "key"], sort=True).agg(
                count=("count", "sum"), first_seen=("first_seen", "min"), last_seen=("last_seen", "max"),
                weight=("weight", "max")).reset_index()
            parts.append(_shared_tokens(kind, agg, account))
    window = _window_rows(base, pairs, account, net.window_seconds, config.caps.ip)
    if len(window):
        parts.append(_shared_tokens("ipw", window, account))
    parts = [p for p in parts if len(p)]
    if not parts:
        return make_incidence([], [], "ip")
    return pd.concat(parts, ignore_index=True).sort_values(["key", "token"], kind="stable") \
        .reset_index(drop=True)


def _window_level(frame: pd.DataFrame) -> pd.DataFrame:
    """Addresses at the level window tokens use: IPv4 exact, IPv6 its /64."""
    return frame.assign(lo=np.where(frame["v"].to_numpy() == 4, frame["lo"].to_numpy(), np.uint64(0)))


def _window_rows(base: pd.DataFrame, pairs: pd.DataFrame, account: np.ndarray, window_seconds: int,
                 cap: int | None) -> pd.DataFrame:
    """(v, hi, lo, w, key) rows of window tokens with count, first/last seen and tie.

    Only addresses used by 2..cap accounts get window tokens: on a hub (a NAT) co-occurring is
    expected and its pairs are never projected anyway.
    """
    level = _window_level(pairs).groupby(["v", "hi", "lo", "key"], sort=False)["weight"].max().reset_index()
    addr = level.groupby(["v", "hi", "lo"], sort=False).ngroup().to_numpy()
    n_acc = pd.Series(account[level["key"].to_numpy()]).groupby(addr).nunique().to_numpy()[addr]
    shared = level[(n_acc >= 2) & ((n_acc <= cap) if cap is not None else True)]
    if len(shared) == 0:
        return shared
    rows = _window_level(base).merge(shared, on=["v", "hi", "lo", "key"], how="inner")
    rows["w"] = rows["ts"].to_numpy() // (window_seconds * 10**9)
    out = rows.groupby(["v", "hi", "lo", "w", "key"], sort=True).agg(
        count=("ts", "size"), first_seen=("ts", "min"), last_seen=("ts", "max"),
        weight=("weight", "max")).reset_index()
    n_windows = out.groupby(["v", "hi", "lo", "key"], sort=False)["w"].transform("size").to_numpy()
    out["weight"] = out["weight"].to_numpy() / n_windows
    return out


def _shared_tokens(kind: str, agg: pd.DataFrame, account: np.ndarray) -> pd.DataFrame:
    """Incidence rows of one token kind, keeping only tokens on two or more accounts (a token on
    one account links nothing the account signal does not)."""
    by = ["v", "hi", "lo"] + (["w"] if kind == "ipw" else [])
    value = agg.groupby(by, sort=False).ngroup().to_numpy()
    n_acc = pd.Series(account[agg["key"].to_numpy()]).groupby(value).nunique().to_numpy()
    keep = n_acc[value] >= 2
    agg, value = agg[keep], value[keep]
    if len(agg) == 0:
        return make_incidence([], [], "ip")
    codes, uniq = pd.factorize(value)
    first = np.zeros(len(uniq), np.int64)
    first[codes[::-1]] = np.arange(len(codes))[::-1]
    v = agg["v"].to_numpy()[first]
    text = address_text(v, agg["hi"].to_numpy()[first], agg["lo"].to_numpy()[first])
    if kind == "ipw":
        suffix = np.where(v == 4, "", "/64")
        text = "ipw:" + text + suffix + "@" + agg["w"].to_numpy()[first].astype(str)
    else:
        text = kind + ":" + text
    return make_incidence(agg["key"].to_numpy(), np.asarray(text, dtype=object)[codes], "ip",
                          weight=agg["weight"].to_numpy(), count=agg["count"].to_numpy(),
                          first_seen=agg["first_seen"].to_numpy(), last_seen=agg["last_seen"].to_numpy())
