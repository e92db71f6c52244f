"""Each check of shared.rules.armurl (its docstring and docs/reliability.md: operation URLs
are never followed as given) refuses with its own message, which never echoes the URL."""

from __future__ import annotations

import pytest

from shared.rules.armurl import MAX_URL_LENGTH, OperationUrlRejected, arm_poll_url

ARM = "https://management.azure.com"
OP = "/subscriptions/s/resourceGroups/g/providers/Microsoft.ApiManagement/service/a/operationresults/o"


@pytest.mark.parametrize(
    ("recorded", "message"),
    [
        ("", "the operation URL is empty"),
        (f"{ARM}{OP}\t", "the operation URL has whitespace, control or non-ASCII characters"),
        (f"{ARM}{OP} x", "the operation URL has whitespace, control or non-ASCII characters"),
        (f"{ARM}{OP}\x7f", "the operation URL has whitespace, control or non-ASCII characters"),
        (
            f"{ARM}/subscriptions/é",
            "the operation URL has whitespace, control or non-ASCII characters",
        ),
        (f"{ARM}/subscriptions/a\\b", "the operation URL has a backslash"),
        (f"{ARM}/subscriptions/a%5cb", "the operation URL has a backslash"),
        (f"{ARM}/subscriptions/a%5Cb", "the operation URL has a backslash"),
        (f"{ARM}{OP}#x", "the operation URL has a fragment"),
        (f"https://u@management.azure.com{OP}", "the operation URL has an '@' (user info)"),
        (f"{ARM}/subscriptions/%G0", "the operation URL has a malformed percent escape"),
        (f"{ARM}/subscriptions/%4", "the operation URL has a malformed percent escape"),
        (f"http://management.azure.com{OP}", "the operation URL is not https"),
        (f"management.azure.com{OP}", "the operation URL is not https"),
        (f"https:/management.azure.com{OP}", "the operation URL is not https"),
        (
            f"https://management.azure.com:444{OP}",
            "the operation URL is not on ARM_ENDPOINT's host and port",
        ),
        (f"https://evil.example{OP}", "the operation URL is not on ARM_ENDPOINT's host and port"),
        (f"{ARM}/tenants/x", "the operation URL's path is not under /subscriptions/"),
        (f"{ARM}/Subscriptions/x", "the operation URL's path is not under /subscriptions/"),
        (f"{ARM}", "the operation URL's path is not under /subscriptions/"),
        (
            f"{ARM}/subscriptions/a[b]",
            "the operation URL's path has characters or escapes not allowed",
        ),
        *(
            (
                f"{ARM}/subscriptions/a{escape}b",
                "the operation URL's path has characters or escapes not allowed",
            )
            for escape in (
                "%2f",
                "%2F",
                "%2e",
                "%2E",
                "%40",
                "%25",
                "%3f",
                "%3F",
                "%23",
                "%00",
                "%1f",
                "%1F",
                "%0a",
                "%7f",
                "%7F",
                "%20",
            )
        ),
        (f"{ARM}/subscriptions//x", "the operation URL's path has an empty, '.' or '..' segment"),
        (f"{ARM}/subscriptions/./x", "the operation URL's path has an empty, '.' or '..' segment"),
        (f"{ARM}/subscriptions/../x", "the operation URL's path has an empty, '.' or '..' segment"),
        (f"{ARM}/subscriptions/.", "the operation URL's path has an empty, '.' or '..' segment"),
        (f"{ARM}/subscriptions/..", "the operation URL's path has an empty, '.' or '..' segment"),
        (f"{ARM}{OP}?a=[b]", "the operation URL's query has characters not allowed"),
        (f"{ARM}{OP}?a=%0d", "the operation URL's query has characters not allowed"),
        (f"{ARM}{OP}?a=%1F", "the operation URL's query has characters not allowed"),
        (f"{ARM}{OP}?a=%7F", "the operation URL's query has characters not allowed"),
    ],
)
def test_each_check_refuses_with_its_own_message(recorded: str, message: str) -> None:
    with pytest.raises(OperationUrlRejected) as caught:
        arm_poll_url(ARM, recorded)
    assert str(caught.value) == message


