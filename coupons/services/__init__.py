"""Writes of the coupon program, one module per entity: years, applications, grants,
redemptions, claims, settlements. Every money movement goes through `ledger.services`.

Lock order, the same everywhere so that no two writers wait on each other in a cycle:
application → grant → redemption or claim (by id) → invoice file (an advisory lock,
`invoices.invoice_file_lock`) → ledger accounts (by id, inside the ledger). A redemption batch locks
all its grants (by id), then their timed-out holds (by id), then its invoice files (by hash), before
its first item touches the ledger (`redemptions.redemptions_batch_prepare`): the ledger accounts its
items lock stay locked until it commits, so no item may then wait for a grant, hold or file lock
(its items judge at the batch's one moment, so they find no hold to release).
Settlements lock the provider row first, then its redemptions by id; an enterprise settlement
locks the enterprise row, then its claims by id.
"""
