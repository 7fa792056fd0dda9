"""The `keyfarm report` and `keyfarm explore` commands: write the HTML report, open a page of it.

Stage: report CLI, a thin layer over `keyfarm.report.write_report`. Exit codes: 0 ok; 2 usage or
input error (a missing OUT_DIR, an unknown cluster).
"""
from __future__ import annotations

import webbrowser
from pathlib import Path

import click

from keyfarm.errors import KeyfarmError, KeyfarmInputError
from keyfarm.terminal import printable


class _InputError(click.ClickException):
    """A KeyfarmError as a one-line message with exit code 2 (as keyfarm.cli.handle_errors does;
    defined here so the commands also work standalone and without a circular import)."""

    exit_code = 2


def _workers(value: str):
    """--workers: "auto" or a whole number of at least 1."""
    if str(value).strip().lower() == "auto":
        return "auto"
    try:
        number = int(value)
    except ValueError:
        number = 0
    if number < 1:
        raise click.BadParameter(f"{value!r} is neither auto nor a whole number of at least 1")
    return number


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--max-nodes", type=click.IntRange(min=2), default=500, show_default=True,
              help="Clusters with more keys are drawn at account level.")
@click.option("--workers", default="auto", show_default=True, callback=lambda ctx, param, value: _workers(value),
              help="Processes drawing the cluster pages: auto (2 up to 200,000 keys on 2+ cores, else 1) or N "
                   "(2+: forked; each copies what it touches of the parent's memory). The pages are the same "
                   "bytes whatever the number.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
@click.option("--json", "as_json", is_flag=True, help='Print {"index": PATH, "pages": N} as JSON.')
def report_command(out_dir, max_nodes, workers, quiet, as_json):
    """Write OUT_DIR/report/: index.html and one interactive page per cluster (offline HTML).

    \b
    Example:
      keyfarm report out
      keyfarm report out --max-nodes 1500 --quiet
      keyfarm report out --quiet --json
      keyfarm report out --workers 2
    """
    from keyfarm.progress import Progress
    from keyfarm.report import write_report

    progress = Progress(quiet)
    try:
        with progress.stage("report"):
            index = write_report(out_dir, max_nodes=max_nodes, progress=progress, workers=workers)
    except KeyfarmError as exc:
        raise _InputError(printable(exc)) from None
    if as_json:
        import json

        pages = sum(1 for _ in (index.parent / "clusters").glob("*.html"))
        click.echo(json.dumps({"index": str(index), "pages": pages}, sort_keys=True, ensure_ascii=True))
    else:
        click.echo(printable(index))


def page_path(out_dir, cluster_id: int | None = None, *, progress=None) -> Path:
    """The report page of OUT_DIR (index, or one cluster's page); writes the report if absent
    (`progress`: a keyfarm.progress.Progress that reports it)."""
    from keyfarm.report import write_report

    report = Path(out_dir) / "report"
    if not (report / "index.html").is_file():
        if progress is not None:
            progress.say(f"no report in {printable(out_dir)} yet: writing it")
            with progress.stage("report"):
                write_report(out_dir, progress=progress)
        else:
            write_report(out_dir)
    if cluster_id is None:
        return (report / "index.html").resolve()
    page = report / "clusters" / f"{cluster_id}.html"
    if not page.is_file():
        raise KeyfarmInputError(f"no page for cluster {cluster_id} in {report / 'clusters'} "
                                "(pages exist for clusters of 2+ accounts)", table="clusters",
                                column="cluster_id", row=cluster_id)
    return page.resolve()


@click.command("explore", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--cluster", "cluster_id", type=int, default=None, help="Open this cluster's page.")
@click.option("--account", "account_id", default=None, help="Open the page of the cluster holding this account.")
@click.option("--key", "key_id", default=None, help="Open the page of the cluster holding this key.")
@click.option("--print-path", is_flag=True, help="Print the page's path instead of opening a browser.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr (when the report must be written first).")
@click.option("--json", "as_json", is_flag=True,
              help='Print {"path", "cluster_id", "found_by"} as JSON instead of opening a browser.')
def explore_command(out_dir, cluster_id, account_id, key_id, print_path, quiet, as_json):
    """Open the report of OUT_DIR (or the page of one cluster, account or key) in the browser.

    Writes the report first if OUT_DIR has none. Without a browser, prints the page's path.
    In Python (and notebooks): keyfarm.report.explore(out_dir, key=...).

    \b
    Example:
      keyfarm explore out
      keyfarm explore out --cluster 2090 --print-path
      keyfarm explore out --key sk-live-123 --print-path
      keyfarm explore out --account acct_42 --json
    """
    from keyfarm.progress import Progress
    from keyfarm.report.explore import explore

    try:
        page = explore(out_dir, cluster=cluster_id, account=account_id, key=key_id, progress=Progress(quiet))
    except KeyfarmError as exc:
        raise _InputError(printable(exc)) from None
    if as_json:
        import json

        click.echo(json.dumps({"path": str(page.path), "cluster_id": page.cluster_id, "found_by": page.found_by},
                              sort_keys=True, ensure_ascii=True))
    elif print_path or not webbrowser.open(page.path.as_uri()):
        click.echo(printable(page.path))


@click.command("label", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.argument("label", type=click.Choice(["farm", "benign"]))
@click.option("--cluster", "cluster_id", type=int, default=None, help="Label this cluster (of OUT_DIR).")
@click.option("--account", "account_id", default=None, help="Label this account.")
@click.option("--note", default=None, help="Free text kept with the label (why, ticket id).")
@click.option("--source", default="analyst", show_default=True,
              help="Who or what judged (analyst, appeal, revert, truth).")
@click.option("--quiet", "-q", is_flag=True, help="Print nothing on success.")
@click.option("--json", "as_json", is_flag=True, help="Print the row written as JSON.")
def label_command(out_dir, label, cluster_id, account_id, note, source, quiet, as_json):
    """Record an analyst's verdict: append a row to OUT_DIR/labels.parquet.

    One of --cluster or --account. The labels table is SCHEMA.md's (account_id or cluster_id,
    label, source, ts, plus note); the report's pages show it (pages of an existing report are
    refreshed) and `keyfarm calibrate OUT_DIR` reads it.

    \b
    Example:
      keyfarm label out farm --cluster 2090 --note "one card, 40 accounts, ticket T-17"
      keyfarm label out benign --account acct_42 --source appeal
    """
    import json

    from keyfarm.labels import append_label
    from keyfarm.report.escape import plain
    from keyfarm.report import refresh_pages
    import pandas as pd

    try:
        row = append_label(out_dir, label, cluster_id=cluster_id, account_id=account_id, note=note, source=source)
        if cluster_id is not None:
            clusters = [cluster_id]
        else:   # the account's cluster, whatever its size (refresh_pages skips clusters without a page)
            members = pd.read_parquet(Path(out_dir) / "members.parquet", columns=["account_id", "cluster_id"])
            clusters = members.loc[members["account_id"].astype(str) == str(account_id), "cluster_id"].unique()
        refreshed = refresh_pages(out_dir, clusters)
    except KeyfarmError as exc:
        raise _InputError(printable(exc)) from None
    record = {k: plain(v) for k, v in row.iloc[0].to_dict().items()}
    if as_json:
        click.echo(json.dumps(record, sort_keys=True))
    elif not quiet:
        what = f"cluster {cluster_id}" if cluster_id is not None else f"account {account_id}"
        click.echo(printable(f"{Path(out_dir) / 'labels.parquet'}: {what} labelled {label}")
                   + (f"; {len(refreshed)} report pages refreshed" if refreshed else ""))
