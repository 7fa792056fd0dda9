"""The `keyfarm` command: a thin click layer over the Python API.

Each subcommand calls one public function; expected failures (KeyfarmError) become a one-line
message on stderr and exit code 2. Subcommands that live with their package (enforce, report)
are defined there and registered here.
"""
from __future__ import annotations

import functools
import logging
import sys

import click

from keyfarm import __version__
from keyfarm.errors import KeyfarmError
from keyfarm.terminal import printable, printable_lines


def handle_errors(func):
    """Turn keyfarm's expected errors into a one-line message and exit code 2."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KeyfarmError as exc:   # values from input files are in messages: escape them
            raise click.ClickException(printable(exc)) from None
        except OSError as exc:        # a folder that cannot be written, a full disk: no traceback
            where = f"{exc.filename}: " if exc.filename else ""
            raise click.ClickException(printable(f"{where}{exc.strerror or exc}")) from None
    return wrapper


click.ClickException.exit_code = 2  # usage and input errors share code 2 (STYLE.md: 0/1/2)

quiet_option = click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
json_option = click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
share_option = click.option(
    "--max-quarantine-share", type=click.FloatRange(0, 1), default=0.5, show_default=True,
    help="Stop (exit 2) when a table loses more than this share of its rows to quarantine; a table "
         "losing every row always stops.")


class _LazyGroup(click.Group):
    """A group whose package commands (enforce, report, explore, label) are imported when named:
    `keyfarm link` with a bad setting answers without loading the report or enforcement code."""

    LAZY = {"enforce": ("keyfarm.enforce.command", "enforce_command"),
            "report": ("keyfarm.report.command", "report_command"),
            "explore": ("keyfarm.report.command", "explore_command"),
            "label": ("keyfarm.report.command", "label_command")}

    def list_commands(self, ctx):
        return sorted(set(super().list_commands(ctx)) | set(self.LAZY))

    def get_command(self, ctx, name):
        if name in self.LAZY and name not in self.commands:
            import importlib

            module, attr = self.LAZY[name]
            self.add_command(getattr(importlib.import_module(module), attr), name)
        command = super().get_command(ctx, name)
        if command is not None and not any(p.name == "verbose" for p in command.params):
            command.params.append(_verbose_after())   # `keyfarm link ... --verbose` as `keyfarm --verbose link`
        return command


def _verbose_after() -> click.Option:
    """The group's --verbose, accepted after a subcommand too (the group has configured logging
    by the time a subcommand's options are parsed)."""
    def turn_on(ctx, param, value):
        if value:
            logging.getLogger().setLevel(logging.DEBUG)

    return click.Option(["--verbose"], is_flag=True, expose_value=False, callback=turn_on,
                        help="Log debug messages to stderr (as `keyfarm --verbose COMMAND`).")


@click.group(cls=_LazyGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.version_option(__version__, prog_name="keyfarm")
@click.option("--verbose", is_flag=True, help="Log debug messages to stderr.")
def main(verbose: bool) -> None:
    """Link API keys into farms: generate, validate, link, evaluate, report, enforce.

    \b
    Example:
      keyfarm generate world --keys 5000 --seed 7
      keyfarm link world --out out
      keyfarm evaluate out --truth world/truth.parquet
    """
    logging.basicConfig(level=logging.DEBUG if verbose else logging.WARNING,
                        format="%(levelname)s %(name)s: %(message)s", stream=sys.stderr)


@main.command()
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--keys", "n_keys", type=click.IntRange(min=2000), default=5000, show_default=True,
              help="Number of API keys in the world.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True,
              help="Random seed (same seed, same bytes; another seed draws other parameters).")
@click.option("--days", type=click.IntRange(min=1), default=3, show_default=True, help="Days of request logs.")
@click.option("--requests-per-key", type=click.FloatRange(min=1), default=10.0, show_default=True,
              help="Mean request rows per key.")
@click.option("--dirty", "dirty_rows", type=click.IntRange(min=0), default=0, show_default=True,
              help="Append this many malformed request rows (to exercise quarantine).")
@click.option("--patterns", default=None,
              help="Comma-separated benign patterns and farm tactics to include (default: all; "
                   "'legacy': the first generator's).")
