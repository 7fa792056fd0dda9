"""Long property run of the loader (and the job) on random broken input folders.

    PYTHONPATH=src python scripts/fuzz_inputs.py --examples 2000 [--link 200] [--seed 1]

Same contract as tests/test_fuzz_inputs.py (keyfarm.fuzz.check_folder): a result or a one-line
KeyfarmError, never another exception; rows in = rows valid + rows quarantined per table. Prints
how the examples ended (loaded, or which error), so a run that only ever errors is visible. The
same --seed draws the same examples for one tree; to compare two trees use scripts/fuzz_compare.py
(hypothesis steers later draws by what earlier examples did, so the tallies of two loaders differ).
"""
from __future__ import annotations

import argparse
import collections
import re
import shutil
import tempfile
import time
from pathlib import Path

from hypothesis import HealthCheck, given, seed, settings

from keyfarm.errors import KeyfarmError
from keyfarm.fuzz import check_folder, input_folders, write_folder


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--examples", type=int, default=2000)
    ap.add_argument("--link", type=int, default=100, help="examples that also run the whole job")
    ap.add_argument("--seed", type=int, default=1)
    args = ap.parse_args()
    endings = collections.Counter()

    def run(drawn, do_link):
        folder = Path(tempfile.mkdtemp(prefix="keyfarm-fuzz-"))
        try:
            write_folder(folder, drawn)
            outcome = check_folder(folder)
            if outcome.error is not None:
                endings[re.sub(r"[\d,]+|'.*?'|\(.*", "#", str(outcome.error))[:70]] += 1
                return
            endings["loaded"] += 1
            if do_link:
                from keyfarm.pipeline import link
                try:
                    link(outcome.tables)
                    endings["linked"] += 1
                except KeyfarmError as exc:
                    endings[f"link: {str(exc)[:60]}"] += 1
        finally:
            shutil.rmtree(folder)

    common = dict(deadline=None, database=None, suppress_health_check=list(HealthCheck))
    start = time.perf_counter()
    def loader_only(drawn):
        run(drawn, False)

    def with_job(drawn):
        run(drawn, True)

    for n, body in ((args.examples, loader_only), (args.link, with_job)):
        if n:
            # seeded: the same --seed draws the same folders, so two trees' tallies compare
            seed(args.seed)(settings(max_examples=n, **common)(given(input_folders())(body)))()
    print(f"{args.examples} loader + {args.link} job examples in {time.perf_counter() - start:.1f} s, no contract broken")
    for ending, count in endings.most_common():
        print(f"{count:6d}  {ending}")


if __name__ == "__main__":
    main()
