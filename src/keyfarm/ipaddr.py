"""Vectorised IP address parsing for the loader: text → (version, high 64 bits, low 64 bits).

Parses each distinct address once (logs repeat addresses), IPv4 with NumPy string arithmetic and
IPv6 with Python's `ipaddress` (the reference). IPv4-mapped IPv6 (::ffff:a.b.c.d) becomes IPv4.
"""
from __future__ import annotations

import ipaddress

import numpy as np
import pandas as pd

_IPV4_RE = r"^(?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2})\.(?:0|[1-9]\d{0,2})$"


def _parse_unique(uniques: pd.Series) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
    """Parse distinct address strings; version 0 marks a malformed one."""
    n = len(uniques)
    version = np.zeros(n, np.int8)
    hi = np.zeros(n, np.uint64)
    lo = np.zeros(n, np.uint64)
    canon = uniques.to_numpy(dtype=object).copy()

    is4 = uniques.str.match(_IPV4_RE, na=False).to_numpy()
    if is4.any():
        octets = uniques[is4].str.split(".", expand=True).astype(np.int64).to_numpy()
        ok = (octets <= 255).all(axis=1)
        value = (octets[:, 0] << 24) | (octets[:, 1] << 16) | (octets[:, 2] << 8) | octets[:, 3]
        idx = np.flatnonzero(is4)
        version[idx[ok]] = 4
        lo[idx[ok]] = value[ok].astype(np.uint64)

    maybe6 = (~is4) & uniques.str.contains(":", regex=False, na=False).to_numpy()
    for i in np.flatnonzero(maybe6):
        try:
            addr = ipaddress.IPv6Address(canon[i])
        except ValueError:
            continue
        mapped = addr.ipv4_mapped
        if mapped is not None:
            version[i] = 4
            lo[i] = int(mapped)
            canon[i] = str(mapped)
        else:
            value = int(addr)
            version[i] = 6
            hi[i] = value >> 64
            lo[i] = value & 0xFFFFFFFFFFFFFFFF
            canon[i] = addr.compressed
    return version, hi, lo, canon


def parse_ips(ips: pd.Series) -> pd.DataFrame:
    """Parse a column of IP text into `ip` (canonical), `ip_version` (0 = malformed), `ip_hi`, `ip_lo`.

    Leading/trailing whitespace is ignored; null and unparsable values get version 0.
    """
    # strip and parse distinct values only: logs repeat addresses
    raw_codes, raw = pd.factorize(ips, use_na_sentinel=True)
    stripped = pd.Series(raw, dtype=object).astype("string").str.strip()
    strip_codes, uniques = pd.factorize(stripped, use_na_sentinel=True)
    codes = np.where(raw_codes >= 0, np.append(strip_codes, -1)[raw_codes], -1)
    version, hi, lo, canon = _parse_unique(pd.Series(uniques, dtype="string"))
    valid = codes >= 0
    safe = np.where(valid, codes, 0)
    out_version = np.where(valid, version[safe] if len(version) else 0, 0).astype(np.int8)
    out = pd.DataFrame({
        "ip": pd.Series(canon[safe] if len(canon) else np.array([None] * len(ips), dtype=object),
                        index=ips.index, dtype=object),
        "ip_version": out_version,
        "ip_hi": np.where(valid, hi[safe] if len(hi) else 0, 0).astype(np.uint64),
        "ip_lo": np.where(valid, lo[safe] if len(lo) else 0, 0).astype(np.uint64),
    }, index=ips.index)
    out.loc[out["ip_version"] == 0, "ip"] = None
    return out


def format_ipv4(value: np.ndarray) -> np.ndarray:
    """Dotted-quad text of 32-bit IPv4 integers (vectorised)."""
    v = np.asarray(value, dtype=np.uint64)
    parts = [pd.Series((v >> np.uint64(s)) & np.uint64(255)).astype(str) for s in (24, 16, 8, 0)]
    return (parts[0] + "." + parts[1] + "." + parts[2] + "." + parts[3]).to_numpy(dtype=object)
