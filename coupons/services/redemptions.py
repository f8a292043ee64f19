"""Redemptions: a provider applies a grant to one bill, two-phase like a card payment.

`redemption_create` holds `min(floor(bill × rate), available, requested)` on the grant (a pending
ledger transfer `grant:G → provider:P`), or posts it at once with `capture=True`. The hold is then
captured (posted), voided, or expires after `COUPONS_HOLD_TIMEOUT_S`; capture opens the enterprise's
acknowledgement window (`coupons/services/acknowledgements.py`). An approver may reverse a captured
redemption someone else asked to reverse, and a reviewer's upholding of the enterprise's dispute
reverses it too: the coupon goes back to the grant, or to the year's lapsed account when the grant
can no longer be used; if the provider was already paid, the provider owes it back and the next
settlement nets it.
"""

import contextlib
import datetime as dt
from collections.abc import Sequence
from typing import Final

from django.conf import settings
from django.db import IntegrityError, connection, transaction
from django.utils import timezone

from accounts.models import Enterprise, Role, User, listing_day
from accounts.roles import require_provider_member, require_role
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create, reason_clean
from config.errors import InvalidState, NotFound, ValidationFailed
from coupons import books
from coupons.errors import (
    ContractExceeded,
    DuplicateBill,
    DuplicateInvoice,
    EnterpriseNotVerified,
    FourEyes,
    GrantExhausted,
    GrantExpired,
    GrantRevoked,
)
from coupons.evidence import cite, document_checked, provider_key
from coupons.invoices import invoice_number_normalise
from coupons.listing import provider_require_listed
from coupons.locks import grant_lock, redemption_lock
from coupons.models import (
    BILL_NUMBER_LENGTH_MAX,
    CONTRACT_FEE_FEN_MAX,
    Grant,
    ProgramYear,
    Redemption,
    Settlement,
)
from coupons.policy import reference_normalise, reference_refusal_text, reference_refused, subsidy_fen
from coupons.services.claims import contract_billed_fen, contract_grants
from coupons.services.eligibility import require_pair_eligible
from coupons.services.invoices import (
    invoice_file_lock,
    invoice_files_lock,
    invoice_in_use,
    invoice_release,
    invoice_use,
)
from coupons.services.reach import program_of_redemption, reach_program
from coupons.services.redemptions_fast import Bill, redemption_create_fast, redemption_transfer
from coupons.services.stacking import contract_lock
from evidence.models import Document, Kind
from ledger.errors import ExceedsCredits, PendingTransferAlreadyResolved, PendingTransferExpired
from ledger.models import Account, Transfer
from ledger.selectors import account_balance
from ledger.services import TransferRequest, accounts_lock, transfer_create

EXPIRE_BATCH_SIZE: Final = 500
ID_MAX: Final = 2**63 - 1
ACTION_REVERSE: Final = "redemption_reverse"
_LIVE = [Redemption.Status.PENDING, Redemption.Status.CAPTURED]


def hold_timeout_s() -> int:
    return int(settings.COUPONS_HOLD_TIMEOUT_S)


def acknowledge_deadline(year: ProgramYear, captured_at: dt.datetime) -> dt.datetime:
    """When the enterprise's silence on a bill captured at `captured_at` becomes its confirmation."""
    return captured_at + dt.timedelta(days=year.acknowledgement_window_days)


def _check_create_input(bill_number: str, bill_amount_fen: object, requested_fen: object) -> str:
    bill_number = reference_normalise(bill_number) if isinstance(bill_number, str) else ""
    if not 0 < len(bill_number) <= BILL_NUMBER_LENGTH_MAX:
        raise ValidationFailed(f"bill_number has 1 to {BILL_NUMBER_LENGTH_MAX} characters.", field="bill_number")
    refused = reference_refused(bill_number)
    if refused is not None:
        raise ValidationFailed(reference_refusal_text("bill_number", refused), field="bill_number")
    for name, value, optional in (("bill_amount_fen", bill_amount_fen, False), ("requested_fen", requested_fen, True)):
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= CONTRACT_FEE_FEN_MAX:
            raise ValidationFailed(
                f"{name} must be a whole number of fen from 1 to {CONTRACT_FEE_FEN_MAX}.", field=name
            )
    return bill_number


