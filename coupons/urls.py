"""The coupon program's endpoints under /api/v1/: each resource module brings its own routes."""

from coupons.api import (
    applications,
    audits,
    claims,
    grants,
    redemptions,
    sanctions,
    settlements,
    stacking,
    stats,
    years,
)

urlpatterns = [
    *years.urlpatterns,
    *applications.urlpatterns,
    *grants.urlpatterns,
    *redemptions.urlpatterns,
    *claims.urlpatterns,
    *settlements.urlpatterns,
    *stats.urlpatterns,
    *audits.urlpatterns,
    *sanctions.urlpatterns,
    *stacking.urlpatterns,
]
