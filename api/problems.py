"""One exception handler renders every error as RFC 9457 problem details.

`{"type", "title", "status", "detail", "code"}` with `application/problem+json`, plus `errors`
(field → messages) for bad input. `code` is the stable machine word clients branch on
(docs/api.md lists them). An `ApplicationError` from a service brings its own code and status; DRF's own
exceptions are mapped here; anything else is a bug and stays a 500, which Django's handler500
(`server_error` below) answers as problem details too, with no traceback or internals.
"""

import logging
from typing import Any

from django.conf import settings
from django.core.exceptions import PermissionDenied as DjangoPermissionDenied
from django.core.exceptions import RequestDataTooBig
from django.http import Http404, HttpRequest, HttpResponse, JsonResponse
from django.views import defaults
from rest_framework import exceptions, status
from rest_framework.response import Response
from rest_framework.views import exception_handler as drf_exception_handler

from config.errors import ApplicationError, ErrorCode
from config.middleware import LengthRequired

PROBLEM_CONTENT_TYPE = "application/problem+json"
API_PATH_PREFIX = "/api/"
REQUEST_TOO_LARGE = ErrorCode.REQUEST_TOO_LARGE
REQUEST_TOO_LARGE_TITLE = "The request body is too large."
SERVER_ERROR_DETAIL = "Something went wrong on our side; it has been logged. Try again later."
PROBLEM_TYPE_BASE = "https://coupons.hangzhou.example/problems/"
security_log = logging.getLogger("coupons.security")

_DRF_CODES: list[tuple[type[exceptions.APIException], ErrorCode, str]] = [
    (exceptions.NotAuthenticated, ErrorCode.NOT_AUTHENTICATED, "Authentication is required."),
    (
        exceptions.AuthenticationFailed,
        ErrorCode.AUTHENTICATION_FAILED,
        "The credentials are wrong, expired or revoked.",
    ),
    (exceptions.PermissionDenied, ErrorCode.PERMISSION_DENIED, "You may not take this action."),
    (exceptions.NotFound, ErrorCode.NOT_FOUND, "Not found."),
    (exceptions.Throttled, ErrorCode.THROTTLED, "Too many requests."),
    (exceptions.ValidationError, ErrorCode.VALIDATION_ERROR, "The input is not valid."),
    (exceptions.ParseError, ErrorCode.VALIDATION_ERROR, "The request body is not valid JSON."),
    (exceptions.UnsupportedMediaType, ErrorCode.UNSUPPORTED_MEDIA_TYPE, "Send application/json."),
    (exceptions.MethodNotAllowed, ErrorCode.METHOD_NOT_ALLOWED, "This method is not allowed here."),
    (exceptions.NotAcceptable, ErrorCode.NOT_ACCEPTABLE, "No acceptable representation."),
]


def _without_nul(value: Any) -> Any:
    """The value with every NUL in its texts (keys included) replaced by U+FFFD.

    A problem may echo what the client sent (an unknown field's name); PostgreSQL's text and
    jsonb hold no NUL, and the idempotency record stores the problem to replay it."""
    if isinstance(value, str):
        return value.replace("\x00", "\ufffd")
    if isinstance(value, dict):
        return {_without_nul(key): _without_nul(item) for key, item in value.items()}
    if isinstance(value, list):
        return [_without_nul(item) for item in value]
    return value


