"""/api/v1/: every app's endpoints, and the OpenAPI schema and its docs (served from local files)."""

from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerView

urlpatterns = [
    path("v1/", include("accounts.urls")),
    path("v1/", include("coupons.urls")),
    path("v1/", include("approvals.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", SpectacularSwaggerView.as_view(url_name="schema"), name="docs"),
]
