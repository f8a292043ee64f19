"""Refusals about people and organisations, each with the stable code the API answers with."""

from config.errors import ApplicationError


class FourEyes(ApplicationError):
    code = "four_eyes"
    http_status = 403
    title = "The same person may not take both steps."
