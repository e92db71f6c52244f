"""Hostile input never reaches a 500 (issue 13 item 4).

Every HTTP function is fed generated input (hypothesis, derandomized so CI sees the same
cases every run) and a hand list of known-nasty cases: malformed, nested, oversized and
non-UTF-8 bodies, wrong types, unknown fields, traversal and encoded names,
injection-looking filters, long query values. The handlers are called directly (as the
host would) against Azurite and the APIM emulator, then a smaller set goes over real
HTTP through tests/funchost.py with raw bytes on the wire.

For bad input every answer is a 4xx in the ARM error shape whose message names the
problem, and nothing changes: both tables' rows (with their ETags), the container's
blobs (with theirs) and the emulator's log of write requests are the same before and
after. The totals (inputs per route, answers by status and code) are printed at the
end of the module; run it with

    .venv/bin/python -m pytest -q tests/api/test_fuzz.py
"""

from __future__ import annotations

import base64
import contextlib
import json
import re
import socket
import string
from collections import Counter
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any
from urllib.parse import quote

import azure.functions as func
import pytest
from azure.functions.timer import TimerRequest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import function_app
from shared.api.http import MAX_BODY_BYTES
from tests.funchost import FunctionHost
from tests.product import Product, http

pytestmark = pytest.mark.stack

Handler = Callable[[func.HttpRequest], func.HttpResponse]

ROUTES: dict[str, Handler] = {
    "POST /api/backups": function_app.start_backup,
    "GET /api/backups": function_app.list_backups,
    "GET /api/backups/{backupName}": function_app.get_backup,
    "GET /api/operations/{operationId}": function_app.get_operation,
    "POST /api/restores": function_app.start_restore,
    "POST /api/prune": function_app.prune,
    "GET /api/health": function_app.health,
}
CONFIGURED = ("contoso-apim", "contoso-standby")
# contoso-standby-2 is a restore target only (the emulator's seed).
ALLOWED_TARGETS = (*CONFIGURED, "contoso-standby-2")
BACKUP_NAME = re.compile(r"[a-z][a-z0-9-]{0,48}[a-z0-9]-\d{8}T\d{6}Z\.apimbackup")
GENERIC = "An unexpected error occurred"


# Totals ----------------------------------------------------------------------------------


@dataclass
class Totals:
    inputs: Counter[str] = field(default_factory=Counter)
    answers: Counter[tuple[str, int, str]] = field(default_factory=Counter)

    def lines(self) -> list[str]:
        by_status: Counter[int] = Counter()
        by_code: Counter[tuple[int, str]] = Counter()
        for (_route, status, code), n in self.answers.items():
            by_status[status] += n
            if status >= 400:
                by_code[(status, code)] += n
        fives = sum(n for status, n in by_status.items() if status >= 500)
        out = [f"fuzz totals: {sum(self.inputs.values())} inputs, {fives} answered 5xx"]
        out += [f"  {route}: {n} inputs" for route, n in sorted(self.inputs.items())]
        out.append(
            "  answers by status: " + ", ".join(f"{s}: {n}" for s, n in sorted(by_status.items()))
        )
        out += [f"  {s} {code}: {n}" for (s, code), n in sorted(by_code.items())]
        return out


TOTALS = Totals()


@pytest.fixture(scope="module", autouse=True)
def report_totals(request: pytest.FixtureRequest) -> Iterator[Totals]:
    yield TOTALS
    if not TOTALS.inputs:
        return
    # Printed past pytest's capture, so a plain run shows the figures for docs/reliability.md.
    capture = request.config.pluginmanager.get_plugin("capturemanager")
    with capture.global_and_fixture_disabled() if capture else contextlib.nullcontext():
        print("\n" + "\n".join(TOTALS.lines()))


def judge(
    route: str,
    response: func.HttpResponse,
    *,
    bad: bool = True,
    names: str | None = None,
) -> dict[str, Any]:
    """The oracle: never a 5xx; the ARM error shape for every error; a 4xx for bad input,
    whose message names ``names`` when given. Counts the answer."""
    status = response.status_code
    raw = response.get_body()
    body = json.loads(raw)
    code = (body.get("error") or {}).get("code", "") if status >= 400 else ""
    TOTALS.inputs[route] += 1
    TOTALS.answers[(route, status, code)] += 1
    assert status < 500, (route, status, raw[:300])
    if status >= 400:
        assert set(body) == {"error"}, body
        error = body["error"]
        assert set(error) <= {"code", "message", "target"}, error
        assert isinstance(error["code"], str) and error["code"], error
        assert isinstance(error["message"], str) and error["message"], error
        assert GENERIC not in error["message"]
        if names is not None:
            assert names.lower() in error["message"].lower(), (names, error)
    if bad:
        assert 400 <= status < 500, (route, status, raw[:300])
    result: dict[str, Any] = body
    return result


# State: nothing may change -----------------------------------------------------------------


