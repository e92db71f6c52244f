"""What the request-body rules cost: the depth scan and read_json, best and worst case.

    python -m bench.read_json

The depth scan walks the body only when it holds more brackets than the depth limit;
its worst case is a body at the 64 KiB cap full of shallow brackets. Figures only:
nothing here asserts a timing.
"""

from __future__ import annotations

import timeit
from collections.abc import Callable

import azure.functions as func

from shared.api.http import MAX_BODY_BYTES, MAX_JSON_DEPTH, nesting_exceeds, read_json
from shared.rules import errors


def per_call_ms(action: Callable[[], object], number: int) -> float:
    return min(timeit.repeat(action, number=number, repeat=5)) / number * 1000


def refused(raw: bytes) -> Callable[[], object]:
    req = func.HttpRequest("POST", "https://bench.example/api/x", body=raw)

    def call() -> object:
        try:
            return read_json(req)
        except errors.BadRequest as exc:
            return exc

    return call


def main() -> None:
    shallow = ('{"a":[' + "[1]," * 16_000 + "1]}")[: MAX_BODY_BYTES - 10]
    deep = "[" * 30_000 + "]" * 30_000
    normal = b'{"backupName": "contoso-apim-20261127T020000Z.apimbackup", "dryRun": true}'
    rows = [
        (
            f"scan, {len(shallow)} chars of shallow brackets (worst case)",
            per_call_ms(lambda: nesting_exceeds(shallow, MAX_JSON_DEPTH), 20),
        ),
        (
            f"scan, {len(deep)} chars nested 30,000 deep (stops at level 33)",
            per_call_ms(lambda: nesting_exceeds(deep, MAX_JSON_DEPTH), 2000),
        ),
        ("read_json, a normal restore body", per_call_ms(refused(normal), 20_000)),
        ("read_json, 60 KB nested 30,000 deep (400)", per_call_ms(refused(deep.encode()), 2000)),
    ]
    width = max(len(label) for label, _ in rows)
    for label, ms in rows:
        print(f"{label:<{width}}  {ms:8.4f} ms")


if __name__ == "__main__":
    main()
