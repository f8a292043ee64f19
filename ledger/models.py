"""A small double-entry ledger, in the model that TigerBeetle proved. It knows nothing of coupons.

An `Account` keeps four running totals in fen: `debits_pending`, `debits_posted`,
`credits_pending` and `credits_posted`. A flag may limit it: with
`debits_must_not_exceed_credits`, debits (pending and posted) may never exceed posted credits;
`credits_must_not_exceed_debits` is the mirror. The flags are CHECK constraints, so no code path,
however concurrent, can overdraw a limited account: the UPDATE that would break the limit fails
inside its transaction.

A `Transfer` moves one amount from one debit account to one credit account. Transfers are
insert-only (a trigger refuses UPDATE and DELETE), carry a unique idempotency `key`, and record
both accounts' totals right after they applied, so a balance at any past moment is one indexed
lookup. A `pending` transfer holds funds; a later `post_pending` posts all or part of it, or a
`void_pending` releases it (on request, or when its timeout passes). A unique index lets each
pending transfer be resolved once.

Rows are only written by `ledger.services`, which locks accounts in id order and lets PostgreSQL
do the arithmetic; `ledger.selectors` reads them.

Transfers and their seals are partitioned in PostgreSQL by chain (one chain per program year), so a
closed year can be archived out of the database (migration 0004, `ledger.partitions`,
`ledger.archive`, docs/ledger-history.md); `TransferKey` keeps keys unique across the partitions.
"""

import pgtrigger
from django.db import models
from django.db.models import F, Q

ACCOUNT_CODE_LENGTH_MAX = 100
KEY_LENGTH_MAX = 200
TRANSFER_REASON_LENGTH_MAX = 64
CHAIN_LENGTH_MAX = 32
DEFAULT_CHAIN = "ledger"


class Account(models.Model):
    """An account with running totals in fen. Totals change only through transfers."""

    code = models.CharField(
        max_length=ACCOUNT_CODE_LENGTH_MAX, unique=True, help_text="Human-readable, e.g. pool:2026."
    )
    debits_pending = models.BigIntegerField(default=0)
    debits_posted = models.BigIntegerField(default=0)
    credits_pending = models.BigIntegerField(default=0)
    credits_posted = models.BigIntegerField(default=0)
    debits_must_not_exceed_credits = models.BooleanField(default=False)
    credits_must_not_exceed_debits = models.BooleanField(default=False)
    closed = models.BooleanField(default=False, help_text="A closed account takes no new transfers but voids.")
    created_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [
            models.CheckConstraint(
                condition=Q(debits_pending__gte=0, debits_posted__gte=0, credits_pending__gte=0, credits_posted__gte=0),
                name="ledger_account_totals_not_negative",
            ),
            models.CheckConstraint(
                condition=Q(debits_must_not_exceed_credits=False)
                | Q(credits_posted__gte=F("debits_pending") + F("debits_posted")),
                name="ledger_account_debits_must_not_exceed_credits",
            ),
            models.CheckConstraint(
                condition=Q(credits_must_not_exceed_debits=False)
                | Q(debits_posted__gte=F("credits_pending") + F("credits_posted")),
                name="ledger_account_credits_must_not_exceed_debits",
            ),
            models.CheckConstraint(
                condition=~Q(debits_must_not_exceed_credits=True, credits_must_not_exceed_debits=True),
                name="ledger_account_one_limit_at_most",
            ),
        ]

    def __str__(self) -> str:
        return self.code


class TransferKind(models.TextChoices):
    POSTED = "posted", "posted"
    PENDING = "pending", "pending (holds funds)"
    POST_PENDING = "post_pending", "posts a pending transfer"
    VOID_PENDING = "void_pending", "voids a pending transfer"


RESOLVING_KINDS = (TransferKind.POST_PENDING, TransferKind.VOID_PENDING)


