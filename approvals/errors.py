"""Refusals of the approvals app: the four-eyes refusal, one class for the whole service."""

from config.errors import FourEyes

__all__ = ["FourEyes"]
