"""Claims: enterprise reimbursement after the fact (事后兑现, docs/evidence.md "Reimbursement").

In a program year whose `redemption_mode` is `enterprise_reimbursement`, the computing center bills
the enterprise in full and the enterprise, having paid, claims against its grant with the invoice
and the proof of payment. The money path mirrors a redemption's, with the enterprise as payee:

- `claim_submit` holds min(floor(bill × rate), available, requested) on the grant: a pending ledger
  transfer `grant:P:Y:A → enterprise:E` (key `claim:<id>:hold`), so the grant's available balance
  drops at once, and writes the invoice into the register (used once in the whole service);
- `claim_approve` (a reviewer) posts the hold (`claim:<id>:approve`);
- `claim_reject` (a reviewer) voids it (`claim:<id>:release`) and frees the invoice;
- `settlement_create_for_enterprise` (finance) batches the enterprise's approved claims, and the
  two-person payment (`coupons.services.settlements.settlement_pay`) moves `enterprise:E →
  disbursed:P:Y` per year and marks the claims paid.

A hold has the ledger's longest timeout (`CLAIM_HOLD_TIMEOUT_S`, 400 days). A grant's expiry or
revocation releases its submitted claims long before that (`claims_release_on_grant_locked`); should
a hold ever lapse first (a claim left unreviewed for 400 days on a grant valid longer), the ledger's
expiry job voids it, approving the claim answers 409 `invalid_state` (reason `hold_expired`), and the
reviewer rejects it, which frees its invoice for a new claim.

Lock order (docs/architecture.md): grant → claim → ledger accounts; a settlement locks the
enterprise row, then its claims by id.
"""

import datetime as dt
from collections import defaultdict
from typing import Final

from django.db import transaction
from django.db.models import Q, Sum
from django.utils import timezone

from accounts.models import Enterprise, Role, User, listing_day
from accounts.roles import require_enterprise_member, require_role
from approvals.services import reason_clean
from config.errors import InvalidState, ValidationFailed
from coupons import books
from coupons.errors import (
    ContractExceeded,
    EnterpriseNotVerified,
    FourEyes,
    GrantExhausted,
    GrantExpired,
    GrantRevoked,
)
from coupons.invoices import invoice_number_normalise
from coupons.listing import provider_require_listed
from coupons.locks import claim_lock, claims_lock, enterprise_lock, grant_lock
from coupons.models import (
    CLAIM_LIVE_STATUSES,
    CONTRACT_FEE_FEN_MAX,
    DEFAULT_PROGRAM,
    Claim,
    Grant,
    ProgramYear,
    Redemption,
    Settlement,
)
from coupons.policy import subsidy_fen
from coupons.services.eligibility import require_pair_eligible
from coupons.services.invoices import invoice_release, invoice_use
from coupons.services.reach import program_of_claim, reach_program
from coupons.services.stacking import contract_lock
from evidence.models import Document, Kind
from evidence.services import citation_add, document_for_citation
from ledger.errors import ExceedsCredits, PendingTransferAlreadyResolved, PendingTransferExpired
from ledger.models import Transfer
from ledger.selectors import account_balance
from ledger.services import TIMEOUT_S_MAX, TransferRequest, transfer_create

CLAIM_HOLD_TIMEOUT_S: Final = TIMEOUT_S_MAX
SETTLEMENT_CLAIMS_MAX: Final = 10_000
# A claim's bill counts against the contract fee from submission until it is rejected.
LIVE_STATUSES: Final = CLAIM_LIVE_STATUSES
_LIVE_REDEMPTIONS: Final = (Redemption.Status.PENDING, Redemption.Status.CAPTURED)


def subject(claim: Claim) -> str:
    """How documents' citations name a claim."""
    return f"claim:{claim.pk}"


def _check_amounts(bill_amount_fen: object, requested_fen: object) -> None:
    for name, value, optional in (("bill_amount_fen", bill_amount_fen, False), ("requested_fen", requested_fen, True)):
        if value is None and optional:
            continue
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= CONTRACT_FEE_FEN_MAX:
            raise ValidationFailed(
                f"{name} must be a whole number of fen from 1 to {CONTRACT_FEE_FEN_MAX}.", field=name
            )


def _document(value: Document | int, *, kind: str, actor: User, field: str) -> Document:
    document_id = value.pk if isinstance(value, Document) else value
    return document_for_citation(document_id=document_id, kinds=[kind], actor=actor, field=field)


