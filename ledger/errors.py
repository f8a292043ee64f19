"""Errors the ledger reports. Each names what failed, with a stable code, and none is a 500."""

from config.errors import ApplicationError


class LedgerError(ApplicationError):
    code = "ledger_error"
    http_status = 409


class InvalidTransfer(LedgerError):
    """The transfer request itself is malformed. `field` names the offending field."""

    code = "validation_error"
    http_status = 400
    title = "The transfer is not valid."

    def __init__(self, detail: str, *, field: str) -> None:
        super().__init__(detail, field=field)
        self.field = field


class AccountNotFound(LedgerError):
    code = "account_not_found"
    http_status = 404
    title = "No such account."


class AccountExistsWithDifferentFlags(LedgerError):
    code = "account_exists_with_different_flags"
    title = "An account with this code exists with other flags."


class AccountClosed(LedgerError):
    code = "account_closed"
    title = "The account is closed."


class ExceedsCredits(LedgerError):
    """A debit would take a `debits_must_not_exceed_credits` account past its credits."""

    code = "exceeds_credits"
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

    code = "exceeds_debits"
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
    code = "overflow"
    title = "An account total would leave the 64-bit range."


class TransferExistsWithDifferentFields(LedgerError):
    """The idempotency key was used before for a transfer with other content."""

    code = "transfer_exists_with_different_fields"
    title = "A transfer with this key exists with different fields."

    def __init__(self, *, key: str, field: str) -> None:
        super().__init__(f"Transfer {key!r} exists with a different {field}.", key=key, field=field)
        self.key = key
        self.field = field


class PendingTransferNotFound(LedgerError):
    code = "pending_transfer_not_found"
    http_status = 404
    title = "No such pending transfer."


class PendingTransferAlreadyResolved(LedgerError):
    """The pending transfer was already posted, voided or expired."""

    code = "pending_transfer_already_resolved"
    title = "The pending transfer was already resolved."

    def __init__(self, detail: str, *, pending_id: int, resolved_by: str) -> None:
        super().__init__(detail, pending_id=pending_id, resolved_by=resolved_by)
        self.pending_id = pending_id
        self.resolved_by = resolved_by


class PendingTransferExpired(LedgerError):
    code = "pending_transfer_expired"
    title = "The pending transfer has expired."


class ExceedsPendingTransferAmount(LedgerError):
    code = "exceeds_pending_transfer_amount"
    title = "The amount exceeds the pending transfer's amount."
