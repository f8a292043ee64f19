"""Each limit has one home: the length of a person's written reason or note is `REASON_LENGTH_MAX`
in config/limits.py, and the API, the services and the portal's forms all read it (the ledger's
`TRANSFER_REASON_LENGTH_MAX` is another thing: a transfer's machine word, like `grant_issue`)."""

import ast
from pathlib import Path

import pytest

from config.limits import REASON_LENGTH_MAX
from portal.forms import OptionalReasonForm, ReasonForm

ROOT = Path(__file__).resolve().parents[2]
APPS = ("config", "ledger", "accounts", "approvals", "coupons", "evidence", "api", "portal")


def limits_defined(word: str) -> list[tuple[str, str]]:
    """(module, name) of every module-level constant `*<word>*_LENGTH_MAX` assigned a value of its own."""
    found = []
    for app in APPS:
        for path in sorted((ROOT / app).rglob("*.py")):
            if "migrations" in path.parts:
                continue
            for node in ast.parse(path.read_text()).body:
                targets = (
                    node.targets
                    if isinstance(node, ast.Assign)
                    else [node.target]
                    if isinstance(node, ast.AnnAssign)
                    else []
                )
                for target in targets:
                    if isinstance(target, ast.Name) and word in target.id and target.id.endswith("_LENGTH_MAX"):
                        found.append((str(path.relative_to(ROOT)), target.id))
    return found


def test_a_written_reason_has_one_limit():
    assert limits_defined("REASON") == [
        ("config/limits.py", "REASON_LENGTH_MAX"),
        ("ledger/models.py", "TRANSFER_REASON_LENGTH_MAX"),
    ]
    assert limits_defined("NOTE") == [("accounts/models.py", "RELATED_PARTY_NOTE_LENGTH_MAX")]


@pytest.mark.parametrize("form", [ReasonForm, OptionalReasonForm])
def test_the_portal_takes_as_long_a_reason_as_the_api(form):
    assert form(data={"reason": "x" * REASON_LENGTH_MAX}).is_valid()
    assert not form(data={"reason": "x" * (REASON_LENGTH_MAX + 1)}).is_valid()
