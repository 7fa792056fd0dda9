"""Serial and parallel twins of a kernel body keep separate Numba cache entries (keyfarm.kernels)."""
from __future__ import annotations

import json
import os
import subprocess
import sys

CHILD = r"""
import json, numpy as np
from keyfarm.signals import minhash
from keyfarm.signals.prompt import _normalized_buffer, _permutations
buf, off = _normalized_buffer(["one prompt here", "another prompt there"], 4000)
a, b = _permutations(8, 1)
bounds = np.array([0, 2])
minhash.minhash_serial(buf, off, minhash.CHARS, np.int64(9), a, b, bounds)
minhash.minhash_parallel(buf, off, minhash.CHARS, np.int64(9), a, b, bounds)
out = {}
for name in ("minhash_serial", "minhash_parallel"):
    d = getattr(minhash, name)
    out[name] = {"hits": sum(d.stats.cache_hits.values()), "misses": sum(d.stats.cache_misses.values())}
print(json.dumps(out))
"""


def _run(cache_dir):
    env = {**os.environ, "NUMBA_CACHE_DIR": str(cache_dir)}
    done = subprocess.run([sys.executable, "-c", CHILD], env=env, capture_output=True, text=True, timeout=600)
    assert done.returncode == 0, done.stderr[-2000:]
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_the_parallel_twin_never_loads_the_serial_machine_code(tmp_path):
    first = _run(tmp_path)
    # with a shared cache entry the parallel dispatcher would "hit" the serial code just saved
    assert first["minhash_serial"]["misses"] == 1 and first["minhash_parallel"]["misses"] == 1
    assert first["minhash_parallel"]["hits"] == 0
    again = _run(tmp_path)
    assert again["minhash_serial"]["hits"] == 1 and again["minhash_parallel"]["hits"] == 1
