"""Stacking: several programs subsidising one contract, within their combined ceiling (docs/programs.md
"Stacking").

A contract is the same contract in every program when it has the same provider and the same
normalised contract number (`coupons_application_contract_once` keeps one live application per
program; this module rules across programs). A `StackingRule` joins programs that may subsidise the
same contract and gives their combined ceiling: a share of the contract fee and, optionally, an amount.

- The contract's **combined ceiling** is the tightest of the rules that join any two of the programs
  subsidising it (the one being applied to included), on the smallest fee any of its applications
  states: a rule that joins two of them binds them, and a program cannot widen it by stating a
  larger fee. Every two of those programs must be joined by a rule, or they do not stack.
- At **submission** (`application_submit`), the other programs' commitments are what they granted,
  net of revocations, for approved applications, and what was requested for applications still open
  (submitted, confirmed, reviewed): first come, first served. An open application keeps the room it
  asked for until it is decided, so a later application in another program cannot take it from under
  it; and an open application is at most its request, so counting the request never under-counts.
- At **approval** (`grant_issue`), the room is recomputed from the other programs' grants alone:
  they are what is committed in the ledger, and an open application elsewhere may yet be rejected.
  The amount is lowered to the room (the approval's event says so), refused at zero.

Both take `contract_lock` first, one advisory lock per contract identity that every program's
submission and approval takes, so two programs racing for one contract's room are served one after
the other (lock order: coupons/services/__init__.py).
"""

from collections.abc import Sequence
from dataclasses import dataclass
from itertools import combinations

from django.db import IntegrityError, connection, transaction
from django.db.models import Prefetch

from accounts.models import User
from accounts.roles import require_superuser
from approvals.models import ApprovalRequest
from approvals.services import approval_request_create, reason_clean
from config import db
from config.errors import AlreadyExists, ValidationFailed
from coupons.errors import DuplicateContract, StackingCeiling
from coupons.models import (
    BASIS_POINTS_WHOLE,
    STACKING_RULE_NAME_LENGTH_MAX,
    Application,
    Grant,
    Program,
    StackingRule,
    StackingRuleProgram,
)
from coupons.services.years import AMOUNT_FEN_MAX

STACKING_RULE_PROGRAMS_MAX = 20  # A rule joins at least two programs and at most this many.
_OPEN_STATUSES = [Application.Status.SUBMITTED, Application.Status.CONFIRMED, Application.Status.REVIEWED]


def contract_lock(*, provider_id: int, contract_number: str) -> None:
    """Take the contract's advisory lock until the transaction ends: every program's submission and
    approval for the contract (provider, normalised number) takes it, so they are serialised."""
    assert transaction.get_connection().in_atomic_block, "a contract lock is held to the end of a transaction"
    with connection.cursor() as cursor:
        cursor.execute(
            "SELECT pg_advisory_xact_lock(hashtextextended(%s, 0))", [f"contract:{provider_id}:{contract_number}"]
        )


@dataclass(frozen=True)
class StackingRoom:
    """What is left of a contract's combined ceiling for one program's application."""

    rules: tuple[str, ...]  # The rules that join the programs, tightest first: the first sets the ceiling.
    programs: tuple[str, ...]  # The other programs that subsidise the contract.
    fee_fen: int  # The smallest fee its applications state.
    ceiling_fen: int | None  # None when two of the programs do not stack.
    committed_fen: int  # By the other programs.
    unjoined: tuple[tuple[str, str], ...] = ()  # Pairs of the programs that no rule joins.

    @property
    def room_fen(self) -> int:
        return 0 if self.ceiling_fen is None else max(0, self.ceiling_fen - self.committed_fen)

    def describe(self) -> str:
        return (
            f"the combined ceiling of rule {self.rules[0]} is {self.ceiling_fen} fen, "
            f"and {', '.join(self.programs)} committed {self.committed_fen} fen"
        )


def rule_ceiling_fen(*, rule: StackingRule, fee_fen: int) -> int:
    """A rule's combined ceiling for a contract of `fee_fen`: floor(fee × share), at most its amount."""
    share_fen = fee_fen * rule.share_bp // BASIS_POINTS_WHOLE
    return share_fen if rule.amount_fen is None else min(share_fen, rule.amount_fen)


