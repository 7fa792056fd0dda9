"""Daily runs end to end: `keyfarm link --previous`, returning farms, labels carried forward,
refused PREV_OUTs, `keyfarm generate --continue` (keyfarm.history, keyfarm.synth.continuation)."""
from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

from keyfarm.cli import main
from keyfarm.history import prepare
from keyfarm.pipeline import run_link, stable_cluster_ids
from keyfarm.synth import write_world

OUTPUT_FILES = ("members.parquet", "clusters.parquet", "edges.parquet", "hubs.parquet", "changes.parquet",
                "state/ids.parquet", "state/accounts.parquet", "state/evidence.parquet", "state/labels.parquet",
                "state/label_peers.parquet")


def _accounts(out: Path) -> pd.DataFrame:
    m = pd.read_parquet(out / "members.parquet", columns=["account_id", "cluster_id"]).drop_duplicates("account_id")
    c = pd.read_parquet(out / "clusters.parquet")
    return m.merge(c, on="cluster_id", how="left")


def test_without_previous_ids_are_todays_and_every_cluster_is_new(days):
    o1 = days / "o1"
    members = pd.read_parquet(o1 / "members.parquet")
    clusters = pd.read_parquet(o1 / "clusters.parquet")
    run = json.loads((o1 / "run.json").read_text())
    assert np.array_equal(stable_cluster_ids(members["cluster_id"].to_numpy()), members["cluster_id"].to_numpy())
    assert set(clusters["status"]) == {"new"}
    assert set(clusters["previous_cluster_ids"]) == {""}
    assert not clusters["returning"].any()
    assert set(clusters["first_seen"]) == {run["run_id"]}
    assert not (o1 / "changes.parquet").exists()
    assert "previous_run_id" not in run


def test_same_input_again_keeps_every_id_and_changes_nothing(days, tmp_path):
    run_link(days / "w1", tmp_path / "again", previous=days / "o1", quiet=True, report=False)
    before = pd.read_parquet(days / "o1" / "members.parquet")
    after = pd.read_parquet(tmp_path / "again" / "members.parquet")
    assert (before["cluster_id"] == after["cluster_id"]).all()
    clusters = pd.read_parquet(tmp_path / "again" / "clusters.parquet")
    assert set(clusters["status"]) == {"unchanged"}
    assert len(pd.read_parquet(tmp_path / "again" / "changes.parquet")) == 0
    run = json.loads((tmp_path / "again" / "run.json").read_text())
    assert run["previous_run_id"] == json.loads((days / "o1" / "run.json").read_text())["run_id"]
    first = json.loads((days / "o1" / "run.json").read_text())["run_id"]
    assert set(clusters["first_seen"]) == {first}


def test_same_inputs_and_previous_give_byte_identical_outputs(days, tmp_path):
    for name in ("a", "b"):
        run_link(days / "w2", tmp_path / name, previous=days / "o1", quiet=True, report=False)
    for f in OUTPUT_FILES:
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f


def test_next_period_lists_changes_and_returning_farms_keep_their_id(days, tmp_path):
    run_link(days / "w2", tmp_path / "o2", previous=days / "o1", quiet=True, report=False)
    o2 = tmp_path / "o2"
    changes = pd.read_parquet(o2 / "changes.parquet")
    assert {"disappeared", "new"} <= set(changes["status"])
    assert (changes.loc[changes["status"] == "disappeared", "n_accounts_after"] == 0).all()
    params = json.loads((days / "w2" / "params.json").read_text())["continue"]
    truth1 = pd.read_parquet(days / "w1" / "truth.parquet")
    truth2 = pd.read_parquet(days / "w2" / "truth.parquet")
    keys1 = pd.read_parquet(days / "w1" / "keys.parquet")
    keys2 = pd.read_parquet(days / "w2" / "keys.parquet")
    acc1, acc2 = _accounts(days / "o1"), _accounts(o2)
    checked = 0
    for farm in params["returning_farms"]:
        old = acc1[acc1["account_id"].isin(keys1.loc[keys1["key_id"].isin(
            truth1.loc[truth1["farm_id"] == farm, "key_id"]), "account_id"])]
        flagged = old[old["verdict"] == "farm"]
        if "cards" not in params["kept_evidence"][farm] or len(flagged) < len(old):
            continue   # remembered only when flagged; a card is the value that surely comes back
        new = acc2[acc2["account_id"].isin(keys2.loc[keys2["key_id"].isin(
            truth2.loc[(truth2["farm_id"] == farm) & truth2["returning"], "key_id"]), "account_id"])]
        assert new["cluster_id"].isin(flagged["cluster_id"]).all(), farm
        assert new["returning"].astype(bool).all(), farm
        checked += 1
    assert checked >= 1
    gone = acc1[acc1["account_id"].isin(pd.read_parquet(days / "w2" / "banned.parquet")["account_id"])]
    assert not acc2["account_id"].isin(gone["account_id"]).any()
    from keyfarm.report import write_report

    write_report(o2)
    page = (o2 / "report" / "index.html").read_text()
    assert "Changes since run" in page and page.index("Changes since run") < page.index("<h2>Counts")


