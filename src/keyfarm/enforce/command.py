"""The `keyfarm enforce` command: dry-run plans, guarded application, audited revert.

Stage: enforcement CLI, a thin layer over `keyfarm.enforce`. Exit codes: 0 ok; 1 a guard refused
something (an oversized cluster, the plan's budget, a reverted run) or actions are still pending or
failed; 2 usage or input error.
"""
from __future__ import annotations

import json
import sys
from datetime import date
from pathlib import Path

import click

from keyfarm.errors import KeyfarmError
from keyfarm.terminal import printable


class _InputError(click.ClickException):
    """A KeyfarmError as a one-line message with exit code 2 (as keyfarm.cli.handle_errors does;
    defined here so the command also works standalone and without a circular import)."""

    exit_code = 2


def _iso_date(ctx, param, value):
    if value is None:
        return None
    try:
        return date.fromisoformat(value)
    except ValueError:
        raise click.BadParameter(f"expected YYYY-MM-DD, got {value!r}") from None


@click.command("enforce", context_settings={"help_option_names": ["-h", "--help"]})
@click.argument("out_dir", required=False, type=click.Path(file_okay=False))
@click.option("--min-score", type=click.FloatRange(0, 1), default=0.5, show_default=True,
              help="Exclude clusters scoring below this.")
@click.option("--include-unflagged", is_flag=True, help="Also consider clusters the job did not flag.")
@click.option("--max-accounts", type=click.IntRange(min=1), default=500, show_default=True,
              help="Refuse a cluster with more accounts (unless --force).")
@click.option("--max-total-accounts", type=click.IntRange(min=1), default=5000, show_default=True,
              help="Refuse the whole plan if it touches more accounts (unless --force).")
@click.option("--allowlist", type=click.Path(dir_okay=False), help="Allowlist file (.csv or .toml).")
@click.option("--as-of", callback=_iso_date, help="Judge allowlist expiry on this date (default: today, UTC).")
@click.option("--action-rule", type=click.Choice(["auto", "ban", "revoke"]), default="auto", show_default=True,
              help="auto: revoke-only for leaked-key clusters, else ban + suspend.")
@click.option("--force", is_flag=True, help="Override the size guards (recorded in the plan and audit).")
@click.option("--plan", "plan_file", type=click.Path(dir_okay=False),
              help="Use this saved plan JSON instead of building one from OUT_DIR.")
@click.option("--plan-out", type=click.Path(dir_okay=False),
              help="Write the plan JSON here (default: OUT_DIR/enforcement/plan-<id>.json).")
@click.option("--apply", "do_apply", is_flag=True, help="Send the actions (default: dry run).")
@click.option("--revert", "revert_run", metavar="RUN_ID", help="Undo an applied run through the sink.")
@click.option("--sink", help="jsonl:PATH or http://HOST:PORT/PATH.")
@click.option("--audit", "audit_path", type=click.Path(dir_okay=False),
              help="Audit SQLite database (default: OUT_DIR/enforcement/audit.sqlite).")
@click.option("--operator", help="Who applies (required with --apply/--revert).")
@click.option("--reason", help="Why (required with --apply/--revert).")
@click.option("--batch-size", type=click.IntRange(min=1), default=50, show_default=True, help="HTTP sink batch size.")
@click.option("--timeout", type=click.FloatRange(min=0, min_open=True), default=5.0, show_default=True,
              help="HTTP sink timeout per request, seconds.")
@click.option("--retries", type=click.IntRange(min=0), default=5, show_default=True,
              help="HTTP sink retries per batch.")
@click.option("--backoff", type=click.FloatRange(min=0), default=0.2, show_default=True,
              help="HTTP sink first backoff, seconds (doubles per retry, jittered).")
@click.option("--seed", type=click.IntRange(0, 2**63 - 1), default=0, show_default=True, help="Seed of the backoff jitter.")
@click.option("--follow-redirects", is_flag=True,
              help="HTTP sink: follow a redirect by POSTing the same batch to its location (default: a "
                   "redirect leaves the batch pending).")