def _rules_joining(programs: Sequence[str]) -> list[tuple[StackingRule, frozenset[str]]]:
    """The rules that join at least two of `programs`, with the programs of each."""
    rules = (
        StackingRule.objects.filter(programs__in=programs)
        .distinct()
        .prefetch_related(Prefetch("memberships", queryset=StackingRuleProgram.objects.only("rule_id", "program_id")))
    )
    found = []
    for rule in rules:
        members = frozenset(m.program_id for m in rule.memberships.all())
        if len(members & set(programs)) >= 2:
            found.append((rule, members))
    return found


def stacking_view(
    *,
    program: str,
    provider_id: int,
    contract_number: str,
    contract_fee_fen: int,
    exclude_application_id: int | None = None,
    count_open: bool,
) -> StackingRoom | None:
    """The room left for an application in `program` for the contract, or None when no other program
    subsidises it (nothing to stack). `count_open`: count the other programs' open applications at
    their request (submission) or only their grants (approval). A read: deciding on it needs
    `contract_lock` held (`stacking_room`)."""
    statuses = [*_OPEN_STATUSES, Application.Status.APPROVED] if count_open else [Application.Status.APPROVED]
    applications = Application.objects.filter(
        provider_id=provider_id, contract_number=contract_number, status__in=statuses
    ).exclude(program_id=program)
    if exclude_application_id is not None:
        applications = applications.exclude(pk=exclude_application_id)
    others = list(applications.values("pk", "program_id", "status", "requested_fen", "contract_fee_fen"))
    if not others:
        return None
    grants = {
        row["application_id"]: row["amount_fen"] - row["revoked_fen"]
        for row in Grant.objects.filter(application_id__in=[o["pk"] for o in others]).values(
            "application_id", "amount_fen", "revoked_fen"
        )
    }
    other_programs = sorted({o["program_id"] for o in others})
    programs = [program, *other_programs]
    rules = _rules_joining(programs)
    unjoined = [
        pair for pair in combinations(sorted(programs), 2) if not any(set(pair) <= members for _, members in rules)
    ]
    fee_fen = min([contract_fee_fen, *(o["contract_fee_fen"] for o in others)])
    ceilings = sorted((rule_ceiling_fen(rule=rule, fee_fen=fee_fen), rule.name) for rule, _ in rules)
    committed_fen = sum(
        grants.get(o["pk"], 0) if o["status"] == Application.Status.APPROVED else o["requested_fen"] for o in others
    )
    return StackingRoom(
        rules=tuple(name for _, name in ceilings),
        programs=tuple(other_programs),
        fee_fen=fee_fen,
        ceiling_fen=None if unjoined or not ceilings else ceilings[0][0],
        committed_fen=committed_fen,
        unjoined=tuple((first, second) for first, second in unjoined),
    )


def stacking_room(
    *,
    program: str,
    provider_id: int,
    contract_number: str,
    contract_fee_fen: int,
    exclude_application_id: int | None = None,
    count_open: bool,
) -> StackingRoom | None:
    """`stacking_view`, to decide on: the caller holds `contract_lock`. Refuses with DuplicateContract
    when two of the programs are joined by no rule."""
    room = stacking_view(
        program=program,
        provider_id=provider_id,
        contract_number=contract_number,
        contract_fee_fen=contract_fee_fen,
        exclude_application_id=exclude_application_id,
        count_open=count_open,
    )
    if room is not None and room.unjoined:
        first, second = room.unjoined[0]
        raise DuplicateContract(
            f"Contract {contract_number} already has an application in {', '.join(room.programs)}, and programs "
            f"{first} and {second} do not stack: a contract has a live application in one of them at a time."
        )
    return room


def application_stacking(application: Application) -> StackingRoom | None:
    """For staff reading an application: the other programs whose live applications name its contract,
    what they committed, and what is left of the combined ceiling for it (None when it stands alone)."""
    return stacking_view(
        program=application.program_id,
        provider_id=application.provider_id,
        contract_number=application.contract_number,
        contract_fee_fen=application.contract_fee_fen,
        exclude_application_id=application.pk,
        count_open=True,
    )


def stacking_require_room(room: StackingRoom, *, contract_number: str) -> int:
    """The room left, refused with StackingCeiling when nothing is."""
    if room.room_fen <= 0:
        raise StackingCeiling(
            f"Contract {contract_number} has no subsidy left within its combined ceiling: {room.describe()}."
        )
    return room.room_fen


