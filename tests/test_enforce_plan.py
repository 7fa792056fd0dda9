"""Enforcement plans: guards, allowlists, the action rule, evidence digests and determinism."""
from __future__ import annotations

import json
from datetime import date

import pandas as pd
import pytest

from keyfarm.enforce import AllowEntry, Plan, Policy, plan, render_text
from keyfarm.enforce.testing import write_out_dir
from keyfarm.errors import KeyfarmInputError

TODAY = date(2025, 6, 1)


def _farm(cid, n_accounts, prefix, **extra):
    return {"cluster_id": cid, "accounts": [(f"{prefix}acc{i}", [f"{prefix}key{i}a", f"{prefix}key{i}b"])
                                            for i in range(n_accounts)], **extra}


def _targets(p, action):
    return sorted((a["account_id"], a["key_id"]) for a in p.actions if a["action"] == action)


@pytest.fixture
def world(tmp_path):
    return write_out_dir(tmp_path / "out", [
        _farm(1, 3, "f", score=0.9),
        _farm(2, 2, "u", score=0.8, flagged=False),
        _farm(3, 3, "l", score=0.3),
    ], singletons=2)


def test_flagged_farm_gets_key_bans_and_account_suspensions(world):
    p = plan(world, Policy(as_of=TODAY))
    assert _targets(p, "suspend_account") == [("facc0", None), ("facc1", None), ("facc2", None)]
    assert len(_targets(p, "ban_key")) == 6
    assert {a["cluster_id"] for a in p.actions} == {1}
    assert all(a["evidence_digest"] == p.clusters[0]["evidence_digest"] for a in p.actions)


def test_unflagged_and_low_score_clusters_are_excluded_with_reasons(world):
    p = plan(world, Policy(as_of=TODAY))
    reasons = {e["cluster_id"]: e["reason"] for e in p.exclusions}
    assert reasons == {2: "not_flagged", 3: "below_min_score"}
    loose = plan(world, Policy(as_of=TODAY, only_flagged=False, min_score=0.2))
    assert {a["cluster_id"] for a in loose.actions} == {1, 2, 3}


def test_by_default_only_farm_verdicts_are_acted_on(tmp_path):
    review = {**_farm(2, 3, "gw"), "score": 0.95, "flagged": False, "verdict": "review"}
    out = write_out_dir(tmp_path, [_farm(1, 3, "f"), review])
    p = plan(out, Policy(as_of=TODAY))
    assert {a["cluster_id"] for a in p.actions} == {1}
    assert {e["cluster_id"]: e["reason"] for e in p.exclusions} == {2: "not_flagged"}


def test_oversized_cluster_is_refused_unless_forced(tmp_path):
    out = write_out_dir(tmp_path, [_farm(1, 3, "f"), _farm(2, 6, "big")])
    p = plan(out, Policy(as_of=TODAY, max_accounts=5))
    assert not any(a["account_id"].startswith("big") for a in p.actions)
    assert [(e["cluster_id"], e["reason"]) for e in p.exclusions] == [(2, "oversized")]
    assert p.refusals[0]["guard"] == "max_accounts" and not p.refused  # the rest may proceed
    forced = plan(out, Policy(as_of=TODAY, max_accounts=5, force=True))
    assert any(a["account_id"].startswith("big") for a in forced.actions)
    assert forced.forced[0]["cluster_id"] == 2 and not forced.refusals


def test_plan_over_the_total_accounts_budget_is_refused_as_a_whole(tmp_path):
    out = write_out_dir(tmp_path, [_farm(1, 3, "f"), _farm(2, 4, "g")])
    p = plan(out, Policy(as_of=TODAY, max_total_accounts=6))
    assert p.refused and "7 accounts" in p.refusals[0]["detail"]
    assert not plan(out, Policy(as_of=TODAY, max_total_accounts=7)).refused
    assert not plan(out, Policy(as_of=TODAY, max_total_accounts=6, force=True)).refused


