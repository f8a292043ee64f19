"""Reads from the ledger: balances now and at a past moment, and an account's history."""

from collections.abc import Sequence
from dataclasses import dataclass
from datetime import date, datetime, tzinfo
from typing import Final, Literal

from django.db.models import Exists, F, OuterRef, Q
from django.db.models.expressions import CombinedExpression
from django.db.models.functions import TruncDate

from ledger.errors import AccountNotFound, HistoryArchived
from ledger.models import Account, ArchivedTotals, Transfer

HISTORY_PAGE_SIZE_MAX: Final = 500
HISTORY_PAGE_SIZE_DEFAULT: Final = 50


# What may still be debited from a `debits_must_not_exceed_credits` account, as SQL over its row for
# statements written by hand (`coupons/services/redemptions_fast.py`). The same sum, kept beside it:
# `Balance.available_fen` in Python and `available_fen_expression` for the ORM.
AVAILABLE_FEN_SQL: Final = "credits_posted - debits_posted - debits_pending"


@dataclass(frozen=True, kw_only=True)
class Balance:
    """An account's four totals, in fen, at one moment."""

    account_id: int
    code: str
    debits_pending: int
    debits_posted: int
    credits_pending: int
    credits_posted: int

    @property
    def credit_balance_fen(self) -> int:
        """Posted credits less posted debits: what a credit-normal account (a pool) holds."""
        return self.credits_posted - self.debits_posted

    @property
    def debit_balance_fen(self) -> int:
        """Posted debits less posted credits: what a debit-normal account has paid out."""
        return self.debits_posted - self.credits_posted

    @property
    def available_fen(self) -> int:
        """What may still be debited from a `debits_must_not_exceed_credits` account."""
        return self.credits_posted - self.debits_posted - self.debits_pending


def available_fen_expression(prefix: str = "") -> CombinedExpression:
    """`Balance.available_fen` as a queryset expression, for annotations and aggregates: posted credits
    less posted and pending debits of the account at `prefix` ("" on `Account` itself, `"account__"`
    through a foreign key named `account`)."""
    return F(f"{prefix}credits_posted") - F(f"{prefix}debits_posted") - F(f"{prefix}debits_pending")


def balance_of(account: Account) -> Balance:
    """The totals of an account already loaded (no query), as a `Balance`."""
    return Balance(
        account_id=account.pk,
        code=account.code,
        debits_pending=account.debits_pending,
        debits_posted=account.debits_posted,
        credits_pending=account.credits_pending,
        credits_posted=account.credits_posted,
    )


@dataclass(frozen=True, kw_only=True)
class HistoryEntry:
    """One transfer as one account saw it, with that account's totals right after it."""

    transfer: Transfer
    side: Literal["debit", "credit"]
    balance: Balance


@dataclass(frozen=True, kw_only=True)
class HistoryPage:
    entries: list[HistoryEntry]
    next_after_id: int | None  # Pass as after_id for the next page; None on the last page.


def account_get(*, code: str) -> Account:
    try:
        return Account.objects.get(code=code)
    except Account.DoesNotExist:
        raise AccountNotFound(f"No account {code}.", account_code=code) from None


def account_balance(*, account_id: int) -> Balance:
    """The account's totals now."""
    try:
        account = Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound(f"No account with id {account_id}.", account_ids=[account_id]) from None
    return balance_of(account)


def accounts_available_fen(*, account_ids: Sequence[int]) -> dict[int, int]:
    """`Balance.available_fen` of many accounts in one query, by account id (for a batch that reads
    the balances of hundreds of accounts it then moves money from)."""
    found = dict(
        Account.objects.filter(pk__in=account_ids)
        .annotate(available=available_fen_expression())
        .values_list("pk", "available")
    )
    missing = sorted(set(account_ids) - found.keys())
    if missing:
        raise AccountNotFound(f"No account with id {', '.join(map(str, missing))}.", account_ids=missing)
    return found


def _balance_after(transfer: Transfer, account: Account) -> Balance:
    prefix = "debit_account_" if transfer.debit_account_id == account.pk else "credit_account_"
    return Balance(
        account_id=account.pk,
        code=account.code,
        debits_pending=getattr(transfer, prefix + "debits_pending"),
        debits_posted=getattr(transfer, prefix + "debits_posted"),
        credits_pending=getattr(transfer, prefix + "credits_pending"),
        credits_posted=getattr(transfer, prefix + "credits_posted"),
    )