@click.option("--continue", "continue_from", type=click.Path(exists=True, file_okay=False), default=None,
              help="Write the next period of this generated world (its seed, size and days; the options "
                   "above are ignored): same accounts, new traffic, new accounts, banned farms coming back.")
@quiet_option
@json_option
@handle_errors
def generate(out_dir, n_keys, seed, days, requests_per_key, dirty_rows, patterns, continue_from, quiet, as_json):
    """Write a synthetic world (input tables, truth.parquet, params.json) to OUT_DIR.

    params.json lists every parameter drawn for this seed (see keyfarm.synth.world_parameters).

    \b
    Example:
      keyfarm generate world --keys 50000 --seed 1 --days 3
      keyfarm generate world-2 --continue world
      keyfarm generate world --keys 5000 --quiet --json   # {"out_dir": ..., "rows": {...}}
    """
    from keyfarm.progress import Progress
    if continue_from is not None:
        from keyfarm.synth.continuation import next_period_command

        next_period_command(continue_from, out_dir, Progress(quiet))
        _echo_written(out_dir, as_json)
        return
    from keyfarm.synth import LEGACY_PATTERNS, generate_world, world_parameters, write_world

    chosen = None
    if patterns:
        chosen = LEGACY_PATTERNS if patterns == "legacy" else [p.strip() for p in patterns.split(",") if p.strip()]
    progress = Progress(quiet)
    try:
        params = world_parameters(n_keys, seed, days=days, requests_per_key=requests_per_key, patterns=chosen)
    except ValueError as exc:
        raise click.BadParameter(str(exc), param_hint="--patterns") from None
    with progress.stage("generate") as info:
        world = generate_world(n_keys, seed, days=days, requests_per_key=requests_per_key,
                               dirty_rows=dirty_rows, patterns=chosen)
        info["counts"] = ", ".join(f"{len(v):,} {k}" for k, v in world.items())
    with progress.stage("write"):
        write_world(world, out_dir, params=params)
    _echo_written(out_dir, as_json, {name: len(frame) for name, frame in world.items()})


def _echo_written(out_dir, as_json: bool, rows: dict | None = None) -> None:
    """The folder written: its path, or with --json {"out_dir", "rows"} (rows per table when known)."""
    if as_json:
        import json

        doc = {"out_dir": str(out_dir)} if rows is None else {"out_dir": str(out_dir), "rows": rows}
        click.echo(json.dumps(doc, sort_keys=True, ensure_ascii=True))
    else:
        click.echo(printable(out_dir))


@main.command()
@click.argument("input_dir", type=click.Path())
@json_option
@share_option
@quiet_option
@handle_errors
def validate(input_dir, as_json, max_quarantine_share, quiet):
    """Load and validate the tables in INPUT_DIR; print row and quarantine counts.

    With --quiet nothing is printed unless a table fails (exit 2): the exit code is the answer.

    \b
    Example:
      keyfarm validate world --json
      keyfarm validate logs/2026-11-22 --max-quarantine-share 0.01 --quiet && keyfarm link logs/2026-11-22 --out out
    """
    import json

    from keyfarm.io import load_tables

    tables = load_tables(input_dir, max_quarantine_share=None)   # counts first, then the verdict on them
    summary = {"input_rows": tables.input_rows, "valid_rows": tables.valid_rows(),
               "quarantined": tables.quarantine_counts(), "nulled": tables.nulled_counts()}
    if as_json:
        click.echo(json.dumps(summary, indent=2, sort_keys=True))
    elif not quiet:
        for name, rows in summary["input_rows"].items():
            click.echo(f"{name:<9} {rows:>12,} rows read, {summary['valid_rows'][name]:>12,} valid")
        for name, reasons in summary["quarantined"].items():
            for reason, count in reasons.items():
                click.echo(f"quarantined {name}: {count:,} rows ({reason})")
        for name, columns in summary["nulled"].items():
            for column, reasons in columns.items():
                for reason, count in reasons.items():
                    click.echo(f"nulled {name}.{column}: {count:,} values ({reason}; rows kept)")
    tables.check_quarantine(max_quarantine_share)