def test_benign_label_is_carried_forward_and_not_flagged_again(days, tmp_path):
    clusters = pd.read_parquet(days / "o1" / "clusters.parquet")
    farms = clusters.loc[clusters["verdict"] == "farm"].sort_values(["n_accounts", "cluster_id"])["cluster_id"]
    farm, confirmed = int(farms.iloc[0]), int(farms.iloc[-1])
    pd.DataFrame({"cluster_id": [farm, confirmed], "label": ["benign", "farm"], "source": ["analyst"] * 2}) \
        .to_csv(tmp_path / "labels.csv", index=False)
    judged = _accounts(days / "o1").query("cluster_id == @farm")["account_id"]
    run_link(days / "w1", tmp_path / "day2", previous=days / "o1", labels_path=tmp_path / "labels.csv",
             quiet=True, report=False)
    run_link(days / "w1", tmp_path / "day3", previous=tmp_path / "day2", quiet=True, report=False)
    for day in ("day2", "day3"):
        acc = _accounts(tmp_path / day)
        assert not (acc["account_id"].isin(judged) & (acc["verdict"] == "farm")).any(), day
    carried = pd.read_parquet(tmp_path / "day3" / "state" / "labels.parquet")
    assert set(judged) <= set(carried["account_id"])
    # calibrate learns from the labels day 3 carries (the benign accounts are detached, alone: no
    # cluster to learn from); the confirmed farm's accounts, in a cluster of day 3, teach `farm`
    from keyfarm.scoring.calibrate import carried_labels, labelled_clusters

    frame = labelled_clusters([tmp_path / "day3"], pd.concat(carried_labels([tmp_path / "day3"])))
    day3 = _accounts(tmp_path / "day3")
    farm_accounts = _accounts(days / "o1").query("cluster_id == @confirmed")["account_id"]
    assert set(frame["cluster_id"]) == set(day3.loc[day3["account_id"].isin(farm_accounts), "cluster_id"])
    assert (frame["y"] == 1).all() and len(frame)


def test_reverted_ban_becomes_a_benign_label_and_applied_bans_count(tmp_path):
    from keyfarm.enforce.audit import Audit

    rows = [{"cluster_id": 1, "account_id": a, "action": "suspend_account", "idempotency_key": f"k-{a}",
             "status": "done"} for a in ("acct_a", "acct_b")]
    with Audit(tmp_path / "audit.db") as audit:
        audit.begin_run("r1", kind="apply", operator="t", reason="t", n_actions=1)
        audit.record("r1", rows[:1], operator="t", reason="t")
        audit.begin_run("r2", kind="apply", operator="t", reason="t", n_actions=1)
        audit.record("r2", rows[1:], operator="t", reason="t")
        audit.begin_run("r3", kind="revert", operator="t", reason="appeal", n_actions=1, reverts="r2")
    history = prepare(None, banned=tmp_path / "audit.db")
    assert history.banned == frozenset({"acct_a"})
    assert history.labels.set_index("account_id").loc["acct_b", "label"] == "benign"
    assert history.labels.set_index("account_id").loc["acct_b", "source"] == "revert"


def test_banned_accounts_values_count_whatever_their_cluster(days, tmp_path):
    from keyfarm.history.state import read_state

    state = read_state(days / "o1")
    unflagged = state.evidence[~state.evidence["remembered"]]
    some = unflagged["account_id"].iloc[:3].tolist()
    history = prepare(days / "o1")
    history.banned = frozenset(some)
    remembered = history.remembered()
    assert set(some) <= set(remembered["account_id"])
    assert not remembered["token"].str.contains(":").any()   # digests, never the values


def _damage(prev: Path, how: str) -> None:
    if how == "older version":
        import shutil
        shutil.rmtree(prev / "state")
    elif how == "checksum":
        with open(prev / "state" / "evidence.parquet", "ab") as fh:
            fh.write(b"x")
    elif how == "format":
        meta = json.loads((prev / "state" / "state.json").read_text())
        meta["format"] = 99
        (prev / "state" / "state.json").write_text(json.dumps(meta))
    elif how == "other run":
        run = json.loads((prev / "run.json").read_text())
        run["run_id"] = "0000"
        (prev / "run.json").write_text(json.dumps(run))


