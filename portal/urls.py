"""The portal's pages. Every page but sign-in and the public notice needs a signed-in person."""

from django.contrib.auth import views as auth_views
from django.urls import path, reverse_lazy

from portal.views import (
    applications,
    approvals,
    claims,
    common,
    dashboard,
    enterprise,
    exports,
    provider,
    sanctions,
    second_factor,
    settlements,
    staff,
)

app_name = "portal"

urlpatterns = [
    path("", common.home, name="home"),
    path("login/", common.LoginView.as_view(), name="login"),
    path("logout/", auth_views.LogoutView.as_view(), name="logout"),
    path(
        "password/",
        auth_views.PasswordChangeView.as_view(
            template_name="portal/password_change.html", success_url=reverse_lazy("portal:password_change_done")
        ),
        name="password_change",
    ),
    path(
        "password/done/",
        auth_views.PasswordChangeDoneView.as_view(template_name="portal/password_change_done.html"),
        name="password_change_done",
    ),
    path("two-step/", second_factor.second_factor, name="second_factor"),
    # Enterprise
    path("enterprise/", enterprise.enterprise_home, name="enterprise_home"),
    path("enterprise/flags/", enterprise.enterprise_flags, name="enterprise_flags"),
    path("register/", enterprise.register, name="register"),
    path("apply/", enterprise.apply, name="apply"),
    path("apply/preview/", enterprise.apply_preview, name="apply_preview"),
    # Applications, grants, redemptions: one page each for every role, scoped to the person
    path("applications/", applications.application_list, name="applications"),
    path("applications/<int:pk>/", applications.application_detail, name="application"),
    path(
        "applications/<int:pk>/<str:action>/",
        applications.application_action,
        name="application_action",
    ),
    path("grants/", staff.grant_list, name="grants"),
    path("grants/<int:pk>/", staff.grant_detail, name="grant"),
    path("grants/<int:pk>/revoke/", staff.grant_revoke_view, name="grant_revoke"),
    path("redemptions/", provider.redemption_list, name="redemptions"),
    path("redemptions/<int:pk>/<str:action>/", provider.redemption_action, name="redemption_action"),
    path("disputes/", provider.disputes, name="disputes"),
    # Claims (enterprise reimbursement)
    path("grants/<int:pk>/claim/", claims.claim_create, name="claim_create"),
    path("claims/", claims.claim_list, name="claims"),
    path("claims/<int:pk>/<str:decision>/", claims.claim_decide, name="claim_decide"),
    # Computing center
    path("provider/", provider.provider_home, name="provider_home"),
    path("redeem/", provider.redeem, name="redeem"),
    path("api-keys/", provider.api_keys, name="api_keys"),
    path("api-keys/<int:key_id>/revoke/", provider.api_key_revoke_view, name="api_key_revoke"),
    # Settlements
    path("settlements/", settlements.settlement_list, name="settlements"),
    path("settlements/<int:pk>/", settlements.settlement_detail, name="settlement"),
    path("settlements/<int:pk>/lines.csv", settlements.settlement_lines, name="settlement_lines"),
    path("settlements/<int:pk>/pay/", settlements.settlement_pay_view, name="settlement_pay"),
    # Administrators
    path("dashboard/", dashboard.dashboard, name="dashboard"),
    path("review/", staff.review_queue, name="review_queue"),
    path("enterprises/", staff.enterprise_list, name="enterprises"),
    path("enterprises/<int:pk>/<str:action>/", staff.enterprise_action, name="enterprise_action"),
    path("model-filings/", staff.model_filings, name="model_filings"),
    path("sanctions/", sanctions.sanctions, name="sanctions"),
    path("model-filings/<int:pk>/verify/", staff.model_filing_verify_view, name="model_filing_verify"),
    path("providers/", staff.provider_list, name="providers"),
    path("providers/<int:pk>/status/<str:status>/", staff.provider_status, name="provider_status"),
    path("cap-overrides/", staff.cap_overrides, name="cap_overrides"),
    path("approvals/", approvals.approval_request_list, name="approval_requests"),
    path("approvals/<int:pk>/<str:decision>/", approvals.approval_request_decide, name="approval_request_decide"),
    path("audits/", staff.audits, name="audits"),
    path("audits/run/", staff.audit_run_now, name="audit_run"),
    path("audits/<int:pk>/", staff.audit_detail, name="audit"),
    path("alerts/", staff.alerts, name="alerts"),
    path("exports/", exports.exports, name="exports"),
    # Anyone
    path("public/awards/", dashboard.public_notice, name="public_awards"),
    path("public/awards.csv", dashboard.public_notice_csv, name="public_awards_csv"),
]
