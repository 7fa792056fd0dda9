"""The one OUT_DIR reader (keyfarm.outputs): report, enforcement, evaluation and calibration read
through it; broken files are one clear error, extra columns and tables are kept (issue 20)."""
from __future__ import annotations

import json

import pandas as pd
import pytest
from click.testing import CliRunner

from keyfarm.cli import main
from keyfarm.enforce.testing import write_out_dir

SPEC = [{"cluster_id": 0, "accounts": [(f"a{i}", [f"a{i}k"]) for i in range(3)]}]


def _out(tmp_path):
    out = write_out_dir(tmp_path / "out", SPEC, singletons=1)
    truth = pd.DataFrame({"key_id": ["a0k", "a1k", "a2k", "solo-0000"], "farm_id": ["f", "f", "f", None],
                          "pattern": ["farm", "farm", "farm", "benign"]})
    truth.to_parquet(tmp_path / "truth.parquet", index=False)
    return out


COMMANDS = {
    "enforce": lambda out, tmp: ["enforce", str(out), "--as-of", "2025-06-01"],
    "report": lambda out, tmp: ["report", str(out), "--quiet"],
    "evaluate": lambda out, tmp: ["evaluate", str(out), "--truth", str(tmp / "truth.parquet")],
}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_extra_columns_and_tables_of_newer_runs_are_read_and_kept(tmp_path, command):
    out = _out(tmp_path)
    clusters = pd.read_parquet(out / "clusters.parquet")
    clusters.assign(status="new", first_seen="run-0", returning=False).to_parquet(out / "clusters.parquet")
    pd.DataFrame({"cluster_id": [0], "change": ["new"]}).to_parquet(out / "changes.parquet")
    result = CliRunner().invoke(main, COMMANDS[command](out, tmp_path))
    assert result.exit_code == 0, result.output


@pytest.mark.parametrize("command", sorted(COMMANDS))
@pytest.mark.parametrize("broken", ["clusters.parquet", "members.parquet"])
def test_a_damaged_output_table_is_one_line_naming_the_file(tmp_path, command, broken):
    out = _out(tmp_path)
    data = (out / broken).read_bytes()
    (out / broken).write_bytes(data[: len(data) // 2])   # a copy cut short
    result = CliRunner().invoke(main, COMMANDS[command](out, tmp_path))
    assert result.exit_code == 2, result.output
    assert broken in result.output and "cannot read" in result.output
    assert len(result.output.strip().splitlines()) == 1


@pytest.mark.parametrize("text", ["[1, 2]", "{not json", '"run"'])
def test_a_run_json_that_is_not_an_object_is_an_error_for_enforcement_and_the_report(tmp_path, text):
    out = _out(tmp_path)
    (out / "run.json").write_text(text)
    for command in ("enforce", "report"):
        result = CliRunner().invoke(main, COMMANDS[command](out, tmp_path))
        assert result.exit_code == 2 and "run:" in result.output, result.output


def test_quarantine_counts_come_from_run_json_else_from_the_files(tmp_path):
    from keyfarm.outputs import quarantine_counts
    out = _out(tmp_path)
    (out / "quarantine").mkdir()
    pd.DataFrame({"source_row": [1, 2], "reason": ["empty_id", "empty_id"]}).to_parquet(
        out / "quarantine" / "keys.parquet")
    assert quarantine_counts(out, {}) == {"keys": {"empty_id": 2}}
    assert quarantine_counts(out, json.loads('{"quarantined": {"requests": {"x": 1}}}')) == {"requests": {"x": 1}}


@pytest.mark.parametrize("command", sorted(COMMANDS))
def test_edges_as_a_folder_of_parts_read_as_the_one_file(tmp_path, command):
    """edges.parquet as Spark writes a table (part files, _SUCCESS, .crc): the same rows, in part order,
    for enforcement, the report and evaluation."""
    from keyfarm.outputs import read_output

    out = _out(tmp_path)
    edges = pd.read_parquet(out / "edges.parquet")
    assert len(edges) >= 2
    (out / "edges.parquet").unlink()
    folder = out / "edges.parquet"
    folder.mkdir()
    half = len(edges) // 2
    edges.iloc[half:].to_parquet(folder / "part-00001-x.snappy.parquet", index=False)
    edges.iloc[:half].to_parquet(folder / "part-00000-x.snappy.parquet", index=False)
    (folder / "_SUCCESS").write_text("")
    (folder / ".part-00000-x.snappy.parquet.crc").write_bytes(b"\0")
    pd.testing.assert_frame_equal(read_output(out, "edges"), edges)
    result = CliRunner().invoke(main, COMMANDS[command](out, tmp_path))
    assert result.exit_code == 0, result.output