def _require_reimbursement_year(grant: Grant) -> None:
    if grant.year.redemption_mode != ProgramYear.RedemptionMode.ENTERPRISE_REIMBURSEMENT:
        raise InvalidState(
            f"Program year {grant.year} is in {grant.year.redemption_mode} mode: the computing center deducts "
            "the coupon from its bill, and the enterprise does not claim.",
            reason="redemption_mode",
        )


def _require_grant_usable(grant: Grant, now: dt.datetime) -> None:
    if grant.status == Grant.Status.REVOKED:
        raise GrantRevoked(f"Grant {grant.code} was revoked.")
    if grant.status == Grant.Status.EXPIRED or now >= grant.expires_at:
        raise GrantExpired(f"Grant {grant.code} expired at {grant.expires_at.isoformat()}.")


def contract_grants(grant: Grant) -> Q:
    """The grants of the grant's contract in every program (programs that stack each grant the one
    contract: the same provider and contract number), as a filter on a grant's rows."""
    return Q(
        grant__application__provider_id=grant.application.provider_id,
        grant__application__contract_number=grant.application.contract_number,
    )


def contract_billed_fen(grant: Grant) -> int:
    """The bills already counted against the grant's contract, in every program: live redemptions and
    live claims. The caller holds the contract's lock (`stacking.contract_lock`)."""
    of_contract = contract_grants(grant)
    redeemed = Redemption.objects.filter(of_contract, status__in=_LIVE_REDEMPTIONS).aggregate(
        total=Sum("bill_amount_fen")
    )["total"]
    claimed = Claim.objects.filter(of_contract, status__in=LIVE_STATUSES).aggregate(total=Sum("bill_amount_fen"))[
        "total"
    ]
    return int(redeemed or 0) + int(claimed or 0)


