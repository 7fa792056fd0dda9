"""OUT_DIR/state/: what the next daily run needs from this one (history stage), read and written
in one place and checked before a run starts.

    state/state.json        format, keyfarm version, run_id, run_seq, next_cluster_id (the
                            high-water mark: no id at or above it was ever given), sha256 of each file
    state/ids.parquet       clusters of 2+ accounts: cluster_id, first_seen, n_accounts, n_keys, verdict
    state/accounts.parquet  every account: account_id, cluster_id, community (its community as Leiden
                            found it, before hub merges and history: the next run's warm start)
    state/evidence.parquet  rare values that tie accounts of a cluster: cluster_id, account_id, kind,
                            token (blake2b of the token text, never the value itself), remembered
                            (a farm's, a banned or farm-labelled account's: carried to every later
                            run), first_seen (run that first gave the cluster_id)
    state/labels.parquet    labels carried forward: account_id, label, source, ts (ISO text)
    state/label_peers.parquet  per labelled account, the accounts it was judged with (account_id, peer)

Beside state/, OUT_DIR/cache/ lists the fingerprints of the components whose partition the next
run may take as it is (history.fingerprint): not part of the state, ignored when unusable.

A PREV_OUT without state/ (written before daily runs existed), of another format, with a missing or
altered file, or whose run.json names another run is refused with one KeyfarmInputError (exit 2)
before anything is computed or written.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass
from pathlib import Path

import pandas as pd

from keyfarm import __version__
from keyfarm.errors import KeyfarmInputError

FORMAT = 1
FILES = {
    "ids": {"cluster_id": "int64", "first_seen": "object", "n_accounts": "int64", "n_keys": "int64",
            "verdict": "object"},
    "accounts": {"account_id": "object", "cluster_id": "int64", "community": "int64"},
    "evidence": {"cluster_id": "int64", "account_id": "object", "kind": "object", "token": "object",
                 "remembered": "bool", "first_seen": "object"},
    "labels": {"account_id": "object", "label": "object", "source": "object", "ts": "object"},
    "label_peers": {"account_id": "object", "peer": "object"},
}


@dataclass
class State:
    """One run's state: its id and sequence number, the id high-water mark and the FILES tables."""

    run_id: str | None
    run_seq: int
    next_cluster_id: int
    tables: dict[str, pd.DataFrame]
    components: list | None = None   # fingerprints for the next run's cache (history.fingerprint)

    def __getattr__(self, name):
        tables = self.__dict__.get("tables", {})
        if name in tables:
            return tables[name]
        raise AttributeError(name)


def empty_tables() -> dict[str, pd.DataFrame]:
    """The FILES tables with no rows, in their dtypes."""
    return {name: pd.DataFrame({c: pd.Series(dtype=d) for c, d in cols.items()}) for name, cols in FILES.items()}


