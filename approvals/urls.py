"""The approvals app's endpoints under /api/v1/."""

from approvals.api import urlpatterns

__all__ = ["urlpatterns"]
