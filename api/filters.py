"""Query filters as strict as request bodies: a filter the schema types as an integer takes only a
whole number (400 otherwise), where django-filter's NumberFilter would take 0.5 and filter by it."""

import django_filters
from django import forms
from drf_spectacular.types import OpenApiTypes
from drf_spectacular.utils import extend_schema_field


@extend_schema_field(OpenApiTypes.INT64)
class IntegerFilter(django_filters.NumberFilter):
    """An id or a year: a whole number. One outside the caller's scope filters to nothing (never 400),
    so a filter does not reveal which ids exist."""

    field_class = forms.IntegerField
