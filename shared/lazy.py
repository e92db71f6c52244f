"""``cached_property``, safe under threads.

functools' ``cached_property`` has no lock (since Python 3.12): two threads reading
it first at once both compute it. For the SDK clients a process shares, that would
be two clients, two credentials, two ``create_table`` calls; ticks run services in
parallel (shared.parallel), so the first read may well be concurrent.
"""

from __future__ import annotations

import threading
from collections.abc import Callable
from typing import Any, Self, overload


class cached_property[T]:
    """Computed once per instance, under a lock; later reads are a plain attribute read."""

    def __init__(self, make: Callable[[Any], T]) -> None:
        self._make = make
        self._name = make.__name__
        self._lock = threading.RLock()
        self.__doc__ = make.__doc__

    def __set_name__(self, owner: type, name: str) -> None:
        self._name = name

    @overload
    def __get__(self, instance: None, owner: type | None = None) -> Self: ...

    @overload
    def __get__(self, instance: object, owner: type | None = None) -> T: ...

    def __get__(self, instance: object | None, owner: type | None = None) -> T | Self:
        if instance is None:
            return self
        cache: dict[str, Any] = instance.__dict__
        if self._name in cache:  # the instance's dict wins after the first read anyway
            return cache[self._name]  # type: ignore[no-any-return]
        with self._lock:
            if self._name not in cache:
                cache[self._name] = self._make(instance)
            return cache[self._name]  # type: ignore[no-any-return]
