"""Where document files live: Django's storage named "documents" (settings `STORAGES`).

By default the local file system under `var/documents/` (`DOCUMENTS_ROOT`); with `DOCUMENTS_S3_BUCKET`
set, any S3-compatible store through django-storages (see `.env.example` and docs/evidence.md).
Names are content-addressed (`StoredFile.storage_name`), so a name always holds the same bytes and
a write can be repeated safely. Nothing here is ever served from a public URL: the bytes are read
by `evidence.api`'s content view after it checked the caller may see the document.

Every call here is a round trip to the store (a stat on disk, a request to S3), so `store` asks as
little as it can: a file its row already vouches for is checked by size only, and only a file no
row names yet (left by a write that failed, or a row that never committed) is read back and hashed.
"""

import hashlib
from collections.abc import Iterator

from django.core.files import File
from django.core.files.base import ContentFile
from django.core.files.storage import Storage, storages

CHUNK_BYTES = 1 << 20
ROOT = "documents"


class StorageNameChanged(OSError):
    """The store kept the bytes under another name than the content-addressed one we asked for."""


def documents_storage() -> Storage:
    return storages["documents"]


def size_of_stored(name: str) -> int | None:
    """How many bytes storage holds under `name`, or None when nothing is there."""
    try:
        return int(documents_storage().size(name))
    except FileNotFoundError:  # Both the file system and django-storages' S3 say "missing" so.
        return None


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


def store(name: str, data: bytes, sha256: str, *, recorded: bool) -> None:
    """Make `name` hold `data` (whose hash is `sha256`).

    `recorded`: a committed row already names this file, so it was written whole once; it is kept
    when its size is right (a changed file of the same size is the audit's to find) and written
    again when it is missing or cut. A file no row names is kept only when its bytes hash right:
    anything else there is what a failed write left, and is replaced."""
    storage = documents_storage()
    held_size = size_of_stored(name)
    if held_size == len(data) and (recorded or sha256_of_stored(name) == sha256):
        return
    if held_size is not None:
        storage.delete(name)
    saved = storage.save(name, ContentFile(data))
    if saved != name:
        # Content-addressed names are never renamed: a file under another name is one nobody tracks.
        storage.delete(saved)
        raise StorageNameChanged(f"storage kept {name} as {saved}")


def open_stored(name: str) -> File:
    """The stored file, open for reading in chunks (the caller closes it)."""
    return documents_storage().open(name, "rb")


def stored_names() -> Iterator[str]:
    """Every content-addressed name in storage (`documents/ab/cd/<sha256>`), walked directory by
    directory: one listing per directory, never a read of a file."""
    storage = documents_storage()
    try:
        first_level, _ = storage.listdir(ROOT)
    except FileNotFoundError:  # Nothing stored yet on the file system (S3 lists nothing instead).
        return
    for first in sorted(first_level):
        second_level, _ = storage.listdir(f"{ROOT}/{first}")
        for second in sorted(second_level):
            _, files = storage.listdir(f"{ROOT}/{first}/{second}")
            for file_name in sorted(files):
                yield f"{ROOT}/{first}/{second}/{file_name}"
