"""The documents' refusals, each with the stable code the API answers with (listed in the schema's `Problem`)."""

from config.errors import ApplicationError


class UnsupportedDocument(ApplicationError):
    """The bytes are not a complete PDF, OFD, JPEG or PNG file (whatever the name or header say)."""

    code = "unsupported_document"
    http_status = 400
    title = "The file is not a PDF, OFD, JPEG or PNG document."


class DocumentTooLarge(ApplicationError):
    code = "document_too_large"
    http_status = 413
    title = "The file is larger than the service accepts."


class NotMultipart(ApplicationError):
    """An upload sent as JSON or anything but multipart/form-data."""

    code = "unsupported_media_type"
    http_status = 415
    title = "Send the document as multipart/form-data."
