"""The documents' part of the nightly audit: storage still holds what the rows say, byte for byte.

Knows nothing of what cites a document (the coupon audit calls it, as it calls the ledger's chain
check). Each file is read back in chunks and hashed, a batch of rows at a time, so memory stays flat
however many files there are; a store with millions of files makes this the audit's slowest check,
and the one to move to its own schedule first.
"""

import datetime as dt
from collections.abc import Iterator
from typing import Any, Final

from django.utils import timezone

from evidence import storage
from evidence.models import StoredFile

ROWS_BATCH: Final = 500
# A file written by an upload whose row has not committed yet is not an orphan: only files older
# than this with no row are reported.
UNREFERENCED_AFTER: Final = dt.timedelta(hours=1)
_HEX: Final = frozenset("0123456789abcdef")

Finding = dict[str, Any]


def _batches(names: Iterator[str], size: int) -> Iterator[list[str]]:
    batch: list[str] = []
    for name in names:
        batch.append(name)
        if len(batch) == size:
            yield batch
            batch = []
    if batch:
        yield batch


def _sha256_of_name(name: str) -> str | None:
    """The hash a content-addressed name stands for, or None when the name is not one of ours."""
    parts = name.split("/")
    if len(parts) != 4:
        return None
    digest = parts[3]
    if len(digest) != 64 or not set(digest) <= _HEX or parts[1:3] != [digest[:2], digest[2:4]]:
        return None
    return digest


def stored_files_findings(*, findings_max: int, now: dt.datetime | None = None) -> tuple[list[Finding], int]:
    """Every StoredFile's bytes in storage still hash to its sha256 (`missing`, or `changed` with
    what storage holds), and no file sits in storage without a row (`unreferenced`, older than
    UNREFERENCED_AFTER: left by an upload whose row insert failed; harmless, as nothing counts it,
    and adopted by the next upload of the same bytes). Returns the findings (at most
    `findings_max`) and how many rows were examined."""
    now = now or timezone.now()
    findings: list[Finding] = []
    examined = 0
    for row in StoredFile.objects.order_by("pk").iterator(chunk_size=ROWS_BATCH):
        examined += 1
        if len(findings) >= findings_max:
            continue
        name = row.storage_name
        held_size = storage.size_of_stored(name)
        if held_size is None:
            findings.append({"sha256": row.sha256, "problem": "missing", "size": row.size})
            continue
        held_sha256 = storage.sha256_of_stored(name) if held_size == row.size else None
        if held_sha256 != row.sha256:
            findings.append(
                {
                    "sha256": row.sha256,
                    "problem": "changed",
                    "size": row.size,
                    "size_in_storage": held_size,
                    "sha256_in_storage": held_sha256,
                }
            )
    documents = storage.documents_storage()
    for batch in _batches(storage.stored_names(), ROWS_BATCH):
        if len(findings) >= findings_max:
            break
        digests = {name: _sha256_of_name(name) for name in batch}
        known = set(StoredFile.objects.filter(pk__in=[d for d in digests.values() if d]).values_list("pk", flat=True))
        for name, digest in digests.items():
            if digest in known or len(findings) >= findings_max:
                continue
            try:
                modified = documents.get_modified_time(name)
            except FileNotFoundError:  # Removed since the listing: nothing to report.
                continue
            if now - modified < UNREFERENCED_AFTER:
                continue
            findings.append({"name": name, "problem": "unreferenced"})
    return findings, examined
