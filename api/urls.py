"""/api/v1/: every app's endpoints, and the OpenAPI schema and its docs (served from local files)."""

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView

# The docs page keeps the strict script policy: the split view serves Swagger UI's start-up script
# as a file (/api/docs/?script=) instead of inline. Its styles cannot follow: drf-spectacular's
# page carries a <style> block and Swagger UI sets style attributes as it renders, and its
# stylesheet draws icons as data: images. Only this page allows those two; it shows no money.
docs_view = csp_update({"style-src": [UNSAFE_INLINE], "img-src": ["data:"]})(
    SpectacularSwaggerSplitView.as_view(url_name="schema")
)

urlpatterns = [
    path("v1/", include("accounts.urls")),
    path("v1/", include("coupons.urls")),
    path("v1/", include("approvals.urls")),
    path("schema/", SpectacularAPIView.as_view(), name="schema"),
    path("docs/", docs_view, name="docs"),
]
