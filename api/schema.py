"""How the OpenAPI schema describes this API's own authentication schemes."""

from typing import Any

from django.core.validators import RegexValidator
from drf_spectacular.extensions import OpenApiAuthenticationExtension
from drf_spectacular.openapi import AutoSchema as SpectacularAutoSchema
from drf_spectacular.plumbing import force_instance, is_serializer
from rest_framework import serializers

from api.serializers import StrictSerializer
from config.errors import ErrorCode

# What a text field takes, in the schema's words: no NUL character (DRF's CharField refuses it, and
# PostgreSQL's text cannot hold it), and, where the field trims spaces and may not be blank, at
# least one character that is not a space.
TEXT_PATTERN = "^[^\\u0000]*$"
NON_BLANK_TEXT_PATTERN = "^[^\\u0000]*[^\\s\\u0000][^\\u0000]*$"


class AutoSchema(SpectacularAutoSchema):
    """drf-spectacular's, saying what the strict serializers enforce: a request body (or a nested
    object in it) of a StrictSerializer takes no property it does not declare
    (`additionalProperties: false`), since an unknown field is 400 `validation_error`; and one that
    takes exactly one of its fields (`exactly_one_of`) says so."""

    def _map_serializer_field(self, field: Any, direction: str, bypass_extensions: bool = False) -> Any:
        schema = super()._map_serializer_field(field, direction, bypass_extensions)
        if (
            direction == "request"
            and isinstance(field, serializers.CharField)
            and isinstance(schema, dict)
            and schema.get("type") == "string"
            and not {"pattern", "format", "enum", "oneOf"} & set(schema)
            and not any(isinstance(validator, RegexValidator) for validator in field.validators)  # Its own.
        ):
            blank_refused = field.trim_whitespace and not field.allow_blank
            schema["pattern"] = NON_BLANK_TEXT_PATTERN if blank_refused else TEXT_PATTERN
        return schema

    def _get_request_for_media_type(self, serializer: Any, direction: str = "request") -> Any:
        schema, required = super()._get_request_for_media_type(serializer, direction)
        # A body that must name one of its fields cannot be left out either.
        names: tuple[str, ...] = (
            getattr(force_instance(serializer), "exactly_one_of", ()) if is_serializer(serializer) else ()
        )
        if names:
            required = True
        return schema, required

    def _map_basic_serializer(self, serializer: Any, direction: str) -> dict[str, Any]:
        schema: dict[str, Any] = super()._map_basic_serializer(serializer, direction)
        instance = force_instance(serializer)
        if direction == "request" and isinstance(instance, StrictSerializer):
            schema["additionalProperties"] = False
            # A body of fields of which exactly one is sent (`exactly_one_of` on the serializer): with the
            # object closed, one property. (A `oneOf` of `required` lists would say the same, but generated
            # clients choke on it.)
            names = getattr(instance, "exactly_one_of", ())
            if names:
                assert set(names) == set(schema["properties"]), "exactly_one_of names every field"
                schema["minProperties"] = schema["maxProperties"] = 1
        return schema


class BearerTokenScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.BearerTokenAuthentication"
    name = "bearerToken"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "http",
            "scheme": "bearer",
            "description": "A token from POST /api/v1/auth/token/: `Authorization: Bearer <token>`.",
        }


class ApiKeyScheme(OpenApiAuthenticationExtension):
    target_class = "accounts.authentication.ApiKeyAuthentication"
    name = "apiKey"

    def get_security_definition(self, auto_schema: Any) -> dict[str, str]:
        return {
            "type": "apiKey",
            "in": "header",
            "name": "Authorization",
            "description": "A computing center's key: `Authorization: Api-Key <key>`.",
        }


# The one list of codes (config/errors.py); the schema documents each.
PROBLEM_CODES = [code.value for code in ErrorCode]

PROBLEM_SCHEMA = {
    "type": "object",
    "description": (
        "RFC 9457 problem details. `code` is the stable machine word to branch on; `errors` maps each "
        "bad field to its messages (400 only); a refusal may add context such as `available_fen`."
    ),
    "properties": {
        "type": {"type": "string", "format": "uri"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "code": {"type": "string", "enum": PROBLEM_CODES},
        "errors": {"type": "object", "additionalProperties": {"type": "array", "items": {"type": "string"}}},
    },
    "required": ["type", "title", "status", "detail", "code"],
    "additionalProperties": True,
}

_ERROR_RESPONSES = {
    "400": "Bad input (`validation_error`, `idempotency_key_required`); nothing was changed.",
    "401": "No credentials (`not_authenticated`), or wrong, expired or revoked ones (`authentication_failed`).",
    "403": "The caller's role may not take this action (`permission_denied`, `four_eyes`, `not_eligible`).",
    "404": "No such object within the caller's reach (`not_found`).",
    "409": "A business rule or state refuses it (`invalid_state`, `pool_exhausted`, `cap_exceeded`, ...).",
    "429": "Too many requests (`throttled`); see the Retry-After header.",
}


def add_problem_responses(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: every operation documents its problem-details answers."""
    result.setdefault("components", {}).setdefault("schemas", {})["Problem"] = PROBLEM_SCHEMA
    reference = {"$ref": "#/components/schemas/Problem"}
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            responses = operation.setdefault("responses", {})
            for status_code, description in _ERROR_RESPONSES.items():
                responses.setdefault(
                    status_code,
                    {"description": description, "content": {"application/problem+json": {"schema": reference}}},
                )
    return result


def forbid_nul_in_query(result: dict[str, Any], generator: Any, request: Any, public: bool) -> dict[str, Any]:
    """drf-spectacular postprocessing hook: a free-text query parameter takes no NUL character
    (config/middleware.py refuses a query string that carries one)."""
    for path_item in result.get("paths", {}).values():
        for operation in path_item.values():
            for parameter in operation.get("parameters", []):
                schema = parameter.get("schema", {})
                free_text = schema.get("type") == "string" and not {"pattern", "format", "enum"} & set(schema)
                if parameter["in"] == "query" and free_text:
                    schema["pattern"] = TEXT_PATTERN
    return result