def snapshot(product: Product) -> tuple[Any, ...]:
    runtime = product.runtime

    def rows(table: Any) -> list[tuple[str, str, str]]:
        return sorted(
            (e["PartitionKey"], e["RowKey"], e.metadata["etag"]) for e in table.list_entities()
        )

    container = product.blob_service.get_container_client(runtime.settings.container)
    blobs = sorted((b.name, b.etag) for b in container.list_blobs())
    writes = [
        (r["method"], r["path"]) for r in product.stack.control.requests() if r["method"] != "GET"
    ]
    return rows(runtime.ledger.table), rows(runtime.operations.table), blobs, writes


@dataclass
class Seeded:
    product: Product
    backups: dict[str, str]  # service -> its Succeeded backup's name
    operation_id: str
    before: tuple[Any, ...]

    def unchanged(self) -> None:
        after = snapshot(self.product)
        for label, old, new in zip(
            ("ledger", "operations", "blobs", "ARM writes"), self.before, after, strict=True
        ):
            assert new == old, f"{label} changed"


@pytest.fixture
def seeded(product: Product) -> Seeded:
    """Both services backed up (real APIM backups, settled): rows, blobs and an ended
    operation for valid-looking input to reach."""
    function_app.scheduled_backup(TimerRequest(past_due=False))
    function_app.housekeeping_timer(TimerRequest(past_due=False))
    rows = list(product.runtime.ledger.records())
    assert {r.status.value for r in rows} == {"Succeeded"} and len(rows) == 2
    operation = next(iter(product.runtime.operations.all()))
    return Seeded(
        product,
        {r.service: r.backup_name for r in rows},
        operation.operation_id,
        snapshot(product),
    )


def fuzz_settings(examples: int) -> settings:
    return settings(
        max_examples=examples,
        derandomize=True,  # the same cases on every run: CI is reproducible
        database=None,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.data_too_large,
            HealthCheck.filter_too_much,
        ],
    )


# Strategies -----------------------------------------------------------------------------

INJECTIONS = [
    "' or '1' eq '1",
    "contoso-apim' or PartitionKey ne '",
    "x') or (RowKey ne '",
    "PartitionKey eq 'contoso-apim'",
    "@pk",
    "contoso-apim%27%20or%20%271%27%20eq%20%271",
    "$filter=true",
    "'" * 2700,
    '"' * 300,
    "\\" * 300,
    "; DROP TABLE apimbackups; --",
    "<script>alert(1)</script>",
    "${jndi:ldap://x.example/a}",
    "{{7*7}}",
    "contoso-apim\x00",
    "contoso-apim\r\nX-Injected: 1",
    "contoso-apim\u202e",
    "\ud800",
    "/subscriptions/../../contoso-apim",
    "%2e%2e%2f%2e%2e%2f",
]
TRAVERSALS = [
    "../../../etc/passwd",
    "..\\..\\windows\\win.ini",
    "..%2F..%2Fetc%2Fpasswd",
    "%2e%2e%2f%2e%2e%2fsecret",
    "..%252F..%252F",
    "contoso-apim-20261127T020000Z.apimbackup/../../x",
    "contoso-apim-20261127T020000Z.apimbackup%00.txt",
    "contoso-apim-20261127T020000Z.apimbackup\x00",
    "/contoso-apim-20261127T020000Z.apimbackup",
    "contoso-apim-20261127T020000Z.apimbackup.manifest.json",
    "CONTOSO-APIM-20261127T020000Z.APIMBACKUP",
    "contoso-apim-20261340T250000Z.apimbackup",
    "contoso-apim-20261127T020000Z.apimbackup ",
    "\u2024\u2024/\u2024\u2024/",
    "\uff43\uff4f\uff4e\uff54\uff4f\uff53\uff4f-apim-20261127T020000Z.apimbackup",
]

json_scalars = st.one_of(
    st.none(), st.booleans(), st.integers(), st.floats(allow_nan=False), st.text(max_size=40)
)
json_values = st.recursive(
    json_scalars,
    lambda inner: (
        st.lists(inner, max_size=4) | st.dictionaries(st.text(max_size=12), inner, max_size=4)
    ),
    max_leaves=12,
)
wrong_types = st.one_of(
    st.integers(), st.floats(allow_nan=False), st.booleans(), st.lists(json_scalars, max_size=3),
    st.dictionaries(st.text(max_size=8), json_scalars, max_size=3),
)  # fmt: skip


def nested(depth: int, as_object: bool) -> bytes:
    if as_object:
        return (b'{"service":' * depth) + b'"x"' + (b"}" * depth)
    return b"[" * depth + b"]" * depth


def as_json(value: Any, ensure_ascii: bool = True) -> bytes:
    return json.dumps(value, ensure_ascii=ensure_ascii).encode("utf-8", "surrogatepass")


