"""Enforcement plans: what a run would do to which cluster, account and key, and what it leaves alone.

Stage: outputs → enforcement. `plan(out_dir, policy)` reads OUT_DIR, applies the policy's guards
and action rule and returns a `Plan`: every action (with the cluster's score, explanation and
evidence digest) and every exclusion with its reason. A plan is plain JSON; its id is a hash of
its content, so the same OUT_DIR and policy give the same plan id, and `apply` can use it as the
run id that makes re-running idempotent.
"""
from __future__ import annotations

import hashlib
import json
from dataclasses import dataclass, field
from datetime import datetime, timezone
from pathlib import Path

import numpy as np

from keyfarm.enforce.allowlist import match_accounts
from keyfarm.enforce.evidence import account_meta, cluster_evidence, read_out_dir
from keyfarm.enforce.policy import Policy
from keyfarm.errors import KeyfarmInputError
from keyfarm.terminal import printable as _p

FORMAT = 1
BAN, SUSPEND, REVOKE = "ban_key", "suspend_account", "revoke_key"
INVERSE = {BAN: "unban_key", SUSPEND: "unsuspend_account", REVOKE: "restore_key"}


def _canonical(obj) -> bytes:
    return json.dumps(obj, sort_keys=True, separators=(",", ":"), ensure_ascii=False).encode()


def idempotency_key(run_id: str, action: str, account_id: str | None, key_id: str | None) -> str:
    """Deterministic per (run, action, target): a resend after a crash carries the same key."""
    text = f"{run_id}\n{action}\n{account_id or ''}\n{key_id or ''}"
    return hashlib.sha256(text.encode()).hexdigest()[:32]