def test_allowlist_by_account_org_and_domain_always_wins(tmp_path):
    out = write_out_dir(tmp_path, [_farm(1, 5, "f")],
                        org_id={"facc1": "acme"}, email_domain={"facc2": "Uni.EDU", "facc3": "mail.com"})
    entries = (AllowEntry("account_id", "facc0", "VIP customer"), AllowEntry("org_id", "acme", "contract"),
               AllowEntry("email_domain", "uni.edu", "campus NAT", date(2025, 6, 1)))
    p = plan(out, Policy(as_of=TODAY, allowlist=entries))
    assert {a["account_id"] for a in p.actions} == {"facc3", "facc4"}
    allowed = {e["account_id"]: e["entry"]["kind"] for e in p.exclusions if e["reason"] == "allowlisted"}
    assert allowed == {"facc0": "account_id", "facc1": "org_id", "facc2": "email_domain"}


def test_expired_allowlist_entry_is_reported_not_honoured(tmp_path):
    out = write_out_dir(tmp_path, [_farm(1, 3, "f")], email_domain={"facc0": "uni.edu"})
    entry = AllowEntry("email_domain", "uni.edu", "campus NAT", date(2025, 5, 31))
    p = plan(out, Policy(as_of=TODAY, allowlist=(entry,)))
    assert "facc0" in {a["account_id"] for a in p.actions}
    assert p.expired_allowlist == [{"entry": entry.to_dict(), "accounts": ["facc0"]}]
    assert "Expired allowlist entry NOT honoured" in render_text(p)


def test_org_allowlist_without_org_column_fails_closed(tmp_path):
    out = write_out_dir(tmp_path, [_farm(1, 3, "f")])
    with pytest.raises(KeyfarmInputError, match="org_id"):
        plan(out, Policy(as_of=TODAY, allowlist=(AllowEntry("org_id", "acme", "contract"),)))


def test_star_around_one_key_without_payment_gets_revocation_only(tmp_path):
    accounts = [("victim", ["leaked"])] + [(f"user{i}", [f"k{i}"]) for i in range(4)]
    out = write_out_dir(tmp_path, [{"cluster_id": 1, "accounts": accounts, "edges": "star:leaked"}])
    p = plan(out, Policy(as_of=TODAY))
    assert {a["action"] for a in p.actions} == {"revoke_key"}
    assert p.clusters[0]["rule"] == "revoke" and "leaked" in p.clusters[0]["rule_detail"]


def test_star_linked_by_a_shared_card_is_still_banned(tmp_path):
    accounts = [("hub", ["h"])] + [(f"user{i}", [f"k{i}"]) for i in range(4)]
    edges = [("h", f"k{i}", 1.0, {"payment": 1.0}) for i in range(4)]
    out = write_out_dir(tmp_path, [{"cluster_id": 1, "accounts": accounts, "edges": edges}])
    p = plan(out, Policy(as_of=TODAY))
    assert p.clusters[0]["rule"] == "ban"
    assert len(_targets(p, "suspend_account")) == 5


def test_account_in_two_clusters_is_suspended_once(tmp_path):
    out = write_out_dir(tmp_path, [
        {"cluster_id": 1, "accounts": [("shared", ["s1"]), ("a", ["a1"]), ("b", ["b1"])]},
        {"cluster_id": 2, "accounts": [("shared", ["s2"]), ("c", ["c1"]), ("d", ["d1"])]}])
    p = plan(out, Policy(as_of=TODAY))
    suspensions = [a for a in p.actions if a["action"] == "suspend_account"]
    assert [a["cluster_id"] for a in suspensions if a["account_id"] == "shared"] == [1]
    assert {"s1", "s2"} <= {a["key_id"] for a in p.actions}
    assert any(e["reason"] == "already_in_plan" and e["cluster_id"] == 2 for e in p.exclusions)
    keys = [a["idempotency_key"] for a in p.actions]
    assert len(keys) == len(set(keys))


def test_plan_id_and_digests_do_not_depend_on_row_order_or_key_encoding(tmp_path):
    out = write_out_dir(tmp_path / "a", [_farm(1, 3, "f"), _farm(2, 4, "g")], singletons=3)
    first = plan(out, Policy(as_of=TODAY))
    shuffled = write_out_dir(tmp_path / "b", [_farm(1, 3, "f"), _farm(2, 4, "g")], singletons=3)
    members = pd.read_parquet(shuffled / "members.parquet").sample(frac=1.0, random_state=3)
    members.to_parquet(shuffled / "members.parquet", index=False)
    edges = pd.read_parquet(shuffled / "edges.parquet").sample(frac=1.0, random_state=4)
    # integer endpoints: key indices, i.e. row positions of keys sorted by key_id
    position = {k: i for i, k in enumerate(sorted(members["key_id"]))}
    edges["key_a"], edges["key_b"] = edges["key_a"].map(position), edges["key_b"].map(position)
    edges.to_parquet(shuffled / "edges.parquet", index=False)
    pd.read_parquet(shuffled / "clusters.parquet")[::-1].to_parquet(shuffled / "clusters.parquet", index=False)
    second = plan(shuffled, Policy(as_of=TODAY))
    assert second.plan_id == first.plan_id
    assert second.actions == first.actions


