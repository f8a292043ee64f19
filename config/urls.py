from django.contrib import admin
from django.urls import include, path

from config import health

urlpatterns = [
    path("status/", health.home, name="status"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
    path("i18n/", include("django.conf.urls.i18n")),
    path("", include("portal.urls")),
]

handler400 = "api.problems.bad_request"
handler404 = "api.problems.api_not_found"
handler500 = "api.problems.server_error"