def account_balance_at(*, account_id: int, at: datetime) -> Balance:
    """The account's totals as they stood at `at`: those recorded on its last transfer until then.

    One query for the account (with whether an archived chain touched it before `at`), one for the
    newest transfer on each side, each found by one probe of its index in each partition. Chains
    archived out of the database (docs/ledger-history.md) left the account's totals after its last
    transfer of them, read by a third query only for an account they touched. Raises
    `HistoryArchived` for a moment inside an archived chain's span of the account's transfers,
    which only the chain's dump can answer.
    """
    archived = ArchivedTotals.objects.filter(account_id=OuterRef("pk"))
    try:
        account = Account.objects.annotate(
            archived_before=Exists(archived.filter(last_at__lte=at)),
            archived_around=Exists(archived.filter(first_at__lte=at, last_at__gt=at)),
        ).get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound(f"No account with id {account_id}.", account_ids=[account_id]) from None
    if account.archived_around:
        raise HistoryArchived(
            f"Account {account.code} at {at.isoformat()} lies inside an archived chain's transfers: "
            "the chain's dump holds the answer."
        )
    newest_debit = Transfer.objects.filter(debit_account_id=account_id, created_at__lte=at).order_by(
        "-created_at", "-id"
    )[:1]
    newest_credit = Transfer.objects.filter(credit_account_id=account_id, created_at__lte=at).order_by(
        "-created_at", "-id"
    )[:1]
    newest = list(newest_debit.union(newest_credit, all=True))
    live = max(newest, key=lambda t: (t.created_at, t.pk)) if newest else None
    kept = None
    if account.archived_before:
        kept = (
            ArchivedTotals.objects.filter(account_id=account_id, last_at__lte=at)
            .order_by("-last_at", "-last_id")
            .first()
        )
    if kept is not None and (live is None or (kept.last_at, kept.last_id) > (live.created_at, live.pk)):
        return Balance(
            account_id=account.pk,
            code=account.code,
            debits_pending=kept.after_debits_pending,
            debits_posted=kept.after_debits_posted,
            credits_pending=kept.after_credits_pending,
            credits_posted=kept.after_credits_posted,
        )
    if live is None:
        return Balance(
            account_id=account.pk,
            code=account.code,
            debits_pending=0,
            debits_posted=0,
            credits_pending=0,
            credits_posted=0,
        )
    return _balance_after(live, account)


def account_balance_daily(*, account_id: int, time_zone: tzinfo) -> list[tuple[date, Balance]]:
    """The account's totals at the end of each day (in `time_zone`) on which a transfer touched it,
    oldest first: those recorded on the day's last transfer. One query (DISTINCT ON the day)."""
    try:
        account = Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound(f"No account with id {account_id}.", account_ids=[account_id]) from None
    last_of_each_day = (
        Transfer.objects.filter(Q(debit_account_id=account_id) | Q(credit_account_id=account_id))
        .annotate(day=TruncDate("created_at", tzinfo=time_zone))
        .order_by("day", "-created_at", "-id")
        .distinct("day")
    )
    return [(transfer.day, _balance_after(transfer, account)) for transfer in last_of_each_day]


def account_history(
    *, account_id: int, after_id: int | None = None, limit: int = HISTORY_PAGE_SIZE_DEFAULT
) -> HistoryPage:
    """The account's transfers, oldest first, `limit` at a time.

    Keyset pagination: pass the page's `next_after_id` as `after_id`. Each side of the account
    is read by a range scan of its (account, created_at, id) index, so a page costs the same on
    an account with ten transfers or ten million.
    """
    if not 0 < limit <= HISTORY_PAGE_SIZE_MAX:
        raise ValueError(f"limit must be 1 to {HISTORY_PAGE_SIZE_MAX}")
    try:
        account = Account.objects.get(pk=account_id)
    except Account.DoesNotExist:
        raise AccountNotFound(f"No account with id {account_id}.", account_ids=[account_id]) from None
    after = Q()
    if after_id is not None:
        cursor = Transfer.objects.filter(pk=after_id).values_list("created_at", flat=True).first()
        if cursor is None:
            raise ValueError(f"after_id {after_id} names no transfer")
        after = Q(created_at__gt=cursor) | Q(created_at=cursor, id__gt=after_id)
    sides = [
        Transfer.objects.filter(after, debit_account_id=account_id).order_by("created_at", "id")[: limit + 1],
        Transfer.objects.filter(after, credit_account_id=account_id).order_by("created_at", "id")[: limit + 1],
    ]
    page = sorted((t for side in sides for t in side), key=lambda t: (t.created_at, t.pk))[: limit + 1]
    entries = [
        HistoryEntry(
            transfer=t,
            side="debit" if t.debit_account_id == account_id else "credit",
            balance=_balance_after(t, account),
        )
        for t in page[:limit]
    ]
    next_after_id = page[limit - 1].pk if len(page) > limit else None
    return HistoryPage(entries=entries, next_after_id=next_after_id)
