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
