"""Errors the ledger reports. Each names what failed, with a stable code, and none is a 500."""

from config.errors import ApplicationError, ErrorCode


class LedgerError(ApplicationError):
    code = ErrorCode.LEDGER_ERROR
    http_status = 409


class InvalidTransfer(LedgerError):
    """The transfer request itself is malformed. `field` names the offending field."""

    code = ErrorCode.VALIDATION_ERROR
    http_status = 400
    title = "The transfer is not valid."

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, field=field)
        self.field = field


class AccountNotFound(LedgerError):
    code = ErrorCode.ACCOUNT_NOT_FOUND
    http_status = 404
    title = "No such account."


class AccountExistsWithDifferentFlags(LedgerError):
    code = ErrorCode.ACCOUNT_EXISTS_WITH_DIFFERENT_FLAGS
    title = "An account with this code exists with other flags."


class AccountClosed(LedgerError):
    code = ErrorCode.ACCOUNT_CLOSED
    title = "The account is closed."


class ExceedsCredits(LedgerError):
    """A debit would take a `debits_must_not_exceed_credits` account past its credits."""

    code = ErrorCode.EXCEEDS_CREDITS
    title = "The debit exceeds the account's credits."

    def __init__(self, *, account_code: str, available_fen: int, amount_fen: int) -> None:
        super().__init__(
            f"Account {account_code} has {available_fen} fen available; the transfer needs {amount_fen}.",
            account_code=account_code,
            available_fen=available_fen,
            amount_fen=amount_fen,
        )
        self.account_code = account_code
        self.available_fen = available_fen
        self.amount_fen = amount_fen


class ExceedsDebits(LedgerError):
    """A credit would take a `credits_must_not_exceed_debits` account past its debits."""

    code = ErrorCode.EXCEEDS_DEBITS
    title = "The credit exceeds the account's debits."

    def __init__(self, *, account_code: str, available_fen: int, amount_fen: int) -> None:
        super().__init__(
            f"Account {account_code} can take {available_fen} fen more credit; the transfer needs {amount_fen}.",
            account_code=account_code,
            available_fen=available_fen,
            amount_fen=amount_fen,
        )
        self.account_code = account_code
        self.available_fen = available_fen
        self.amount_fen = amount_fen


class Overflow(LedgerError):
    code = ErrorCode.OVERFLOW
    title = "An account total would leave the 64-bit range."


class TransferExistsWithDifferentFields(LedgerError):
    """The idempotency key was used before for a transfer with other content."""

    code = ErrorCode.TRANSFER_EXISTS_WITH_DIFFERENT_FIELDS
    title = "A transfer with this key exists with different fields."

    def __init__(self, *, key: str, field: str) -> None:
        super().__init__(f"Transfer {key!r} exists with a different {field}.", key=key, field=field)
        self.key = key
        self.field = field


class PendingTransferNotFound(LedgerError):
    code = ErrorCode.PENDING_TRANSFER_NOT_FOUND
    http_status = 404
    title = "No such pending transfer."


class PendingTransferAlreadyResolved(LedgerError):
    """The pending transfer was already posted, voided or expired."""

    code = ErrorCode.PENDING_TRANSFER_ALREADY_RESOLVED
    title = "The pending transfer was already resolved."

    def __init__(self, detail: str, *, pending_id: int, resolved_by: str) -> None:
        super().__init__(detail, pending_id=pending_id, resolved_by=resolved_by)
        self.pending_id = pending_id
        self.resolved_by = resolved_by


class PendingTransferExpired(LedgerError):
    code = ErrorCode.PENDING_TRANSFER_EXPIRED
    title = "The pending transfer has expired."


class ExceedsPendingTransferAmount(LedgerError):
    code = ErrorCode.EXCEEDS_PENDING_TRANSFER_AMOUNT
    title = "The amount exceeds the pending transfer's amount."


class ArchiveRefused(LedgerError):
    """`manage.py ledger_archive` will not archive this chain; the detail says why."""

    title = "The chain cannot be archived."


class HistoryArchived(LedgerError):
    """The answer lies in an archived chain's transfers, which are no longer in the database."""

    title = "That part of the history is archived."


class RepartitionRefused(LedgerError):
    """`manage.py ledger_repartition` will not move this chain's rows; the detail says why."""

    title = "The chain's rows cannot be moved to partitions of their own."
