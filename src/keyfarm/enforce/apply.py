"""Applying and reverting enforcement plans through a sink, with every step in the audit log.

Stage: enforcement. The run id of a plan's application is its plan id, so re-running the same
plan resumes it: actions with a completion in the audit are skipped, actions with only an intent
(sent, or about to be, when the process died) are resent with the same idempotency key, and the
sink's receiver deduplicates. A revert is its own run (`revert-<run_id>`) sending the inverse of
every action the run recorded an intent for (a sent-but-unconfirmed action may have landed).
"""
from __future__ import annotations

import json
import logging
from dataclasses import asdict, dataclass, field

from keyfarm.enforce.audit import Audit
from keyfarm.enforce.plan import INVERSE, Plan, idempotency_key
from keyfarm.enforce.policy import GuardRefused
from keyfarm.errors import KeyfarmConfigError, KeyfarmInputError

log = logging.getLogger(__name__)
WIRE_FIELDS = ("idempotency_key", "action", "cluster_id", "account_id", "key_id", "score", "evidence_digest")


@dataclass
class ApplyResult:
    """What one call of apply/revert did. `ok` when every action of the run is done."""

    run_id: str
    kind: str
    total: int                 # actions in the run
    sent: int = 0              # completed by this call
    skipped: int = 0           # already complete before this call (done or failed)
    done: int = 0              # done in the audit after this call, over the whole run
    failed: list = field(default_factory=list)   # rejected by the receiver (4xx), over the whole run
    pending: int = 0           # neither done nor failed: re-run to finish

    @property
    def ok(self) -> bool:
        return not self.failed and self.pending == 0

    def to_dict(self) -> dict:
        return {**asdict(self), "ok": self.ok}


def _require(operator: str, reason: str) -> None:
    if not (operator or "").strip() or not (reason or "").strip():
        raise KeyfarmConfigError("applying or reverting needs an operator and a reason (both non-empty)")


def apply(plan: Plan, sink, audit: Audit, *, operator: str, reason: str) -> ApplyResult:
    """Send the plan's actions through `sink`, recording intent and completion in `audit`.

    Raises GuardRefused when a guard refused the whole plan or the run has been reverted.
    """
    _require(operator, reason)
    if plan.refused:
        raise GuardRefused("plan refused: " + "; ".join(r["detail"] for r in plan.refusals if r["scope"] == "plan"))
    with audit.exclusive():
        return _apply(plan, sink, audit, operator, reason)


def _apply(plan, sink, audit, operator, reason) -> ApplyResult:
    run_id = plan.plan_id
    reverted = audit.reverted_by(run_id)
    if reverted:
        raise GuardRefused(f"run {run_id} was reverted by {reverted}; to act again, build the plan anew from "
                           "OUT_DIR (keyfarm enforce OUT_DIR --apply, or keyfarm.enforce.renew(plan, audit)): "
                           "the same decisions get a fresh plan id")
    audit.begin_run(run_id, kind="apply", operator=operator, reason=reason, n_actions=len(plan.actions),
                    plan_id=plan.plan_id, source_run_id=plan.source.get("run_id"), plan_json=plan.to_json(),
                    sink=repr(sink))
    return _execute(run_id, "apply", plan.actions, sink, audit, operator, reason)


def revert(run_id: str, sink, audit: Audit, *, operator: str, reason: str) -> ApplyResult:
    """Undo an applied run through `sink` (unban keys, unsuspend accounts, restore revoked keys),
    as its own audited run `revert-<run_id>`; safe to re-run like apply."""
    _require(operator, reason)
    with audit.exclusive():
        return _revert(run_id, sink, audit, operator, reason)


def _revert(run_id, sink, audit, operator, reason) -> ApplyResult:
    run = audit.run(run_id)
    if run is None:
        raise KeyfarmInputError(f"audit: no run {run_id!r} in {audit.path}", table="audit")
    if run["kind"] != "apply":
        raise KeyfarmInputError(f"audit: run {run_id} is a {run['kind']}; only apply runs can be reverted",
                                table="audit")
    revert_id = f"revert-{run_id}"
    failed = {r["idempotency_key"] for r in audit.log(run_id, "failed")}
    actions = []
    for row in reversed(audit.log(run_id, "intent")):   # undo in reverse order
        if row["idempotency_key"] in failed:
            continue
        inverse = INVERSE[row["action"]]
        actions.append({"action": inverse, "cluster_id": row["cluster_id"], "account_id": row["account_id"],
                        "key_id": row["key_id"], "score": row["score"],
                        "evidence_digest": row["evidence_digest"], "reverts": row["idempotency_key"],
                        "idempotency_key": idempotency_key(revert_id, inverse, row["account_id"], row["key_id"])})
    audit.begin_run(revert_id, kind="revert", operator=operator, reason=reason, n_actions=len(actions),
                    reverts=run_id, source_run_id=run["source_run_id"],
                    plan_json=json.dumps({"reverts": run_id, "actions": actions}, sort_keys=True), sink=repr(sink))
    return _execute(revert_id, "revert", actions, sink, audit, operator, reason)


def _execute(run_id, kind, actions, sink, audit, operator, reason) -> ApplyResult:
    state = audit.state(run_id)
    result = ApplyResult(run_id, kind, len(actions))
    todo = [a for a in actions if state.get(a["idempotency_key"]) not in ("done", "failed")]
    result.skipped = len(actions) - len(todo)
    batch_size = max(1, int(getattr(sink, "batch_size", 50)))
    for start in range(0, len(todo), batch_size):
        batch = todo[start:start + batch_size]
        fresh = [a for a in batch if state.get(a["idempotency_key"]) != "intent"]
        audit.record(run_id, [{**a, "status": "intent", "sink_response": None} for a in fresh],
                     operator=operator, reason=reason)
        wire = [{**{f: a.get(f) for f in WIRE_FIELDS}, "run_id": run_id, "operator": operator, "reason": reason,
                 **({"reverts": a["reverts"]} if "reverts" in a else {})} for a in batch]
        results = sink.send(wire)
        audit.record(run_id, [{**a, "status": r.status, "sink_response": r.response}
                              for a, r in zip(batch, results)], operator=operator, reason=reason)
        result.sent += sum(r.status != "error" for r in results)
        if any(r.status == "error" for r in results):
            log.warning("run %s: sink gave up on %d actions; stopping (re-run to resume)",
                        run_id, sum(r.status == "error" for r in results))
            break
    final = audit.state(run_id)
    result.done = sum(final.get(a["idempotency_key"]) == "done" for a in actions)
    result.failed = [{"action": r["action"], "account_id": r["account_id"], "key_id": r["key_id"],
                      "sink_response": r["sink_response"]} for r in audit.log(run_id, "failed")]
    result.pending = len(actions) - result.done - len(result.failed)
    return result
