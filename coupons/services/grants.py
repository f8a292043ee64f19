"""Grants: issued on approval in one ledger batch against the pool and the cap; revoked by an approver."""

import datetime as dt

from django.db import transaction
from django.utils import timezone

from accounts.models import Role, User
from accounts.roles import require_role
from config.errors import InvalidState, ValidationFailed
from coupons import books
from coupons.errors import CapExceeded, PoolExhausted
from coupons.grant_codes import grant_code
from coupons.locks import grant_lock
from coupons.models import Application, Grant, Redemption
from coupons.services.years import cap_account_ensure, year_end
from ledger.errors import ExceedsCredits
from ledger.selectors import account_balance
from ledger.services import TransferRequest, account_create, transfers_create

REASON_LENGTH_MAX = 2_000


def grant_expires_at(*, year: int, grace_days: int) -> dt.datetime:
    return year_end(year) + dt.timedelta(days=grace_days)


def grant_issue(*, application: Application, approver: User, amount_fen: int) -> Grant:
    """Issue the grant of an approved application. The caller holds the application's lock.

    One ledger batch debits the pool (`pool:Y → grant:G`) and the cap (`cap:E:Y → cap_used:Y`):
    both limits are CHECK constraints, so racing approvals can never pass either.
    """
    year = application.year
    cap_account_id = cap_account_ensure(enterprise_id=application.enterprise_id, year=year)
    account = account_create(
        code=books.grant_account_code(year.year, application.pk), debits_must_not_exceed_credits=True
    )
    pool_id = books.account_id(books.pool_code(year.year))
    cap_used_id = books.account_id(books.cap_used_code(year.year))
    try:
        transfers_create(
            transfers=[
                TransferRequest.posted(
                    key=f"grant:{application.pk}:issue",
                    debit_account_id=pool_id,
                    credit_account_id=account.pk,
                    amount_fen=amount_fen,
                    reason="grant_issue",
                    chain=books.chain(year.year),
                ),
                TransferRequest.posted(
                    key=f"grant:{application.pk}:cap",
                    debit_account_id=cap_account_id,
                    credit_account_id=cap_used_id,
                    amount_fen=amount_fen,
                    reason="grant_cap",
                    chain=books.chain(year.year),
                ),
            ]
        )
    except ExceedsCredits as error:
        if error.account_code == books.pool_code(year.year):
            raise PoolExhausted(
                f"The {year.year} pool has {error.available_fen} fen left; the grant needs {amount_fen}.",
                available_fen=error.available_fen,
            ) from error
        raise CapExceeded(
            f"The enterprise has {error.available_fen} fen of its {year.year} cap left; the grant needs {amount_fen}.",
            available_fen=error.available_fen,
        ) from error
    return Grant.objects.create(
        code=grant_code(year=year.year, number=application.pk),
        application=application,
        enterprise_id=application.enterprise_id,
        provider_id=application.provider_id,
        year=year,
        amount_fen=amount_fen,
        rate_bp=application.rate_bp,
        account=account,
        issued_by=approver,
        expires_at=grant_expires_at(year=year.year, grace_days=year.grace_days),
    )


def grant_revoke(*, grant: Grant, actor: User, reason: str, now: dt.datetime | None = None) -> Grant:
    """An approver revokes a grant: outstanding holds are voided, and the unused balance goes
    back to the pool and to the enterprise's cap. Captured redemptions stand."""
    from coupons.services.redemptions import redemption_release_locked

    require_role(actor, Role.APPROVER)
    reason = (reason or "").strip()
    if not reason or len(reason) > REASON_LENGTH_MAX:
        raise ValidationFailed(f"reason has 1 to {REASON_LENGTH_MAX} characters.", field="reason")
    with transaction.atomic():
        locked = grant_lock(grant.pk)
        if locked.status != Grant.Status.ACTIVE:
            raise InvalidState(f"Only an active grant is revoked; this one is {locked.status}.")
        holds = Redemption.objects.select_for_update().filter(grant=locked, status=Redemption.Status.PENDING)
        for redemption in holds.order_by("pk"):
            redemption_release_locked(
                redemption=redemption, status=Redemption.Status.VOIDED, reason="grant_revoked", now=now
            )
        unused_fen = account_balance(account_id=locked.account_id).available_fen
        year = locked.year.year
        if unused_fen > 0:
            transfers_create(
                transfers=[
                    TransferRequest.posted(
                        key=f"grant:{locked.application_id}:revoke",
                        debit_account_id=locked.account_id,
                        credit_account_id=books.account_id(books.pool_code(year)),
                        amount_fen=unused_fen,
                        reason="grant_revoke",
                        chain=books.chain(year),
                    ),
                    TransferRequest.posted(
                        key=f"grant:{locked.application_id}:revoke_cap",
                        debit_account_id=books.account_id(books.cap_used_code(year)),
                        credit_account_id=books.account_id(books.cap_code(locked.enterprise_id, year)),
                        amount_fen=unused_fen,
                        reason="grant_revoke_cap",
                        chain=books.chain(year),
                    ),
                ]
            )
        locked.status = Grant.Status.REVOKED
        locked.revoked_by = actor
        locked.revoked_at = now or timezone.now()
        locked.revoke_reason = reason
        locked.revoked_fen = unused_fen
        locked.save(update_fields=["status", "revoked_by", "revoked_at", "revoke_reason", "revoked_fen"])
        return locked


def grant_usable_at(grant: Grant, moment: dt.datetime) -> bool:
    return grant.status == Grant.Status.ACTIVE and moment < grant.expires_at
