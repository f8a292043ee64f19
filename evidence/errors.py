"""The documents' refusals, each with the stable code the API answers with (listed in the schema's `Problem`)."""

from config.errors import ApplicationError, ErrorCode


class UnsupportedDocument(ApplicationError):
    """The bytes are not a complete PDF, OFD, JPEG or PNG file (whatever the name or header say)."""

    code = ErrorCode.UNSUPPORTED_DOCUMENT
    http_status = 400
    title = "The file is not a PDF, OFD, JPEG or PNG document."


class DocumentTooLarge(ApplicationError):
    code = ErrorCode.DOCUMENT_TOO_LARGE
    http_status = 413
    title = "The file is larger than the service accepts."


class NotMultipart(ApplicationError):
    """An upload sent as JSON or anything but multipart/form-data."""

    code = ErrorCode.UNSUPPORTED_MEDIA_TYPE
    http_status = 415
    title = "Send the document as multipart/form-data."