def claim_submit(
    *,
    grant: Grant,
    actor: User,
    invoice_number: str,
    invoice_document: Document | int,
    payment_proof_document: Document | int,
    bill_amount_fen: int,
    requested_fen: int | None = None,
    now: dt.datetime | None = None,
) -> Claim:
    """A member of the grant's enterprise claims for a bill it paid in full; the coupon is held on the grant."""
    _check_amounts(bill_amount_fen, requested_fen)
    require_enterprise_member(actor, grant.enterprise_id)
    number = invoice_number_normalise(invoice_number)
    invoice = _document(invoice_document, kind=Kind.INVOICE, actor=actor, field="invoice_document")
    payment_proof = _document(
        payment_proof_document, kind=Kind.PAYMENT_PROOF, actor=actor, field="payment_proof_document"
    )
    now = now or timezone.now()
    with transaction.atomic():
        # The contract's lock, then the grant's, order every claim and redemption of the contract in
        # every program: the contract and balance checks below cannot be raced. The grant's ledger
        # account is the backstop.
        contract_lock(provider_id=grant.application.provider_id, contract_number=grant.application.contract_number)
        locked = grant_lock(grant.pk)
        _require_reimbursement_year(locked)
        _require_grant_usable(locked, now)
        if locked.enterprise.status != Enterprise.Status.VERIFIED:
            raise EnterpriseNotVerified(f"{locked.enterprise.name} is {locked.enterprise.status}.")
        provider_require_listed(locked.provider, listing_day(now))
        require_pair_eligible(enterprise=locked.enterprise, provider=locked.provider, now=now)
        billed_fen = contract_billed_fen(locked)
        contract_fee_fen = locked.application.contract_fee_fen
        if billed_fen + bill_amount_fen > contract_fee_fen:
            raise ContractExceeded(
                f"Bills of {billed_fen} fen are already counted on a contract of {contract_fee_fen} fen; "
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
        claim = Claim.objects.create(
            grant=locked,
            enterprise_id=locked.enterprise_id,
            invoice_number=number,
            invoice_document=invoice,
            payment_proof_document=payment_proof,
            bill_amount_fen=bill_amount_fen,
            requested_fen=requested_fen,
            rate_bp=locked.rate_bp,
            coupon_fen=coupon_fen,
            created_by=actor,
        )
        # The enterprise paid the bill in full: the invoice was issued for the bill.
        invoice_use(
            number=number,
            document=invoice,
            amount_fen=bill_amount_fen,
            enterprise_id=locked.enterprise_id,
            claim=claim,
        )
        try:
            hold = transfer_create(
                transfer=TransferRequest.pending(
                    key=f"claim:{claim.pk}:hold",
                    debit_account_id=locked.account_id,
                    credit_account_id=books.account_id(books.enterprise_code(locked.enterprise_id)),
                    amount_fen=coupon_fen,
                    reason="claim_hold",
                    chain=books.chain(locked.year),
                    timeout_s=CLAIM_HOLD_TIMEOUT_S,
                ),
                now=now,
            ).transfer
        except ExceedsCredits as error:  # Unreachable under the grant's lock; the ledger is the backstop.
            raise GrantExhausted(
                f"Nothing is left on grant {locked.code}.", available_fen=error.available_fen
            ) from error
        claim.hold_transfer = hold
        claim.save(update_fields=["hold_transfer"])
        enterprise_key, provider_key = f"enterprise:{locked.enterprise_id}", f"provider:{locked.provider_id}"
        for document, role in ((invoice, Kind.INVOICE), (payment_proof, Kind.PAYMENT_PROOF)):
            citation_add(
                document=document,
                subject=subject(claim),
                role=role,
                principal=enterprise_key,
                parties=[enterprise_key, provider_key],
                actor=actor,
            )
        return claim


def _hold_of(claim: Claim) -> Transfer:
    assert claim.hold_transfer_id is not None, "a submitted claim always has its hold"
    return Transfer.objects.get(pk=claim.hold_transfer_id)


def _require_reviewer(claim: Claim, actor: User) -> None:
    require_role(actor, Role.REVIEWER)
    reach_program(actor, program_of_claim(claim), f"claim {claim.pk}")
    if actor.pk == claim.created_by_id:
        raise FourEyes("The claim is decided by a reviewer other than the person who made it.")


def _decided(claim: Claim, *, status: str, actor: User | None, reason: str, now: dt.datetime) -> Claim:
    claim.status = status
    claim.decided_by = actor
    claim.decided_at = now
    claim.decision_reason = reason
    claim.save(update_fields=["status", "decided_by", "decided_at", "decision_reason"])
    return claim


def claim_approve(*, claim: Claim, actor: User, reason: str = "", now: dt.datetime | None = None) -> Claim:
    """A reviewer approves a submitted claim: its hold is posted to the enterprise's account.

    Refused, like a redemption's capture, once the grant was revoked or expired, its center is no
    longer listed, or either party is sanctioned: approving is when the coupon becomes money."""
    _require_reviewer(claim, actor)
    reason = (reason or "").strip()
    if reason:
        reason = reason_clean(reason)
    now = now or timezone.now()
    with transaction.atomic():
        grant = grant_lock(claim.grant_id)  # Lock order: grant, then claim.
        locked = claim_lock(claim.pk)
        if locked.status != Claim.Status.SUBMITTED:
            raise InvalidState(f"Only a submitted claim is approved; this one is {locked.status}.")
        if grant.status == Grant.Status.REVOKED:
            raise GrantRevoked(f"Grant {grant.code} was revoked; reject the claim.")
        if now >= grant.expires_at:
            raise GrantExpired(f"Grant {grant.code} expired at {grant.expires_at.isoformat()}; reject the claim.")
        provider_require_listed(grant.provider, listing_day(now))
        require_pair_eligible(enterprise=grant.enterprise, provider=grant.provider, now=now)
        try:
            transfer_create(
                transfer=TransferRequest.post_pending(
                    key=f"claim:{locked.pk}:approve", pending_id=_hold_of(locked).pk, reason="claim_approve"
                ),
                now=now,
            )
        except (PendingTransferExpired, PendingTransferAlreadyResolved):
            # Past its timeout, voided by the ledger's expiry job or not yet: a claim's hold is resolved
            # only here and in `_release_locked`, both under the claim's lock and for a submitted claim.
            raise InvalidState(
                f"The claim's hold lapsed at {_hold_of(locked).expires_at}; reject it and claim again.",
                reason="hold_expired",
                claim=locked.pk,
            ) from None
        return _decided(locked, status=Claim.Status.APPROVED, actor=actor, reason=reason, now=now)


def _release_locked(claim: Claim, *, actor: User | None, reason: str, now: dt.datetime) -> Claim:
    """Void a submitted claim's hold, free its invoice, and mark it rejected. The caller holds the
    grant's and the claim's locks."""
    assert claim.status == Claim.Status.SUBMITTED
    try:
        transfer_create(
            transfer=TransferRequest.void_pending(
                key=f"claim:{claim.pk}:release", pending_id=_hold_of(claim).pk, reason="claim_release"
            ),
            now=now,
        )
    except PendingTransferAlreadyResolved as error:
        # Only the ledger's own expiry job can have got there first; the hold is released either way.
        assert error.resolved_by == "expired", error
    invoice_release(claim=claim)
    return _decided(claim, status=Claim.Status.REJECTED, actor=actor, reason=reason, now=now)


def claim_reject(*, claim: Claim, actor: User, reason: str, now: dt.datetime | None = None) -> Claim:
    """A reviewer rejects a submitted claim with a reason: the hold goes back to the grant and the
    invoice may be claimed again."""
    _require_reviewer(claim, actor)
    reason = reason_clean(reason)
    now = now or timezone.now()
    with transaction.atomic():
        grant_lock(claim.grant_id)
        locked = claim_lock(claim.pk)
        if locked.status != Claim.Status.SUBMITTED:
            raise InvalidState(f"Only a submitted claim is rejected; this one is {locked.status}.")
        return _release_locked(locked, actor=actor, reason=reason, now=now)


def claims_release_on_grant_locked(*, grant: Grant, reason: str, now: dt.datetime | None = None) -> int:
    """Reject the grant's submitted claims, by the program and not a person, when the grant expires or
    is revoked, so nothing stays held on a grant that can no longer be used; return how many. The
    caller holds the grant's lock."""
    now = now or timezone.now()
    released = 0
    for pk in (
        Claim.objects.filter(grant=grant, status=Claim.Status.SUBMITTED).order_by("pk").values_list("pk", flat=True)
    ):
        locked = claim_lock(pk)
        if locked.status == Claim.Status.SUBMITTED:
            _release_locked(locked, actor=None, reason=reason, now=now)
            released += 1
    return released


def settlement_create_for_enterprise(
    *, enterprise: Enterprise, actor: User, program: str = DEFAULT_PROGRAM
) -> Settlement:
    """Batch the enterprise's approved, unsettled claims on grants of `program` (the default program
    unless named) into a settlement that pays the enterprise from that program's fund.

    A claim is settled at most once: the enterprise's row lock orders settlements of one enterprise,
    and each claim row carries the one settlement that took it."""
    require_role(actor, Role.FINANCE)
    reach_program(actor, program, f"program {program}")
    with transaction.atomic():
        enterprise_lock(enterprise.pk)
        claim_ids = list(
            Claim.objects.filter(
                enterprise=enterprise,
                status=Claim.Status.APPROVED,
                settlement__isnull=True,
                grant__year__program_id=program,
            )
            .order_by("pk")
            .values_list("pk", flat=True)[:SETTLEMENT_CLAIMS_MAX]  # The rest goes into the next settlement.
        )
        if not claim_ids:
            raise InvalidState(f"{enterprise.name} has no approved claim to settle in {program}.")
        claims = claims_lock(claim_ids)
        assert all(c.status == Claim.Status.APPROVED and c.settlement_id is None for c in claims)
        settlement = Settlement.objects.create(
            program_id=program,
            enterprise=enterprise,
            total_fen=sum(c.coupon_fen for c in claims),
            redemptions_count=0,
            created_by=actor,
        )
        Claim.objects.filter(pk__in=claim_ids).update(settlement=settlement)
        return settlement


def enterprise_settlement_transfers(*, settlement: Settlement, bank_reference: str) -> list[TransferRequest]:
    """What paying an enterprise settlement moves: `enterprise:E → disbursed:P:Y` per program year of
    its claims (keys `settlement:<id>:pay:<program year id>`). The caller holds the settlement's lock."""
    assert settlement.enterprise_id is not None
    paid_fen: dict[int, int] = defaultdict(int)
    for claim in Claim.objects.filter(settlement=settlement).select_related("grant"):
        paid_fen[claim.grant.year_id] += claim.coupon_fen
    years = ProgramYear.objects.in_bulk(list(paid_fen))
    enterprise_account_id = books.account_id(books.enterprise_code(settlement.enterprise_id))
    return [
        TransferRequest.posted(
            key=f"settlement:{settlement.pk}:pay:{year_id}",
            debit_account_id=enterprise_account_id,
            credit_account_id=books.account_id(books.disbursed_code(years[year_id])),
            amount_fen=amount_fen,
            reason="settlement_pay",
            chain=books.chain(years[year_id]),
            metadata={"bank_reference": bank_reference},
        )
        for year_id, amount_fen in sorted(paid_fen.items())
    ]


def claims_mark_paid(*, settlement: Settlement) -> int:
    """The settlement's claims are paid. The caller holds the settlement's lock and moved the money."""
    return Claim.objects.filter(settlement=settlement, status=Claim.Status.APPROVED).update(status=Claim.Status.PAID)
