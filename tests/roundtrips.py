"""Count the database round trips of a block of code at the wire, below Django's query log.

The hot paths send prepared statements through psycopg directly (`config/db.py`), so Django's
`CaptureQueriesContext` misses them. libpq's own trace sees every protocol message, in the order
the client sent (F) and received (B) them. The client waits for the server exactly where a run of
messages it sent is followed by one it received, so that is what is counted: a pipeline of many
statements is one round trip, and so is one plain statement.
"""

import contextlib
import re
import tempfile
from collections.abc import Iterator
from dataclasses import dataclass, field

from django.db import connection
from psycopg import pq

_MESSAGE = re.compile(r"^F\t\d+\t(?P<type>\w+)(?P<rest>.*)$")


@dataclass
class RoundTrips:
    """What one traced block sent: `count` round trips, and each one's statements, for a message."""

    count: int = 0
    trips: list[list[str]] = field(default_factory=list)

    def __str__(self) -> str:
        return "\n".join(f"{n + 1:2}. " + " | ".join(s[:140] for s in trip) for n, trip in enumerate(self.trips))


def _parse(trace: str) -> RoundTrips:
    result = RoundTrips()
    statements: list[str] = []
    sending = False
    for line in trace.splitlines():
        direction, _, _ = line.partition("\t")
        if direction == "F":
            sending = True
            match = _MESSAGE.match(line)
            if match is not None and match["type"] in ("Query", "Parse"):
                statements.append(match["rest"].strip())
            elif match is not None and match["type"] == "Bind" and not statements:
                statements.append("(prepared statement)")
        elif direction == "B" and sending:
            sending = False
            result.count += 1
            result.trips.append(statements or ["(sync)"])
            statements = []
    return result


@contextlib.contextmanager
def round_trips() -> Iterator[RoundTrips]:
    """Trace Django's default connection for the block; the result is filled in when it exits."""
    connection.ensure_connection()
    pgconn = connection.connection.pgconn
    result = RoundTrips()
    with tempfile.TemporaryFile(mode="w+") as trace:
        pgconn.trace(trace.fileno())
        pgconn.set_trace_flags(pq.Trace.SUPPRESS_TIMESTAMPS | pq.Trace.REGRESS_MODE)
        try:
            yield result
        finally:
            pgconn.untrace()
            trace.seek(0)
            parsed = _parse(trace.read())
            result.count, result.trips = parsed.count, parsed.trips