def problem(*, status_code: int, code: ErrorCode, title: str, detail: str, **extra: Any) -> Response:
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status_code, "detail": detail, "code": code}
    body.update(extra)
    return Response(_without_nul(body), status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _field_errors(data: Any, prefix: str = "") -> dict[str, list[str]]:
    """Flatten DRF's nested error structure to {"field.sub": ["message", ...]}."""
    if isinstance(data, dict):
        flat: dict[str, list[str]] = {}
        for name, value in data.items():
            flat.update(_field_errors(value, f"{prefix}.{name}" if prefix else str(name)))
        return flat
    if isinstance(data, list) and data and all(isinstance(item, (str, exceptions.ErrorDetail)) for item in data):
        return {prefix or "non_field_errors": [str(item) for item in data]}
    if isinstance(data, list):
        flat = {}
        for index, value in enumerate(data):
            flat.update(_field_errors(value, f"{prefix}.{index}" if prefix else str(index)))
        return flat
    return {prefix or "non_field_errors": [str(data)]}


def exception_handler(exc: Exception, context: dict[str, Any]) -> Response | None:
    if isinstance(exc, ApplicationError):
        context_extra = {k: v for k, v in exc.extra.items() if k != "errors"}
        if exc.code == ErrorCode.FOUR_EYES or exc.http_status == 403:
            request = context.get("request")
            security_log.warning(
                "refused: code=%s user=%s path=%s detail=%s",
                exc.code,
                getattr(getattr(request, "user", None), "pk", None),
                getattr(request, "path", "-"),
                exc.detail,
            )
        errors = getattr(exc, "errors", None)
        if errors:
            context_extra["errors"] = errors
        answer = problem(
            status_code=exc.http_status, code=exc.code, title=exc.title, detail=exc.detail, **context_extra
        )
        if "retry_after_s" in exc.extra:
            # A 429 carries Retry-After, whoever throttled.
            answer["Retry-After"] = str(exc.extra["retry_after_s"])
        return answer
    if isinstance(exc, RequestDataTooBig):
        return problem(
            status_code=413, code=REQUEST_TOO_LARGE, title=REQUEST_TOO_LARGE_TITLE, detail=_too_large_detail()
        )
    if isinstance(exc, Http404):
        exc = exceptions.NotFound()
    elif isinstance(exc, DjangoPermissionDenied):
        exc = exceptions.PermissionDenied()
    response = drf_exception_handler(exc, context)
    if response is None or not isinstance(exc, exceptions.APIException):
        return response
    code, title = ErrorCode.ERROR, "The request could not be carried out."
    for kind, kind_code, kind_title in _DRF_CODES:
        if isinstance(exc, kind):
            code, title = kind_code, kind_title
            break
    extra: dict[str, Any] = {}
    if isinstance(exc, exceptions.ValidationError):
        extra["errors"] = _field_errors(exc.detail)
        detail = "; ".join(f"{name}: {' '.join(messages)}" for name, messages in extra["errors"].items())
    else:
        detail = str(exc.detail)
    result = problem(status_code=response.status_code, code=code, title=title, detail=detail, **extra)
    for header in ("Retry-After", "WWW-Authenticate", "Allow"):
        if header in response:
            result[header] = response[header]
    if response.status_code == status.HTTP_401_UNAUTHORIZED and "WWW-Authenticate" not in result:
        result["WWW-Authenticate"] = "Bearer"
    return result


def _too_large_detail() -> str:
    return f"The request body is larger than {settings.DATA_UPLOAD_MAX_MEMORY_SIZE} bytes."


def _problem_page(*, status_code: int, code: ErrorCode, title: str, detail: str) -> JsonResponse:
    """Problem details outside DRF (Django's error handlers), shaped as `problem` shapes them."""
    body = {"type": PROBLEM_TYPE_BASE + code, "title": title, "status": status_code, "detail": detail, "code": code}
    return JsonResponse(body, status=status_code, content_type=PROBLEM_CONTENT_TYPE)


def _is_api(request: HttpRequest) -> bool:
    return request.path.startswith(API_PATH_PREFIX)


def server_error(request: HttpRequest) -> HttpResponse:
    """handler500: an unhandled error under /api/ (in a view, a middleware or the database) answers
    problem details with no traceback and no internals; Django has logged it with its traceback."""
    if _is_api(request):
        return _problem_page(
            status_code=500, code=ErrorCode.SERVER_ERROR, title="The server failed.", detail=SERVER_ERROR_DETAIL
        )
    return defaults.server_error(request)


def bad_request(request: HttpRequest, exception: Exception) -> HttpResponse:
    """handler400: Django's SuspiciousOperations (a body over DATA_UPLOAD_MAX_MEMORY_SIZE read
    outside DRF, too many fields, a bad host) answer problem details under /api/."""
    if not _is_api(request):
        return defaults.bad_request(request, exception)
    if isinstance(exception, LengthRequired):
        return _problem_page(
            status_code=411,
            code=ErrorCode.LENGTH_REQUIRED,
            title="The body needs a Content-Length.",
            detail=str(exception),
        )
    if isinstance(exception, RequestDataTooBig):
        return _problem_page(
            status_code=413, code=REQUEST_TOO_LARGE, title=REQUEST_TOO_LARGE_TITLE, detail=_too_large_detail()
        )
    return _problem_page(
        status_code=400,
        code=ErrorCode.BAD_REQUEST,
        title="The request is malformed.",
        detail="The request is malformed.",
    )


def api_not_found(request: Any, exception: Exception | None = None) -> Any:
    """handler404: paths under /api/ answer problem details, like every other API error."""
    if _is_api(request):
        return _problem_page(status_code=404, code=ErrorCode.NOT_FOUND, title="Not found.", detail="No such endpoint.")
    return defaults.page_not_found(request, exception)