def _check_invoice_input(number: object, amount_fen: object, bill_amount_fen: int) -> tuple[str, int]:
    """The invoice number in its one written form, and the amount the invoice was issued for (the
    bill's by default), which covers the bill."""
    if number is None:
        raise ValidationFailed("invoice_number is required: the number of the bill's invoice.", field="invoice_number")
    number = invoice_number_normalise(number)
    if amount_fen is None:
        return number, bill_amount_fen
    if not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= CONTRACT_FEE_FEN_MAX:
        raise ValidationFailed(
            f"invoice_amount_fen must be a whole number of fen from 1 to {CONTRACT_FEE_FEN_MAX}.",
            field="invoice_amount_fen",
        )
    if amount_fen < bill_amount_fen:
        raise ValidationFailed(
            f"The invoice must cover the bill amount: it is for {amount_fen} fen, the bill {bill_amount_fen} fen.",
            field="invoice_amount_fen",
        )
    return number, amount_fen


def _check_grant_usable(grant: Grant, now: dt.datetime) -> None:
    if grant.status == Grant.Status.REVOKED:
        raise GrantRevoked(f"Grant {grant.code} was revoked.")
    if grant.status == Grant.Status.EXPIRED or now >= grant.expires_at:
        raise GrantExpired(f"Grant {grant.code} expired at {grant.expires_at.isoformat()}.")


def redemption_create(
    *,
    grant: Grant | int,
    bill_number: str,
    bill_amount_fen: int,
    actor: User,
    requested_fen: int | None = None,
    capture: bool = False,
    now: dt.datetime | None = None,
    invoice_number: str | None = None,
    invoice_document: Document | int | None = None,
    invoice_amount_fen: int | None = None,
) -> Redemption:
    """The grant's provider redeems it against one bill under the contract.

    The bill needs its invoice: `invoice_number` (normalised, `coupons/invoices.py`) and
    `invoice_document` (kind invoice, uploaded by the provider), issued for `invoice_amount_fen` (the
    bill amount by default, never less). An invoice is used once in the whole service: 409
    `duplicate_invoice` when a live redemption or claim holds it, decided by the invoice register's
    unique index however two requests race. A voided or expired hold frees its invoice; a reversal
    does not (the bill was subsidised once).

    `grant` is a Grant, or the id of one of the actor's provider's grants (the API's form: any other
    id is 404 `not_found`, as if it did not exist). The common case runs in two waits on the database
    (`coupons/services/redemptions_fast.py`); anything else runs the careful path below, which gives
    every refusal.
    """
    bill_number = _check_create_input(bill_number, bill_amount_fen, requested_fen)
    if not isinstance(capture, bool):
        raise ValidationFailed("capture is true or false.", field="capture")
    invoice_number, invoice_amount_fen = _check_invoice_input(invoice_number, invoice_amount_fen, bill_amount_fen)
    now = now or timezone.now()
    if isinstance(grant, Grant):
        require_provider_member(actor, grant.provider_id)
    # Its own transaction, or a part of the caller's (a batch, a portal form): the fast path then
    # takes a savepoint only around its writes.
    with contextlib.nullcontext() if connection.in_atomic_block else transaction.atomic():
        return _redemption_create(
            grant,
            bill_number,
            bill_amount_fen,
            actor,
            requested_fen,
            capture,
            now,
            invoice_number,
            invoice_document,
            invoice_amount_fen,
        )


