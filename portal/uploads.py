"""Files uploaded through the portal's forms, stored as documents (`evidence.services.document_upload`)."""

from collections.abc import Iterator
from contextlib import contextmanager
from contextvars import ContextVar

from django.core.files.uploadedfile import UploadedFile

from accounts.models import User
from config.errors import ApplicationError
from evidence.errors import DocumentTooLarge
from evidence.models import Document
from evidence.services import document_size_max, document_upload, files_discard_unreferenced

# The files `upload` stored within the current `files_kept_only_if_committed` block.
_stored: ContextVar[list[str] | None] = ContextVar("portal_uploads_stored", default=None)


class UploadRefused(Exception):
    """A file of the form was refused (not a document, or too large): said beside that file."""

    def __init__(self, field: str, error: ApplicationError) -> None:
        super().__init__(error.detail)
        self.field, self.error = field, error


def upload(user: User, kind: str, file: UploadedFile, field: str) -> Document:
    """Store one uploaded file as a document of `kind`, or `UploadRefused` on the form's `field`."""
    try:
        if file.size is not None and file.size > document_size_max():
            # Refused before the file is read into memory.
            raise DocumentTooLarge(
                f"The file has {file.size} bytes; at most {document_size_max()} are accepted.",
                size_max=document_size_max(),
            )
        document = document_upload(actor=user, kind=kind, data=file.read(), name=file.name).document
    except ApplicationError as error:
        raise UploadRefused(field, error) from error
    stored = _stored.get()
    if stored is not None:
        stored.append(document.file_id)
    return document


@contextmanager
def files_kept_only_if_committed() -> Iterator[None]:
    """Around a form's transaction that uploads files and then writes what cites them: when the
    transaction is refused (it rolled back by the time the error leaves it), the files it wrote to
    storage are removed again, so a refused form leaves neither a row nor a file (the audit's storage
    check would report a file no row names)."""
    stored: list[str] = []
    token = _stored.set(stored)
    try:
        yield
    except BaseException:
        files_discard_unreferenced(stored)
        raise
    finally:
        _stored.reset(token)
