"""Property-based tests of the whole API from its own OpenAPI schema (schemathesis).

Every operation is called with generated input, valid and invalid (schemathesis's positive and
negative modes), as an enterprise member, a provider member and a superuser, and every answer goes
through every check schemathesis has (the CLI's `--checks all`): no 5xx; the status, content type,
headers and body as documented; input the schema allows is not refused with 400 (positive data
acceptance) and input it forbids is refused (negative data rejection); a required header left out is
refused; an undocumented method is 405 with an Allow header; credentials are not ignored; and the
rest. The number of examples per operation is bounded (SCHEMATHESIS_EXAMPLES, default 8) so the
suite stays fast; raise it locally to dig deeper.
"""

import os
import string
from collections.abc import Iterator

import pytest
import schemathesis
from django.core import signals
from django.db import close_old_connections
from hypothesis import HealthCheck, settings
from hypothesis import strategies as st
from schemathesis.checks import CHECKS, load_all_checks
from schemathesis.config._checks import POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES
from schemathesis.config._operations import OperationConfig, OperationsConfig

from accounts import uscc
from accounts.credentials import token_issue
from config.wsgi import application
from tests.api.conftest import PASSWORD
from tests.coupons.conftest import grant_for, make_cast, open_year

EXAMPLES = int(os.environ.get("SCHEMATHESIS_EXAMPLES", "8"))
schema = schemathesis.openapi.from_wsgi("/api/schema/", application)
# A new password is one Django's validators take (the `password` format says so in words).
schemathesis.openapi.format(
    "password",
    st.text(alphabet=string.ascii_letters + string.digits + "!#%&*+-=?@^_~", min_size=14, max_size=40).filter(
        lambda word: any(c.isalpha() for c in word) and any(not c.isalpha() for c in word)
    ),
)
# Rules across fields, which an OpenAPI 3.0 schema cannot state (each field's description says
# it): date ranges run forward (`valid_until` on or after `valid_from`, a facility's `listed_until`
# on or after `listed_from`); a registered model comes with its filing number; a grant validity in
# months comes with its number of months, and only it. Generated bodies keep them, so a refusal of one is a bug.
DATE_RANGES = (("valid_from", "valid_until"), ("listed_from", "listed_until"))


def _keeps_rules_across_fields(value: object) -> bool:
    if isinstance(value, list):
        return all(_keeps_rules_across_fields(item) for item in value)
    if not isinstance(value, dict):
        return True
    for start, end in DATE_RANGES:
        first, last = value.get(start), value.get(end)
        if isinstance(first, str) and isinstance(last, str) and last < first:
            return False
    if value.get("has_registered_model") is True and not str(value.get("model_filing_number", "")).strip():
        return False
    if (value.get("grant_validity") == "months") != isinstance(value.get("grant_validity_months"), int):
        return "grant_validity" not in value and "grant_validity_months" not in value
    return all(_keeps_rules_across_fields(item) for item in value.values())


@schema.hook("filter_body")
def keeps_rules_across_fields(context: object, body: object) -> bool:
    return _keeps_rules_across_fields(body)


# A credit code's check character is the `uscc` format's (accounts/uscc.py): valid data has a right one.
schemathesis.openapi.format(
    "uscc",
    st.text(alphabet=uscc.ALPHABET, min_size=uscc.LENGTH - 1, max_size=uscc.LENGTH - 1).map(
        lambda first: first + uscc.check_character(first)
    ),
)
schema.config.checks.update(included_check_names=["all"])

# Four rules of the service that a JSON schema cannot state, said in each operation's text: there a
# 400 is a right answer to input the schema allows (every other check, negative data rejection
# included, still holds on them, and every other operation must take all schema-valid input). The
# filter above keeps such rules in the fuzzing phase, but not in the coverage phase, which builds
# its bodies without hooks.
RULES_THE_SCHEMA_CANNOT_STATE = {
    # A file's type is judged from its bytes (evidence/sniff.py): random bytes are not a document.
    ("POST", "/api/v1/documents/"): "unsupported_document",
    # A grant validity in `months` comes with its number of months, and only it.
    ("POST", "/api/v1/program-years/"): "grant_validity_months",
    # A facility's description is printable text (str.isprintable: Unicode categories).
    ("POST", "/api/v1/providers/"): "description",
    # Each item's key is unique within the batch (JSON schema's uniqueItems compares whole items).
    ("POST", "/api/v1/redemptions/batch/"): "idempotency_key",
}
_POSITIVE_ALSO_400 = [*POSITIVE_DATA_ACCEPTANCE_EXPECTED_STATUSES, "400"]
schema.config.operations = OperationsConfig(
    operations=[
        OperationConfig.from_dict(
            {
                "include-method": method,
                "include-path": path,
                "checks": {"positive_data_acceptance": {"expected-statuses": _POSITIVE_ALSO_400}},
            }
        )
        for method, path in RULES_THE_SCHEMA_CANNOT_STATE
    ]
)


@pytest.fixture
def in_process_requests() -> Iterator[None]:
    """Keep the test's database connection open across in-process WSGI calls, as Django's own
    test client does: the handler would otherwise close it at the end of every request."""
    signals.request_started.disconnect(close_old_connections)
    signals.request_finished.disconnect(close_old_connections)
    yield
    signals.request_started.connect(close_old_connections)
    signals.request_finished.connect(close_old_connections)


@pytest.fixture
def tokens(db: None, in_process_requests: None) -> dict[str, str]:
    """Bearer tokens for three callers, in a program with some data to find."""
    cast = make_cast()
    open_year(cast.admin)
    grant_for(cast)
    cast.admin.set_password(PASSWORD)
    cast.admin.save()
    return {
        role: token_issue(user=user)[1]
        for role, user in (("enterprise", cast.member), ("provider", cast.clerk), ("superuser", cast.admin))
    }


@schema.parametrize()
@settings(
    max_examples=EXAMPLES,
    deadline=None,
    suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow, HealthCheck.filter_too_much],
)
def test_every_check_holds(case, tokens):
    for token in tokens.values():
        case.call_and_validate(headers={"Authorization": f"Bearer {token}"})


def test_every_check_schemathesis_has_is_on():
    load_all_checks()
    names = set(CHECKS.get_all_names())
    assert {"negative_data_rejection", "positive_data_acceptance", "missing_required_header"} <= names
    assert {name for name in names if not schema.config.checks.get_by_name(name=name).enabled} == set()
