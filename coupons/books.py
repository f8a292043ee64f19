"""How the coupon program maps onto ledger accounts (docs/architecture.md). Codes are built only here.

Per program year Y:
- `appropriation:Y` (no limit): debited once with the pool when the year opens;
- `pool:Y` (debits ≤ credits): credited with the pool, debited per grant, credited back on revocation;
- `cap_allotted:Y` (no limit): the source of every enterprise's cap credit;
- `cap:E:Y` (debits ≤ credits): credited with enterprise E's cap, debited per grant issued;
- `cap_used:Y` (no limit): the other side of every cap debit; debited back on revocation;
- `grant:Y:G` (debits ≤ credits): credited on issue, debited by redemptions, expiry, revocation;
- `disbursed:Y`, `lapsed:Y` (no limit): where paid money and expired coupons end up.
And per provider P, `provider:P` (no limit): credited by captures, debited by settlement; below
zero it is a clawback the provider owes. Per enterprise E, `enterprise:E` (no limit): in a year of
enterprise reimbursement (事后兑现), the other side of a claim's hold, credited when a reviewer
approves the claim, debited when a settlement pays the enterprise.
"""

from ledger.models import Account
from ledger.selectors import account_get
from ledger.services import account_create


def chain(year: int) -> str:
    """The hash chain that seals a program year's transfers: one chain per year."""
    return str(year)


def appropriation_code(year: int) -> str:
    return f"appropriation:{year}"


def pool_code(year: int) -> str:
    return f"pool:{year}"


def cap_allotted_code(year: int) -> str:
    return f"cap_allotted:{year}"


def cap_code(enterprise_id: int, year: int) -> str:
    return f"cap:{enterprise_id}:{year}"


def cap_used_code(year: int) -> str:
    return f"cap_used:{year}"


def grant_code_prefix(year: int) -> str:
    return f"grant:{year}:"


def grant_account_code(year: int, application_id: int) -> str:
    """A grant's account, named by its application (one grant per application) so that it can be
    created before the grant row that refers to it."""
    return f"{grant_code_prefix(year)}{application_id}"


def disbursed_code(year: int) -> str:
    return f"disbursed:{year}"


def lapsed_code(year: int) -> str:
    return f"lapsed:{year}"


def provider_code(provider_id: int) -> str:
    return f"provider:{provider_id}"


def enterprise_code(enterprise_id: int) -> str:
    return f"enterprise:{enterprise_id}"


def year_accounts_ensure(year: int) -> dict[str, Account]:
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
