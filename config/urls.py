from django.contrib import admin
from django.urls import include, path

from config import health

urlpatterns = [
    path("", health.home, name="home"),
    path("healthz", health.healthz, name="healthz"),
    path("readyz", health.readyz, name="readyz"),
    path("admin/", admin.site.urls),
    path("api/", include("api.urls")),
]

handler404 = "api.problems.api_not_found"
