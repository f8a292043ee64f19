"""Where document files live: Django's storage named "documents" (settings `STORAGES`).

By default the local file system under `var/documents/` (`DOCUMENTS_ROOT`); with `DOCUMENTS_S3_BUCKET`
set, any S3-compatible store through django-storages (see `.env.example` and docs/evidence.md).
Names are content-addressed (`StoredFile.storage_name`), so a name always holds the same bytes and
a write can be repeated safely. Nothing here is ever served from a public URL: the bytes are read
by `evidence.api`'s content view after it checked the caller may see the document.
"""

import hashlib

from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

CHUNK_BYTES = 1 << 20


def documents_storage() -> Storage:
    return storages["documents"]


def sha256_of_stored(name: str) -> str | None:
    """The SHA-256 of what storage holds under `name`, or None when nothing is there."""
    storage = documents_storage()
    if not storage.exists(name):
        return None
    digest = hashlib.sha256()
    with storage.open(name, "rb") as handle:
        while chunk := handle.read(CHUNK_BYTES):
            digest.update(chunk)
    return digest.hexdigest()


def store(name: str, data: bytes, sha256: str) -> None:
    """Make `name` hold `data` (whose hash is `sha256`). A file already there with the right hash is
    kept; one with other bytes (a write cut short earlier) is replaced."""
    storage = documents_storage()
    held = sha256_of_stored(name)
    if held == sha256:
        return
    if held is not None:
        storage.delete(name)
    saved = storage.save(name, ContentFile(data))
    # Content-addressed names are never renamed: another name would mean a file we do not track.
    assert saved == name, (saved, name)


def read(name: str) -> bytes:
    with documents_storage().open(name, "rb") as handle:
        return handle.read()