# Bodies that no route may accept, whatever the route's fields.
hostile_bodies = st.one_of(
    st.binary(min_size=1, max_size=512).filter(lambda b: not _is_object_or_blank(b)),
    json_values.filter(lambda v: not isinstance(v, dict)).map(as_json),
    st.tuples(st.integers(33, 15_000), st.booleans()).map(lambda t: nested(*t)),
    st.integers(MAX_BODY_BYTES - 8, MAX_BODY_BYTES + 4096).map(
        lambda n: b'{"service": "' + b"a" * n + b'"}'
    ),
    st.tuples(st.text(min_size=1, max_size=30), st.sampled_from(["utf-16", "utf-32", "utf-16-be"])).map(
        lambda t: json.dumps({"service": t[0]}, ensure_ascii=False).encode(t[1])
    ),
    st.binary(max_size=40).map(lambda b: b'{"service": "' + b + b'\xff\xfe"}'),
    st.sampled_from([b'{"a": NaN}', b'{"a": Infinity}', b'{"a": -Infinity}', b"{'a': 1}", b'{"a" 1}', b"{,}"]),
)  # fmt: skip


def _is_object_or_blank(raw: bytes) -> bool:
    """Judged with the standard library, independently of the product's parser."""
    try:
        value = json.loads(raw.decode("utf-8-sig"))
    except (ValueError, RecursionError):
        return not raw.strip()
    return isinstance(value, dict)


def not_configured(value: str) -> bool:
    ref = value.strip().lower()
    return not any(ref in (s, f"/service/{s}") or ref.endswith(f"/service/{s}") for s in CONFIGURED)


def not_allowed(value: str) -> bool:
    ref = value.strip().lower()
    return not any(ref == s or ref.endswith(f"/service/{s}") for s in ALLOWED_TARGETS)


service_texts = st.one_of(
    st.text(max_size=300),
    st.text(alphabet=string.printable, min_size=1, max_size=80),
    st.sampled_from(INJECTIONS + TRAVERSALS),
    st.integers(251, 3000).map(lambda n: "a" * n),
)
backup_bodies = st.one_of(
    hostile_bodies,
    wrong_types.map(lambda v: as_json({"service": v})),
    service_texts.filter(not_configured).map(lambda s: as_json({"service": s}, ensure_ascii=False)),
    st.tuples(
        st.dictionaries(st.text(max_size=15).filter(lambda k: k != "service"), json_values, min_size=1, max_size=3),
        st.sampled_from([None, *CONFIGURED]),
    ).map(lambda t: as_json({**t[0], **({"service": t[1]} if t[1] else {})})),
)  # fmt: skip


def not_a_backup_name(value: str) -> bool:
    return BACKUP_NAME.fullmatch(value.strip()) is None


valid_form_names = st.tuples(
    st.from_regex(r"[a-z][a-z0-9-]{0,20}[a-z0-9]", fullmatch=True),
    st.datetimes(min_value=datetime(2000, 1, 1), max_value=datetime(2099, 12, 31)),
).map(lambda t: f"{t[0]}-{t[1]:%Y%m%dT%H%M%S}Z.apimbackup")


# Direct calls, per route ------------------------------------------------------------------


def test_post_backups(seeded: Seeded):
    route = "POST /api/backups"
    hand = [
        (b"[" * 10_000 + b"]" * 10_000, "nests deeper"),
        (b'{"service":' * 5_000 + b'"x"' + b"}" * 5_000, "nests deeper"),
        (b" " * (MAX_BODY_BYTES - 10) + b"{}" + b" " * 20, "larger than"),
        (b'{"service": "caf\xe9"}', "UTF-8"),
        ('{"service": "café"}'.encode("utf-16"), "UTF-8"),
        (b'{"service": "contoso-apim", "service": "contoso-standby"}', "repeats the key"),
        (b'{"service": "contoso-apim", "dryRun": true}', "unknown field"),
        (b'{"Service": "contoso-apim"}', "unknown field"),
        (b'{"service": ["contoso-apim"]}', "'service'"),
        (b'{"service": {"name": "contoso-apim"}}', "'service'"),
        (b'{"service": 1e999}', "'service'"),
        (b'{"service": NaN}', "not valid JSON"),
        (as_json({"service": "'" * 2700}), "longer than"),
        (as_json({"service": "contoso-apim\x00"}), "control"),
        (as_json({"service": "contoso-apim\u200b"}), "not in APIM_SERVICES"),
        (as_json({"service": "../../contoso-apim"}), "not in APIM_SERVICES"),
        (as_json({"service": "contoso-standby-2"}), "not in APIM_SERVICES"),
        (b"null", "JSON object"),
        (b'"contoso-apim"', "JSON object"),
        (b"\xef\xbb\xbf\xef\xbb\xbf{}", "not valid JSON"),
        (b"{}", "'service' is required"),
        (b"", "'service' is required"),
    ]
    for raw, names in hand:
        judge(route, function_app.start_backup(http("POST", "backups", raw)), names=names)

    @fuzz_settings(300)
    @given(backup_bodies)
    def run(raw: bytes) -> None:
        judge(route, function_app.start_backup(http("POST", "backups", raw)))

    run()
    seeded.unchanged()


