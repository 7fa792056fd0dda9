"""Writing a report's cluster pages, in forked worker processes when asked to.

Stage: report. A page is a pure function of OUT_DIR (its bytes do not depend on which process
draws it or in what order), so pages can be split into contiguous chunks that forked workers draw
and write while the parent waits. Forked children read the parent's precomputed records without
pickling them, but each copies the memory pages it touches (reference counts): a 1M-key report
with 2 workers peaked at 7.15 GiB of proportional set size for the three processes. The default
(`auto_workers`) is therefore two workers up to AUTO_MAX_KEYS keys, where the copies are small,
and one process above; where `fork` is not offered (Windows), on one core, or for a small report,
pages are drawn in the calling process whatever is asked.
"""
from __future__ import annotations

import gc
import multiprocessing
import os
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import numpy as np

MIN_PAGES_PER_WORKER = 100   # below this a worker's start-up costs more than it saves
CHUNKS_PER_WORKER = 8        # cluster sizes vary: small chunks keep the workers evenly loaded

AUTO_MAX_KEYS = 200_000   # `auto`: two forked workers up to this many keys (a 50k report: 1.3x faster)
WRITERS = 2   # threads per drawing process that create the page files: creating a file on this
              # project's disks waits ~1 ms (ext4 with `discard`), time the drawing can go on in

_JOB = None   # (draw, records, folder) for the forked workers, set only while a pool runs


def can_fork() -> bool:
    return "fork" in multiprocessing.get_all_start_methods()


def auto_workers(n_keys: int) -> int:
    """Workers for a report of `n_keys` keys: 2 on a machine of 2+ cores that can fork, up to
    AUTO_MAX_KEYS keys (each forked worker copies what it touches of the parent: small there);
    otherwise 1."""
    return 2 if can_fork() and (os.cpu_count() or 1) >= 2 and n_keys <= AUTO_MAX_KEYS else 1


def write_pages(draw, records: list[dict], folder: Path, *, workers: int = 1, progress=None,
                started=None, costs=None) -> None:
    """Write `folder/<cluster_id>.html` = draw(record) for every clusters record.

    `workers`: processes drawing pages (1: this process only; 2+: forked workers, fewer when
    there are fewer than MIN_PAGES_PER_WORKER pages each). `started`: called once the workers
    exist (or at once, without workers), e.g. to start a thread that must not be forked.
    `costs`: per record, a guess of its page's drawing time (any unit): workers then take the
    dearest pages first (see `chunks`); without it, records go in their order.
    """
    global _JOB
    workers = min(int(workers), len(records) // MIN_PAGES_PER_WORKER)
    bar = progress.bar(total=len(records), desc="cluster pages") if progress else None
    if workers < 2 or not can_fork():
        if started is not None:
            started()
        with _Writer() as writer:
            for record in records:
                writer.write(folder / _name(record), draw(record))
                if bar is not None:
                    bar.update(1)
    else:
        tasks = chunks(np.ones(len(records)) if costs is None else np.asarray(costs, np.float64),
                       workers * CHUNKS_PER_WORKER, in_order=costs is None)
        _JOB = (draw, records, folder)
        gc.freeze()   # the children's garbage collector then leaves the parent's objects (and pages) alone
        try:
            with multiprocessing.get_context("fork").Pool(workers) as pool:
                if started is not None:
                    started()
                for done in pool.imap_unordered(_write_chunk, tasks):
                    if bar is not None:
                        bar.update(done)
        finally:
            _JOB = None
            gc.unfreeze()
    if bar is not None:
        bar.close()


def _name(record: dict) -> str:
    return f"{int(record['cluster_id'])}.html"


class _Writer:
    """Writes files in WRITERS background threads while the caller draws the next page; leaving
    the `with` block waits for every file and raises the first error of any. Made in the process
    that uses it (after any fork: a forked child must not inherit a running thread)."""

    def __enter__(self):
        self.pool = ThreadPoolExecutor(max_workers=WRITERS, thread_name_prefix="keyfarm-report-writer")
        self.pending = []
        return self

    def write(self, path: Path, text: str) -> None:
        self.pending.append(self.pool.submit(path.write_text, text, encoding="utf-8"))

    def __exit__(self, *exc) -> None:
        self.pool.shutdown(wait=True)
        if exc[0] is None:
            for future in self.pending:
                future.result()   # the first failed write raises here


def chunks(costs: np.ndarray, n_chunks: int, *, in_order: bool = False) -> list[list[int]]:
    """The records (indices of `costs`) in about `n_chunks` chunks of about equal cost, the
    dearest records first: a page dearer than a chunk's share is a chunk of its own, and the
    cheap ones come last, in bundles, to fill the gaps (longest processing time first, so
    neither worker is left drawing a large cluster while the other idles). `in_order`: keep
    the records' order (equal costs: contiguous chunks)."""
    order = np.arange(costs.size) if in_order else np.argsort(-costs, kind="stable")
    share = costs.sum() / max(n_chunks, 1)
    out, chunk, spent = [], [], 0.0
    for i, cost in zip(order.tolist(), costs[order].tolist()):
        chunk.append(i)
        spent += cost
        if spent >= share:
            out.append(chunk)
            chunk, spent = [], 0.0
    return out + [chunk] if chunk else out


def _write_chunk(rows: list[int]) -> int:
    """In a worker: write the pages of records[i] for i in `rows`; returns how many."""
    draw, records, folder = _JOB
    with _Writer() as writer:
        for i in rows:
            writer.write(folder / _name(records[i]), draw(records[i]))
    return len(rows)