def stacking_rule_create(
    *, actor: User, name: str, programs: Sequence[str], share_bp: int, amount_fen: int | None = None
) -> StackingRule:
    """A superuser writes a stacking rule: the programs (at least two) that may subsidise the same
    contract and their combined ceiling. Rules are never edited; writing the same rule again returns
    it, and a name taken by another rule is refused."""
    require_superuser(actor)
    if not isinstance(name, str) or not 0 < len(name.strip()) <= STACKING_RULE_NAME_LENGTH_MAX:
        raise ValidationFailed(f"name has 1 to {STACKING_RULE_NAME_LENGTH_MAX} characters.", field="name")
    name = name.strip()
    if isinstance(programs, (str, bytes)) or not isinstance(programs, Sequence):
        raise ValidationFailed("programs is a list of program slugs.", field="programs")
    slugs = sorted(set(programs)) if all(isinstance(p, str) for p in programs) else []
    if not 2 <= len(slugs) <= STACKING_RULE_PROGRAMS_MAX:
        raise ValidationFailed(
            f"programs names 2 to {STACKING_RULE_PROGRAMS_MAX} different programs.", field="programs"
        )
    unknown = sorted(set(slugs) - set(Program.objects.filter(slug__in=slugs).values_list("slug", flat=True)))
    if unknown:
        raise ValidationFailed(f"programs names no program {', '.join(unknown)}.", field="programs")
    if not isinstance(share_bp, int) or isinstance(share_bp, bool) or not 0 < share_bp <= BASIS_POINTS_WHOLE:
        raise ValidationFailed(
            f"share_bp is a whole number of basis points from 1 to {BASIS_POINTS_WHOLE}.", field="share_bp"
        )
    if amount_fen is not None and (
        not isinstance(amount_fen, int) or isinstance(amount_fen, bool) or not 0 < amount_fen <= AMOUNT_FEN_MAX
    ):
        raise ValidationFailed(f"amount_fen is a whole number of fen from 1 to {AMOUNT_FEN_MAX}.", field="amount_fen")
    with transaction.atomic():
        existing = StackingRule.objects.select_for_update().filter(name=name).first()
        if existing is not None:
            same = (existing.share_bp, existing.amount_fen) == (share_bp, amount_fen) and sorted(
                existing.memberships.values_list("program_id", flat=True)
            ) == slugs
            if not same:
                raise AlreadyExists("A stacking rule with this name exists with other terms.", field="name")
            return existing
        try:
            with transaction.atomic():
                rule = StackingRule.objects.create(name=name, share_bp=share_bp, amount_fen=amount_fen)
        except IntegrityError:  # Written by another superuser at this moment.
            raise AlreadyExists("A stacking rule with this name was just written.", field="name") from None
        StackingRuleProgram.objects.bulk_create(StackingRuleProgram(rule=rule, program_id=slug) for slug in slugs)
        return rule


ACTION_STACKING_RULE = "stacking_rule_create"
# One stacking rule waits for its decision at a time: two pending rules could each look right alone.
STACKING_RULE_TARGET = "stacking-rules"


def stacking_rule_request(
    *,
    requester: User,
    name: str,
    programs: Sequence[str],
    share_bp: int,
    amount_fen: int | None = None,
    reason: str,
) -> ApprovalRequest:
    """A superuser asks for a stacking rule; another superuser decides (approvals, action
    `stacking_rule_create`): a rule sets how much several funds pay on one contract, so no one
    person writes it alone. Checked now exactly as on approval, by writing it in a transaction that
    is rolled back (so a rule that could not be written is refused at once, nothing written), and
    checked again when it is approved. A name that a rule has already is 409 `already_exists`."""
    require_superuser(requester)
    reason = reason_clean(reason)
    if isinstance(name, str) and StackingRule.objects.filter(name=name.strip()).exists():
        raise AlreadyExists("A stacking rule with this name exists: a rule is never changed.", field="name")
    db.dry_run(
        lambda: stacking_rule_create(
            actor=requester, name=name, programs=programs, share_bp=share_bp, amount_fen=amount_fen
        )
    )
    return approval_request_create(
        action=ACTION_STACKING_RULE,
        target=STACKING_RULE_TARGET,
        payload={
            "name": name.strip(),
            "programs": sorted(set(programs)),
            "share_bp": share_bp,
            "amount_fen": amount_fen,
        },
        reason=reason,
        requester=requester,
    )


def stacking_rule_request_execute(*, request: ApprovalRequest, decider: User) -> None:
    """An approved request: the rule written by the decider (the approvals app calls this)."""
    payload = request.payload
    stacking_rule_create(
        actor=decider,
        name=payload["name"],
        programs=payload["programs"],
        share_bp=payload["share_bp"],
        amount_fen=payload["amount_fen"],
    )
