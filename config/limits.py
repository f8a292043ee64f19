"""Limits every app shares, with their units. An app's own limits live beside what they limit."""

from typing import Final

# The longest written reason or note a person gives (a rejection, a dispute, a review note, the
# reason of an approval request), in characters: the API, the services and the portal's forms all
# take this many. A ledger transfer's machine reason is another, shorter thing
# (ledger/models.py TRANSFER_REASON_LENGTH_MAX).
REASON_LENGTH_MAX: Final = 2_000
