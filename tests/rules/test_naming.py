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
