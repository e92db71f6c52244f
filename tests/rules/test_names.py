"""Names beyond the round trip (tests/rules/test_naming.py): the errors a bad name gets,
resource IDs as operators paste them, and finding a configured service by name or ID."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta, timezone

import pytest

from shared.rules.naming import (
    ServiceId,
    backup_name,
    find_service,
    is_backup_name,
    parse_backup_name,
)

SUB = "0000AAAA-0000-0000-0000-000000000000"
ID = f"/subscriptions/{SUB}/resourceGroups/rg-Apim/providers/Microsoft.ApiManagement/service/Contoso-apim"


def test_a_resource_id_is_read_with_spaces_and_a_trailing_slash() -> None:
    service = ServiceId.parse(f"  {ID}/ \n")
    assert service == ServiceId(SUB.lower(), "rg-Apim", "Contoso-apim")
    assert service.key == "contoso-apim" and str(service) == "Contoso-apim"
    assert service.resource_id == ID.replace(SUB, SUB.lower())


def test_a_bad_resource_id_names_the_expected_form() -> None:
    with pytest.raises(ValueError, match="expected an APIM resource ID") as caught:
        ServiceId.parse(" /subscriptions/x ")
    assert str(caught.value) == (
        "expected an APIM resource ID: /subscriptions/<sub>/resourceGroups/<rg>"
        "/providers/Microsoft.ApiManagement/service/<name>, got '/subscriptions/x'"
    )


def test_a_bad_backup_name_is_quoted_to_100_characters() -> None:
    long = "x" * 150
    with pytest.raises(ValueError, match="is not a backup name") as caught:
        parse_backup_name(long)
    assert str(caught.value) == (
        f"'{'x' * 100}' is not a backup name (<service>-YYYYMMDDTHHMMSSZ.apimbackup)"
    )


def test_an_impossible_timestamp_is_refused_as_such() -> None:
    name = "contoso-20261332T250000Z.apimbackup"
    with pytest.raises(ValueError, match="invalid timestamp") as caught:
        parse_backup_name(name)
    assert str(caught.value) == f"'{name}' has an invalid timestamp"
    assert not is_backup_name(name)


def test_a_backup_started_in_another_zone_is_named_in_utc() -> None:
    started = datetime(2026, 3, 1, 3, 0, 5, tzinfo=timezone(timedelta(hours=1)))
    name = backup_name("Contoso", started)
    assert name == "contoso-20260301T020005Z.apimbackup"
    parsed = parse_backup_name(name)
    assert (parsed.service, parsed.started_at) == ("contoso", started)
    assert is_backup_name(name)


def test_a_configured_service_is_found_by_name_or_id_in_any_case() -> None:
    a = ServiceId.parse(ID)
    b = ServiceId(SUB.lower(), "rg", "fabrikam")
    services = [a, b]
    assert find_service(services, " CONTOSO-APIM ") is a
    assert find_service(services, ID.upper()) is a
    assert find_service(services, "fabrikam") is b
    assert find_service(services, "contoso") is None
    assert find_service([], "fabrikam") is None


def test_a_service_name_ending_in_any_letter_is_read_whole() -> None:
    rid = ID.replace("Contoso-apim", "ContosoX")
    assert ServiceId.parse(rid + "/").name == "ContosoX"


def test_a_naive_start_is_refused_with_why() -> None:
    with pytest.raises(ValueError, match=r"^started_at must be timezone-aware$"):
        backup_name("contoso", datetime(2026, 3, 1))


def test_names_are_in_utc_whatever_the_process_time_zone(monkeypatch: pytest.MonkeyPatch) -> None:
    """The host may run with WEBSITE_TIME_ZONE / TZ set (issue 17): names stay UTC."""
    import time

    monkeypatch.setenv("TZ", "America/New_York")
    time.tzset()
    try:
        started = datetime(2026, 3, 1, 2, 0, 5, tzinfo=UTC)
        assert backup_name("contoso", started) == "contoso-20260301T020005Z.apimbackup"
    finally:
        monkeypatch.undo()
        time.tzset()
