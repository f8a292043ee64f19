"""`Idempotency-Key` on money-moving POSTs (docs/api.md, "Idempotency").

The first request with a key runs, and its answer (success or refusal) is stored with a hash of
the request, in the same transaction as its effect. The same key with the same body replays that
answer; with another body it is 409 `idempotency_key_reused`. Two requests with one key at once:
the second waits on the first's uncommitted record (the unique index), then replays it, so one
key has one effect. A batch endpoint runs one such unit per item (`idempotent_call`), each with
its own key and its own transaction.
"""

import functools
import hashlib
import json
import re
from collections.abc import Callable
from typing import Any, Final

from django.db import connection, transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from api.models import IdempotencyRecord
from api.problems import PROBLEM_CONTENT_TYPE, exception_handler
from config import db
from config.errors import ApplicationError, ErrorCode

KEY_LENGTH_MAX: Final = 255
HEADER: Final = "Idempotency-Key"
# The key's contract, the same in the schema and in the code: 1 to KEY_LENGTH_MAX visible ASCII
# characters, spaces allowed inside. HTTP header values are ASCII in practice (a server reads other
# bytes as Latin-1) and lose leading and trailing spaces, so nothing else arrives as it was sent.
# Written with \u escapes, which Python's re and ECMA-262 (the schema's regex dialect) both read.
KEY_PATTERN: Final = rf"^[\u0021-\u007E](?:[\u0020-\u007E]{{0,{KEY_LENGTH_MAX - 2}}}[\u0021-\u007E])?$"
KEY_RULE: Final = f"1 to {KEY_LENGTH_MAX} visible ASCII characters (spaces allowed between them)"
_KEY = re.compile(KEY_PATTERN)
_RESPONSE_BODY = IdempotencyRecord._meta.get_field("response_body")
_ANSWER_SQL: Final = "UPDATE api_idempotencyrecord SET response_status = %s, response_body = %s WHERE id = %s"


class IdempotencyKeyRequired(ApplicationError):
    code = ErrorCode.IDEMPOTENCY_KEY_REQUIRED
    http_status = 400
    title = "This request needs an Idempotency-Key header."


class IdempotencyKeyReused(ApplicationError):
    code = ErrorCode.IDEMPOTENCY_KEY_REUSED
    http_status = 409
    title = "This Idempotency-Key was used with a different request."