class Transfer(models.Model):
    """One movement of `amount_fen` from `debit_account` to `credit_account`. Never changed."""

    key = models.CharField(max_length=KEY_LENGTH_MAX, help_text="Idempotency key, chosen by the caller; unique.")
    # The composite indexes below serve these foreign keys; single-column ones would only slow inserts.
    debit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_index=False)
    credit_account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+", db_index=False)
    amount_fen = models.BigIntegerField()
    kind = models.CharField(max_length=16, choices=TransferKind.choices)
    pending = models.ForeignKey(
        "self",
        on_delete=models.PROTECT,
        null=True,
        blank=True,
        related_name="+",
        db_index=False,  # Served by the unique index ledger_transfer_pending_resolved_once.
        # A partitioned table's id alone is not unique to PostgreSQL, so no foreign key can name it:
        # the trigger ledger_transfer_guard refuses a pending_id naming no pending transfer of the
        # same chain (migration 0004, docs/ledger-history.md).
        db_constraint=False,
        help_text="The pending transfer resolved.",
    )
    timeout_s = models.IntegerField(null=True, blank=True, help_text="Pending only: seconds until the hold expires.")
    expires_at = models.DateTimeField(null=True, blank=True)
    reason = models.CharField(
        max_length=TRANSFER_REASON_LENGTH_MAX, help_text="Machine word saying why, e.g. grant_issue."
    )
    chain = models.CharField(
        max_length=CHAIN_LENGTH_MAX,
        default=DEFAULT_CHAIN,
        db_default=DEFAULT_CHAIN,
        help_text="The hash chain that seals it (the coupon program keeps one per program year, e.g. 2026).",
    )
    metadata = models.JSONField(default=dict, blank=True)
    # The database's clock_timestamp() at insert, taken after both accounts are locked, so along
    # one account it grows with the id.
    created_at = models.DateTimeField()

    # Both accounts' totals right after this transfer applied.
    debit_account_debits_pending = models.BigIntegerField()
    debit_account_debits_posted = models.BigIntegerField()
    debit_account_credits_pending = models.BigIntegerField()
    debit_account_credits_posted = models.BigIntegerField()
    credit_account_debits_pending = models.BigIntegerField()
    credit_account_debits_posted = models.BigIntegerField()
    credit_account_credits_pending = models.BigIntegerField()
    credit_account_credits_posted = models.BigIntegerField()

    class Meta:
        constraints = [
            models.CheckConstraint(condition=Q(amount_fen__gt=0), name="ledger_transfer_amount_positive"),
            models.CheckConstraint(
                condition=~Q(debit_account=F("credit_account")), name="ledger_transfer_accounts_distinct"
            ),
            models.CheckConstraint(condition=Q(kind__in=TransferKind.values), name="ledger_transfer_kind_valid"),
            models.CheckConstraint(
                condition=Q(kind__in=RESOLVING_KINDS, pending__isnull=False)
                | (~Q(kind__in=RESOLVING_KINDS) & Q(pending__isnull=True)),
                name="ledger_transfer_pending_iff_resolving",
            ),
            models.CheckConstraint(
                condition=Q(kind=TransferKind.PENDING) | Q(timeout_s__isnull=True, expires_at__isnull=True),
                name="ledger_transfer_timeout_only_on_pending",
            ),
            models.CheckConstraint(
                condition=Q(timeout_s__isnull=True) | Q(timeout_s__gt=0), name="ledger_transfer_timeout_positive"
            ),
            # Each pending transfer is posted or voided at most once, whatever races. A resolution is
            # in its pending transfer's chain, and a unique index on a partitioned table must hold
            # the partition key: (pending, chain) is as unique as pending alone.
            models.UniqueConstraint(
                fields=["pending", "chain"],
                condition=Q(pending__isnull=False),
                name="ledger_transfer_pending_resolved_once",
            ),
        ]
        indexes = [
            # Balance at a moment and history: the latest transfer of one account up to a time.
            models.Index(fields=["debit_account", "created_at", "id"], name="ledger_transfer_debit_time"),
            models.Index(fields=["credit_account", "created_at", "id"], name="ledger_transfer_credit_time"),
            models.Index(
                fields=["expires_at"],
                condition=Q(kind=TransferKind.PENDING, expires_at__isnull=False),
                name="ledger_transfer_pending_expiry",
            ),
            # Lookups by idempotency key (the services, the coupon audit's joins), one probe per
            # partition; uniqueness is TransferKey's, across every partition.
            models.Index(fields=["key"], name="ledger_transfer_key"),
        ]
        triggers = [
            pgtrigger.Protect(
                name="transfer_insert_only",
                operation=pgtrigger.Update | pgtrigger.Delete,
            ),
        ]

    def __str__(self) -> str:
        return f"{self.key}: {self.amount_fen} fen {self.kind}"


