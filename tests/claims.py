"""Enterprise reimbursement for tests of it: a program year in `enterprise_reimbursement` mode, a
grant in it, and what a claim needs (a fresh invoice number, the enterprise's invoice and proof of
payment)."""

from typing import Any

from accounts.models import User
from coupons.models import Claim, Grant, ProgramYear
from coupons.services.applications import application_approve
from coupons.services.claims import claim_submit
from coupons.services.years import program_year_create, program_year_open
from tests.coupons.conftest import CAP_FEN, IN_YEAR, POOL_FEN, YEAR, Cast, submit, to_reviewed
from tests.evidence import contract, document, invoice_number

REIMBURSEMENT = ProgramYear.RedemptionMode.ENTERPRISE_REIMBURSEMENT


def open_reimbursement_year(admin: User, *, pool_fen: int = POOL_FEN, cap_fen: int = CAP_FEN) -> ProgramYear:
    program_year_create(
        year=YEAR, actor=admin, pool_fen=pool_fen, default_cap_fen=cap_fen, redemption_mode=REIMBURSEMENT
    )
    return program_year_open(year=YEAR, actor=admin)


def grant_in(cast: Cast, *, fee_fen: int = 1_000_000, amount_fen: int | None = None) -> Grant:
    """Submit (with the signed contract), confirm, review and approve: a grant at 30% of `fee_fen`."""
    application = to_reviewed(cast, submit(cast, fee_fen=fee_fen, **contract(cast.member, YEAR)), amount_fen)
    application_approve(application=application, actor=cast.approver)
    return Grant.objects.get(application=application)


def evidence(member: User, number: str | None = None) -> dict[str, Any]:
    """The invoice number and the two documents of one claim, uploaded by the enterprise's `member`."""
    return {
        "invoice_number": number or invoice_number(),
        "invoice_document": document(member, "invoice"),
        "payment_proof_document": document(member, "payment_proof"),
    }


def claim(cast: Cast, grant: Grant, bill_amount_fen: int, **extra: Any) -> Claim:
    actor = extra.pop("actor", cast.member)
    return claim_submit(
        grant=grant,
        actor=actor,
        bill_amount_fen=bill_amount_fen,
        now=extra.pop("now", IN_YEAR),
        **{**evidence(actor), **extra},
    )