def test_get_backups(seeded: Seeded):
    route = "GET /api/backups"

    def listing(
        params: dict[str, str], *, bad: bool = True, names: str | None = None
    ) -> dict[str, Any]:
        response = function_app.list_backups(http("GET", "backups", params=params))
        return judge(route, response, bad=bad, names=names)

    hand_bad = [
        ({"service": "'" * 2700}, "'service' is longer than 250"),
        ({"service": "a" * 251}, "'service' is longer"),
        ({"service": "contoso-apim' or '1' eq '1"}, "'service' must be"),
        ({"service": "x') or (PartitionKey ne '"}, "'service' must be"),
        ({"service": "contoso-apim\x00"}, "'service' contains control"),
        ({"service": "../contoso-apim"}, "'service' must be"),
        (
            {
                "service": "/subscriptions/x/resourceGroups/rg/providers/Microsoft.ApiManagement/service/"
            },
            "'service'",
        ),
        ({"status": "Succeeded' or Status ne '"}, "'status' must be one of"),
        ({"status": "x" * 5000}, "'status' is longer"),
        ({"status": "\x7f"}, "'status' contains"),
        ({"includeExpired": "yes"}, "'includeExpired' must be true or false"),
        ({"includeExpired": "true\x00"}, "'includeExpired' contains"),
        ({"includeExpired": "t" * 300}, "'includeExpired' is longer"),
    ]
    for params, names in hand_bad:
        listing(params, names=names)
    # Valid filters answer 200 and never widen: only the named service's rows.
    own = listing({"service": "contoso-apim"}, bad=False)["value"]
    assert [i["backupName"] for i in own] == [seeded.backups["contoso-apim"]]
    gone = seeded.product.stack.service_id("retired-apim")
    assert listing({"service": gone}, bad=False)["value"] == []
    assert listing({"service": "retired-apim", "unknown": "x"}, bad=False)["value"] == []

    texts = st.one_of(
        st.text(max_size=300),
        st.sampled_from(INJECTIONS),
        st.integers(200, 3000).map(lambda n: "'" * n),
    )

    @fuzz_settings(250)
    @given(
        st.fixed_dictionaries(
            {},
            optional={"service": texts, "status": texts, "includeExpired": texts, "$filter": texts},
        )
    )
    def run(params: dict[str, str]) -> None:
        body = listing(params, bad=False)
        if "value" in body and params.get("service", "").strip():
            # An injection that "worked" would list another service's rows.
            wanted = params["service"].strip().lower()
            for item in body["value"]:
                assert wanted == item["service"] or wanted.endswith(f"/service/{item['service']}")

    run()
    seeded.unchanged()


def test_get_backup_by_name(seeded: Seeded):
    route = "GET /api/backups/{backupName}"

    def get(name: str, *, bad: bool = True, names: str | None = None) -> dict[str, Any]:
        # The URL is only for show (the host hands the decoded name over as a route param).
        url_name = quote(name.encode("utf-8", "surrogatepass"), safe="")
        request = http("GET", f"backups/{url_name}", route_params={"backupName": name})
        return judge(route, function_app.get_backup(request), bad=bad, names=names)

    existing = seeded.backups["contoso-apim"]
    for name in [
        *TRAVERSALS,
        "",
        " ",
        "a" * 10_000,
        existing.upper(),
        existing + "/",
        f"../{existing}",
        existing.replace(".apimbackup", ".APIMBACKUP"),
    ]:
        get(name, names="No backup named")
    assert get(existing, bad=False)["backupName"] == existing

    names = st.one_of(
        st.text(max_size=300), valid_form_names, st.sampled_from(TRAVERSALS + INJECTIONS)
    )

    @fuzz_settings(200)
    @given(names.filter(lambda n: n not in seeded.backups.values()))
    def run(name: str) -> None:
        get(name)

    run()
    seeded.unchanged()


def test_get_operation(seeded: Seeded):
    route = "GET /api/operations/{operationId}"

    def get(operation_id: str, *, bad: bool = True, names: str | None = None) -> dict[str, Any]:
        request = http("GET", "operations/x", route_params={"operationId": operation_id})
        return judge(route, function_app.get_operation(request), bad=bad, names=names)

    real = seeded.operation_id
    for bad_id in [
        "",
        "0" * 32,
        real.upper(),
        real + "0",
        real[:-1],
        f"../{real}",
        f"{real}\x00",
        "' or ''='",
        "a" * 100_000,
        *TRAVERSALS,
    ]:
        get(bad_id, names="No operation with id")
    assert get(real, bad=False)["status"] == "Succeeded"

    ids = st.one_of(
        st.text(max_size=200),
        st.from_regex(r"[0-9a-f]{32}", fullmatch=True),
        st.from_regex(r"[0-9a-fA-F]{0,40}", fullmatch=True),
        st.sampled_from(INJECTIONS),
    )

    @fuzz_settings(200)
    @given(ids.filter(lambda i: i != real))
    def run(operation_id: str) -> None:
        get(operation_id)

    run()
    seeded.unchanged()