@main.command()
@click.argument("out_dir", type=click.Path())
@click.option("--truth", type=click.Path(), default=None, help="truth.parquet of a generated world.")
@click.option("--labels", "labels_path", is_flag=False, flag_value="", default=None, metavar="[LABELS]",
              help="Compare with analysts' labels: a labels table (CSV or Parquet), or without a value "
                   "OUT_DIR/labels.parquet (written by `keyfarm label`).")
@json_option
@quiet_option
@handle_errors
def evaluate(out_dir, truth, labels_path, as_json, quiet):
    """Score a linkage run in OUT_DIR against ground truth and/or analysts' labels.

    With --truth: key-level precision/recall/F1, B-cubed and per-pattern rates. With --labels:
    each cluster's and account's latest label against the run's verdict (precision, recall, a
    verdict x label table; labels of ids the run lacks are counted as unmatched). In JSON the
    label figures are under "labels".

    \b
    Example:
      keyfarm evaluate out --truth world/truth.parquet
      keyfarm evaluate out --labels                 # out/labels.parquet
      keyfarm evaluate out --labels reviews.csv --json
    """
    import json

    from keyfarm.evaluate import evaluate as run_evaluate, evaluate_labels, format_labels_report, format_report, \
        run_tables

    if truth is None and labels_path is None:
        raise click.UsageError("give --truth TRUTH and/or --labels [LABELS]")
    metrics, parts = {}, []
    if truth is not None:
        metrics = run_evaluate(out_dir, truth)
        parts.append(format_report(metrics))
    if labels_path is not None:
        from keyfarm.labels import read_out_labels
        from keyfarm.scoring.calibrate import read_labels

        labels = read_labels(labels_path) if labels_path else read_out_labels(out_dir)
        if not len(labels):
            raise click.ClickException(printable(f"labels: no labels in {out_dir}/labels.parquet "
                                                  "(record some with `keyfarm label`, or give a labels file)"))
        metrics["labels"] = evaluate_labels(*run_tables(out_dir, ("key_id", "account_id", "cluster_id")), labels)
        parts.append(format_labels_report(metrics["labels"]))
    click.echo(json.dumps(metrics, indent=2, sort_keys=True, ensure_ascii=True) if as_json
               else printable_lines("\n\n".join(parts)))


@main.command()
@click.argument("out_dir", type=click.Path())
@click.option("--verdict", multiple=True, type=click.Choice(["farm", "review", "clear"]),
              help="Only clusters with this verdict (repeat for several).")
@click.option("--min-score", type=click.FloatRange(0, 1), default=None, help="Only clusters scoring at least this.")
@click.option("--signal", multiple=True, metavar="SIGNAL",
              help="Only clusters linked by this signal (payment, ip, device, prompt, timing; repeat for several).")
@click.option("--min-accounts", type=click.IntRange(min=2), default=None, help="Only clusters of this many accounts or more.")
@click.option("--limit", type=click.IntRange(min=0), default=None, help="At most this many rows (highest score first).")
@click.option("--all-columns", is_flag=True, help="Every column of clusters.parquet (features, evidence), not SCHEMA.md's.")
@click.option("--csv", "as_csv", is_flag=True, help="CSV with a header on stdout.")
@click.option("--ids", "as_ids", is_flag=True, help="Only the cluster ids, one per line (for shell loops).")
@json_option
@quiet_option
@handle_errors
def clusters(out_dir, verdict, min_score, signal, min_accounts, limit, all_columns, as_csv, as_ids, as_json, quiet):
    """List the clusters of OUT_DIR, highest score first, filtered by verdict, score, signal, size.

    A table on stdout, or --json (an array of objects) or --csv (text cells starting with = + - @
    get a leading ' against spreadsheet formulas). The count of rows goes to stderr unless --quiet.

    \b
    Example:
      keyfarm clusters out --verdict farm
      keyfarm clusters out --verdict review --min-score 0.4 --signal payment --csv > review.csv
      keyfarm clusters out --verdict farm --json | jq '.[].cluster_id'
      for id in $(keyfarm clusters out --verdict farm --ids --quiet); do keyfarm explore out --cluster $id; done
    """
    from keyfarm.query import select_clusters, to_csv, to_json, to_text

    if as_csv + as_json + as_ids > 1:
        raise click.UsageError("--csv, --json and --ids are exclusive")
    if signal:   # the signal registry's names (importing it loads Numba: only when asked)
        from keyfarm.graph.weighting import SIGNALS

        unknown = [s for s in signal if s not in SIGNALS[1:]]
        if unknown:
            raise click.BadParameter(f"{unknown[0]!r} is not one of {', '.join(SIGNALS[1:])}", param_hint="--signal")
    rows = select_clusters(out_dir, verdict=verdict or None, min_score=min_score, signal=signal or None,
                           min_accounts=min_accounts, limit=limit, all_columns=all_columns)
    if as_json:
        click.echo(to_json(rows))
    elif as_csv:
        click.echo(to_csv(rows), nl=False)
    elif as_ids:
        click.echo("".join(f"{int(c)}\n" for c in rows["cluster_id"]), nl=False)
    else:
        click.echo(printable_lines(to_text(rows)))
    if not quiet:
        click.echo(f"{len(rows):,} clusters", err=True)


