"""The computing-power coupon program: program years, applications, grants, redemptions.

It speaks to money only through `ledger.services` and `ledger.selectors`. Its models arrive with
the coupon-domain issue; this module exists so the app's migrations have a home from the start.
"""