@click.option("--yes", "-y", is_flag=True, help="Apply or revert without asking (a terminal is asked to confirm).")
@click.option("--json", "as_json", is_flag=True, help="Machine-readable JSON on stdout.")
@click.option("--quiet", "-q", is_flag=True, help="No notes on stderr (plan file written, dry run, pending).")
def enforce_command(out_dir, min_score, include_unflagged, max_accounts, max_total_accounts, allowlist, as_of,
                    action_rule, force, plan_file, plan_out, do_apply, revert_run, sink, audit_path, operator,
                    reason, batch_size, timeout, retries, backoff, seed, follow_redirects, yes, as_json, quiet):
    """Plan, apply or revert bans of flagged clusters in a linkage OUT_DIR.

    Without --apply this is a dry run: it prints the plan and writes it as JSON; nothing changes.
    With --apply the plan is printed too, then (on a terminal, unless --yes) confirmed, then sent.

    \b
    Example:
      keyfarm enforce out --allowlist allow.toml
      keyfarm enforce out --apply --sink http://127.0.0.1:8080/actions \\
          --operator alice --reason "TICKET-42 farms"
      keyfarm enforce --revert p-0123abcd4567ef89 --audit out/enforcement/audit.sqlite \\
          --sink http://127.0.0.1:8080/actions --operator alice --reason "false positive"
    """
    from keyfarm.enforce import GuardRefused

    ctx = click.get_current_context()
    try:
        code = _run(**ctx.params)
    except GuardRefused as exc:
        click.echo(f"Refused: {printable(exc)}", err=True)
        code = 1
    except click.Abort:
        click.echo("Not confirmed: nothing was sent.", err=True)
        code = 1
    except KeyfarmError as exc:
        raise _InputError(printable(exc)) from None
    except OSError as exc:   # a plan or sink path that cannot be written
        raise _InputError(printable(f"{exc.filename + ': ' if exc.filename else ''}{exc.strerror or exc}")) from None
    ctx.exit(code)