@main.command()
@click.argument("input_dir", type=click.Path())
@click.option("--out", "out_dir", type=click.Path(file_okay=False), required=True, help="Output folder.")
@click.option("--config", "config_path", type=click.Path(), default=None, help="TOML configuration file.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of community detection.")
@click.option("--no-report", is_flag=True, help="Skip the HTML report.")
@click.option("--engine", type=click.Choice(["local", "spark"]), default="local", show_default=True,
              help="local: pandas + Numba on this machine; spark: PySpark (pip install 'keyfarm[spark]').")
@click.option("--spark-master", default="local[2]", show_default=True, help="Spark master URL.")
@click.option("--spark-partitions", type=click.IntRange(min=1), default=None,
              help="Spark shuffle partitions (key, block and token groups); default: 2 per local thread, "
                   "else the cluster's spark.sql.shuffle.partitions.")
@click.option("--spark-conf", "spark_conf", multiple=True, metavar="KEY=VALUE",
              help="A Spark setting for the session (repeatable), e.g. spark.executor.memory=4g.")
@click.option("--previous", "previous", type=click.Path(), default=None,
              help="The previous run's OUT_DIR: stable cluster ids, changes.parquet, returning farms.")
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False), default=None,
              help="Labels table (account_id or cluster_id, label farm|benign): carried to later runs.")
@click.option("--banned", "banned", type=click.Path(dir_okay=False), default=None,
              help="Enforcement audit database: banned accounts' values count, reverted bans are benign.")
@share_option
@quiet_option
@json_option
@handle_errors
def link(input_dir, out_dir, config_path, seed, no_report, engine, spark_master, spark_partitions, spark_conf,
         previous, labels_path, banned, max_quarantine_share, quiet, as_json):
    """Link the keys in INPUT_DIR into clusters and score them; write OUT_DIR.

    \b
    Example:
      keyfarm link world --out out --seed 1
      keyfarm link world --out out --quiet --json   # {"out_dir": ..., "counts": {...}}
      keyfarm link logs/2026-11-22 --out out --config keyfarm.toml --quiet
      keyfarm link logs/2026-11-23 --out out-23 --previous out-22 --banned audit.db
      keyfarm link s3a://lake/requests-day/ --out out --engine spark --spark-master yarn \\
          --spark-conf spark.executor.memory=8g --spark-conf spark.eventLog.enabled=true
    """
    if engine != "spark" and spark_conf:
        raise click.UsageError("--spark-conf needs --engine spark")
    if engine == "spark":
        from keyfarm.spark import run_link_spark
        from keyfarm.spark.engine import parse_spark_conf

        result = run_link_spark(input_dir, out_dir, config_path=config_path, seed=seed, quiet=quiet,
                                report=not no_report, master=spark_master, partitions=spark_partitions,
                                max_quarantine_share=max_quarantine_share,
                                spark_conf=parse_spark_conf(spark_conf), previous=previous,
                                labels_path=labels_path, banned=banned)
    else:
        from keyfarm.pipeline import run_link

        result = run_link(input_dir, out_dir, config_path=config_path, seed=seed, quiet=quiet,
                          report=not no_report, previous=previous, labels_path=labels_path, banned=banned,
                          max_quarantine_share=max_quarantine_share)
    counts = result.run["counts"]
    if as_json:
        import json

        click.echo(json.dumps({"out_dir": str(out_dir), "counts": counts}, sort_keys=True, ensure_ascii=True))
        return
    click.echo(f"{printable(out_dir)}: {counts['keys']:,} keys, {counts['clusters']:,} clusters, "
               f"{counts['flagged_clusters']:,} flagged ({counts['flagged_keys']:,} keys)")


