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

from django.db import IntegrityError, transaction
from drf_spectacular.utils import OpenApiParameter
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from api.models import IdempotencyRecord
from api.problems import PROBLEM_CONTENT_TYPE, exception_handler
from config.errors import ApplicationError

KEY_LENGTH_MAX: Final = 255
HEADER: Final = "Idempotency-Key"
# The key's contract, the same in the schema and in the code: 1 to KEY_LENGTH_MAX visible ASCII
# characters, spaces allowed inside. HTTP header values are ASCII in practice (a server reads other
# bytes as Latin-1) and lose leading and trailing spaces, so nothing else arrives as it was sent.
# Written with \u escapes, which Python's re and ECMA-262 (the schema's regex dialect) both read.
KEY_PATTERN: Final = rf"^[\u0021-\u007E](?:[\u0020-\u007E]{{0,{KEY_LENGTH_MAX - 2}}}[\u0021-\u007E])?$"
KEY_RULE: Final = f"1 to {KEY_LENGTH_MAX} visible ASCII characters (spaces allowed between them)"
_KEY = re.compile(KEY_PATTERN)


class IdempotencyKeyRequired(ApplicationError):
    code = "idempotency_key_required"
    http_status = 400
    title = "This request needs an Idempotency-Key header."


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"
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


def idempotent_call(
    *,
    user: User,
    key: str,
    method: str,
    path: str,
    fingerprint: str,
    call: Callable[[], Response],
    context: dict[str, Any],
) -> Response:
    """Run `call` once for the caller's `key`, in one transaction with the record of its answer.

    The unit of idempotency: the decorator below runs one per request, and a batch endpoint one
    per item. `fingerprint` identifies the request (see `body_hash`); `context` is what the
    exception handler needs to render a refusal. Raises IdempotencyKeyReused for another request
    under a key already used; the caller renders it.
    """
    assert key_is_valid(key), "the caller checks the key"
    with transaction.atomic():
        try:
            with transaction.atomic():
                record = IdempotencyRecord.objects.create(
                    user=user,
                    key=key,
                    method=method,
                    path=path[:500],
                    request_hash=fingerprint,
                    response_status=0,
                    response_body={},
                )
        except IntegrityError:
            # Seen before (or being run right now: the insert above waited for it).
            record = IdempotencyRecord.objects.get(user=user, key=key)
            if record.request_hash != fingerprint:
                raise IdempotencyKeyReused(
                    f"{HEADER} {key!r} was first used for {record.method} {record.path} with another body."
                ) from None
            return _replay(record)
        try:
            response = call()
        except (ApplicationError, exceptions.APIException) as error:
            # A refusal is an answer too: the service rolled its own work back; store it.
            rendered = exception_handler(error, context)
            assert rendered is not None
            response = rendered
        record.response_status = response.status_code
        record.response_body = response.data
        record.save(update_fields=["response_status", "response_body"])
        return response


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