@pytest.mark.parametrize("how", ["older version", "checksum", "format", "other run"])
def test_old_or_damaged_previous_is_refused_before_anything_is_written(days, tmp_path, how):
    import shutil

    prev = tmp_path / "prev"
    shutil.copytree(days / "o1", prev)
    _damage(prev, how)
    result = CliRunner().invoke(main, ["link", str(days / "w1"), "--out", str(tmp_path / "out"), "--previous",
                                       str(prev), "--no-report", "-q"])
    assert result.exit_code == 2
    assert "--previous" in result.output and "Traceback" not in result.output
    assert not (tmp_path / "out").exists()


def test_generate_continue_is_deterministic_and_says_who_returns(days, tmp_path):
    for name in ("a", "b"):
        result = CliRunner().invoke(main, ["generate", str(tmp_path / name), "--continue", str(days / "w1"), "-q"])
        assert result.exit_code == 0, result.output
    for f in sorted(p.name for p in (tmp_path / "a").iterdir()):
        assert (tmp_path / "a" / f).read_bytes() == (tmp_path / "b" / f).read_bytes(), f
    truth = pd.read_parquet(tmp_path / "a" / "truth.parquet")
    assert truth.loc[truth["returning"], "farm_id"].notna().all()
    assert set(truth.loc[truth["returning"], "farm_id"]) == \
        set(json.loads((tmp_path / "a" / "params.json").read_text())["continue"]["returning_farms"])
    keys = pd.read_parquet(tmp_path / "a" / "keys.parquet")
    banned = pd.read_parquet(tmp_path / "a" / "banned.parquet")
    assert not keys["account_id"].isin(banned["account_id"]).any()
    assert (truth["period"] == 2).any() and (truth["period"] == 1).any()


def test_a_world_read_with_arrow_text_is_written_as_the_same_bytes(days, tmp_path):
    """continue_world holds text Arrow-backed (a 1M world's requests as Python str took ~8 GiB);
    write_world must still write the files pd.read_parquet's Python-backed text gives."""
    from keyfarm.synth.continuation import read_table

    names = ("keys", "accounts", "payments", "requests", "truth")
    arrow = {n: read_table(days / "w1" / f"{n}.parquet") for n in names}
    assert isinstance(arrow["requests"]["prompt"].dtype, pd.StringDtype)
    assert arrow["requests"]["prompt"].dtype.storage == "pyarrow"
    write_world(arrow, tmp_path / "arrow")
    write_world({n: pd.read_parquet(days / "w1" / f"{n}.parquet") for n in names}, tmp_path / "python")
    for n in names:
        assert (tmp_path / "arrow" / f"{n}.parquet").read_bytes() == (tmp_path / "python" / f"{n}.parquet").read_bytes(), n


def test_returning_farms_rows_are_sliced_once_in_their_order(days):
    """_rows_by_farm: each farm's keys, accounts, payments, requests and truth rows, exactly those of
    its accounts and in the tables' order (what merging the whole tables per farm gave)."""
    from keyfarm.synth.continuation import _rows_by_farm, read_table

    tables = {n: read_table(days / "w1" / f"{n}.parquet") for n in ("keys", "accounts", "payments", "requests", "truth")}
    key_farm = tables["truth"].set_index("key_id")["farm_id"]
    acc = tables["keys"].assign(farm_id=key_farm.reindex(tables["keys"]["key_id"]).to_numpy()).dropna(subset=["farm_id"])
    farms = sorted(acc["farm_id"].unique())[:3]
    farm_acc = acc[acc["farm_id"].isin(farms)].drop_duplicates("account_id")[["account_id", "farm_id"]]
    sliced = _rows_by_farm(tables, tables["requests"], tables["truth"], farm_acc)
    assert sorted(sliced) == farms
    for farm in farms:
        mine = set(farm_acc.loc[farm_acc["farm_id"] == farm, "account_id"])
        f_tables, f_req, f_truth = sliced[farm]
        my_keys = tables["keys"][tables["keys"]["account_id"].isin(mine)]
        pd.testing.assert_frame_equal(f_tables["keys"], my_keys)
        pd.testing.assert_frame_equal(f_tables["payments"], tables["payments"][tables["payments"]["account_id"].isin(mine)])
        pd.testing.assert_frame_equal(f_req, tables["requests"][tables["requests"]["key_id"].isin(my_keys["key_id"])])
        pd.testing.assert_frame_equal(f_truth, tables["truth"][tables["truth"]["key_id"].isin(my_keys["key_id"])])
        assert len(f_req) and len(f_truth) == len(my_keys)
