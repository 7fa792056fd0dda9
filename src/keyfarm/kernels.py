"""Compiling one Numba kernel body twice: serial for small inputs, parallel (prange) for large ones.

Numba's on-disk cache keys a compiled function by its name, line, bytecode and signature, not by
its `parallel` flag: two dispatchers made from one Python function share a cache entry, so the
parallel one loaded the serial machine code from the cache and ran on one thread. Each variant
therefore gets its own function object and name, hence its own cache file.
"""
from __future__ import annotations

import types

import numba


def serial_and_parallel(body):
    """(serial, parallel) njit dispatchers of `body`, both cached; the serial one releases the GIL."""
    serial = numba.njit(cache=True, nogil=True)(body)
    twin = types.FunctionType(body.__code__, body.__globals__, f"{body.__name__}_parallel",
                              body.__defaults__, body.__closure__)
    twin.__qualname__ = f"{body.__qualname__}_parallel"
    twin.__doc__ = body.__doc__
    return serial, numba.njit(cache=True, parallel=True)(twin)
