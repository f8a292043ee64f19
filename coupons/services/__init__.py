"""Writes of the coupon program, one module per entity: years, applications, grants,
redemptions, claims, settlements. Every money movement goes through `ledger.services`.

Lock order, the same everywhere so that no two writers wait on each other in a cycle:
contract (an advisory lock on provider and contract number, `stacking.contract_lock`) → enterprise →
application → program year → grant → redemption or claim (by id) → invoice file (an advisory lock,
`invoices.invoice_file_lock`) → ledger accounts (by id, inside the ledger). A submission
(`application_submit`), an approval (`application_approve`, before the application's row) and the
year-end carry (`year_end.application_settle_at_close`) take the contract's lock first: an approval
holding it inserts its grant, whose foreign key waits on the enterprise's row, and a carry holds the
enterprise while it waits for the application. A relaxed cap's grant takes the enterprise (FOR NO KEY
UPDATE) before the year's row, as a submission does. A request's
idempotency key comes before all of these (`api.idempotency`). A redemption batch takes its items'
keys (in one order, `api.idempotency.idempotency_keys_lock`), then all its grants (by id), its invoice
files (by hash), their timed-out holds (by id), and every ledger account it will touch (by id, at
once), before its first item (`redemptions.redemptions_batch_prepare`): those stay locked until it
commits, so no item may then wait for a key, grant, file, hold or account that another writer holds
while waiting for the batch (its items judge at the batch's one moment, so they find no hold to
release).
The batched grant expiry (`grants.grants_expire_batch`, the annual reset's) locks all its grants at once
(by id), then their holds and their submitted claims (each kind at once, by id), then ledger accounts.
Settlements lock the provider row first, then its redemptions by id; an enterprise settlement
locks the enterprise row, then its claims by id.
A submission, a year's creation and a year's opening hold a key share of their program's row
(`years.program_active_lock`, FOR KEY SHARE: shares never wait for each other); only
`years.program_close` locks that row for update, and it takes nothing else, so the close waits for
those in flight and adds no cycle.
"""