def _redemption_create(
    grant: Grant | int,
    bill_number: str,
    bill_amount_fen: int,
    actor: User,
    requested_fen: int | None,
    capture: bool,
    now: dt.datetime,
    invoice_number: str,
    invoice_document: Document | int | None,
    invoice_amount_fen: int,
) -> Redemption:
    """The fast path, or when it declines, the careful one. Inside a transaction."""
    grant_id = grant.pk if isinstance(grant, Grant) else grant
    document_id = invoice_document.pk if isinstance(invoice_document, Document) else invoice_document
    if isinstance(document_id, int) and not isinstance(document_id, bool) and 0 < document_id <= ID_MAX:
        bill = Bill(
            grant_id=grant_id,
            bill_number=bill_number,
            bill_amount_fen=bill_amount_fen,
            requested_fen=requested_fen,
            capture=capture,
            invoice_number=invoice_number,
            invoice_document_id=document_id,
            invoice_amount_fen=invoice_amount_fen,
        )
        redemption = redemption_create_fast(bill=bill, actor=actor, now=now, hold_timeout_s=hold_timeout_s())
        if redemption is not None:
            return redemption
    if not isinstance(grant, Grant):
        found = None
        if actor.provider_id is not None:
            found = Grant.objects.filter(pk=grant_id, provider_id=actor.provider_id).first()
        if found is None:
            raise NotFound(f"No grant {grant_id} among yours.")
        grant = found
    invoice = document_checked(value=invoice_document, kinds=[Kind.INVOICE], actor=actor, field="invoice_document")
    with transaction.atomic():
        # The contract's lock, then the grant's, order every redemption and claim of the contract in
        # every program: the bill and contract checks below cannot be raced. The grant's ledger
        # account is the backstop for the money.
        contract_lock(provider_id=grant.application.provider_id, contract_number=grant.application.contract_number)
        locked = grant_lock(grant.pk)
        # Lock order: the grant, the invoice file, then (in the ledger) the accounts.
        invoice_file_lock(invoice)
        if locked.year.redemption_mode == ProgramYear.RedemptionMode.ENTERPRISE_REIMBURSEMENT:
            raise InvalidState(
                f"Program year {locked.year} is in enterprise_reimbursement mode: the enterprise pays the bill in "
                "full and claims (POST /claims/); the computing center does not deduct.",
                reason="redemption_mode",
            )
        provider_require_listed(locked.provider, listing_day(now))
        if locked.enterprise.status != Enterprise.Status.VERIFIED:
            raise EnterpriseNotVerified(f"{locked.enterprise.name} is {locked.enterprise.status}.")
        # A sanction or an affiliation recorded since the grant was issued stops its use.
        require_pair_eligible(enterprise=locked.enterprise, provider=locked.provider, now=now)
        _check_grant_usable(locked, now)
        # Holds past their timeout that the expiry job has not reached yet are released here, so
        # their bill may be redeemed again and their amount is available again.
        stale = Redemption.objects.filter(grant=locked, status=Redemption.Status.PENDING, expires_at__lte=now)
        for stale_id in stale.order_by("pk").values_list("pk", flat=True):
            stale_hold = redemption_lock(stale_id)
            if stale_hold.status == Redemption.Status.PENDING:  # Not captured or voided since we looked.
                redemption_release_locked(
                    redemption=stale_hold, status=Redemption.Status.EXPIRED, reason="expired", now=now
                )
        # A bill is subsidised once, on whichever program's grant of the contract it was redeemed.
        live = Redemption.objects.filter(contract_grants(locked), status__in=_LIVE)
        if live.filter(bill_number=bill_number).exists():
            raise DuplicateBill(
                f"Bill {bill_number} was already redeemed on contract {locked.application.contract_number}."
            )
        # Told here, beside the duplicate bill; `invoice_use` below decides a race.
        if invoice_in_use(invoice_number):
            raise DuplicateInvoice(f"Invoice {invoice_number} was already used; an invoice is subsidised once.")
        billed_fen = contract_billed_fen(locked)
        contract_fee_fen = locked.application.contract_fee_fen
        if billed_fen + bill_amount_fen > contract_fee_fen:
            raise ContractExceeded(
                f"Bills of {billed_fen} fen are already redeemed on a contract of {contract_fee_fen} fen; "
                f"{contract_fee_fen - billed_fen} fen of bills remain.",
                remaining_fen=contract_fee_fen - billed_fen,
            )
        by_rate_fen = subsidy_fen(bill_amount_fen, locked.rate_bp)
        if by_rate_fen == 0:
            raise ValidationFailed(
                "The bill is too small to carry a coupon at the grant's rate.", field="bill_amount_fen"
            )
        available_fen = account_balance(account_id=locked.account_id).available_fen
        if available_fen <= 0:
            raise GrantExhausted(f"Nothing is left on grant {locked.code}.", available_fen=0)
        coupon_fen = min(by_rate_fen, available_fen, requested_fen if requested_fen is not None else by_rate_fen)
        # The row's id is taken first, so the ledger transfer (whose key names it) is made before the
        # row, and the row is inserted once, naming its hold.
        with connection.cursor() as cursor:
            cursor.execute("SELECT nextval(pg_get_serial_sequence('coupons_redemption', 'id'))")
            pk = cursor.fetchone()[0]
        provider_account = books.provider_account_ensure(locked.provider_id)
        transfer = redemption_transfer(
            pk=pk,
            grant=locked,
            chain=books.chain(locked.year),
            provider_account_id=provider_account.pk,
            coupon_fen=coupon_fen,
            capture=capture,
            hold_timeout_s=hold_timeout_s(),
        )
        try:
            outcome = transfer_create(transfer=transfer, now=now)
        except ExceedsCredits as error:  # Unreachable under the grant's lock; the ledger is the backstop.
            raise GrantExhausted(
                f"Nothing is left on grant {locked.code}.", available_fen=error.available_fen
            ) from error
        try:
            with transaction.atomic():
                redemption = Redemption.objects.create(
                    pk=pk,
                    grant=locked,
                    provider_id=locked.provider_id,
                    bill_number=bill_number,
                    bill_amount_fen=bill_amount_fen,
                    invoice_number=invoice_number,
                    invoice_document=invoice,
                    invoice_amount_fen=invoice_amount_fen,
                    requested_fen=requested_fen,
                    rate_bp=locked.rate_bp,
                    coupon_fen=coupon_fen,
                    status=Redemption.Status.CAPTURED if capture else Redemption.Status.PENDING,
                    created_by=actor,
                    captured_at=now if capture else None,
                    # The enterprise's acknowledgement window opens at capture (docs/evidence.md).
                    acknowledge_by=acknowledge_deadline(locked.year, now) if capture else None,
                    hold_transfer=None if capture else outcome.transfer,
                    expires_at=None if capture else outcome.transfer.expires_at,
                )
        except IntegrityError as error:
            if "coupons_redemption_bill_once" in str(error):
                raise DuplicateBill(f"Bill {bill_number} was already redeemed on this contract.") from None
            raise
        invoice_use(
            number=invoice_number,
            document=invoice,
            amount_fen=invoice_amount_fen,
            enterprise_id=locked.enterprise_id,
            redemption=redemption,
        )
        cite(
            document=invoice,
            subject=f"redemption:{redemption.pk}",
            role=Kind.INVOICE,
            enterprise_id=locked.enterprise_id,
            provider_id=locked.provider_id,
            actor=actor,
        )
        return redemption