def body_hash(*, method: str, path: str, body: Any) -> str:
    """The fingerprint of one request: its method, its path and its JSON body."""
    text = json.dumps(body, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{method}\n{path}\n{text}".encode()).hexdigest()


def request_hash(request: Request) -> str:
    return body_hash(method=request.method or "", path=request.path, body=request.data)


def key_is_valid(key: str) -> bool:
    return _KEY.fullmatch(key) is not None


def idempotency_key_parameter(*, required: bool) -> OpenApiParameter:
    """The header, as the OpenAPI schema describes it on each endpoint that honours it."""
    what = "Required." if required else "Optional."
    return OpenApiParameter(
        name=HEADER,
        type={"type": "string", "minLength": 1, "maxLength": KEY_LENGTH_MAX, "pattern": KEY_PATTERN},
        location=OpenApiParameter.HEADER,
        required=required,
        description=(
            f"{what} Any unique string of {KEY_RULE}. The same key with the "
            "same body replays the first answer (with `Idempotent-Replayed: true`); with another body it is "
            "409 `idempotency_key_reused`."
        ),
    )


def _replay(record: IdempotencyRecord) -> Response:
    content_type = PROBLEM_CONTENT_TYPE if record.response_status >= 400 else None
    response = Response(record.response_body, status=record.response_status, content_type=content_type)
    response["Idempotent-Replayed"] = "true"
    return response


def is_replay(response: Response) -> bool:
    return response.get("Idempotent-Replayed") == "true"


def _key_lock_name(user: User, key: str) -> str:
    return f"idempotency:{user.pk}:{key}"


def idempotency_keys_lock(*, user: User, keys: list[str]) -> None:
    """Take the turn of each of the caller's `keys` (in one order), until the transaction ends: a
    batch does so before it locks its grants, so that no request it then waits for can be waiting
    for it. `idempotent_call` takes a key's turn before anything else, in the statement that records
    the key."""
    names = sorted({_key_lock_name(user, key) for key in keys})
    with db.pipeline():  # In this order, and one wait for them all.
        for name in names:
            db.cursor().execute("SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [name], prepare=True)


def idempotent_call(
    *,
    user: User,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    call: Callable[[], Response],
    context: dict[str, Any],
    savepoint: bool = True,
) -> Response:
    """Run `call` once for the caller's `key`, in one transaction with the record of its answer.

    The unit of idempotency: the decorator below runs one per request, and a batch endpoint one
    per item. `fingerprint` identifies the request (see `body_hash`); `context` is what the
    exception handler needs to render a refusal. Raises IdempotencyKeyReused for another request
    under a key already used; the caller renders it.

    Inside a transaction of the caller's (a batch), `savepoint=False` spares the savepoint when `call`
    writes nothing unless it succeeds (its service rolls back its own savepoint on a refusal): any
    other error then aborts the caller's whole transaction.
    """
    assert key_is_valid(key), "the caller checks the key"
    with transaction.atomic(savepoint=savepoint):
        record = IdempotencyRecord(
            user=user,
            key=key,
            method=method,
            path=path[:500],
            request_hash=fingerprint,
            response_status=0,
            response_body={},
        )
        sql, params = db.insert_statement(record)
        columns, values = sql.split(" VALUES ", 1)
        cursor = db.cursor()
        # The key's turn first (`idempotency_keys_lock`), in the same statement: a second request
        # with the key waits here for the first to end, before it locks anything else.
        cursor.execute(
            f"WITH turn AS (SELECT pg_advisory_xact_lock(hashtextextended(%s, 0)))"
            f" {columns} SELECT {values[1:-1]} FROM turn ON CONFLICT DO NOTHING RETURNING id",
            [_key_lock_name(user, key), *params],
            prepare=True,
        )
        inserted = cursor.fetchone()
        if inserted is None:
            # Seen before (or run at this moment: the insert above waited for it to commit).
            record = IdempotencyRecord.objects.get(user=user, key=key)
            if record.request_hash == fingerprint:
                return _replay(record)
            first_use = f"{record.method} {record.path}"
        else:
            try:
                response = call()
            except (ApplicationError, exceptions.APIException) as error:
                # A refusal is an answer too: the service rolled its own work back; store it.
                rendered = exception_handler(error, context)
                assert rendered is not None
                response = rendered
            body = _RESPONSE_BODY.get_db_prep_save(response.data, connection=connection)
            cursor.execute(_ANSWER_SQL, [response.status_code, body, inserted[0]], prepare=True)
            return response
    # Raised once the block has ended: raised inside it, an exception would mark a caller's
    # transaction (a batch, `savepoint=False`) for rollback, undoing the items already answered.
    raise IdempotencyKeyReused(f"{HEADER} {key!r} was first used for {first_use} with another body.")


def idempotent(*, required: bool) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorate an APIView method so that it honours (or, with required, demands) the header."""

    def decorate(view_method: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view_method)
        def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            key = request.headers.get(HEADER)
            if key is None:
                if required:
                    raise IdempotencyKeyRequired(f"Send an {HEADER} header: any unique string of {KEY_RULE}.")
                return view_method(self, request, *args, **kwargs)
            if not key_is_valid(key):
                raise exceptions.ValidationError({HEADER: [f"{KEY_RULE}."]})
            user = request.user
            assert isinstance(user, User), "money-moving endpoints need a signed-in caller"
            return idempotent_call(
                user=user,
                key=key,
                method=request.method or "",
                path=request.path,
                fingerprint=request_hash(request),
                call=lambda: view_method(self, request, *args, **kwargs),
                context={"request": request, "view": self},
            )

        return wrapper

    return decorate
