"""Enforcement: turn a linkage run's verdicts into a guarded, audited, reversible ban plan.

Stage: outputs → enforcement (the last, separate, careful step). `plan(out_dir, policy)` builds a
dry-run plan; `apply(plan, sink, audit, operator=, reason=)` sends it; `revert(run_id, ...)` undoes.
"""
from keyfarm.enforce.allowlist import AllowEntry, load_allowlist
from keyfarm.enforce.apply import ApplyResult, apply, revert
from keyfarm.enforce.audit import Audit
from keyfarm.enforce.plan import Plan, plan, render_text, renew
from keyfarm.enforce.policy import GuardRefused, LeakedKeyRule, Policy
from keyfarm.enforce.sinks import HttpSink, JsonlSink, SinkResult, open_sink

__all__ = ["AllowEntry", "ApplyResult", "Audit", "GuardRefused", "HttpSink", "JsonlSink", "LeakedKeyRule",
           "Plan", "Policy", "SinkResult", "apply", "load_allowlist", "open_sink", "plan", "render_text",
           "renew", "revert"]