def redemptions_batch_prepare(
    *, grant_ids: Sequence[object], document_ids: Sequence[object], actor: User, now: dt.datetime
) -> None:
    """Before the items of a batch, in its one transaction: lock the contracts of the actor's provider's
    grants among `grant_ids`, then those grants in id order, then take the invoice-file locks of
    `document_ids` (those the provider uploaded) in one order, then release the grants' holds past
    their timeout, the holds locked in id order before any ledger account is touched.

    Then it locks every ledger account its items and releases touch (the grants' and the provider's),
    at once in id order: so the lock order (grant, file, redemption, ledger;
    `coupons/services/__init__.py`) holds for the whole batch, although its accounts stay locked until
    it commits, and no item waits for an account while the batch holds another: with the batch's one
    `now`, no later item finds a hold to release. Ids that are not the provider's grants are left to
    their items, which refuse them.
    """
    ids = sorted({pk for pk in grant_ids if isinstance(pk, int) and not isinstance(pk, bool) and 0 < pk < 2**63})
    if actor.provider_id is None or not ids:
        return
    # Their contracts' locks first, as a single redemption takes them before its grant (a contract's
    # grants in several programs share one), each once, in one order.
    contracts = sorted(
        set(
            Grant.objects.filter(pk__in=ids, provider_id=actor.provider_id).values_list(
                "application__provider_id", "application__contract_number"
            )
        )
    )
    for provider_id, contract_number in contracts:
        contract_lock(provider_id=provider_id, contract_number=contract_number)
    grants = list(
        Grant.objects.select_for_update()
        .filter(pk__in=ids, provider_id=actor.provider_id)
        .order_by("pk")
        .values_list("pk", "account_id")
    )
    locked = [pk for pk, _ in grants]
    # The invoice files next, before any ledger account (the order of a single redemption: grant, file,
    # then the ledger): a redemption holding one of these files waits for its ledger accounts.
    documents = sorted(
        {pk for pk in document_ids if isinstance(pk, int) and not isinstance(pk, bool) and 0 < pk <= ID_MAX}
    )
    owner = provider_key(actor.provider_id)
    invoice_files_lock(Document.objects.filter(pk__in=documents, owner=owner))
    stale = list(
        Redemption.objects.select_for_update()
        .filter(grant_id__in=locked, status=Redemption.Status.PENDING, expires_at__lte=now)
        .order_by("pk")
    )
    # Every ledger account the batch's items and releases touch (their grants' and the provider's),
    # at once and in id order: taken one item at a time, the batch would hold some while it waits for
    # another, which a void or an expiry (locking its two in id order) may hold while it waits for
    # one the batch holds.
    accounts = [account_id for _, account_id in grants]
    accounts += Account.objects.filter(code=books.provider_code(actor.provider_id)).values_list("pk", flat=True)
    accounts_lock(account_ids=accounts)
    for hold in stale:
        redemption_release_locked(redemption=hold, status=Redemption.Status.EXPIRED, reason="expired", now=now)


