"""Input fields that take JSON as it is, and a serializer that refuses what it does not know.

DRF's own fields are lenient: IntegerField takes "100" and 100.0, BooleanField takes "yes".
Money is never guessed at: an amount is a JSON integer or the request is refused, and a field
that is unknown or read-only is an error, never silently ignored.
"""

import copy
from typing import Any, Final

from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import serializers
from rest_framework.fields import SkipField, empty

FEN_MAX: Final = 10**13  # 100 billion yuan: above any contract, bill or pool this service handles.
ID_MAX: Final = 2**63 - 1  # Ids are 64-bit: a larger number is bad input, not an unknown object.


class StrictIntegerField(serializers.IntegerField):
    default_error_messages = {"invalid": "A whole number is required (a JSON integer, not a string or a decimal)."}

    def to_internal_value(self, data: Any) -> int:
        if not isinstance(data, int) or isinstance(data, bool):
            self.fail("invalid")
        return super().to_internal_value(data)


class FenField(StrictIntegerField):
    """An amount in fen: a JSON integer from 1 to FEN_MAX."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", 1)
        kwargs.setdefault("max_value", FEN_MAX)
        kwargs.setdefault("help_text", "Amount in fen (1 yuan = 100 fen), a JSON integer.")
        super().__init__(**kwargs)


class StrictBooleanField(serializers.BooleanField):
    default_error_messages = {"invalid": "true or false is required."}

    def to_internal_value(self, data: Any) -> bool:
        if not isinstance(data, bool):
            self.fail("invalid")
        return data


class StrictCharField(serializers.CharField):
    default_error_messages = {"invalid": "A string is required."}

    def to_internal_value(self, data: Any) -> str:
        if not isinstance(data, str):
            self.fail("invalid")
        return super().to_internal_value(data)


class StrictSerializer(serializers.Serializer):
    """Refuses fields it does not declare as writable, and a body that is not a JSON object."""

    def to_internal_value(self, data: Any) -> Any:
        if not isinstance(data, dict):
            raise serializers.ValidationError({"non_field_errors": ["A JSON object is required."]})
        writable = {name for name, field in self.fields.items() if not field.read_only}
        unknown = sorted(set(data) - writable)
        if unknown:
            raise serializers.ValidationError({name: ["Unknown or read-only field."] for name in unknown})
        return super().to_internal_value(data)


class EmptyRequest(StrictSerializer):
    """No fields: actions that take no input still refuse input they would ignore."""


def validated(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any]:
    """Check `data` with the serializer; raise the 400 (problem details) or return its values."""
    if getattr(serializer_class, "validated_field_by_field", False):
        values = _validated_field_by_field(serializer_class, data)
        if values is not None:
            return values
    serializer = serializer_class(data=data)
    serializer.is_valid(raise_exception=True)
    return dict(serializer.validated_data)


class BuiltOnceModelSerializer(serializers.ModelSerializer):
    """A model serializer that builds its fields from the model once per class, not on every
    instance (DRF maps every model field again each time): each instance gets a copy, as DRF gives
    each instance a copy of declared fields. For the shapes written on the money path."""

    def get_fields(self) -> dict[str, serializers.Field]:
        cls = type(self)
        built = cls.__dict__.get("_fields_built")
        if built is None:
            built = super().get_fields()
            cls._fields_built = built  # type: ignore[attr-defined]
        return copy.deepcopy(built)


def _validated_field_by_field(serializer_class: type[serializers.Serializer], data: Any) -> dict[str, Any] | None:
    """The serializer's values for a well-formed body, from the declared fields' own checks, without the
    copy of every field DRF makes for each new serializer (most of a redemption's validation time, and
    a batch validates up to a hundred). None for anything else, which the serializer then answers with
    its exact errors. Only for a serializer that opts in (`validated_field_by_field = True`): plain
    fields, no `validate` method, no source renames (`tests/api/test_serializers_fast.py` checks that
    both ways agree)."""
    if not isinstance(data, dict):
        return None
    fields = serializer_class._declared_fields
    if not data.keys() <= fields.keys():
        return None
    values: dict[str, Any] = {}
    try:
        for name, field in fields.items():
            if field.read_only:
                if name in data:
                    return None
            elif name in data:
                values[name] = field.run_validation(data[name])
            elif field.required:
                return None
            elif field.default is not empty:
                values[name] = field.get_default()
    except (serializers.ValidationError, SkipField, DjangoValidationError):
        return None
    return values