def restore_bodies(existing: list[str]) -> st.SearchStrategy[bytes]:
    """Restore requests that are each wrong in at least one way."""
    real = st.sampled_from(existing)
    return st.one_of(
        hostile_bodies,
        st.text(max_size=200).filter(not_a_backup_name).map(lambda n: as_json({"backupName": n}, ensure_ascii=False)),
        wrong_types.map(lambda v: as_json({"backupName": v})),
        valid_form_names.filter(lambda n: n not in existing).map(lambda n: as_json({"backupName": n, "dryRun": False})),
        valid_form_names.filter(lambda n: n not in existing).map(lambda n: as_json({"backupName": n})),
        st.tuples(real, st.text(max_size=260).filter(not_allowed)).map(lambda t: as_json({"backupName": t[0], "targetService": t[1]}, ensure_ascii=False)),
        st.tuples(real, wrong_types).map(lambda t: as_json({"backupName": t[0], "targetService": t[1]})),
        st.tuples(real, wrong_types.filter(lambda v: not isinstance(v, bool))).map(lambda t: as_json({"backupName": t[0], "dryRun": t[1]})),
        st.tuples(real, st.dictionaries(st.text(max_size=15).filter(lambda k: k not in ("backupName", "targetService", "dryRun")), json_values, min_size=1, max_size=3)).map(
            lambda t: as_json({"backupName": t[0], **t[1]})
        ),
    )  # fmt: skip


def test_post_restores(seeded: Seeded):
    route = "POST /api/restores"
    real = seeded.backups["contoso-apim"]

    def post(raw: bytes, params: dict[str, str] | None = None, *, names: str | None = None) -> None:
        judge(
            route,
            function_app.start_restore(http("POST", "restores", raw, params=params)),
            names=names,
        )

    valid = {"backupName": real, "targetService": "contoso-standby"}
    hand = [
        (as_json({**valid, "dryrun": True}), None, "unknown field"),
        (as_json({**valid, "DryRun": True}), None, "unknown field"),
        (as_json(valid), {"dryRun": "true"}, "'dryRun' goes in the request body"),
        (as_json({**valid, "dryRun": "true"}), None, "'dryRun' must be true or false"),
        (as_json({**valid, "dryRun": 1}), None, "'dryRun' must be true or false"),
        (as_json({**valid, "targetService": "evil-apim"}), None, "not in RESTORE_TARGETS"),
        (as_json({**valid, "targetService": "../contoso-standby"}), None, "not in RESTORE_TARGETS"),
        (as_json({**valid, "targetService": ""}), None, "'targetService'"),
        (as_json({"backupName": "../../etc/passwd"}), None, "'backupName'"),
        (as_json({"backupName": real + "\x00"}), None, "'backupName'"),
        (as_json({"backupName": "x" * 70_000}), None, "larger than"),
        (as_json({"backupName": [real]}), None, "'backupName'"),
        (as_json({"backupName": real, "backupName2": real}), None, "unknown field"),
        (
            b'{"backupName": "' + real.encode() + b'", "backupName": "other"}',
            None,
            "repeats the key",
        ),
        (b"[" * 10_000 + b"]" * 10_000, None, "nests deeper"),
        (b'{"backupName":' * 4_000 + b"1" + b"}" * 4_000, None, "nests deeper"),
        (b'{"backupName": "\xff"}', None, "UTF-8"),
        (b"", None, "A JSON body is required"),
        (b"{}", None, "'backupName' is required"),
    ]
    for raw, params, names in hand:
        post(raw, params, names=names)
    # A dry run answers 200 with each check's result, a failed one included (the contract).
    missing = {"backupName": "contoso-apim-20000101T000000Z.apimbackup", "dryRun": True}
    response = function_app.start_restore(http("POST", "restores", as_json(missing)))
    assert "BackupNotFound" in json.dumps(judge(route, response, bad=False))

    @fuzz_settings(300)
    @given(restore_bodies(list(seeded.backups.values())))
    def run(raw: bytes) -> None:
        post(raw)

    run()
    seeded.unchanged()


