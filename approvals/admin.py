"""Approval requests in the admin: read-only, with approve and reject actions that go through the
service, so the admin enforces the same four eyes as the API and the portal (a superuser holds every
role, but never decides a request of their own)."""

from django.contrib import admin, messages
from django.db.models import QuerySet
from django.http import HttpRequest

from accounts.models import User
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve, approval_request_reject
from config.errors import ApplicationError
from ledger.admin import ReadOnlyAdmin

ADMIN_REJECT_REASON = "Rejected in the admin."


@admin.register(ApprovalRequest)
class ApprovalRequestAdmin(ReadOnlyAdmin):
    list_display = ["id", "action", "target", "status", "requested_by", "requested_at", "decided_by", "decided_at"]
    list_filter = ["status", "action"]
    search_fields = ["target", "reason"]
    actions = ["approve_selected", "reject_selected"]

    def _decide(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest], *, approve: bool) -> None:
        user = request.user
        assert isinstance(user, User)
        for item in queryset.order_by("pk"):
            try:
                if approve:
                    approval_request_approve(request_id=item.pk, decider=user)
                else:
                    approval_request_reject(request_id=item.pk, decider=user, reason=ADMIN_REJECT_REASON)
            except ApplicationError as error:
                self.message_user(request, f"Request {item.pk}: {error.detail}", level=messages.ERROR)
            else:
                self.message_user(request, f"Request {item.pk}: {'approved' if approve else 'rejected'}.")

    @admin.action(description="Approve the selected requests (carries the actions out)")
    def approve_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=True)

    @admin.action(description="Reject the selected requests")
    def reject_selected(self, request: HttpRequest, queryset: QuerySet[ApprovalRequest]) -> None:
        self._decide(request, queryset, approve=False)
