"""Audits: auditors list runs and their findings, and start one (it runs in the background)."""

from django.urls import path
from drf_spectacular.utils import extend_schema
from rest_framework import generics, serializers, status
from rest_framework.permissions import BasePermission, IsAuthenticated
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from accounts.models import Role, User
from api.serializers import EmptyRequest, validated
from config.replica import ListFromReplica
from coupons.models import AuditRun
from coupons.services.audit import audit_run_start


class IsAuditor(BasePermission):
    """An auditor whose roles reach every program: an audit run checks every program year's books at
    once, so an auditor limited to programs (`User.programs`) is refused (403)."""

    message = "This needs the auditor role in every program."

    def has_permission(self, request: Request, view: APIView) -> bool:
        user = request.user
        return isinstance(user, User) and user.has_role(Role.AUDITOR) and user.program_limit is None


class CheckSerializer(serializers.Serializer):
    name = serializers.CharField()
    ok = serializers.BooleanField()
    details = serializers.JSONField(help_text='{"examined", "findings"} or {"error"} when the check could not run.')


class AuditRunSerializer(serializers.ModelSerializer):
    checks = CheckSerializer(many=True, read_only=True)

    class Meta:
        model = AuditRun
        fields = ["id", "status", "checks", "started_at", "finished_at"]
        read_only_fields = fields


class AuditRunList(ListFromReplica, generics.ListCreateAPIView):
    permission_classes = [IsAuthenticated, IsAuditor]
    serializer_class = AuditRunSerializer
    queryset = AuditRun.objects.order_by("-id")
    filterset_fields = ["status"]
    ordering = ["-id"]

    @extend_schema(
        request=None,
        responses={201: AuditRunSerializer},
        summary="Start an audit (auditor)",
        description="Creates a `running` run and queues it; poll GET /audits/{id}/ for its findings.",
    )
    def post(self, request: Request, *args: object, **kwargs: object) -> Response:
        validated(EmptyRequest, request.data)
        user = caller(request)
        run = audit_run_start(started_by=user)
        return Response(AuditRunSerializer(run).data, status=status.HTTP_201_CREATED)


class AuditRunDetail(generics.RetrieveAPIView):
    permission_classes = [IsAuthenticated, IsAuditor]
    serializer_class = AuditRunSerializer
    queryset = AuditRun.objects.all()


urlpatterns = [
    path("audits/", AuditRunList.as_view(), name="audit-list"),
    path("audits/<int:pk>/", AuditRunDetail.as_view(), name="audit-detail"),
]