def test_post_prune(seeded: Seeded):
    route = "POST /api/prune"

    def prune(
        raw: bytes, params: dict[str, str], *, bad: bool = True, names: str | None = None
    ) -> None:
        judge(
            route,
            function_app.prune(http("POST", "prune", raw, params=params)),
            bad=bad,
            names=names,
        )

    hand = [
        (b'{"dryRun": true}', {}, "unknown field"),  # must not become a real prune
        (b'{"dryRun": true}', {"dryRun": "true"}, "unknown field"),
        (b"[]", {"dryRun": "true"}, "JSON object"),
        (b"\xff", {"dryRun": "true"}, "UTF-8"),
        (b"", {"dryRun": ""}, "'dryRun' must be true or false"),
        (b"", {"dryRun": "yes"}, "'dryRun' must be true or false"),
        (b"", {"dryRun": "tru"}, "'dryRun' must be true or false"),
        (b"", {"dryRun": "true' or '1"}, "'dryRun' must be true or false"),
        (b"", {"dryRun": "t" * 10_000}, "'dryRun' must be true or false"),
    ]
    for raw, params, names in hand:
        prune(raw, params, names=names)
    prune(b"", {"dryRun": "true"}, bad=False)  # the dry run itself changes nothing either

    valid_flags = {"true", "false", "1", "0"}
    flags = st.one_of(st.text(max_size=60), st.sampled_from(INJECTIONS)).filter(
        lambda v: v.strip().lower() not in valid_flags
    )
    bodies = hostile_bodies | st.dictionaries(
        st.text(max_size=12), json_values, min_size=1, max_size=3
    ).map(as_json)

    @fuzz_settings(100)
    @given(flags)
    def run_flags(flag: str) -> None:
        prune(b"", {"dryRun": flag})

    @fuzz_settings(100)
    @given(bodies)
    def run_bodies(raw: bytes) -> None:
        # dryRun=true as well: even a body the product wrongly accepted must not prune.
        prune(raw, {"dryRun": "true"})

    run_flags()
    run_bodies()
    seeded.unchanged()


def test_get_health_ignores_what_it_does_not_read(seeded: Seeded):
    route = "GET /api/health"

    @fuzz_settings(60)
    @given(st.dictionaries(st.text(max_size=20), st.text(max_size=300), max_size=4), hostile_bodies)
    def run(params: dict[str, str], raw: bytes) -> None:
        body = judge(
            route, function_app.health(http("GET", "health", raw, params=params)), bad=False
        )
        assert body["status"] == "Healthy"

    run()
    seeded.unchanged()


# The Entra principal header (API_AUTH=entra) ---------------------------------------------


def b64(raw: bytes) -> str:
    return base64.b64encode(raw).decode()


def principal(claims: Any, **extra: Any) -> str:
    return b64(json.dumps({"auth_typ": "aad", "claims": claims, **extra}).encode())


def is_principal(header: str) -> bool:
    """What App Service authentication sends: base64 of a JSON object with a claims list
    (https://learn.microsoft.com/azure/app-service/configure-authentication-user-identities)."""
    try:
        data = json.loads(base64.b64decode(header, validate=True))
    except (ValueError, RecursionError):
        return False
    return (
        len(header) <= 16 * 1024 and isinstance(data, dict) and isinstance(data.get("claims"), list)
    )


def has_role(header: str, role: str) -> bool:
    data = json.loads(base64.b64decode(header, validate=True))
    role_types = {"roles", str(data.get("role_typ") or "roles")}
    return any(
        isinstance(c, dict) and c.get("typ") in role_types and c.get("val") == role
        for c in data["claims"]
    )


claims = st.lists(
    st.one_of(
        st.fixed_dictionaries({"typ": st.sampled_from(["roles", "name", "groups", "x"]), "val": st.text(max_size=30)}),
        st.fixed_dictionaries({"typ": st.just("roles"), "val": st.just("ApimBackup.Restore")}),
        json_values,
    ),
    max_size=6,
)  # fmt: skip
principal_headers = st.one_of(
    st.text(max_size=80),
    st.binary(max_size=200).map(b64),
    json_values.map(lambda v: b64(json.dumps(v).encode())),
    wrong_types.map(lambda v: b64(json.dumps({"claims": v}).encode())),
    claims.map(principal),
    st.tuples(claims, json_values).map(lambda t: principal(t[0], role_typ=t[1])),
    st.tuples(claims, json_values).map(lambda t: principal(t[0], name_typ=t[1])),
    st.integers(min_value=1, max_value=6000).map(lambda d: b64(b"[" * d + b"]" * d)),
    st.integers(min_value=1, max_value=1500).map(
        lambda d: b64(b'{"claims":' * d + b"[]" + b"}" * d)
    ),
    st.integers(min_value=12_000, max_value=20_000).map(lambda n: principal([{"typ": "name", "val": "x" * n}])),
)  # fmt: skip


