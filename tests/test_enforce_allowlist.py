"""Allowlist files: CSV and TOML forms, expiry dates, and clear errors for bad entries."""
from __future__ import annotations

from datetime import date

import pytest

from keyfarm.enforce import AllowEntry, load_allowlist
from keyfarm.errors import KeyfarmInputError


def test_csv_and_toml_forms_give_the_same_entries(tmp_path):
    (tmp_path / "a.csv").write_text(
        "kind,value,reason,expires\n"
        "account_id,acc-1,VIP customer,\n"
        "email_domain,Uni.Edu,campus NAT,2025-12-31\n")
    (tmp_path / "a.toml").write_text(
        '[[allow]]\nkind = "email_domain"\nvalue = "uni.edu"\nreason = "campus NAT"\nexpires = 2025-12-31\n'
        '[[allow]]\nkind = "account_id"\nvalue = "acc-1"\nreason = "VIP customer"\n')
    expected = (AllowEntry("account_id", "acc-1", "VIP customer", None),
                AllowEntry("email_domain", "uni.edu", "campus NAT", date(2025, 12, 31)))
    assert load_allowlist(tmp_path / "a.csv") == expected
    assert load_allowlist(tmp_path / "a.toml") == expected


def test_entry_is_honoured_through_its_expiry_date():
    entry = AllowEntry("org_id", "acme", "contract", date(2025, 1, 31))
    assert not entry.expired(date(2025, 1, 31))
    assert entry.expired(date(2025, 2, 1))


@pytest.mark.parametrize("row, column", [
    ("account_id,acc-1,,", "reason"),
    ("phone,123,why,", "kind"),
    ("org_id,,why,", "value"),
    ("org_id,acme,why,31/12/2025", "expires"),
])
def test_bad_csv_entry_names_its_row_and_column(tmp_path, row, column):
    path = tmp_path / "a.csv"
    path.write_text("kind,value,reason,expires\norg_id,fine,ok,\n" + row + "\n")
    with pytest.raises(KeyfarmInputError) as info:
        load_allowlist(path)
    assert (info.value.column, info.value.row) == (column, 2)


def test_unknown_file_type_is_an_input_error(tmp_path):
    (tmp_path / "a.yaml").write_text("x: 1\n")
    with pytest.raises(KeyfarmInputError, match=".csv or .toml"):
        load_allowlist(tmp_path / "a.yaml")
