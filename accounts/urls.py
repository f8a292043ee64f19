from django.urls import path

from accounts import api

urlpatterns = [
    path("auth/token/", api.TokenView.as_view(), name="auth-token"),
    path("auth/logout/", api.LogoutView.as_view(), name="auth-logout"),
    path("me/", api.MeView.as_view(), name="me"),
    path("enterprises/register/", api.RegisterView.as_view(), name="enterprise-register"),
    path("enterprises/", api.EnterpriseList.as_view(), name="enterprise-list"),
    path("enterprises/<int:pk>/", api.EnterpriseDetail.as_view(), name="enterprise-detail"),
    path("enterprises/<int:pk>/verify/", api.EnterpriseVerify.as_view(), name="enterprise-verify"),
    path("enterprises/<int:pk>/suspend/", api.EnterpriseSuspend.as_view(), name="enterprise-suspend"),
    path("enterprises/<int:pk>/flags/", api.EnterpriseFlags.as_view(), name="enterprise-flags"),
    path("model-filings/", api.ModelFilingListCreate.as_view(), name="model-filing-list"),
    path("model-filings/<int:pk>/", api.ModelFilingDetail.as_view(), name="model-filing-detail"),
    path("model-filings/<int:pk>/verify/", api.ModelFilingVerify.as_view(), name="model-filing-verify"),
    path("providers/", api.ProviderListCreate.as_view(), name="provider-list"),
    path("providers/<int:pk>/", api.ProviderDetail.as_view(), name="provider-detail"),
    path("providers/<int:pk>/suspend/", api.ProviderSuspend.as_view(), name="provider-suspend"),
    path("providers/<int:pk>/reinstate/", api.ProviderReinstate.as_view(), name="provider-reinstate"),
    path("providers/<int:pk>/facilities/", api.ProviderFacilities.as_view(), name="provider-facilities"),
    path("providers/<int:pk>/api-keys/", api.ApiKeyListCreate.as_view(), name="api-key-list"),
    path("providers/<int:pk>/api-keys/<int:key_id>/revoke/", api.ApiKeyRevoke.as_view(), name="api-key-revoke"),
    path("users/", api.UserCreate.as_view(), name="user-create"),
    path("users/<int:pk>/programs/", api.UserPrograms.as_view(), name="user-programs"),
]
