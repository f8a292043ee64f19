"""Refusals about people and organisations, each with the stable code the API answers with."""

from config.errors import PermissionDenied


class FourEyes(PermissionDenied):
    """The person who asked for a change may not also decide it."""

    code = "four_eyes"
    http_status = 403
    title = "The same person may not take both steps."
