from django.apps import AppConfig
from django.contrib.admin import apps as admin_apps


class AccountsConfig(AppConfig):
    default = True
    name = "accounts"
    verbose_name = "People and organisations"


class AdminConfig(admin_apps.AdminConfig):
    """django.contrib.admin with accounts.admin_site.CouponsAdminSite as `admin.site`."""

    default = False
    default_site = "accounts.admin_site.CouponsAdminSite"
