"""Run one piece of work per service (or operation) at once, at most MAX_PARALLEL at a time.

The work is I/O (Resource Manager, storage), so threads overlap it well. Every thread
is joined before :func:`run_each` returns (the executor is used with ``with``): no
thread outlives the function invocation that started it. Each task runs in a copy of
the caller's context variables, so whatever the Functions worker keeps there (the
invocation id its log handler reads) follows the work into the thread.
"""

from __future__ import annotations

import contextvars
from collections.abc import Callable, Sequence


def run_each[T, R](
    items: Sequence[T], work: Callable[[T], R], max_parallel: int, name: str = "work"
) -> list[R]:
    """``work(item)`` for every item, results in the items' order.

    ``work`` should catch and log its own failures: one that raises is re-raised here,
    but only after every other item has run (one service's failure never costs another
    its turn).
    """
    if max_parallel <= 1 or len(items) <= 1:
        return _one_at_a_time(items, work)
    from concurrent.futures import ThreadPoolExecutor  # on first use: a lighter cold start

    with ThreadPoolExecutor(
        max_workers=min(max_parallel, len(items)), thread_name_prefix=name
    ) as pool:
        futures = [pool.submit(contextvars.copy_context().run, work, item) for item in items]
        return [future.result() for future in futures]


def _one_at_a_time[T, R](items: Sequence[T], work: Callable[[T], R]) -> list[R]:
    """The same contract without threads: the first failure is raised after the last item."""
    results: list[R] = []
    first: BaseException | None = None
    for item in items:
        try:
            results.append(work(item))
        except Exception as error:  # every item is tried; the first failure is re-raised
            first = first or error
    if first is not None:
        raise first
    return results
