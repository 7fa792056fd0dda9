"""The keyfarm command: help everywhere, clean errors, generate/validate/evaluate end to end."""
from __future__ import annotations

import json
import subprocess
import sys

import click
from click.testing import CliRunner

from keyfarm.cli import main


def _walk(group, prefix=()):
    ctx = click.Context(group)
    for name in group.list_commands(ctx):   # the lazily imported commands too
        cmd = group.get_command(ctx, name)
        yield prefix + (name,), cmd
        if isinstance(cmd, click.Group):
            yield from _walk(cmd, prefix + (name,))


def test_every_command_has_help_with_an_example_quiet_and_json():
    runner = CliRunner()
    names = []
    for path, cmd in _walk(main):
        names.append(path[-1])
        result = runner.invoke(main, [*path, "--help"])
        assert result.exit_code == 0, path
        assert cmd.help and "Example" in cmd.help, f"{' '.join(path)} lacks help with an example"
        options = {o for p in cmd.params for o in getattr(p, "opts", ())}
        assert {"--quiet", "--json", "--verbose"} <= options, f"{' '.join(path)}: {sorted(options)}"
        assert "--quiet" in result.output and "--json" in result.output
    assert {"generate", "validate", "link", "evaluate", "clusters", "report", "explore", "label", "enforce",
            "calibrate"} <= set(names)


def test_global_verbose_is_accepted_after_the_subcommand(tmp_path):
    runner = CliRunner()
    world = tmp_path / "world"
    assert runner.invoke(main, ["generate", str(world), "--keys", "2000", "--quiet"]).exit_code == 0
    before = runner.invoke(main, ["--verbose", "validate", str(world), "--json", "--quiet"])
    after = runner.invoke(main, ["validate", str(world), "--json", "--quiet", "--verbose"])
    assert before.exit_code == after.exit_code == 0, after.output
    assert json.loads(after.stdout) == json.loads(before.stdout)


def test_progress_bars_only_on_a_terminal():
    import io

    from keyfarm.progress import Progress

    class Terminal(io.StringIO):
        def isatty(self):
            return True

    log, tty = io.StringIO(), Terminal()
    for stream in (log, tty):
        progress = Progress(file=stream)
        for _ in progress.bar(range(3), total=3, desc="pages"):
            pass
        progress.say("done")
    assert "\r" not in log.getvalue() and "pages" not in log.getvalue() and "done" in log.getvalue()
    assert "pages" in tty.getvalue()
    quiet = io.StringIO()
    for _ in Progress(quiet=True, file=quiet).bar(range(3), total=3, desc="pages"):
        pass
    assert quiet.getvalue() == ""


def test_link_json_prints_the_counts_and_generate_json_the_rows(tmp_path):
    runner = CliRunner()
    world = tmp_path / "world"
    made = runner.invoke(main, ["generate", str(world), "--keys", "2000", "--seed", "2", "--quiet", "--json"])
    assert json.loads(made.stdout)["rows"]["keys"] == 2000
    linked = runner.invoke(main, ["link", str(world), "--out", str(tmp_path / "out"), "--no-report", "--quiet",
                                  "--json"])
    assert linked.exit_code == 0, linked.output
    doc = json.loads(linked.stdout)
    run = json.loads((tmp_path / "out" / "run.json").read_text())
    assert doc == {"out_dir": str(tmp_path / "out"), "counts": run["counts"]}
    assert linked.stderr == ""


def test_generate_then_validate_as_json(tmp_path):
    runner = CliRunner()
    out = tmp_path / "world"
    result = runner.invoke(main, ["generate", str(out), "--keys", "2000", "--seed", "1", "--dirty", "4", "--quiet"])
    assert result.exit_code == 0, result.output
    result = runner.invoke(main, ["validate", str(out), "--json"])
    summary = json.loads(result.output)
    assert summary["input_rows"]["keys"] == 2000
    assert sum(summary["quarantined"]["requests"].values()) == 4


def test_validate_quiet_answers_with_its_exit_code_only(tmp_path):
    runner = CliRunner()
    out = tmp_path / "world"
    assert runner.invoke(main, ["generate", str(out), "--keys", "2000", "--seed", "1", "--quiet"]).exit_code == 0
    ok = runner.invoke(main, ["validate", str(out), "--quiet"])
    assert ok.exit_code == 0 and ok.output == ""
    assert "rows read" in runner.invoke(main, ["validate", str(out)]).output
    bad = runner.invoke(main, ["validate", str(tmp_path / "missing"), "--quiet"])
    assert bad.exit_code == 2 and "does not exist" in bad.output


def test_input_error_is_one_line_with_exit_code_2(tmp_path):
    proc = subprocess.run([sys.executable, "-m", "keyfarm", "validate", str(tmp_path / "missing")],
                          capture_output=True, text=True)
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr
    assert proc.stderr.strip().count("\n") == 0 and "does not exist" in proc.stderr


def test_duplicate_key_id_through_the_cli_is_one_line_naming_table_column_and_rows(tmp_path):
    (tmp_path / "keys.csv").write_text("key_id,account_id,created_at\nk1,a1,2026-11-01\nk1,a2,2026-11-02\n")
    proc = subprocess.run([sys.executable, "-m", "keyfarm", "link", str(tmp_path), "--out", str(tmp_path / "out"),
                           "--quiet"], capture_output=True, text=True)
    assert proc.returncode == 2 and "Traceback" not in proc.stderr
    line = proc.stderr.strip()
    assert "\n" not in line and "table keys" in line and "'key_id'" in line and "'k1'" in line
    assert not (tmp_path / "out" / "members.parquet").exists()


def test_evaluate_as_json_gives_the_metrics_of_the_table(tmp_path):
    runner = CliRunner()
    world = tmp_path / "world"
    assert runner.invoke(main, ["generate", str(world), "--keys", "2000", "--seed", "2", "--quiet"]).exit_code == 0
    linked = runner.invoke(main, ["link", str(world), "--out", str(tmp_path / "out"), "--no-report", "--quiet"])
    assert linked.exit_code == 0, linked.output
    result = runner.invoke(main, ["evaluate", str(tmp_path / "out"), "--truth", str(world / "truth.parquet"), "--json"])
    assert result.exit_code == 0, result.output
    doc = json.loads(result.output)
    from keyfarm.evaluate import evaluate
    assert doc == json.loads(json.dumps(evaluate(tmp_path / "out", world / "truth.parquet"), default=str))
    assert 0 <= doc["precision"] <= 1 and 0 <= doc["recall"] <= 1


def test_a_bad_setting_fails_before_any_stage_is_imported(tmp_path):
    """The CLI loads a package's code when its command runs, and the configuration is checked
    before any table: a bad setting answers without importing the report or enforcement code."""
    import subprocess
    import sys

    bad = tmp_path / "bad.toml"
    bad.write_text("[scoring]\nbias = nan\n")
    probe = ("import sys\nfrom click.testing import CliRunner\nfrom keyfarm.cli import main\n"
             f"r = CliRunner().invoke(main, ['link', {str(tmp_path)!r}, '--out', {str(tmp_path / 'out')!r}, "
             f"'--config', {str(bad)!r}])\n"
             "print(r.exit_code, sorted(m for m in ('keyfarm.report', 'keyfarm.enforce', 'keyfarm.synth') "
             "if m in sys.modules))\nprint(r.output)")
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    first, message = out.split("\n", 1)
    assert first == "2 []", out
    assert "scoring.bias must be a finite number" in message
