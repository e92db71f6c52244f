from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.rules.naming import (
    ServiceId,
    backup_name,
    is_backup_name,
    next_second,
    parse_backup_name,
)


def test_backup_name_is_lower_case_service_and_utc_second():
    cet = timezone(timedelta(hours=1))
    name = backup_name("Contoso-APIM", datetime(2026, 11, 27, 3, 4, 5, 999, tzinfo=cet))
    assert name == "contoso-apim-20261127T020405Z.apimbackup"
    parsed = parse_backup_name(name)
    assert parsed.service == "contoso-apim"
    assert parsed.started_at == datetime(2026, 11, 27, 2, 4, 5, tzinfo=UTC)


def test_naive_times_are_refused():
    with pytest.raises(ValueError, match="timezone-aware"):
        backup_name("a1", datetime(2026, 1, 1))


@pytest.mark.parametrize(
    "name",
    [
        "contoso-20261127T020405Z",
        "Contoso-20261127T020405Z.apimbackup",
        "contoso-20261327T020405Z.apimbackup",
        "../contoso-20261127T020405Z.apimbackup",
        "contoso-20261127T020405.apimbackup",
        "",
    ],
)
def test_not_backup_names(name: str):
    assert not is_backup_name(name)


def test_resource_ids_round_trip():
    rid = (
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/My.RG"
        "/providers/Microsoft.ApiManagement/service/Contoso"
    )
    service = ServiceId.parse(rid + "/")
    assert (service.resource_group, service.name, service.key) == ("My.RG", "Contoso", "contoso")
    assert service.resource_id == rid


def test_next_second_drops_fractions():
    moment = datetime(2026, 1, 1, 0, 0, 59, 500, tzinfo=UTC)
    assert next_second(moment) == datetime(2026, 1, 1, 0, 1, 0, tzinfo=UTC)


def test_a_trailing_newline_is_not_part_of_a_name():
    """``$`` also matches before a final newline: a name must match in full, or a
    ``...apimbackup\\n`` reaches Table Storage as a key (issue 17, defect 9)."""
    name = "contoso-20261127T020405Z.apimbackup"
    assert is_backup_name(name)
    assert not is_backup_name(name + "\n")
    with pytest.raises(ValueError, match="not a backup name"):
        parse_backup_name(name + "\n")
    rid = (
        "/subscriptions/00000000-0000-0000-0000-000000000001/resourceGroups/rg"
        "/providers/Microsoft.ApiManagement/service/contoso"
    )
    with pytest.raises(ValueError, match="expected an APIM resource ID"):
        ServiceId.parse(rid + "\n/")