def test_evidence_digest_changes_when_an_edge_changes(tmp_path):
    out = write_out_dir(tmp_path, [_farm(1, 3, "f")])
    before = plan(out, Policy(as_of=TODAY)).clusters[0]["evidence_digest"]
    edges = pd.read_parquet(out / "edges.parquet")
    edges.loc[0, "weight"] = 0.75
    edges.to_parquet(out / "edges.parquet", index=False)
    after = plan(out, Policy(as_of=TODAY))
    assert after.clusters[0]["evidence_digest"] != before


def test_plan_json_round_trips_and_rejects_edits(world, tmp_path):
    p = plan(world, Policy(as_of=TODAY))
    path = p.save(tmp_path / "plan.json")
    assert Plan.load(path).to_dict() == p.to_dict()
    doc = json.loads(path.read_text())
    doc["actions"][0]["account_id"] = "someone-else"
    path.write_text(json.dumps(doc))
    with pytest.raises(KeyfarmInputError, match="edited"):
        Plan.load(path)


@pytest.mark.parametrize("table, change, message", [
    ("clusters", lambda f: f.drop(columns="flagged"), "column 'flagged' missing"),
    ("clusters", lambda f: f.assign(score=1.5), "outside"),
    ("members", lambda f: pd.concat([f, f.iloc[:1]]), "appears twice"),
    ("edges", lambda f: f.assign(key_a="nobody"), "not in members"),
])
def test_bad_out_dir_raises_an_input_error_naming_the_table(world, table, change, message):
    path = world / f"{table}.parquet"
    change(pd.read_parquet(path)).to_parquet(path, index=False)
    with pytest.raises(KeyfarmInputError, match=message) as info:
        plan(world, Policy(as_of=TODAY))
    assert info.value.table == table


def test_plan_id_changes_with_decisions_not_with_the_day(tmp_path):
    out = write_out_dir(tmp_path, [_farm(1, 3, "f")], email_domain={"facc0": "uni.edu"})
    entry = AllowEntry("email_domain", "uni.edu", "campus NAT", date(2025, 6, 30))
    ids = [plan(out, Policy(as_of=day, allowlist=(entry,))).plan_id
           for day in (date(2025, 6, 1), date(2025, 6, 2), date(2025, 7, 1))]
    assert ids[0] == ids[1] != ids[2]   # on July 1 the entry has expired: facc0 is now acted on


def test_a_real_linkage_run_plans_exactly_its_flagged_clusters(tmp_path):
    """The plan reads what `keyfarm link` writes, not only hand-made OUT_DIRs."""
    from pathlib import Path

    from keyfarm.pipeline import run_link

    sample = Path(__file__).resolve().parent.parent / "datasets" / "sample"
    out = tmp_path / "out"
    run_link(sample, out, seed=0, quiet=True, report=False)
    members = pd.read_parquet(out / "members.parquet")
    clusters = pd.read_parquet(out / "clusters.parquet")
    p = plan(out, Policy(as_of=TODAY, max_accounts=10_000, max_total_accounts=1_000_000))
    flagged = clusters.loc[clusters["flagged"], "cluster_id"]
    acted = {c["cluster_id"] for c in p.clusters}
    assert len(flagged) > 0 and acted | {e["cluster_id"] for e in p.exclusions} >= set(flagged)
    assert acted and acted <= set(flagged)
    in_flagged = members[members["cluster_id"].isin(acted)]
    touched = {a["account_id"] for a in p.actions if a["account_id"] is not None} | \
        {a["key_id"] for a in p.actions if a["key_id"] is not None}
    assert set(in_flagged["key_id"]) <= touched or set(in_flagged["account_id"]) <= touched
    assert p.source["run_id"] == json.loads((out / "run.json").read_text())["run_id"]
