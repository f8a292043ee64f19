"""`Idempotency-Key` on money-moving POSTs (DESIGN.md §6).

The first request with a key runs, and its answer (success or refusal) is stored with a hash of
the request, in the same transaction as its effect. The same key with the same body replays that
answer; with another body it is 409 `idempotency_key_reused`. Two requests with one key at once:
the second waits on the first's uncommitted record (the unique index), then replays it, so one
key has one effect.
"""

import functools
import hashlib
import json
from collections.abc import Callable
from typing import Any, Final

from django.db import IntegrityError, transaction
from rest_framework import exceptions
from rest_framework.request import Request
from rest_framework.response import Response

from accounts.models import User
from api.models import IdempotencyRecord
from api.problems import PROBLEM_CONTENT_TYPE, exception_handler
from config.errors import ApplicationError

KEY_LENGTH_MAX: Final = 255
HEADER: Final = "Idempotency-Key"


class IdempotencyKeyRequired(ApplicationError):
    code = "idempotency_key_required"
    http_status = 400
    title = "This request needs an Idempotency-Key header."


class IdempotencyKeyReused(ApplicationError):
    code = "idempotency_key_reused"
    http_status = 409
    title = "This Idempotency-Key was used with a different request."


def request_hash(request: Request) -> str:
    body = json.dumps(request.data, sort_keys=True, separators=(",", ":"), default=str)
    return hashlib.sha256(f"{request.method}\n{request.path}\n{body}".encode()).hexdigest()


def _replay(record: IdempotencyRecord) -> Response:
    content_type = PROBLEM_CONTENT_TYPE if record.response_status >= 400 else None
    response = Response(record.response_body, status=record.response_status, content_type=content_type)
    response["Idempotent-Replayed"] = "true"
    return response


def idempotent(*, required: bool) -> Callable[[Callable[..., Response]], Callable[..., Response]]:
    """Decorate an APIView method so that it honours (or, with required, demands) the header."""

    def decorate(view_method: Callable[..., Response]) -> Callable[..., Response]:
        @functools.wraps(view_method)
        def wrapper(self: Any, request: Request, *args: Any, **kwargs: Any) -> Response:
            key = request.headers.get(HEADER)
            if key is None:
                if required:
                    raise IdempotencyKeyRequired(f"Send an {HEADER} header: any unique string up to {KEY_LENGTH_MAX}.")
                return view_method(self, request, *args, **kwargs)
            if not 0 < len(key) <= KEY_LENGTH_MAX or not key.isprintable():
                raise exceptions.ValidationError({HEADER: [f"1 to {KEY_LENGTH_MAX} printable characters."]})
            fingerprint = request_hash(request)
            user = request.user
            assert isinstance(user, User), "money-moving endpoints need a signed-in caller"
            with transaction.atomic():
                try:
                    with transaction.atomic():
                        record = IdempotencyRecord.objects.create(
                            user=user,
                            key=key,
                            method=request.method or "",
                            path=request.path[:500],
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
                    response = view_method(self, request, *args, **kwargs)
                except (ApplicationError, exceptions.APIException) as error:
                    # A refusal is an answer too: the service rolled its own work back; store it.
                    rendered = exception_handler(error, {"request": request, "view": self})
                    assert rendered is not None
                    response = rendered
                record.response_status = response.status_code
                record.response_body = response.data
                record.save(update_fields=["response_status", "response_body"])
                return response

        return wrapper

    return decorate