def test_the_entra_principal_header(seeded: Seeded):
    """Every header a caller could smuggle past a misconfigured front: 401 unless it is a
    principal, 403 for a restore without the role, the route's own answer otherwise; the
    header is never echoed, and nothing changes."""
    seeded.product.reconfigure(API_AUTH="entra", WEBSITE_AUTH_ENABLED="true")
    real = seeded.backups["contoso-apim"]
    # A restore that passes the role check and is then refused by its own validation
    # (a target not in RESTORE_TARGETS, 403 TargetNotAllowed): nothing starts.
    restore = as_json({"backupName": real, "targetService": "evil-apim"})

    def call(route: str, header: str | None) -> None:
        headers = {"Content-Type": "application/json"}
        if header is not None:
            headers["X-MS-CLIENT-PRINCIPAL"] = header
        if route == "POST /api/restores":
            request = func.HttpRequest(
                "POST", "https://backup.example.net/api/restores", headers=headers, body=restore
            )
            response = function_app.start_restore(request)
        else:
            request = func.HttpRequest(
                "GET", "https://backup.example.net/api/backups", headers=headers, body=b""
            )
            response = function_app.list_backups(request)
        valid = header is not None and is_principal(header)
        body = judge(route, response, bad=not valid or route == "POST /api/restores")
        code = (body.get("error") or {}).get("code")
        if not valid:
            assert (response.status_code, code) == (401, "Unauthenticated"), (header or "")[:80]
        elif route == "POST /api/restores" and not has_role(header or "", "ApimBackup.Restore"):
            assert (response.status_code, code) == (403, "RestoreRoleRequired")
        elif route == "POST /api/restores":
            assert (response.status_code, code) == (403, "TargetNotAllowed")  # past the role
        else:
            assert response.status_code == 200 and real in json.dumps(body)
        if header and len(header) >= 12:
            assert header[:12] not in response.get_body().decode(errors="replace")

    for route in ("GET /api/backups", "POST /api/restores"):
        call(route, None)
        call(route, "")
        call(route, principal([]))
        call(route, principal([{"typ": "roles", "val": "ApimBackup.Restore"}]))
        call(route, principal([{"typ": "role", "val": "ApimBackup.Restore"}]))  # wrong claim type
        call(route, principal([{"typ": "r", "val": "ApimBackup.Restore"}], role_typ="r"))
        call(route, b64(b"[" * 6000 + b"]" * 6000))
        call(route, b64(b"[" * 12_000))  # past 3.13's parser limit, within 16 KiB
        call(route, b64(b'{"claims": [], "role_typ": ' + b"[" * 5000 + b"]" * 5000 + b"}"))
        call(route, "A" * 20_000)

    @fuzz_settings(150)
    @given(st.sampled_from(["GET /api/backups", "POST /api/restores"]), principal_headers)
    def run(route: str, header: str) -> None:
        call(route, header)

    run()
    seeded.unchanged()


# A running operation among the reads ---------------------------------------------------------


def test_a_running_operation_among_the_reads(seeded: Seeded):
    """A backup APIM is still running: its status reads answer 202 with the documented
    body every time; ids near it are 404s; reading changes no backup, blob or APIM state."""
    product = seeded.product
    product.stack.control.set_duration(3600)
    started = function_app.start_backup(
        http("POST", "backups", as_json({"service": "contoso-apim"}))
    )
    assert started.status_code == 202
    live = json.loads(started.get_body())
    live_id = live["operationId"]
    ledger, _operations, blobs, writes = snapshot(product)
    route = "GET /api/operations/{operationId}"

    def get(operation_id: str) -> func.HttpResponse:
        return function_app.get_operation(
            http("GET", "operations/x", route_params={"operationId": operation_id})
        )

    for _ in range(3):
        response = get(live_id)
        body = judge(route, response, bad=False)
        assert response.status_code == 202 and body["status"] == "Running"
        assert body["operationId"] == live_id and body["backupName"] == live["backupName"]
        assert response.headers["Location"].endswith(f"/api/operations/{live_id}")
        assert int(response.headers["Retry-After"]) > 0

    near = st.one_of(
        st.integers(min_value=0, max_value=len(live_id) - 1).map(lambda i: live_id[:i]),
        st.tuples(st.integers(min_value=0, max_value=len(live_id) - 1), st.sampled_from("0123456789abcdefABCDEF/%.")).map(
            lambda t: live_id[: t[0]] + t[1] + live_id[t[0] + 1 :]
        ),
        st.text(max_size=3).map(lambda x: live_id + x),
        st.just(live_id.upper()),
    ).filter(lambda i: i != live_id)  # fmt: skip

    @fuzz_settings(120)
    @given(near)
    def run(operation_id: str) -> None:
        judge(route, get(operation_id), names="No operation with id")

    run()
    assert judge(route, get(live_id), bad=False)["status"] == "Running"
    after = snapshot(product)
    assert (after[0], after[2], after[3]) == (ledger, blobs, writes)  # reads start nothing


# Over real HTTP: raw bytes on the wire ------------------------------------------------------

HOST_KEY = "fuzz-host-key"


def send(host: FunctionHost, head: bytes, body: bytes = b"") -> tuple[int, bytes]:
    """One request exactly as given (no client library to tidy it up); status and body."""
    port = int(host.url.rsplit(":", 1)[1])
    request = head + b"\r\nHost: 127.0.0.1\r\nConnection: close\r\n"
    request += b"x-functions-key: " + HOST_KEY.encode() + b"\r\n"
    if body:
        request += b"Content-Length: " + str(len(body)).encode() + b"\r\n"
    request += b"\r\n" + body
    with socket.create_connection(("127.0.0.1", port), timeout=30) as conn:
        conn.sendall(request)
        chunks = []
        while chunk := conn.recv(65536):
            chunks.append(chunk)
    answer = b"".join(chunks)
    head_part, _, payload = answer.partition(b"\r\n\r\n")
    return int(head_part.split(b" ", 2)[1]), payload


