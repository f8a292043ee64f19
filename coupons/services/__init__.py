"""Writes of the coupon program, one module per entity: years, applications, grants,
redemptions, claims, settlements. Every money movement goes through `ledger.services`.

Lock order, the same everywhere so that no two writers wait on each other in a cycle:
application → grant → redemption or claim (by id) → ledger accounts (by id, inside the ledger).
Settlements lock the provider row first, then its redemptions by id; an enterprise settlement
locks the enterprise row, then its claims by id.
"""
