"""Property test of the loader and the job on random broken input folders (issue 20): a result or
a one-line KeyfarmError, never another exception; per table, rows in = rows valid + rows
quarantined. A short run here (derandomized, so CI is repeatable); scripts/fuzz_inputs.py runs
thousands of examples."""
from __future__ import annotations

import contextlib
import shutil
import tempfile
from pathlib import Path

from hypothesis import HealthCheck, given, settings

from keyfarm.errors import KeyfarmError
from keyfarm.fuzz import check_folder, input_folders, write_folder

FAST = settings(max_examples=60, deadline=None, derandomize=True, database=None,
                suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large])


@contextlib.contextmanager
def _loaded(drawn):
    """The drawn folder written to a scratch folder and loaded (keyfarm.fuzz.check_folder)."""
    folder = Path(tempfile.mkdtemp(prefix="keyfarm-fuzz-"))
    try:
        write_folder(folder, drawn)
        yield check_folder(folder)
    finally:
        shutil.rmtree(folder)


@FAST
@given(input_folders())
def test_loading_a_broken_folder_gives_tables_or_a_one_line_error_and_loses_no_row(drawn):
    with _loaded(drawn) as outcome, contextlib.suppress(KeyfarmError):
        if outcome.tables is not None:
            outcome.tables.check_quarantine(0.5)


@settings(FAST, max_examples=8)
@given(input_folders())
def test_linking_what_loads_never_raises_anything_but_a_keyfarm_error(drawn):
    from keyfarm.pipeline import link

    with _loaded(drawn) as outcome, contextlib.suppress(KeyfarmError):
        if outcome.tables is not None:
            assert len(link(outcome.tables).members) == len(outcome.tables.keys)
