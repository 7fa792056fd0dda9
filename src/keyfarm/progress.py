"""Progress on stderr for long jobs: one line per stage with counts and elapsed time.

Uses tqdm's writer so lines interleave cleanly with any bars; silent when quiet.
"""
from __future__ import annotations

import resource
import sys
import time
from contextlib import contextmanager

from tqdm import tqdm


def peak_rss_gib() -> float:
    """This process's peak resident memory so far, in GiB (Linux reports ru_maxrss in KiB)."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 2**20


class Progress:
    """Reports stages of a job and records their wall time (seconds) in `timings` and the process's
    peak memory when each ended (GiB) in `peaks`, so the stage that raised it is plain."""

    def __init__(self, quiet: bool = False, file=None):
        self.quiet = quiet
        self.file = file if file is not None else sys.stderr
        self.start = time.perf_counter()
        self.timings: dict[str, float] = {}
        self.peaks: dict[str, float] = {}

    def say(self, message: str) -> None:
        if not self.quiet:
            tqdm.write(f"[{time.perf_counter() - self.start:7.1f}s] {message}", file=self.file)

    @contextmanager
    def stage(self, name: str):
        """Time a stage; the body may set `info["counts"]` to a short string reported at the end."""
        info: dict[str, str] = {}
        self.say(f"{name} ...")
        begin = time.perf_counter()
        yield info
        elapsed = time.perf_counter() - begin
        self.timings[name] = round(elapsed, 3)
        self.peaks[name] = round(peak_rss_gib(), 2)
        counts = f": {info['counts']}" if info.get("counts") else ""
        self.say(f"{name} done in {elapsed:.1f}s, peak {self.peaks[name]:.1f} GiB{counts}")

    def bar(self, iterable=None, total=None, desc: str = ""):
        """A tqdm bar on stderr for loops within a stage, only on a terminal: a log file or a
        pipe gets the stage lines, never `\r` frames of a bar. Disabled when quiet."""
        return tqdm(iterable, total=total, desc=desc, disable=self.quiet or not _is_terminal(self.file),
                    file=self.file, leave=False)


def _is_terminal(file) -> bool:
    isatty = getattr(file, "isatty", None)
    try:
        return bool(isatty and isatty())
    except ValueError:   # a closed file
        return False