def _hold_of(redemption: Redemption) -> Transfer:
    assert redemption.hold_transfer_id is not None, "a pending redemption always has its hold"
    return Transfer.objects.get(pk=redemption.hold_transfer_id)


def redemption_capture(*, redemption: Redemption, actor: User, now: dt.datetime | None = None) -> Redemption:
    """The provider captures a hold: the coupon is posted to the provider.

    Only while the grant can still be used: once its year is closed (its expiry brought forward to the
    close) or it expired, a hold is not captured, even before the reset's job has voided it."""
    require_provider_member(actor, redemption.provider_id)
    now = now or timezone.now()
    with transaction.atomic():
        grant = grant_lock(redemption.grant_id)  # Lock order: grant, then redemption.
        locked = redemption_lock(redemption.pk)
        if locked.status != Redemption.Status.PENDING:
            raise InvalidState(f"Only a held redemption is captured; this one is {locked.status}.")
        if grant.status == Grant.Status.REVOKED:
            raise GrantRevoked(f"Grant {grant.code} was revoked; its holds are released.")
        if now >= grant.expires_at:
            raise GrantExpired(f"Grant {grant.code} expired at {grant.expires_at}; its holds are released.")
        # Found from outside: a hold made before the center was suspended (or left its listing window),
        # or before either party was sanctioned, was still captured and then paid. Capturing is when the
        # coupon becomes money, so the same checks as redeeming apply.
        provider_require_listed(grant.provider, listing_day(now))
        require_pair_eligible(enterprise=grant.enterprise, provider=grant.provider, now=now)
        try:
            transfer_create(
                transfer=TransferRequest.post_pending(
                    key=f"redemption:{locked.pk}:capture", pending_id=_hold_of(locked).pk, reason="redemption_capture"
                ),
                now=now,
            )
        except PendingTransferExpired:
            raise InvalidState(
                f"The hold expired at {locked.expires_at}; redeem the bill again.", reason="hold_expired"
            ) from None
        locked.status = Redemption.Status.CAPTURED
        locked.captured_at = now
        locked.acknowledge_by = acknowledge_deadline(grant.year, now)
        locked.save(update_fields=["status", "captured_at", "acknowledge_by"])
        return locked


def redemption_release_locked(
    *, redemption: Redemption, status: str, reason: str, now: dt.datetime | None = None
) -> Redemption:
    """Void or expire a held redemption, freeing its invoice for another bill. The caller holds the
    redemption's lock."""
    assert status in (Redemption.Status.VOIDED, Redemption.Status.EXPIRED)
    assert redemption.status == Redemption.Status.PENDING
    try:
        transfer_create(
            transfer=TransferRequest.void_pending(
                key=f"redemption:{redemption.pk}:release", pending_id=_hold_of(redemption).pk, reason=reason
            ),
            now=now,
        )
    except PendingTransferAlreadyResolved as error:
        # Only the ledger's own expiry job can have got there first; the hold is released either way.
        assert error.resolved_by == "expired", error
    invoice_release(redemption=redemption)
    redemption.status = status
    redemption.released_at = now or timezone.now()
    redemption.save(update_fields=["status", "released_at"])
    return redemption


def redemption_void(*, redemption: Redemption, actor: User, now: dt.datetime | None = None) -> Redemption:
    """The provider voids a hold: the coupon goes back to the grant."""
    require_provider_member(actor, redemption.provider_id)
    with transaction.atomic():
        locked = redemption_lock(redemption.pk)
        if locked.status != Redemption.Status.PENDING:
            raise InvalidState(f"Only a held redemption is voided; this one is {locked.status}.")
        return redemption_release_locked(
            redemption=locked, status=Redemption.Status.VOIDED, reason="redemption_void", now=now
        )


def redemptions_expire_holds(*, now: dt.datetime | None = None, limit: int = EXPIRE_BATCH_SIZE) -> int:
    """Expire holds past their timeout; return how many this call expired. Safe to run twice at once."""
    now = now or timezone.now()
    due = list(
        Redemption.objects.filter(status=Redemption.Status.PENDING, expires_at__lte=now)
        .order_by("expires_at", "pk")
        .values_list("pk", flat=True)[:limit]
    )
    expired = 0
    for pk in due:
        with transaction.atomic():
            locked = redemption_lock(pk)
            if locked.status != Redemption.Status.PENDING:
                continue  # Captured or voided since we looked.
            redemption_release_locked(redemption=locked, status=Redemption.Status.EXPIRED, reason="expired", now=now)
            expired += 1
    return expired


