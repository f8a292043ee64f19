"""Racing helpers: many threads, each on its own PostgreSQL connection, released at one moment."""

import threading
from collections.abc import Callable
from typing import Any

from django.db import connection, connections

THREADS = 32
JOIN_TIMEOUT_S = 60


def race(calls: list[Callable[[], Any]]) -> list[Any]:
    """Run every call in its own thread, all released at once; return each result or exception."""
    barrier = threading.Barrier(len(calls))
    results: list[Any] = [None] * len(calls)

    def run(index: int, call: Callable[[], Any]) -> None:
        try:
            connection.ensure_connection()  # Connect before the barrier, so the race is on the work.
            barrier.wait()
            results[index] = call()
        except Exception as error:  # Collected and judged by the test.
            results[index] = error
        finally:
            connections.close_all()

    threads = [threading.Thread(target=run, args=(i, call)) for i, call in enumerate(calls)]
    for thread in threads:
        thread.start()
    for thread in threads:
        thread.join(JOIN_TIMEOUT_S)
    assert not any(thread.is_alive() for thread in threads), "a racer hung: deadlock or lost wake-up"
    return results
