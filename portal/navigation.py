"""The navigation: only the pages the signed-in person's role may use (a context processor)."""

from dataclasses import dataclass

from django.http import HttpRequest
from django.urls import reverse
from django.utils.functional import Promise
from django.utils.translation import gettext_lazy as _

from accounts.models import Role, User


@dataclass(frozen=True)
class Item:
    url_name: str
    label: Promise

    @property
    def url(self) -> str:
        return reverse(self.url_name)


def items_for(user: User | None) -> list[Item]:
    if user is None or not user.is_authenticated or not user.is_active:
        return [
            Item("portal:login", _("Sign in")),
            Item("portal:register", _("Register an enterprise")),
            Item("portal:public_awards", _("Public notice")),
        ]
    if user.enterprise_id is not None:
        return [
            Item("portal:enterprise_home", _("Overview")),
            Item("portal:enterprise_flags", _("Eligibility")),
            Item("portal:apply", _("Apply")),
            Item("portal:redemptions", _("Redemptions")),
            Item("portal:claims", _("Claims")),
            Item("portal:public_awards", _("Public notice")),
        ]
    if user.provider_id is not None:
        return [
            Item("portal:provider_home", _("Contracts to confirm")),
            Item("portal:redemptions", _("Redemptions")),
            Item("portal:claims", _("Claims")),
            Item("portal:redeem", _("Redeem a bill")),
            Item("portal:settlements", _("Settlements")),
            Item("portal:api_keys", _("API keys")),
        ]
    items = []
    if user.is_staff_member:
        items.append(Item("portal:dashboard", _("Pool dashboard")))
    if user.has_role(Role.REVIEWER) or user.has_role(Role.APPROVER):
        items += [
            Item("portal:review_queue", _("Review queue")),
            Item("portal:disputes", _("Disputed bills")),
            Item("portal:enterprises", _("Enterprises")),
        ]
    if user.is_staff_member:
        items += [
            Item("portal:applications", _("Applications")),
            Item("portal:grants", _("Coupons")),
            Item("portal:providers", _("Computing centers")),
            Item("portal:model_filings", _("Model filings")),
        ]
    if user.has_role(Role.REVIEWER) or user.has_role(Role.APPROVER):
        items += [Item("portal:cap_overrides", _("Cap overrides")), Item("portal:sanctions", _("Sanctions"))]
    if user.is_staff_member:
        items.append(Item("portal:approval_requests", _("Approval requests")))
    if user.is_staff_member:
        items += [Item("portal:redemptions", _("Redemptions")), Item("portal:claims", _("Claims"))]
    if user.has_role(Role.FINANCE):
        items += [Item("portal:settlements", _("Settlements")), Item("portal:exports", _("Exports"))]
    if user.has_role(Role.AUDITOR) and user.program_limit is None:
        items.append(Item("portal:audits", _("Audits")))
    if user.is_staff_member:
        items.append(Item("portal:alerts", _("Alerts")))
    items.append(Item("portal:public_awards", _("Public notice")))
    return items


def context(request: HttpRequest) -> dict[str, object]:
    user = getattr(request, "user", None)
    if request.path.startswith(("/api/", "/admin/")):
        return {}
    return {"navigation": items_for(user if isinstance(user, User) else None)}