def _sha256(path: Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as fh:
        for chunk in iter(lambda: fh.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _typed(frame: pd.DataFrame, name: str) -> pd.DataFrame:
    """The FILES columns of `frame`, in order and dtype (strings as object, for parquet as string)."""
    out = pd.DataFrame({c: frame[c].astype(d if d != "object" else object) for c, d in FILES[name].items()})
    return out.reset_index(drop=True)


def write_state(out_dir: str | Path, state: State) -> Path:
    """Write OUT_DIR/state/ (the tables, then state.json with their checksums, last)."""
    folder = Path(out_dir) / "state"
    folder.mkdir(parents=True, exist_ok=True)
    sums = {}
    for name in FILES:
        frame = _typed(state.tables[name], name)
        frame = frame.astype({c: "string" for c, d in FILES[name].items() if d == "object"})
        path = folder / f"{name}.parquet"
        frame.to_parquet(path, index=False)
        sums[name] = _sha256(path)
    meta = {"format": FORMAT, "keyfarm_version": __version__, "run_id": state.run_id, "run_seq": state.run_seq,
            "next_cluster_id": int(state.next_cluster_id), "files": sums}
    (folder / "state.json").write_text(json.dumps(meta, indent=2, sort_keys=True) + "\n")
    from keyfarm.history.fingerprint import write_cache
    write_cache(out_dir, state.run_id, state.components)
    return folder


def read_state(prev_out: str | Path) -> State:
    """The state of PREV_OUT, checked (see the module docstring); KeyfarmInputError otherwise."""
    prev = Path(prev_out)

    def fail(message: str, column: str | None = None):
        raise KeyfarmInputError(f"--previous {prev}: {message}", table="previous", column=column)

    if not prev.is_dir():
        fail("not a folder")
    meta_path = prev / "state" / "state.json"
    if not meta_path.is_file():
        fail("no state/state.json: written by a keyfarm without daily runs, or not an OUT_DIR; "
             "run once without --previous to start a history")
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"state/state.json is not valid JSON ({exc})")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        got = meta.get("format") if isinstance(meta, dict) else None
        fail(f"state format {got!r} written by keyfarm {meta.get('keyfarm_version') if isinstance(meta, dict) else '?'}"
             f" is not format {FORMAT} of keyfarm {__version__}; run once without --previous", column="format")
    for field, kind in (("run_seq", int), ("next_cluster_id", int), ("files", dict)):
        if not isinstance(meta.get(field), kind) or isinstance(meta.get(field), bool):
            fail(f"state/state.json: {field!r} missing or not a {kind.__name__}", column=field)
    run_path = prev / "run.json"
    try:
        run = json.loads(run_path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"run.json missing or not valid JSON ({exc})")
    if run.get("run_id") != meta.get("run_id"):
        fail(f"state/ belongs to run {meta.get('run_id')!r} but run.json is run {run.get('run_id')!r}")
    tables = {name: _read_table(prev, name, meta, fail) for name in FILES}
    return State(run_id=meta["run_id"], run_seq=meta["run_seq"], next_cluster_id=meta["next_cluster_id"],
                 tables=tables)


def _read_table(out: Path, name: str, meta: dict, fail) -> pd.DataFrame:
    """state/<name>.parquet of `out`, checked against its checksum in `meta` (state.json), its
    columns and their types; `fail(message, column=None)` raises."""
    path = out / "state" / f"{name}.parquet"
    if not path.is_file():
        fail(f"state/{name}.parquet missing")
    files = meta.get("files")
    if not isinstance(files, dict) or _sha256(path) != files.get(name):
        fail(f"state/{name}.parquet does not match its checksum in state/state.json (damaged or edited)")
    try:
        frame = pd.read_parquet(path)
    except Exception as exc:  # noqa: BLE001 - any unreadable file is one clear input error
        fail(f"state/{name}.parquet is not readable ({exc})")
    missing = [c for c in FILES[name] if c not in frame.columns]
    if missing:
        fail(f"state/{name}.parquet lacks column {missing[0]!r}", column=missing[0])
    try:
        return _typed(frame, name)
    except (TypeError, ValueError) as exc:
        fail(f"state/{name}.parquet has a column of the wrong type ({exc})")


def read_carried_labels(out_dir: str | Path) -> pd.DataFrame:
    """The labels OUT_DIR carries forward (state/labels.parquet: account_id, label, source, ts),
    checked against state.json; no rows when OUT_DIR has no state/ (a run of a keyfarm before
    daily runs). A damaged state is a KeyfarmInputError naming the file."""
    out = Path(out_dir)

    def fail(message: str, column: str | None = None):
        raise KeyfarmInputError(f"labels: {out}: {message}", table="labels", column=column)

    meta_path = out / "state" / "state.json"
    if not meta_path.is_file():
        return empty_tables()["labels"]
    try:
        meta = json.loads(meta_path.read_text())
    except (OSError, ValueError) as exc:
        fail(f"state/state.json is not valid JSON ({exc})")
    if not isinstance(meta, dict) or meta.get("format") != FORMAT:
        fail(f"state format {meta.get('format') if isinstance(meta, dict) else None!r} is not format {FORMAT}",
             column="format")
    return _read_table(out, "labels", meta, fail)
