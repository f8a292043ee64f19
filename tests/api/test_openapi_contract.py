"""The OpenAPI schema is a valid OpenAPI 3 document, and it declares every header an endpoint reads.

A generated client (tests/api/test_generated_client.py) can send only what the schema declares: a
header an endpoint honours but the schema leaves out is a call no client can make.
"""

import ast
import inspect
import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import yaml
from django.test import Client
from django.urls import URLPattern, URLResolver, get_resolver
from openapi_spec_validator import OpenAPIV30SpecValidator

from api.idempotency import HEADER, idempotent, key_is_valid

ROOT = Path(__file__).resolve().parents[2]
APPS = ("accounts", "api", "approvals", "config", "coupons", "evidence", "ledger", "portal")

# Every request header the service's code reads, and where the schema (or HTTP itself) covers it.
# A new header read in the code fails test_every_header_read_is_accounted_for until it is named here
# and declared (a schema parameter, a security scheme) or shown to be HTTP's own framing.
HEADERS_READ = {
    "HTTP_AUTHORIZATION": "security schemes bearerToken and apiKey (api/schema.py)",
    "HTTP_TRANSFER_ENCODING": "HTTP framing: a chunked body is refused with 411 (config/middleware.py)",
    "CONTENT_LENGTH": "HTTP framing: the size of the multipart upload (evidence/api.py)",
    "REMOTE_ADDR": "not a header: the peer's address, for throttles and the sign-in log",
    "HTTP_X_FORWARDED_FOR": "set by a trusted proxy only (DJANGO_TRUSTED_PROXIES, config/addresses.py), not by clients",
    HEADER: "a header parameter on every operation whose view is @idempotent (checked below)",
}


@pytest.fixture(scope="module")
def schema(django_db_blocker: Any) -> dict[str, Any]:
    with django_db_blocker.unblock():
        response = Client().get("/api/schema/")
    assert response.status_code == 200, response.content[:500]
    return yaml.safe_load(response.content)


def test_schema_is_a_valid_openapi_document(schema: dict[str, Any]):
    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in _validator(schema)]
    assert errors == []


def _validator(schema: dict[str, Any]) -> Iterator[Any]:
    return OpenAPIV30SpecValidator(schema).iter_errors()


def _openapi_path(pattern: str) -> str:
    """Django's `api/v1/grants/<int:pk>/revoke/` as the schema writes it: `/api/v1/grants/{id}/revoke/`."""
    path = re.sub(r"<(?:\w+:)?(\w+)>", lambda match: "{" + ("id" if match[1] == "pk" else match[1]) + "}", pattern)
    return "/" + path.lstrip("^").rstrip("$")


def _views(resolver: URLResolver, prefix: str = "") -> Iterator[tuple[str, Any]]:
    for entry in resolver.url_patterns:
        if isinstance(entry, URLResolver):
            yield from _views(entry, prefix + str(entry.pattern))
        elif isinstance(entry, URLPattern):
            yield prefix + str(entry.pattern), entry.callback


_IDEMPOTENT_CODE = idempotent(required=False)(lambda self, request: None).__code__


def _idempotency(view_method: Any) -> bool | None:
    """None if the method is not wrapped by @idempotent, else whether it requires the key."""
    while view_method is not None:
        if getattr(view_method, "__code__", None) is _IDEMPOTENT_CODE:
            return bool(inspect.getclosurevars(view_method).nonlocals["required"])
        view_method = getattr(view_method, "__wrapped__", None)
    return None


def _idempotent_operations() -> list[tuple[str, str, bool]]:
    found = []
    for pattern, callback in _views(get_resolver()):
        view_class = getattr(callback, "cls", None) or getattr(callback, "view_class", None)
        if view_class is None:
            continue
        methods = [m for m in ("get", "post", "put", "patch", "delete") if hasattr(view_class, m)]
        for name in dir(view_class):
            required = _idempotency(getattr(view_class, name, None))
            if required is None:
                continue
            # The decorated method is a handler, or a helper (`self._create(request)`) that handlers call.
            callers = [name] if name in methods else [m for m in methods if _calls(view_class, m, name)]
            assert callers, f"{view_class.__name__}.{name} is @idempotent but no handler calls it"
            found.extend((_openapi_path(pattern), method, required) for method in callers)
    return found


