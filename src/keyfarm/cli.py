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


def handle_errors(func):
    """Turn keyfarm's expected errors into a one-line message and exit code 2."""
    @functools.wraps(func)
    def wrapper(*args, **kwargs):
        try:
            return func(*args, **kwargs)
        except KeyfarmError as exc:
            raise click.ClickException(str(exc)) from None
    return wrapper


class _Exit2(click.ClickException):
    exit_code = 2


click.ClickException.exit_code = 2  # usage and input errors share code 2 (STYLE.md: 0/1/2)


@click.group(context_settings={"help_option_names": ["-h", "--help"]})
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