class TransferSeal(models.Model):
    """One link of the tamper-evident chain: SHA-256 over the previous link and the transfer's
    canonical content (see `ledger.chain`). Written by the sealing job, a few seconds behind the
    writers, so the chain never serialises them. Insert-only."""

    # No foreign key in the database (a partitioned table's id alone is not unique to PostgreSQL):
    # the trigger ledger_transferseal_guard refuses a seal naming no transfer of its chain.
    transfer = models.OneToOneField(
        Transfer, on_delete=models.PROTECT, primary_key=True, related_name="+", db_constraint=False
    )
    chain = models.CharField(max_length=CHAIN_LENGTH_MAX, default=DEFAULT_CHAIN)
    sequence = models.BigIntegerField()
    link = models.CharField(max_length=64)
    sealed_at = models.DateTimeField(auto_now_add=True)

    class Meta:
        constraints = [models.UniqueConstraint(fields=["chain", "sequence"], name="ledger_seal_sequence_per_chain")]
        triggers = [pgtrigger.Protect(name="seal_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"#{self.sequence} {self.link[:12]}…"


class ChainHead(models.Model):
    """The end of one chain. The sealer locks the heads it extends, so sealers queue, writers never do.

    `watermark_id` (kept on the head of the default chain, which every sealer locks first): every
    transfer with an id up to it is sealed and old enough that no transaction still writing could
    hold a smaller id; the sealer looks only above it.
    """

    chain = models.CharField(max_length=CHAIN_LENGTH_MAX, unique=True, default=DEFAULT_CHAIN)
    last_sequence = models.BigIntegerField(default=0)
    last_link = models.CharField(max_length=64, default="")
    watermark_id = models.BigIntegerField(default=0)

    def __str__(self) -> str:
        return f"{self.chain} #{self.last_sequence}"


class TransferKey(models.Model):
    """Every transfer's idempotency key and id, in one table that is not partitioned, so each is
    unique across every chain's partition (PostgreSQL enforces a unique index of a partitioned
    table only per partition unless it holds the partition key). A trigger on `ledger_transfer`
    inserts the row with the transfer, so no insert, by the services or by hand, escapes it.
    Insert-only; an archived chain's keys stay, so no later transfer can take one of them.

    Rows outside the ledger that name a transfer (`coupons` holds) reference `transfer_id` here.
    """

    key = models.CharField(max_length=KEY_LENGTH_MAX, primary_key=True)
    transfer_id = models.BigIntegerField(unique=True)
    chain = models.CharField(max_length=CHAIN_LENGTH_MAX)

    class Meta:
        triggers = [pgtrigger.Protect(name="transfer_key_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)]

    def __str__(self) -> str:
        return f"{self.key} -> {self.transfer_id}"


class ChainArchive(models.Model):
    """A chain whose partitions were detached and dumped by `manage.py ledger_archive`: what the
    dump holds (its manifest, and the manifest's sha256), so the audit reports the chain as
    archived rather than missing."""

    chain = models.CharField(max_length=CHAIN_LENGTH_MAX, unique=True)
    archived_at = models.DateTimeField(auto_now_add=True)
    transfers = models.BigIntegerField()
    first_id = models.BigIntegerField(null=True)
    last_id = models.BigIntegerField(null=True)
    head_sequence = models.BigIntegerField()
    head_link = models.CharField(max_length=64)
    manifest = models.JSONField()
    manifest_sha256 = models.CharField(max_length=64)
    dropped = models.BooleanField(default=False, help_text="The detached tables were dropped (--drop).")

    def __str__(self) -> str:
        return f"{self.chain} archived"


class ArchivedTotals(models.Model):
    """What an archived chain's transfers did to one account, kept when they leave the database:
    the sums of its legs (the audit adds them to the live transfers' sums) and its totals after its
    last transfer of the chain (`account_balance_at` answers from them once the chain is gone)."""

    chain = models.CharField(max_length=CHAIN_LENGTH_MAX)
    account = models.ForeignKey(Account, on_delete=models.PROTECT, related_name="+")
    debits_posted = models.BigIntegerField()
    credits_posted = models.BigIntegerField()
    debits_pending = models.BigIntegerField()
    credits_pending = models.BigIntegerField()
    first_at = models.DateTimeField()
    last_at = models.DateTimeField()
    last_id = models.BigIntegerField()
    after_debits_pending = models.BigIntegerField()
    after_debits_posted = models.BigIntegerField()
    after_credits_pending = models.BigIntegerField()
    after_credits_posted = models.BigIntegerField()

    class Meta:
        constraints = [models.UniqueConstraint(fields=["account", "chain"], name="ledger_archivedtotals_once")]
        triggers = [
            pgtrigger.Protect(name="archived_totals_insert_only", operation=pgtrigger.Update | pgtrigger.Delete)
        ]

    def __str__(self) -> str:
        return f"{self.chain} {self.account_id}"