@dataclass
class Plan:
    """An enforcement plan (see module docstring); every field is JSON-ready."""

    plan_id: str
    source: dict                      # out_dir, run_id and version of the linkage run
    policy: dict
    clusters: list = field(default_factory=list)      # acted-on clusters: rule, digest, counts
    actions: list = field(default_factory=list)
    exclusions: list = field(default_factory=list)
    expired_allowlist: list = field(default_factory=list)
    refusals: list = field(default_factory=list)      # guards that refused something
    forced: list = field(default_factory=list)        # guards that --force overrode
    supersedes: list = field(default_factory=list)    # ids of reverted plans with these decisions (renew)

    @property
    def refused(self) -> bool:
        """True when a guard refused the whole plan (nothing may be applied)."""
        return any(r["scope"] == "plan" for r in self.refusals)

    def accounts(self) -> list[str]:
        return sorted({a["account_id"] for a in self.actions})

    def to_dict(self) -> dict:
        return {"format": FORMAT, "plan_id": self.plan_id, "source": self.source, "policy": self.policy,
                "clusters": self.clusters, "actions": self.actions, "exclusions": self.exclusions,
                "expired_allowlist": self.expired_allowlist, "refusals": self.refusals,
                "forced": self.forced, "refused": self.refused,
                "summary": self.summary(), **({"supersedes": self.supersedes} if self.supersedes else {})}

    def to_json(self) -> str:
        return json.dumps(self.to_dict(), indent=1, sort_keys=True, ensure_ascii=False) + "\n"

    def save(self, path: str | Path) -> Path:
        path = Path(path)
        path.parent.mkdir(parents=True, exist_ok=True)
        path.write_text(self.to_json(), encoding="utf-8")
        return path

    @classmethod
    def from_dict(cls, doc: dict) -> "Plan":
        """Rebuild a plan, checking its fields' types, its id against its content (a hand-edited
        plan is rejected) and every action's idempotency key against its plan id and target."""
        if not isinstance(doc, dict):
            raise KeyfarmInputError(f"plan: expected a JSON object, got {type(doc).__name__}", table="plan")
        if doc.get("format") != FORMAT:
            raise KeyfarmInputError(f"plan: unknown format {doc.get('format')!r} (expected {FORMAT})", table="plan")
        _check_types(doc)
        plan = cls(doc["plan_id"], doc["source"], doc["policy"], doc["clusters"], doc["actions"],
                   doc["exclusions"], doc["expired_allowlist"], doc["refusals"], doc["forced"],
                   doc.get("supersedes", []))
        try:
            same = _plan_id(plan) == plan.plan_id
        except (TypeError, ValueError):   # a value JSON cannot hold again: not a plan we wrote
            same = False
        if not same:
            raise KeyfarmInputError(f"plan: content does not match plan id {_p(plan.plan_id)} (was it edited?)",
                                    table="plan")
        for i, a in enumerate(plan.actions):
            if a["idempotency_key"] != idempotency_key(plan.plan_id, a["action"], a["account_id"], a["key_id"]):
                raise KeyfarmInputError(f"plan: action {i} carries an idempotency key that is not its own",
                                        table="plan", row=i)
        try:
            render_text(plan)   # what the command prints must not fail half-way through a plan
        except (KeyError, TypeError, ValueError, AttributeError, IndexError) as exc:
            raise KeyfarmInputError(f"plan: malformed ({type(exc).__name__}: {_p(exc)})", table="plan") from None
        return plan

    @classmethod
    def load(cls, path: str | Path) -> "Plan":
        try:
            return cls.from_dict(json.loads(Path(path).read_text(encoding="utf-8")))
        except (OSError, UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise KeyfarmInputError(f"plan: cannot read {path}: {_p(exc)}", table="plan") from None

    def summary(self) -> dict:
        counts = {}
        for a in self.actions:
            counts[a["action"]] = counts.get(a["action"], 0) + 1
        reasons = {}
        for e in self.exclusions:
            reasons[e["reason"]] = reasons.get(e["reason"], 0) + 1
        return {"clusters": len(self.clusters), "accounts": len(self.accounts()), "actions": counts,
                "exclusions": reasons, "refused": self.refused}


_PLAN_FIELDS = {"plan_id": str, "source": dict, "policy": dict, "clusters": list, "actions": list,
                "exclusions": list, "expired_allowlist": list, "refusals": list, "forced": list}
_ACTION_FIELDS = {"action": str, "account_id": str, "key_id": (str, type(None)), "cluster_id": int,
                  "score": (int, float), "idempotency_key": str, "evidence_digest": (str, type(None))}


def _check_types(doc: dict) -> None:
    """The fields apply and the dry run read, with the types they need (a KeyfarmInputError names
    the first that is missing or of the wrong type)."""
    def wrong(where: str, expected) -> KeyfarmInputError:
        names = expected.__name__ if isinstance(expected, type) else " or ".join(t.__name__ for t in expected)
        return KeyfarmInputError(f"plan: {where} must be {names}", table="plan")

    for name, kind in _PLAN_FIELDS.items():
        if not isinstance(doc.get(name), kind):
            raise wrong(name, kind)
    if not isinstance(doc.get("supersedes", []), list) or \
            not all(isinstance(x, str) for x in doc.get("supersedes", [])):
        raise wrong("supersedes", list)
    for name in ("clusters", "exclusions", "expired_allowlist", "refusals", "forced"):
        for i, item in enumerate(doc[name]):
            if not isinstance(item, dict):
                raise wrong(f"{name}[{i}]", dict)
    for i, a in enumerate(doc["actions"]):
        if not isinstance(a, dict):
            raise wrong(f"actions[{i}]", dict)
        for name, kind in _ACTION_FIELDS.items():
            value = a.get(name)
            if isinstance(value, bool) or not isinstance(value, kind):
                raise wrong(f"actions[{i}].{name}", kind)
        if a["action"] not in (BAN, SUSPEND, REVOKE):
            raise KeyfarmInputError(f"plan: actions[{i}].action {_p(a['action'])!r} is not one of "
                                    f"{BAN}, {SUSPEND}, {REVOKE}", table="plan")
    for i, r in enumerate(doc["refusals"]):
        if not isinstance(r.get("scope"), str) or not isinstance(r.get("detail"), str):
            raise wrong(f"refusals[{i}].scope and .detail", str)


def renew(p: Plan, audit) -> Plan:
    """`p`, or, when a revert undid a run of these same decisions (the same plan id), the same
    decisions under a fresh plan id: the reverted ids go into `supersedes`, which enters the id,
    so the actions get new idempotency keys and land again (the receiver would take the old keys
    for repeats). A plan superseding a reverted one can itself be reverted and renewed."""
    while audit.reverted_by(p.plan_id):
        p = Plan("", p.source, p.policy, p.clusters, [dict(a) for a in p.actions], p.exclusions,
                 p.expired_allowlist, p.refusals, p.forced, [*p.supersedes, p.plan_id])
        _assign_ids(p)
    return p


def _assign_ids(p: Plan) -> None:
    p.plan_id = _plan_id(p)
    for a in p.actions:
        a["idempotency_key"] = idempotency_key(p.plan_id, a["action"], a["account_id"], a["key_id"])


def _plan_id(plan: Plan) -> str:
    """Hash of the decisions: everything but the id, the folder it was read from (paths differ
    between hosts) and the as-of date (a plan resumed the next day, deciding the same, is the
    same plan; an allowlist entry expiring in between changes the decisions, hence the id)."""
    content = {"source": {k: v for k, v in plan.source.items() if k != "out_dir"},
               "policy": {k: v for k, v in plan.policy.items() if k != "as_of"},
               "clusters": plan.clusters,
               "actions": [{k: v for k, v in a.items() if k != "idempotency_key"} for a in plan.actions],
               "exclusions": plan.exclusions, "expired_allowlist": plan.expired_allowlist,
               "refusals": plan.refusals, "forced": plan.forced}
    if plan.supersedes:   # absent from plans that renew nothing, so their ids stay what they were
        content["supersedes"] = plan.supersedes
    return "p-" + hashlib.sha256(_canonical(content)).hexdigest()[:16]


def plan(out_dir: str | Path, policy: Policy | None = None) -> Plan:
    """Build the enforcement plan for a linkage OUT_DIR under `policy` (default: Policy()).

    Exclusion reasons: `not_flagged`, `below_min_score`, `oversized` (refused by max_accounts),
    `allowlisted` (per account, naming the entry), `already_in_plan` (an account whose keys span
    two clusters is suspended once, by the first). A plan touching more than max_total_accounts
    accounts is refused as a whole. With `force` both size guards are recorded in `forced` instead.

    Example
    -------
    >>> p = plan("out", Policy(min_score=0.7, max_accounts=50))   # doctest: +SKIP
    >>> print(render_text(p))                                       # doctest: +SKIP
    """
    policy = policy or Policy()
    data = read_out_dir(out_dir)
    as_of = policy.as_of or datetime.now(timezone.utc).date()
    policy_doc = policy.to_dict()
    policy_doc["as_of"] = as_of.isoformat()
    source = {"out_dir": str(data.path), "run_id": data.run.get("run_id"), "version": data.run.get("version")}
    out = Plan("", source, policy_doc)

    clusters = data.clusters
    # only `farm` is acted on by default; `review` (a gateway, a lab) is for an analyst
    flagged = (clusters["verdict"].astype(str) == "farm").to_numpy(bool) if "verdict" in clusters \
        else clusters["flagged"].to_numpy(bool)
    score = clusters["score"].to_numpy(np.float64)
    not_flagged = ~flagged if policy.only_flagged else np.zeros(len(clusters), bool)
    low = ~not_flagged & (score < policy.min_score)
    for cid, s in zip(clusters["cluster_id"].to_numpy()[not_flagged].tolist(), score[not_flagged].tolist()):
        out.exclusions.append({"reason": "not_flagged", "cluster_id": cid, "score": s})
    for cid, s in zip(clusters["cluster_id"].to_numpy()[low].tolist(), score[low].tolist()):
        out.exclusions.append({"reason": "below_min_score", "cluster_id": cid, "score": s,
                               "detail": f"score {s:.3f} < min_score {policy.min_score}"})
    candidates = clusters[~not_flagged & ~low]

    members = data.members[data.members["cluster_id"].isin(candidates["cluster_id"])] \
        .sort_values(["cluster_id", "account_id", "key_id"], kind="stable")
    evidence = cluster_evidence(data, candidates["cluster_id"].to_numpy())
    protected, expired = match_accounts(account_meta(members), policy.allowlist, as_of)
    out.expired_allowlist = expired
    # per cluster: [(account_id, [key_id, ...]), ...] in id order, built once from sorted columns
    by_cluster: dict[int, list] = {}
    for cid, account_id, key_id in zip(members["cluster_id"].tolist(), members["account_id"].tolist(),
                                       members["key_id"].tolist()):
        accounts = by_cluster.setdefault(cid, [])
        if not accounts or accounts[-1][0] != account_id:
            accounts.append((account_id, []))
        accounts[-1][1].append(key_id)

    suspended: dict[str, int] = {}
    for row, ev in zip(candidates.itertuples(index=False), evidence.itertuples(index=False)):
        cid = int(row.cluster_id)
        accounts = by_cluster[cid]
        n_accounts = len(accounts)
        base = {"cluster_id": cid, "score": float(row.score), "explanation": row.explanation,
                "evidence_digest": ev.evidence_digest}
        if policy.max_accounts is not None and n_accounts > policy.max_accounts:
            detail = f"{n_accounts} accounts > max_accounts {policy.max_accounts}"
            if not policy.force:
                out.exclusions.append({"reason": "oversized", **base, "n_accounts": n_accounts,
                                       "detail": detail + ": refused (--force overrides)"})
                out.refusals.append({"guard": "max_accounts", "scope": "cluster", "cluster_id": cid,
                                     "detail": detail})
                continue
            out.forced.append({"guard": "max_accounts", "cluster_id": cid, "detail": detail})

        rule, rule_detail = _action_rule(policy, n_accounts, ev)
        acted_keys = 0
        acted_accounts = []
        for account_id, keys in accounts:
            entry = protected.get(account_id)
            if entry is not None:
                out.exclusions.append({"reason": "allowlisted", "cluster_id": cid, "account_id": account_id,
                                       "keys": keys, "entry": entry.to_dict(),
                                       "detail": f"{entry.label()}: {entry.reason}"})
                continue
            acted_accounts.append(account_id)
            kind = REVOKE if rule == "revoke" else BAN
            for key_id in keys:
                out.actions.append({"action": kind, "account_id": account_id, "key_id": key_id, **base})
                acted_keys += 1
            if rule == "ban":
                if account_id in suspended:
                    out.exclusions.append({"reason": "already_in_plan", "cluster_id": cid,
                                           "account_id": account_id,
                                           "detail": f"suspended with cluster {suspended[account_id]}"})
                else:
                    suspended[account_id] = cid
                    out.actions.append({"action": SUSPEND, "account_id": account_id, "key_id": None, **base})
        out.clusters.append({"cluster_id": cid, "score": float(row.score), "rule": rule,
                             "rule_detail": rule_detail, "n_accounts": n_accounts,
                             "n_keys": sum(len(k) for k in accounts), "accounts_acted": len(acted_accounts),
                             "keys_acted": acted_keys, "explanation": row.explanation,
                             "evidence_digest": ev.evidence_digest})

    n_touched = len(out.accounts())
    if policy.max_total_accounts is not None and n_touched > policy.max_total_accounts:
        detail = f"plan touches {n_touched} accounts > max_total_accounts {policy.max_total_accounts}"
        if policy.force:
            out.forced.append({"guard": "max_total_accounts", "detail": detail})
        else:
            out.refusals.append({"guard": "max_total_accounts", "scope": "plan",
                                 "detail": detail + ": nothing will be applied (--force overrides)"})

    _assign_ids(out)
    return out


def _action_rule(policy: Policy, n_accounts: int, ev) -> tuple[str, str]:
    """"ban" (ban keys + suspend accounts) or "revoke" (revoke keys only), with the reason."""
    if policy.action_rule != "auto":
        return policy.action_rule, f"action_rule={policy.action_rule}"
    rule = policy.leaked_key
    hub_share, pay_share = float(ev.hub_share), float(ev.payment_share)
    if n_accounts >= rule.min_accounts and hub_share >= rule.hub_share and pay_share < rule.max_payment_share:
        return "revoke", (f"looks like one leaked key: {ev.hub_key} carries {hub_share:.0%} of cross-account "
                          f"link weight, payment links {pay_share:.0%}")
    return "ban", (f"farm: no single key dominates (top key {hub_share:.0%} of cross-account link weight)"
                   if hub_share < rule.hub_share or n_accounts < rule.min_accounts
                   else f"farm: shared payment carries {pay_share:.0%} of cross-account link weight")


def render_text(p: Plan, *, limit: int = 20) -> str:
    """The plan as a readable report (what the dry run prints)."""
    pol = p.policy
    lines = [f"Enforcement plan {_p(p.plan_id)} for linkage run {_p(p.source.get('run_id'))} in "
             f"{_p(p.source.get('out_dir'))}",
             f"Policy: min score {pol['min_score']}, "
             f"{'flagged clusters only' if pol['only_flagged'] else 'all clusters'}, "
             f"max accounts per cluster {pol['max_accounts']}, max accounts in total {pol['max_total_accounts']}, "
             f"action rule {_p(pol['action_rule'])}, allowlist {len(pol['allowlist'])} entries as of "
             f"{_p(pol['as_of'])}"
             + (", FORCE" if pol["force"] else "")]
    s = p.summary()
    counts = ", ".join(f"{n} {_p(k)}" for k, n in sorted(s["actions"].items())) or "no actions"
    if p.supersedes:
        lines.append(f"Supersedes reverted plan(s) {', '.join(map(_p, p.supersedes))}: the same decisions "
                     "under a fresh id, so every action is sent again with new idempotency keys")
    lines.append(f"Acting on {s['clusters']} clusters, {s['accounts']} accounts: {counts}")
    by_cluster: dict[int, list] = {}
    for a in p.actions:
        by_cluster.setdefault(a["cluster_id"], []).append(a)
    allow = {}
    for e in p.exclusions:
        if e["reason"] in ("allowlisted", "already_in_plan"):
            allow.setdefault(e["cluster_id"], []).append(e)
    for c in p.clusters:
        what = "ban keys + suspend accounts" if c["rule"] == "ban" else "revoke keys only"
        lines.append("")
        lines.append(f"cluster {_p(c['cluster_id'])}  score {float(c['score']):.2f}  {what}  "
                     f"{_p(c['n_accounts'])} accounts, {_p(c['n_keys'])} keys  "
                     f"evidence {_p(str(c['evidence_digest'])[:16])}")
        lines.append(f"  why: {_p(c['explanation'])}")
        lines.append(f"  rule: {_p(c['rule_detail'])}")
        per_account: dict[str, list] = {}
        for a in by_cluster.get(c["cluster_id"], []):
            per_account.setdefault(a["account_id"], []).append(a)
        for i, (account_id, acts) in enumerate(sorted(per_account.items())):
            if i == limit:
                lines.append(f"  ... {len(per_account) - limit} more accounts (see the plan JSON)")
                break
            keys = [_p(a["key_id"]) for a in acts if a["key_id"] is not None]
            verb = "suspend; " if any(a["action"] == SUSPEND for a in acts) else ""
            kind = "revoke" if any(a["action"] == REVOKE for a in acts) else "ban"
            lines.append(f"  account {_p(account_id)}: {verb}{kind} keys {', '.join(keys)}")
        for e in allow.get(c["cluster_id"], []):
            tag = "ALLOWLISTED, not touched" if e["reason"] == "allowlisted" else "not suspended again"
            lines.append(f"  account {_p(e['account_id'])}: {tag} ({_p(e['detail'])})")
    lines.append("")
    other = [e for e in p.exclusions if e["reason"] == "oversized"]
    for e in other:
        lines.append(f"REFUSED cluster {_p(e['cluster_id'])} (score {float(e['score']):.2f}): {_p(e['detail'])}")
    for reason in ("not_flagged", "below_min_score"):
        ids = [e["cluster_id"] for e in p.exclusions if e["reason"] == reason]
        if ids:
            shown = ", ".join(map(_p, ids[:limit])) + (", ..." if len(ids) > limit else "")
            lines.append(f"Excluded {len(ids)} clusters: {reason.replace('_', ' ')} ({shown})")
    for x in p.expired_allowlist:
        e = x["entry"]
        lines.append(f"Expired allowlist entry NOT honoured: {_p(e['kind'])}={_p(e['value'])} "
                     f"(expired {_p(e['expires'])}; {_p(e['reason'])}): accounts {', '.join(map(_p, x['accounts']))}")
    for f in p.forced:
        lines.append(f"FORCED past guard {_p(f['guard'])}: {_p(f['detail'])}")
    for r in p.refusals:
        if r["scope"] == "plan":
            lines.append(f"REFUSED plan: {_p(r['detail'])}")
    return "\n".join(lines).rstrip() + "\n"
