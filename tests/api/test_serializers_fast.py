"""`validated` checks an opted-in serializer's well-formed bodies field by field (api/serializers.py):
it must accept exactly what the serializer accepts, with the same values, and leave every refusal to
the serializer, so its errors are the serializer's."""

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rest_framework import serializers

from api.serializers import _validated_field_by_field, validated
from coupons.api.redemptions import RedeemRequest

NAMES = [*RedeemRequest._declared_fields, "x", "grant_id"]
VALUES = st.one_of(
    st.none(),
    st.booleans(),
    st.integers(min_value=-(2**70), max_value=2**70),
    st.integers(min_value=0, max_value=2_000_000),
    st.floats(allow_nan=True),
    st.text(max_size=40),
    st.text(alphabet="0123456789 -\u3000\x00\t", max_size=30),
    st.lists(st.integers(), max_size=2),
    st.dictionaries(st.text(max_size=3), st.integers(), max_size=2),
)
GOOD = {
    "grant": st.integers(min_value=1, max_value=2**63 - 1),
    "bill_number": st.text(min_size=1, max_size=70),
    "bill_amount_fen": st.integers(min_value=-5, max_value=10**13 + 5),
    "invoice_number": st.text(alphabet="0123456789- ", min_size=1, max_size=40),
    "invoice_document": st.integers(min_value=0, max_value=2**63),
    "invoice_amount_fen": st.integers(min_value=0, max_value=10**13 + 5),
    "requested_fen": st.integers(min_value=0, max_value=10**6),
    "capture": st.one_of(st.booleans(), st.just("true"), st.just(1)),
}


def by_the_serializer(body: object) -> dict | None:
    serializer = RedeemRequest(data=body)
    return dict(serializer.validated_data) if serializer.is_valid() else None


@settings(max_examples=400, deadline=None)
@given(
    st.one_of(
        st.dictionaries(st.sampled_from(NAMES), VALUES, max_size=9),
        st.fixed_dictionaries(
            {name: strategy for name, strategy in GOOD.items() if name in ("grant", "bill_number", "bill_amount_fen")},
            optional={
                name: strategy
                for name, strategy in GOOD.items()
                if name not in ("grant", "bill_number", "bill_amount_fen")
            }
            | {"x": VALUES, "grant_id": VALUES},
        ),
        VALUES,
    )
)
def test_field_by_field_accepts_what_the_serializer_accepts_with_the_same_values(body):
    fast = _validated_field_by_field(RedeemRequest, body)
    slow = by_the_serializer(body)
    if fast is not None:
        assert slow == fast, (body, fast, slow)
    if slow is None:
        assert fast is None, body
        with pytest.raises(serializers.ValidationError):
            validated(RedeemRequest, body)


def test_a_well_formed_body_is_checked_field_by_field():
    body = {
        "grant": 1,
        "bill_number": "B-1",
        "bill_amount_fen": 100,
        "invoice_number": "26332000000012345678",
        "invoice_document": 5,
    }
    assert _validated_field_by_field(RedeemRequest, body) == {**body, "capture": False}
    assert validated(RedeemRequest, body) == {**body, "capture": False}
