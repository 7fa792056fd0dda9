"""Replacing a folder of report pages without waiting for the old pages to be removed first.

Stage: report. Re-drawing a report over an earlier one used to overwrite each page in place.
On disks that free blocks synchronously (ext4 mounted with `discard`, as on this project's
machines) truncating or unlinking a file already on disk waits ~3 ms, whatever its size: 1,000
pages cost ~3 s of waiting, most of a 50k report's time. `swap_in_empty` moves the old folder
aside (one rename) and gives an empty one to write the new pages into, and a background
`Remover` deletes the old pages, several at a time, as the new ones are drawn. The caller
joins it before returning, so when the report is done no old page is left; a folder left aside by
an interrupted run is removed by the next one.
"""
from __future__ import annotations

import logging
import os
import threading
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

log = logging.getLogger(__name__)
REMOVERS = 8   # unlinks waiting on the disk at once: they overlap there (0.1 s vs 0.3-3 s for 1,000 pages)


class Remover:
    """Deletes `paths` (folders, with everything in them) in a background thread, from `start()`
    (started after any fork: a forked child must not inherit a thread mid-work)."""

    def __init__(self, paths: list[Path]):
        self.paths = list(paths)
        self.thread = threading.Thread(target=self._run, name="keyfarm-report-remover", daemon=True)

    def start(self) -> None:
        """Begin deleting (again: nothing)."""
        if self.paths and self.thread.ident is None:
            self.thread.start()

    def _run(self) -> None:
        for path in self.paths:
            try:
                remove_tree(path)
            except OSError as exc:   # the new report is complete without this: say so and go on
                log.warning("could not remove %s (an earlier report's pages): %s", path, exc)

    def join(self) -> None:
        """Wait until every path is gone (or has failed to go); starts the deleting if not yet."""
        self.start()
        if self.thread.is_alive():
            self.thread.join()


def remove_tree(path: Path, *, workers: int = REMOVERS) -> None:
    """`shutil.rmtree(path)` with the files unlinked by `workers` threads at once (a file: unlinked)."""
    if not path.is_dir() or path.is_symlink():
        path.unlink(missing_ok=True)
        return
    folders, files = [], []
    for root, dirs, names in os.walk(path, topdown=False):
        files.extend(os.path.join(root, n) for n in names)
        folders.append(root)
    with ThreadPoolExecutor(max_workers=workers) as pool:
        list(pool.map(_unlink, files))
    for folder in folders:   # bottom-up: children first
        os.rmdir(folder)


def _unlink(path: str) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def aside_name(folder: Path, n: int) -> Path:
    """Where `swap_in_empty` moves an old `folder`: a hidden sibling, named after this process."""
    return folder.with_name(f".{folder.name}.old-{os.getpid()}-{n}")


def swap_in_empty(folder: Path) -> Remover:
    """Make `folder` an empty folder: an existing one is moved aside, to be removed in the
    background with any folder an earlier interrupted call left aside. Start, then join, the
    Remover returned."""
    folder.parent.mkdir(parents=True, exist_ok=True)
    aside = sorted(folder.parent.glob(f".{folder.name}.old-*"))
    if folder.exists():
        n = 0
        while aside_name(folder, n).exists():
            n += 1
        os.rename(folder, aside_name(folder, n))
        aside.append(aside_name(folder, n))
    folder.mkdir()
    return Remover(aside)
