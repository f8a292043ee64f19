"""Read-only admin for the ledger: money moves only through ledger.services."""

from django.contrib import admin
from django.http import HttpRequest

from config.money import yuan_text
from ledger.models import Account, ArchivedTotals, ChainArchive, ChainHead, Transfer, TransferKey, TransferSeal


class ReadOnlyAdmin(admin.ModelAdmin):
    def has_add_permission(self, request: HttpRequest) -> bool:
        return False

    def has_change_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False

    def has_delete_permission(self, request: HttpRequest, obj: object = None) -> bool:
        return False


@admin.register(Account)
class AccountAdmin(ReadOnlyAdmin):
    list_display = [
        "code",
        "debits_posted_yuan",
        "credits_posted_yuan",
        "debits_pending_yuan",
        "credits_pending_yuan",
        "closed",
    ]
    list_filter = ["closed", "debits_must_not_exceed_credits", "credits_must_not_exceed_debits"]
    search_fields = ["code"]

    @admin.display(description="debits posted")
    def debits_posted_yuan(self, account: Account) -> str:
        return yuan_text(account.debits_posted)

    @admin.display(description="credits posted")
    def credits_posted_yuan(self, account: Account) -> str:
        return yuan_text(account.credits_posted)

    @admin.display(description="debits pending")
    def debits_pending_yuan(self, account: Account) -> str:
        return yuan_text(account.debits_pending)

    @admin.display(description="credits pending")
    def credits_pending_yuan(self, account: Account) -> str:
        return yuan_text(account.credits_pending)


@admin.register(Transfer)
class TransferAdmin(ReadOnlyAdmin):
    list_display = ["id", "key", "debit_account", "credit_account", "amount_yuan", "kind", "reason", "created_at"]
    list_filter = ["kind", "reason"]
    search_fields = ["key", "debit_account__code", "credit_account__code"]
    list_select_related = ["debit_account", "credit_account"]
    date_hierarchy = "created_at"

    @admin.display(description="amount")
    def amount_yuan(self, transfer: Transfer) -> str:
        return yuan_text(transfer.amount_fen)


@admin.register(TransferSeal)
class TransferSealAdmin(ReadOnlyAdmin):
    list_display = ["sequence", "transfer", "link", "sealed_at"]
    list_select_related = ["transfer"]
    search_fields = ["link", "transfer__key"]


@admin.register(ChainHead)
class ChainHeadAdmin(ReadOnlyAdmin):
    list_display = ["last_sequence", "last_link", "watermark_id"]


@admin.register(TransferKey)
class TransferKeyAdmin(ReadOnlyAdmin):
    """Every transfer's key, across every chain (docs/ledger-history.md)."""

    list_display = ["key", "transfer_id", "chain"]
    search_fields = ["key"]
    list_filter = ["chain"]


@admin.register(ArchivedTotals)
class ArchivedTotalsAdmin(ReadOnlyAdmin):
    """What an archived chain's transfers did to each account (manage.py ledger_archive)."""

    list_display = ["chain", "account", "debits_posted", "credits_posted", "first_at", "last_at"]
    list_filter = ["chain"]


@admin.register(ChainArchive)
class ChainArchiveAdmin(ReadOnlyAdmin):
    """The chains `manage.py ledger_archive` detached and dumped, with their manifests."""

    list_display = ["chain", "archived_at"]
