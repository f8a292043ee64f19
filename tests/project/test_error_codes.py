"""One list of error codes: `config.errors.ErrorCode`. Every `ApplicationError` carries one of its
members, the schema's `Problem.code` enum is that list, the portal's sentences are keyed by it, and
docs/api.md's error table documents each member once. (tests/api/conftest.py `assert_problem` also
checks that each code an API test sees is a member.)"""

import importlib
import pkgutil
import re
from pathlib import Path

import pytest

from api.schema import PROBLEM_CODES
from config.errors import ApplicationError, ErrorCode

ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "ledger", "accounts", "approvals", "coupons", "evidence", "api", "portal")


def import_every_module() -> None:
    for app in APPS:
        package = importlib.import_module(app)
        for module in pkgutil.walk_packages(package.__path__, prefix=f"{app}."):
            if ".migrations" in module.name or module.name.endswith((".asgi", ".wsgi")) or ".settings" in module.name:
                continue
            importlib.import_module(module.name)


def subclasses(cls: type) -> list[type]:
    return [cls, *(sub for direct in cls.__subclasses__() for sub in subclasses(direct))]


def test_every_application_error_carries_a_member_of_the_enum():
    import_every_module()
    errors = [error for error in subclasses(ApplicationError) if not error.__module__.startswith("tests.")]
    assert len(errors) > 30
    for error in errors:
        assert isinstance(error.code, ErrorCode), (error, error.code)


def test_a_code_outside_the_enum_is_refused_when_the_class_is_written():
    with pytest.raises(ValueError, match="not_a_code"):

        class Unlisted(ApplicationError):
            code = "not_a_code"  # type: ignore[assignment]


def test_the_schema_lists_the_enum():
    assert [code.value for code in ErrorCode] == PROBLEM_CODES


def documented_codes() -> list[str]:
    text = (ROOT / "docs" / "api.md").read_text()
    section = text.split("\n## Errors\n", 1)[1].split("\n## ", 1)[0]
    rows = [line for line in section.splitlines() if line.startswith("| `")]
    return [code for row in rows for code in re.findall(r"`([a-z_]+)`", row.split("|")[1])]


def test_docs_api_documents_each_code_once():
    documented = documented_codes()
    assert sorted(documented) == sorted(set(documented)), "a code documented twice"
    assert set(documented) == {code.value for code in ErrorCode}


def test_the_portal_says_codes_of_the_enum():
    from portal import errors

    source = (ROOT / "portal" / "errors.py").read_text()
    quoted = set(re.findall(r'"([a-z]+(?:_[a-z]+)+)"', source))
    assert quoted <= {"available_fen", "remaining_fen"} | {"redemption_mode", "hold_expired", "settlement_unpaid"}, (
        "the portal names error codes as ErrorCode members, not strings",
        quoted,
    )
    assert errors.SENTENCES and all(isinstance(code, ErrorCode) for code in errors.SENTENCES)