@main.command()
@click.argument("out_dirs", nargs=-1, required=True, type=click.Path(exists=True, file_okay=False))
@click.option("--labels", "labels_path", type=click.Path(dir_okay=False),
              help="Labels table (CSV or Parquet): account_id or cluster_id, label farm|benign[, source, ts].")
@click.option("--audit", "audit_db", type=click.Path(dir_okay=False),
              help="Enforcement audit database: accounts of reverted bans become benign labels.")
@click.option("--out", "out_path", type=click.Path(dir_okay=False), help="Write the [scoring] section here.")
@click.option("--C", "C", type=click.FloatRange(min=0, min_open=True), default=1.0, show_default=True,
              help="Inverse L2 regularisation strength of the logistic regression.")
@click.option("--folds", type=click.IntRange(min=2), default=5, show_default=True, help="Cross-validation folds.")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of the fold split.")
@json_option
@quiet_option
@handle_errors
def calibrate(out_dirs, labels_path, audit_db, out_path, C, folds, seed, as_json, quiet):
    """Fit the verdict's weights on labelled clusters of OUT_DIRS (written by `keyfarm link`).

    Prints cross-validated precision and recall and a reliability table, and writes the fitted
    [scoring] section (bias, weights) to --out for `keyfarm link --config`. Without --labels and
    --audit, the analysts' labels of each OUT_DIR (its labels.parquet, from `keyfarm label`).
    The labels an OUT_DIR carries forward from earlier daily runs (state/labels.parquet, from
    `keyfarm link --previous`) always count, for the accounts of that OUT_DIR.

    \b
    Example:
      keyfarm calibrate out-day1 out-day2 --labels labels.csv --audit audit.db --out scoring.toml
      keyfarm calibrate out --out scoring.toml
    """
    import json

    import pandas as pd

    from keyfarm.errors import KeyfarmInputError
    from keyfarm.scoring.calibrate import calibrate as fit_labels, carried_labels, labels_from_audit, read_labels

    parts = []
    if labels_path:
        parts.append(read_labels(labels_path))
    if audit_db:
        parts.append(labels_from_audit(audit_db))
    if not parts:   # each OUT_DIR's own labels, scoped to it (cluster ids are per run)
        from pathlib import Path

        from keyfarm.labels import read_out_labels

        parts = [read_out_labels(d).assign(out_dir=str(Path(d))) for d in out_dirs]
        parts = [p for p in parts if len(p)]
    parts += carried_labels(out_dirs)   # labels a daily run carried forward (state/labels.parquet)
    if not parts:
        raise KeyfarmInputError("calibrate: give --labels and/or --audit, or label clusters of an OUT_DIR "
                                "with `keyfarm label`", table="labels")
    labels = pd.concat(parts, ignore_index=True)
    result = fit_labels(out_dirs, labels, C=C, folds=folds, seed=seed,
                        fitted_on=f"keyfarm calibrate on {len(out_dirs)} run(s)")
    if out_path:
        with open(out_path, "w") as fh:
            fh.write(result.to_toml())
        if not quiet:
            click.echo(f"[scoring] section written to {printable(out_path)}", err=True)
    if as_json:
        click.echo(json.dumps({"bias": result.bias, "weights": result.weights, "n_clusters": result.n_clusters,
                               "n_farm": result.n_farm, "cv_precision": result.cv_precision,
                               "cv_recall": result.cv_recall,
                               "reliability": result.reliability.to_dict("records")}, indent=2))
    else:
        click.echo(printable_lines(result.report()))