def _calls(view_class: type, method: str, helper: str) -> bool:
    return f"self.{helper}(" in inspect.getsource(getattr(view_class, method))


def test_every_idempotent_view_declares_its_header(schema: dict[str, Any]):
    operations = _idempotent_operations()
    assert len(operations) >= 15, operations  # The walk finds the decorated views (docs/api.md lists them).
    missing = []
    for path, method, required in operations:
        operation = schema["paths"][path][method]
        declared = [p for p in operation.get("parameters", []) if p["in"] == "header" and p["name"] == HEADER]
        if len(declared) != 1 or declared[0].get("required", False) != required:
            missing.append((method.upper(), path, "required" if required else "optional"))
    assert missing == []


def test_no_operation_declares_the_header_without_honouring_it(schema: dict[str, Any]):
    honoured = {(path, method) for path, method, _ in _idempotent_operations()}
    declared = {
        (path, method)
        for path, item in schema["paths"].items()
        for method, operation in item.items()
        if any(p["in"] == "header" and p["name"] == HEADER for p in operation.get("parameters", []))
    }
    assert declared - honoured == set()


def _header_reads(source: str) -> Iterator[str]:
    """Names read from request.META[...] / .META.get(...) / request.headers[...] / .headers.get(...)."""
    for node in ast.walk(ast.parse(source)):
        target, key = None, None
        if isinstance(node, ast.Subscript):
            target, key = node.value, node.slice
        elif isinstance(node, ast.Call) and isinstance(node.func, ast.Attribute) and node.args:
            if node.func.attr == "get":
                target, key = node.func.value, node.args[0]
        elif isinstance(node, ast.Compare) and isinstance(node.ops[0], ast.In | ast.NotIn):
            target, key = node.comparators[0], node.left
        if isinstance(target, ast.Attribute) and target.attr in ("META", "headers"):
            if isinstance(key, ast.Constant) and isinstance(key.value, str):
                yield key.value
            elif isinstance(key, ast.Name) and key.id == "HEADER":
                yield HEADER
            else:
                yield f"<computed at {ast.unparse(node)}>"


def test_every_header_read_is_accounted_for():
    read = {
        name: str(path.relative_to(ROOT))
        for app in APPS
        for path in sorted((ROOT / app).rglob("*.py"))
        if "migrations" not in path.parts
        for name in _header_reads(path.read_text())
    }
    assert HEADER in read and "HTTP_AUTHORIZATION" in read  # The walk sees the code.
    assert {name: where for name, where in read.items() if name not in HEADERS_READ} == {}


def test_authorization_is_declared_as_security_schemes(schema: dict[str, Any]):
    schemes = schema["components"]["securitySchemes"]
    assert schemes["bearerToken"]["scheme"] == "bearer"
    assert schemes["apiKey"] == schemes["apiKey"] | {"type": "apiKey", "in": "header", "name": "Authorization"}


@pytest.mark.parametrize(
    ("key", "valid"),
    [
        ("a", True),
        ("order 42/retry#1", True),
        ("~" * 255, True),
        ("", False),
        ("x" * 256, False),
        (" leading", False),
        ("trailing ", False),
        ("tab\there", False),
        ("café", False),  # A header value is read as Latin-1: this would not arrive as sent.
        ("键", False),
    ],
)
def test_the_key_the_code_accepts_is_the_key_the_schema_allows(schema: dict[str, Any], key: str, valid: bool):
    declared = [
        parameter["schema"]
        for item in schema["paths"].values()
        for operation in item.values()
        for parameter in operation.get("parameters", [])
        if parameter["in"] == "header" and parameter["name"] == HEADER
    ]
    assert declared and all(each == declared[0] for each in declared)
    rule = declared[0]
    by_schema = rule["minLength"] <= len(key) <= rule["maxLength"] and re.search(rule["pattern"], key) is not None
    assert (by_schema, key_is_valid(key)) == (valid, valid)
    body = schema["paths"]["/api/v1/redemptions/batch/"]["post"]["requestBody"]["content"]["application/json"]
    envelope = schema["components"]["schemas"][body["schema"]["$ref"].rsplit("/", 1)[1]]
    batch_key = envelope["properties"]["items"]["items"]["properties"]["idempotency_key"]
    assert batch_key["pattern"] == rule["pattern"] and batch_key["maxLength"] == rule["maxLength"]
