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


@click.command("report", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", type=click.Path(file_okay=False))
@click.option("--max-nodes", type=click.IntRange(min=2), default=500, show_default=True,
              help="Clusters with more keys are drawn at account level.")
@click.option("--quiet", "-q", is_flag=True, help="No progress on stderr.")
def report_command(out_dir, max_nodes, quiet):
    """Write OUT_DIR/report/: index.html and one interactive page per cluster (offline HTML).

    \b
    Example:
      keyfarm report out
      keyfarm report out --max-nodes 1500 --quiet
    """
    from keyfarm.progress import Progress
    from keyfarm.report import write_report

    progress = Progress(quiet)
    try:
        with progress.stage("report"):
            index = write_report(out_dir, max_nodes=max_nodes, progress=progress)
    except KeyfarmError as exc:
        raise _InputError(printable(exc)) from None
    click.echo(printable(index))


def page_path(out_dir, cluster_id: int | None = None) -> Path:
    """The report page of OUT_DIR (index, or one cluster's page); writes the report if absent."""
    from keyfarm.report import write_report

    report = Path(out_dir) / "report"
    if not (report / "index.html").is_file():
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
@click.option("--print-path", is_flag=True, help="Print the page's path instead of opening a browser.")
def explore_command(out_dir, cluster_id, print_path):
    """Open the report of OUT_DIR (or one cluster's page) in the default browser.

    Writes the report first if OUT_DIR has none. Without a browser, prints the page's path.

    \b
    Example:
      keyfarm explore out
      keyfarm explore out --cluster 2090 --print-path
    """
    try:
        path = page_path(out_dir, cluster_id)
    except KeyfarmError as exc:
        raise _InputError(printable(exc)) from None
    if print_path or not webbrowser.open(path.as_uri()):
        click.echo(printable(path))