def _reversible_check(redemption: Redemption) -> None:
    """Refuse (409) a reversal the redemption's state does not allow. The caller may hold its lock."""
    if redemption.status != Redemption.Status.CAPTURED:
        raise InvalidState(f"Only a captured redemption is reversed; this one is {redemption.status}.")
    if redemption.settlement_id is not None:
        settlement = Settlement.objects.get(pk=redemption.settlement_id)
        if settlement.status == Settlement.Status.OPEN:
            raise InvalidState(
                f"The redemption is in settlement {settlement.pk}, awaiting payment; pay it first.",
                reason="settlement_unpaid",
                settlement=settlement.pk,
            )


def redemption_reverse_request(*, redemption: Redemption, requester: User, reason: str) -> ApprovalRequest:
    """A reviewer or approver asks for a captured redemption's reversal; a different approver decides
    (`approvals`), and only then `redemption_reverse` runs."""
    require_role(requester, Role.REVIEWER, Role.APPROVER)
    program = program_of_redemption(redemption)
    reach_program(requester, program, f"redemption {redemption.pk}")
    reason = reason_clean(reason)
    _reversible_check(redemption)
    return approval_request_create(
        action=ACTION_REVERSE,
        target=f"redemption:{redemption.pk}",
        payload={"redemption": redemption.pk, "coupon_fen": redemption.coupon_fen, "program": program},
        reason=reason,
        requester=requester,
    )


def redemption_reverse(
    *, redemption: Redemption, actor: User, requested_by: User, reason: str, now: dt.datetime | None = None
) -> Redemption:
    """An approver reverses a captured redemption that someone else asked to reverse (never deletes it).

    Called by the approval of a `redemption_reverse` request (`coupons/approval_actions.py`)."""
    require_role(actor, Role.APPROVER)
    reach_program(actor, program_of_redemption(redemption), f"redemption {redemption.pk}")
    if requested_by.pk == actor.pk:
        raise FourEyes("The approver who reverses a redemption may not be the one who asked for it.")
    reason = reason_clean(reason)
    with transaction.atomic():
        grant = grant_lock(redemption.grant_id)
        locked = redemption_lock(redemption.pk)
        return redemption_reverse_locked(
            grant=grant, redemption=locked, actor=actor, requested_by=requested_by, reason=reason, now=now
        )


def redemption_reverse_locked(
    *,
    grant: Grant,
    redemption: Redemption,
    actor: User,
    requested_by: User,
    reason: str,
    now: dt.datetime | None = None,
) -> Redemption:
    """Reverse a captured redemption: the coupon goes back to the grant, or to the year's lapsed
    account when the grant can no longer be used. The caller holds the grant's lock, then the
    redemption's, and has checked who asked and who decides (two different people): an approval of a
    `redemption_reverse` request, or a reviewer upholding the enterprise's dispute."""
    now = now or timezone.now()
    _reversible_check(redemption)
    # A grant valid for months from issue still redeems after its year closes, so it takes its coupon back.
    back_to_grant = (
        grant.status == Grant.Status.ACTIVE
        and now < grant.expires_at
        and (grant.year.status == "open" or grant.year.grant_validity == "months")
    )
    destination_id = grant.account_id if back_to_grant else books.account_id(books.lapsed_code(grant.year))
    transfer_create(
        transfer=TransferRequest.posted(
            key=f"redemption:{redemption.pk}:reverse",
            debit_account_id=books.provider_account_ensure(redemption.provider_id).pk,
            credit_account_id=destination_id,
            amount_fen=redemption.coupon_fen,
            reason="redemption_reverse",
            chain=books.chain(grant.year),
        )
    )
    redemption.status = Redemption.Status.REVERSED
    redemption.reversal_requested_by = requested_by
    redemption.reversed_by = actor
    redemption.reversed_at = now
    redemption.reversal_reason = reason
    redemption.reversed_to = "grant" if back_to_grant else "lapsed"
    redemption.save(
        update_fields=[
            "status",
            "reversal_requested_by",
            "reversed_by",
            "reversed_at",
            "reversal_reason",
            "reversed_to",
        ]
    )
    return redemption