@dataclass(frozen=True)
class Wire:
    route: str
    head: bytes
    body: bytes = b""
    expect: int = 400
    names: str | None = None
    front: bool = False  # answered by the HTTP front (the host), not by a handler


def wire_cases(backup: str) -> list[Wire]:
    quotes = "%27" * 2700
    return [
        Wire("GET /api/backups", b"GET /api/backups?service=%FF%FE%00 HTTP/1.1", names="'service'"),
        Wire("GET /api/backups", b"GET /api/backups?service=" + quotes.encode() + b" HTTP/1.1", names="'service' is longer"),
        Wire("GET /api/backups", b"GET /api/backups?status=Succeeded%27%20or%20%271%27%20eq%20%271 HTTP/1.1", names="'status'"),
        Wire("GET /api/backups", b"GET /api/backups?includeExpired=%E2%80%AE HTTP/1.1", names="'includeExpired'"),
        Wire("GET /api/backups", b"GET /api/backups?service=\xff\xfe HTTP/1.1", names="'service'"),
        Wire("GET /api/backups/{backupName}", b"GET /api/backups/\xff\xfe\xfd HTTP/1.1", expect=404),
        Wire("GET /api/backups/{backupName}", b"GET /api/backups/..%2F..%2Fetc%2Fpasswd HTTP/1.1", expect=404),
        Wire("GET /api/backups/{backupName}", b"GET /api/backups/" + backup.encode() + b"%00 HTTP/1.1", expect=404),
        Wire("GET /api/backups/{backupName}", b"GET /api/backups/" + b"a" * 8000 + b" HTTP/1.1", expect=404),
        Wire("GET /api/operations/{operationId}", b"GET /api/operations/%00%0d%0a HTTP/1.1", expect=404),
        Wire("GET /api/operations/{operationId}", b"GET /api/operations/" + b"\xc3" * 32 + b" HTTP/1.1", expect=404),
        Wire("POST /api/backups", b"POST /api/backups HTTP/1.1", b'{"service": "\xc3\x28"}', names="UTF-8"),
        Wire("POST /api/backups", b"POST /api/backups HTTP/1.1", b"{" * 70_000, names="larger than"),
        Wire("POST /api/backups", b"POST /api/backups HTTP/1.1", b"[" * 40_000 + b"]" * 40_000, names="larger than"),
        Wire("POST /api/backups", b"POST /api/backups HTTP/1.1", b"[" * 15_000 + b"]" * 15_000, names="nests deeper"),
        Wire("POST /api/restores", b"POST /api/restores?dryRun=true HTTP/1.1", as_json({"backupName": backup}), names="'dryRun'"),
        Wire("POST /api/restores", b"POST /api/restores HTTP/1.1", b'{"backupName":' * 4000 + b"1" + b"}" * 4000, names="nests deeper"),
        Wire("POST /api/restores", b"POST /api/restores HTTP/1.1", '{"backupName": "x"}'.encode("utf-32"), names="UTF-8"),
        Wire("POST /api/prune", b"POST /api/prune?dryRun=%FF HTTP/1.1", names="'dryRun'"),
        Wire("POST /api/prune", b"POST /api/prune HTTP/1.1", b'{"dryRun": true}', names="unknown field"),
        Wire("GET /api/health", b"GET /api/health HTTP/1.1\r\nX-Big: " + b"h" * 60_000, expect=200),
        Wire("GET /api/health", b"GET /api/health?\xff=\xfe HTTP/1.1\r\nX-Bytes: \xff\xfe\x80", expect=200),
        # Past what an HTTP front accepts: refused before any handler runs.
        Wire("GET /api/health", b"GET /api/health HTTP/1.1\r\nX-Huge: " + b"h" * 70_000, expect=431, front=True),
        Wire("GET /api/health", b"GET /api/health HTTP/1.1" + b"".join(b"\r\nX-%d: 1" % i for i in range(120)), expect=431, front=True),
    ]  # fmt: skip


def test_over_real_http_with_raw_bytes(seeded: Seeded):
    backup = seeded.backups["contoso-apim"]
    with FunctionHost({}, HOST_KEY) as host:
        for case in wire_cases(backup):
            status, payload = send(host, case.head, case.body)
            assert status == case.expect, (case.head[:80], status, payload[:300])
            if case.front:
                TOTALS.inputs[case.route] += 1
                TOTALS.answers[(case.route, status, "(front)")] += 1
                continue
            response = func.HttpResponse(payload, status_code=status)
            judge(case.route, response, bad=case.expect >= 400, names=case.names)
    seeded.unchanged()


def test_the_totals_reach_a_thousand_inputs_and_no_5xx():
    if len(TOTALS.inputs) < len(ROUTES):
        pytest.skip("only part of the module ran")
    assert sum(TOTALS.inputs.values()) >= 1000
    assert all(status < 500 for (_r, status, _c) in TOTALS.answers)