def _run(*, out_dir, min_score, include_unflagged, max_accounts, max_total_accounts, allowlist, as_of,
         action_rule, force, plan_file, plan_out, do_apply, revert_run, sink, audit_path, operator, reason,
         batch_size, timeout, retries, backoff, seed, follow_redirects, yes, as_json, quiet) -> int:
    from keyfarm.enforce import (Audit, GuardRefused, Plan, Policy, apply, load_allowlist, open_sink, plan,
                                 render_text, renew, revert)

    if revert_run and do_apply:
        raise click.UsageError("--revert and --apply are exclusive")
    if (do_apply or revert_run) and not (operator and reason and sink):
        raise click.UsageError("--apply and --revert need --operator, --reason and --sink")
    if not (out_dir or plan_file or (revert_run and audit_path)):
        raise click.UsageError("give OUT_DIR (or --plan FILE; or --revert RUN_ID with --audit DB)")
    if (do_apply or revert_run) and not audit_path:
        if not out_dir:
            raise click.UsageError("--audit DB is needed without OUT_DIR")
        audit_path = str(Path(out_dir) / "enforcement" / "audit.sqlite")

    def make_sink():
        return open_sink(sink, batch_size=batch_size, timeout=timeout, retries=retries, backoff=backoff,
                         seed=seed, follow_redirects=follow_redirects) if sink.startswith("http") else open_sink(sink)

    def note(message: str) -> None:
        if not quiet:
            click.echo(message, err=True)

    if revert_run:
        _confirm(yes, f"Revert run {printable(revert_run)} through {printable(sink)}?")
        target = make_sink()
        with Audit(audit_path) as audit:
            result = revert(revert_run, target, audit, operator=operator, reason=reason)
        _close(target)
        _report(result, as_json, quiet=quiet)
        return 0 if result.ok else 1

    if plan_file:
        the_plan = Plan.load(plan_file)
    else:
        policy = Policy(min_score=min_score, only_flagged=not include_unflagged, max_accounts=max_accounts,
                        max_total_accounts=max_total_accounts, force=force, action_rule=action_rule,
                        allowlist=load_allowlist(allowlist) if allowlist else (), as_of=as_of)
        the_plan = plan(out_dir, policy)
        known = audit_path or str(Path(out_dir) / "enforcement" / "audit.sqlite")
        if Path(known).is_file():   # a revert of these same decisions: act again under a fresh plan id
            with Audit(known) as audit:
                renewed = renew(the_plan, audit)
            if renewed.plan_id != the_plan.plan_id:
                note(f"plan {the_plan.plan_id} was reverted; the same decisions are plan "
                     f"{renewed.plan_id}, whose actions are sent anew")
                the_plan = renewed
        target_path = Path(plan_out) if plan_out else \
            Path(out_dir) / "enforcement" / f"plan-{the_plan.plan_id}.json"
        the_plan.save(target_path)
        note(f"plan {the_plan.plan_id} written to {printable(target_path)}")
    guard_hit = bool(the_plan.refusals)

    if not do_apply:
        click.echo(_json(the_plan.to_dict()) if as_json else render_text(the_plan), nl=False)
        if not as_json:
            note("Dry run: nothing was changed. Add --apply --sink ... --operator ... --reason ... to act.")
        return 1 if guard_hit else 0

    if not as_json:   # what is about to be sent, on stdout as in a dry run
        click.echo(render_text(the_plan), nl=False)
    if the_plan.refused:  # before opening the sink: a refused plan touches nothing
        raise GuardRefused("plan refused: " + "; ".join(r["detail"] for r in the_plan.refusals))
    n_actions = len(the_plan.actions)
    _confirm(yes, f"Apply plan {printable(the_plan.plan_id)} ({n_actions:,} actions) through {printable(sink)}?")
    target = make_sink()
    try:
        with Audit(audit_path) as audit:
            result = apply(the_plan, target, audit, operator=operator, reason=reason)
    finally:
        _close(target)
    _report(result, as_json, the_plan, quiet=quiet)
    return 0 if result.ok and not guard_hit else 1


def _confirm(yes: bool, question: str) -> None:
    """Ask on a terminal before anything is sent (click.Abort when declined); scripts and
    pipes, and --yes, are not asked."""
    if yes or not _on_terminal():
        return
    click.confirm(question, abort=True, err=True)


def _on_terminal() -> bool:
    """Is a person at the keyboard (stdin a terminal)?"""
    try:
        return sys.stdin.isatty()
    except (AttributeError, ValueError):
        return False


def _json(doc) -> str:
    """JSON for the terminal: every non-ASCII character escaped, so no control or bidi character
    of an id reaches it raw (json escapes C0 controls only)."""
    return json.dumps(doc, indent=1, sort_keys=True, ensure_ascii=True) + "\n"


def _close(sink) -> None:
    close = getattr(sink, "close", None)
    if close:
        close()


def _report(result, as_json: bool, the_plan=None, *, quiet: bool = False) -> None:
    if as_json:
        doc = result.to_dict()
        if the_plan is not None:
            doc["refusals"] = the_plan.refusals
        click.echo(_json(doc), nl=False)
        return
    click.echo(f"{result.kind} run {printable(result.run_id)}: {result.done}/{result.total} actions done "
               f"({result.sent} sent now, {result.skipped} already complete), {len(result.failed)} failed, "
               f"{result.pending} pending")
    for f in result.failed:
        click.echo(f"  failed {printable(f['action'])} account {printable(f['account_id'])} key "
                   f"{printable(f['key_id'])}: {printable(f['sink_response'])}")
    if result.pending and not quiet:
        click.echo("Some actions are pending: run the same command again to finish (nothing is sent twice).",
                   err=True)
    if the_plan is not None:
        for r in the_plan.refusals:
            click.echo(f"Refused by guard {printable(r['guard'])}: {printable(r['detail'])}", err=True)


if __name__ == "__main__":  # pragma: no cover
    sys.exit(enforce_command())