def test_a_url_of_the_maximum_length_is_kept_one_longer_is_not() -> None:
    at_most = f"{ARM}/subscriptions/" + "a" * (MAX_URL_LENGTH - len(f"{ARM}/subscriptions/"))
    assert len(at_most) == MAX_URL_LENGTH == 4096
    assert arm_poll_url(ARM, at_most) == at_most
    with pytest.raises(OperationUrlRejected) as caught:
        arm_poll_url(ARM, at_most + "a")
    assert str(caught.value) == "the operation URL is longer than 4096 characters"


def test_a_non_string_is_refused_as_empty() -> None:
    with pytest.raises(OperationUrlRejected, match="empty"):
        arm_poll_url(ARM, None)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("recorded", "sent"),
    [
        # A last segment of dots that is not "." or "..", a trailing slash, a final
        # empty query: kept as written on the endpoint's host.
        (f"{ARM}/subscriptions/s/...", f"{ARM}/subscriptions/s/..."),
        (f"{ARM}/subscriptions/s/", f"{ARM}/subscriptions/s/"),
        (f"{ARM}/subscriptions/s?", f"{ARM}/subscriptions/s"),
        (f"{ARM}/subscriptions/s?a=%2e&b=%41", f"{ARM}/subscriptions/s?a=%2e&b=%41"),
        (f"{ARM}/subscriptions/a%41b", f"{ARM}/subscriptions/a%41b"),
    ],
)
def test_urls_kept_as_written(recorded: str, sent: str) -> None:
    assert arm_poll_url(ARM, recorded) == sent


def test_the_url_sent_is_on_the_endpoint_as_configured() -> None:
    assert arm_poll_url(f"{ARM}/", f"{ARM}{OP}") == f"{ARM}{OP}"
    sovereign = "https://management.usgovcloudapi.net"
    assert arm_poll_url(sovereign, f"{sovereign}:443{OP}") == f"{sovereign}{OP}"


def test_an_endpoint_on_another_port_must_be_spelled_with_it() -> None:
    endpoint = "https://arm.local:8443"
    assert arm_poll_url(endpoint, f"https://ARM.local:8443{OP}") == f"{endpoint}{OP}"
    with pytest.raises(OperationUrlRejected, match="host and port"):
        arm_poll_url(endpoint, f"https://arm.local{OP}")
    with pytest.raises(OperationUrlRejected, match="host and port"):
        arm_poll_url(endpoint, f"https://arm.local:443{OP}")


def test_an_ipv6_endpoint_is_matched_exactly_in_brackets() -> None:
    endpoint = "https://[::1]:8443"
    assert arm_poll_url(endpoint, f"https://[::1]:8443{OP}") == f"{endpoint}{OP}"
    with pytest.raises(OperationUrlRejected, match="host and port"):
        arm_poll_url(endpoint, f"https://::1:8443{OP}")


def test_a_query_may_carry_a_url_of_its_own() -> None:
    recorded = f"{ARM}{OP}?next=https://elsewhere.example/x"
    assert arm_poll_url(ARM, recorded) == recorded


def test_a_last_segment_of_dots_is_refused_at_any_depth() -> None:
    for last in (".", ".."):
        with pytest.raises(OperationUrlRejected, match="empty, '\\.' or"):
            arm_poll_url(ARM, f"{ARM}/subscriptions/s/g/{last}")


def test_only_slashes_are_trimmed_from_the_endpoint() -> None:
    endpoint = "https://arm.box"  # a host ending in a letter some trimming could eat
    assert arm_poll_url(endpoint, f"https://ARM.BOX{OP}") == f"{endpoint}{OP}"
    assert arm_poll_url("https://ARM.BOX", f"https://arm.box{OP}") == f"https://ARM.BOX{OP}"
