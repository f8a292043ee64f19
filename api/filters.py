"""Query filters as strict as request bodies, and as the schema describes them.

django-filter is lenient: NumberFilter takes 0.5 and filters by it, and an empty value (`?status=`)
means "no filter". Here a filter the schema types as an integer takes only a whole number within
64 bits, and an empty value for a filter whose schema has no empty value (a choice, a number) is
400 `validation_error`, as the schema promises.
"""

from typing import Any

import django_filters
from django import forms
from django.db.models import QuerySet
from django_filters.rest_framework import DjangoFilterBackend
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field
from rest_framework.request import Request

from api.serializers import ID_MAX
from config.errors import ValidationFailed


class Int64Field(forms.IntegerField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_value", -ID_MAX - 1)
        kwargs.setdefault("max_value", ID_MAX)
        super().__init__(**kwargs)


@extend_schema_field(OpenApiTypes.INT64)
class IntegerFilter(django_filters.NumberFilter):
    """An id or a year: a whole number. One outside the caller's scope filters to nothing (never 400),
    so a filter does not reveal which ids exist."""

    field_class = Int64Field


class FilterBackend(DjangoFilterBackend):
    """DjangoFilterBackend that refuses an empty value where the schema allows none."""

    def filter_queryset(self, request: Request, queryset: QuerySet[Any], view: Any) -> QuerySet[Any]:
        filterset_class = self.get_filterset_class(view, queryset)
        if filterset_class is not None:
            blank = {
                name: ["Give a value, or leave this filter out."]
                for name, each in filterset_class.base_filters.items()
                if type(each) is not django_filters.CharFilter
                and any(not value.strip() for value in request.query_params.getlist(name))
            }
            if blank:
                raise ValidationFailed(blank)
        return super().filter_queryset(request, queryset, view)
