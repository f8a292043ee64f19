"""How the coupon programs map onto ledger accounts (docs/architecture.md). Codes are built only here.

Per program year, written `P:Y` for program P's year Y (`hangzhou-compute:2026`):
- `appropriation:P:Y` (no limit): debited once with the pool when the year opens;
- `pool:P:Y` (debits ≤ credits): credited with the pool, debited per grant, credited back on revocation;
- `cap_allotted:P:Y` (no limit): the source of every enterprise's cap credit;
- `cap:P:Y:E` (debits ≤ credits): credited with enterprise E's cap, debited per grant issued;
- `cap_used:P:Y` (no limit): the other side of every cap debit; debited back on revocation;
- `grant:P:Y:A` (debits ≤ credits): the grant of application A: credited on issue, debited by
  redemptions, expiry, revocation;
- `disbursed:P:Y`, `lapsed:P:Y` (no limit): where paid money and expired coupons end up.
And per provider V, `provider:V` (no limit, shared by every program): credited by captures, debited
by settlement; below zero it is a clawback the provider owes. Per enterprise E, `enterprise:E` (no
limit): in a year of enterprise reimbursement (事后兑现), the other side of a claim's hold, credited
when a reviewer approves the claim, debited when a settlement pays the enterprise.

A year's transfers are sealed in its own hash chain (`ProgramYear.chain`), and the idempotency keys
of the year's own transfers name it by its id (`year:<id>:open`): both kept the names they had when
the service ran one fund, so that nothing sealed or keyed before programs changed meaning.
"""

from typing import Protocol

from coupons.models import DEFAULT_PROGRAM
from ledger.models import Account
from ledger.selectors import account_get
from ledger.services import account_create


class YearLike(Protocol):
    """A `ProgramYear`, or anything with its program's slug, year, id and chain."""

    program_id: str
    year: int
    pk: int
    chain: str


def chain(year: YearLike) -> str:
    """The hash chain that seals a program year's transfers: one chain per program year."""
    return year.chain


def _tag(year: "YearLike | int") -> str:
    """`P:Y`; a bare year names the default program's, as the API's paths without a program do."""
    if isinstance(year, int):
        return f"{DEFAULT_PROGRAM}:{year}"
    return f"{year.program_id}:{year.year}"


def appropriation_code(year: "YearLike | int") -> str:
    return f"appropriation:{_tag(year)}"


def pool_code(year: "YearLike | int") -> str:
    return f"pool:{_tag(year)}"


def cap_allotted_code(year: "YearLike | int") -> str:
    return f"cap_allotted:{_tag(year)}"


def cap_code(enterprise_id: int, year: "YearLike | int") -> str:
    return f"cap:{_tag(year)}:{enterprise_id}"


def cap_used_code(year: "YearLike | int") -> str:
    return f"cap_used:{_tag(year)}"


def grant_code_prefix(year: "YearLike | int") -> str:
    return f"grant:{_tag(year)}:"


def grant_account_code(year: "YearLike | int", application_id: int) -> str:
    """A grant's account, named by its application (one grant per application) so that it can be
    created before the grant row that refers to it."""
    return f"{grant_code_prefix(year)}{application_id}"


def disbursed_code(year: "YearLike | int") -> str:
    return f"disbursed:{_tag(year)}"


def lapsed_code(year: "YearLike | int") -> str:
    return f"lapsed:{_tag(year)}"


def provider_code(provider_id: int) -> str:
    return f"provider:{provider_id}"


def enterprise_code(enterprise_id: int) -> str:
    return f"enterprise:{enterprise_id}"


def year_accounts_ensure(year: "YearLike | int") -> dict[str, Account]:
    """Create (or find) the year's accounts; return them by role."""
    return {
        "appropriation": account_create(code=appropriation_code(year)),
        "pool": account_create(code=pool_code(year), debits_must_not_exceed_credits=True),
        "cap_allotted": account_create(code=cap_allotted_code(year)),
        "cap_used": account_create(code=cap_used_code(year)),
        "disbursed": account_create(code=disbursed_code(year)),
        "lapsed": account_create(code=lapsed_code(year)),
    }


def provider_account_ensure(provider_id: int) -> Account:
    return account_create(code=provider_code(provider_id))


def enterprise_account_ensure(enterprise_id: int) -> Account:
    """Created when a grant is issued in a year of enterprise reimbursement, so a claim finds it."""
    return account_create(code=enterprise_code(enterprise_id))


def account_id(code: str) -> int:
    """The id of an account that must exist (created when its year opened or its grant was issued)."""
    return account_get(code=code).pk
