"""Files uploaded through the portal's forms, stored as documents (`evidence.services.document_upload`)."""

from django.core.files.uploadedfile import UploadedFile

from accounts.models import User
from config.errors import ApplicationError
from evidence.errors import DocumentTooLarge
from evidence.models import Document
from evidence.services import document_size_max, document_upload


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
        return document_upload(actor=user, kind=kind, data=file.read(), name=file.name).document
    except ApplicationError as error:
        raise UploadRefused(field, error) from error
