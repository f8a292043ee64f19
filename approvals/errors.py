"""Refusals of the approvals app, with their stable codes."""

from config.errors import ApplicationError


class FourEyes(ApplicationError):
    code = "four_eyes"
    http_status = 403
    title = "The same person may not take both steps."
