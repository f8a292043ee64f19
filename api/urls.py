"""/api/v1/: every app's endpoints, and the OpenAPI schema and its docs (served from local files)."""

from csp.constants import UNSAFE_INLINE
from csp.decorators import csp_update
from django.urls import include, path
from drf_spectacular.utils import extend_schema
from drf_spectacular.views import SpectacularAPIView, SpectacularSwaggerSplitView
from rest_framework.request import Request
from rest_framework.response import Response

from api.views import PingView
from config.errors import ValidationFailed


class SchemaView(SpectacularAPIView):
    """The OpenAPI schema. drf-spectacular copies a `?version=` into the answer's Content-Disposition
    header; this API has one version, so the parameter is refused rather than echoed into a header."""

    @extend_schema(exclude=True)
    def get(self, request: Request, *args: object, **kwargs: object) -> Response:
        if "version" in request.query_params:
            raise ValidationFailed("This API has one version; send no version parameter.", field="version")
        return super().get(request, *args, **kwargs)


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
    path("v1/", include("evidence.urls")),
    path("v1/ping/", PingView.as_view(), name="ping"),
    path("schema/", SchemaView.as_view(), name="schema"),
    path("docs/", docs_view, name="docs"),
]
