"""REST endpoints for people and organisations: sign-in, me, enterprises, providers, API keys, users.

Views are thin: a strict serializer checks the input, one service acts, an output serializer
answers. Querysets are scoped to the caller before any lookup, so another organisation's object
is a 404 and never appears in a list.
"""

from typing import Any, Final

from django.db.models import QuerySet
from django.shortcuts import get_object_or_404
from drf_spectacular.utils import extend_schema, extend_schema_field, inline_serializer
from rest_framework import generics, serializers, status
from rest_framework.exceptions import AuthenticationFailed, NotFound
from rest_framework.permissions import AllowAny
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts import credentials
from accounts.caller import caller
from accounts.errors import SignInFailed
from accounts.models import (
    FACILITY_DESCRIPTION_LENGTH_MAX,
    USER_PROGRAM_SLUG_LENGTH_MAX,
    USER_PROGRAMS_COUNT_MAX,
    USERNAME_LENGTH_MAX,
    AccessToken,
    ApiKey,
    ComputeSource,
    Enterprise,
    Facility,
    ModelFiling,
    Provider,
    Role,
    User,
    username_normal,
)
from accounts.roles import require_role, require_superuser
from accounts.services import (
    FACILITIES_COUNT_MAX,
    enterprise_flags_declare,
    enterprise_register,
    enterprise_suspend,
    enterprise_verify,
    model_filing_record,
    model_filing_verify,
    provider_change_request,
    provider_create,
    user_create,
    user_programs_set,
)
from accounts.signin import sign_in_check
from accounts.uscc import ALPHABET as USCC_ALPHABET
from accounts.uscc import LENGTH as USCC_LENGTH
from api.scoping import ScopedQuerysetMixin, staff_only
from api.serializers import (
    EmptyRequest,
    StrictBooleanField,
    StrictCharField,
    StrictIntegerField,
    StrictSerializer,
    validated,
)
from approvals.api import ApprovalRequestSerializer
from config.errors import PermissionDenied, ValidationFailed
from config.limits import REASON_LENGTH_MAX
from config.replica import ListFromReplica

# --- Shapes -------------------------------------------------------------------------------------


class EnterpriseSerializer(serializers.ModelSerializer):
    class Meta:
        model = Enterprise
        fields = [
            "id",
            "name",
            "uscc",
            "status",
            "has_registered_model",
            "model_filing_number",
            "foundation_model_developer",
            "small_or_medium",
            "has_registered_model_verified",
            "foundation_model_developer_verified",
            "small_or_medium_verified",
        ]
        read_only_fields = fields


class FacilitySerializer(serializers.ModelSerializer):
    class Meta:
        model = Facility
        fields = ["compute_source", "description", "listed_from", "listed_until"]
        read_only_fields = fields


class VerifyRequest(StrictSerializer):
    """The flags staff confirm (true) or do not (false); a flag not named keeps what staff last said."""

    has_registered_model = StrictBooleanField(required=False)
    foundation_model_developer = StrictBooleanField(required=False)
    small_or_medium = StrictBooleanField(required=False)


class FlagsRequest(StrictSerializer):
    """What the enterprise declares now; a field not sent is unchanged."""

    has_registered_model = StrictBooleanField(required=False)
    model_filing_number = StrictCharField(max_length=100, required=False, allow_blank=True)
    foundation_model_developer = StrictBooleanField(required=False)
    small_or_medium = StrictBooleanField(required=False)


class ModelFilingSerializer(serializers.ModelSerializer):
    class Meta:
        model = ModelFiling
        fields = [
            "id",
            "filing_number",
            "model_name",
            "holder_name",
            "holder_uscc",
            "recorded_by",
            "recorded_at",
            "verified_by",
            "verified_at",
        ]
        read_only_fields = fields


USCC_SCHEMA: dict[str, Any] = {
    "type": "string",
    "format": "uscc",
    "minLength": USCC_LENGTH,
    "maxLength": USCC_LENGTH,
    "pattern": f"^[{USCC_ALPHABET}]{{{USCC_LENGTH}}}$",
    "description": "A unified social credit code (GB 32100-2015): 18 characters whose last is a check character.",
}


@extend_schema_field(USCC_SCHEMA)
class UsccField(StrictCharField):
    """A unified social credit code. The schema says its alphabet and length; its check character is
    the `uscc` format's (accounts/uscc.py), checked by the service."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_length", USCC_LENGTH)
        kwargs.setdefault("max_length", USCC_LENGTH)
        super().__init__(**kwargs)


@extend_schema_field({"oneOf": [USCC_SCHEMA, {"type": "string", "maxLength": 0}]})
class OptionalUsccField(UsccField):
    """A unified social credit code, or "" for none."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("required", False)
        kwargs.setdefault("allow_blank", True)
        kwargs.setdefault("default", "")
        super().__init__(**kwargs)


class ModelFilingRequest(StrictSerializer):
    filing_number = StrictCharField(max_length=100)
    model_name = StrictCharField(max_length=200)
    holder_name = StrictCharField(max_length=200)
    holder_uscc = OptionalUsccField()


class ProviderSerializer(serializers.ModelSerializer):
    facilities = FacilitySerializer(many=True, read_only=True)

    class Meta:
        model = Provider
        fields = ["id", "name", "uscc", "listing", "status", "facilities"]
        read_only_fields = fields


class UserSerializer(serializers.ModelSerializer):
    roles = serializers.ListField(child=serializers.CharField(), read_only=True)
    programs = serializers.ListField(
        child=serializers.CharField(),
        read_only=True,
        help_text="The programs (slugs) the user's roles are limited to; empty: every program.",
    )
    # A plain string: an address is optional, and "" is no email format the schema could promise.
    email = serializers.CharField(read_only=True)

    class Meta:
        model = User
        fields = ["id", "username", "email", "roles", "programs", "enterprise", "provider", "is_superuser"]
        read_only_fields = fields


class UserCreated(UserSerializer):
    roles_request = serializers.IntegerField(
        read_only=True, allow_null=True, help_text="The approval request that grants the roles asked for, if any."
    )

    class Meta(UserSerializer.Meta):
        fields = [*UserSerializer.Meta.fields, "roles_request"]
        read_only_fields = fields


class ApiKeySerializer(serializers.ModelSerializer):
    class Meta:
        model = ApiKey
        fields = ["id", "name", "prefix", "created_at", "revoked_at"]
        read_only_fields = fields


PASSWORD_LENGTH_MIN: Final = 8  # MinimumLengthValidator's default, in AUTH_PASSWORD_VALIDATORS.


@extend_schema_field(
    {
        "type": "string",
        "format": "password",
        "minLength": PASSWORD_LENGTH_MIN,
        "maxLength": 256,
        "description": (
            f"A new password: at least {PASSWORD_LENGTH_MIN} characters, not only digits, not a common "
            "password and not like the username or email (the `password` format; the service checks it)."
        ),
    }
)
class NewPasswordField(StrictCharField):
    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("min_length", PASSWORD_LENGTH_MIN)
        kwargs.setdefault("max_length", 256)
        kwargs.setdefault("trim_whitespace", False)
        super().__init__(**kwargs)


class UsernameField(StrictCharField):
    """A new username: NFKC-normalised (`ａｄｍｉｎ` is `admin`), then what Django's ASCII username
    validator takes (the schema carries its pattern); accounts.services checks it is not taken in
    any case."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", USERNAME_LENGTH_MAX)
        kwargs.setdefault("validators", [User.username_validator])
        kwargs.setdefault(
            "help_text",
            "ASCII letters, digits and @ . + - _ (NFKC-normalised first); unique whatever its case.",
        )
        super().__init__(**kwargs)

    def to_internal_value(self, data: Any) -> str:
        return username_normal(super().to_internal_value(data))


class TokenRequest(StrictSerializer):
    username = StrictCharField(max_length=150)
    password = StrictCharField(max_length=256, trim_whitespace=False)
    otp = StrictCharField(
        max_length=32,
        required=False,
        allow_blank=True,
        default="",
        help_text="The second-factor code (TOTP or a recovery code), for a user who has one.",
    )


class TokenAnswer(serializers.Serializer):
    token = serializers.CharField()
    expires_at = serializers.DateTimeField()


class EnterpriseFields(StrictSerializer):
    name = StrictCharField(max_length=200)
    uscc = UsccField()
    has_registered_model = StrictBooleanField(default=False)
    model_filing_number = StrictCharField(max_length=100, required=False, allow_blank=True, default="")
    foundation_model_developer = StrictBooleanField(default=False)
    small_or_medium = StrictBooleanField(default=False)


_ENTERPRISE_FIELD_NAMES = frozenset(EnterpriseFields().fields)


class RegisterRequest(StrictSerializer):
    username = UsernameField()
    password = NewPasswordField()
    # No `default`: the schema would put it inside the email-format branch, where "" is invalid.
    email = serializers.EmailField(required=False, allow_blank=True, help_text="Optional; absent or empty: none.")
    enterprise = EnterpriseFields()


class RegisterAnswer(serializers.Serializer):
    user = UserSerializer()
    enterprise = EnterpriseSerializer()


@extend_schema_field({"type": "string", "format": "date", "pattern": "^2[0-9]{3}-"})
class ListingDayField(serializers.DateField):
    """A day of a listing, in the years 2000 to 2999 (LISTING_DAY_MIN to LISTING_DAY_MAX in
    accounts/services.py): the schema says so with a pattern, as it cannot bound a date."""


class FacilityRequest(StrictSerializer):
    """What a computing center offers, and the days (Asia/Shanghai, both included) it is listed for it."""

    compute_source = serializers.ChoiceField(choices=ComputeSource.choices)
    description = StrictCharField(max_length=FACILITY_DESCRIPTION_LENGTH_MAX)
    listed_from = ListingDayField(help_text="The first day listed (YYYY-MM-DD).")
    listed_until = ListingDayField(
        required=False, allow_null=True, default=None, help_text="The last day listed; null: until further notice."
    )

    def validate(self, attrs: dict[str, Any]) -> dict[str, Any]:
        if attrs["listed_until"] is not None and attrs["listed_until"] < attrs["listed_from"]:
            raise serializers.ValidationError({"listed_until": ["listed_until may not be before listed_from."]})
        return attrs


class FacilitiesField(serializers.ListField):
    child = FacilityRequest()

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("allow_empty", False)
        kwargs.setdefault("min_length", 1)  # So the schema says it too (minItems).
        kwargs.setdefault("max_length", FACILITIES_COUNT_MAX)
        kwargs.setdefault("help_text", f"1 to {FACILITIES_COUNT_MAX} facilities: the whole list.")
        super().__init__(**kwargs)


class ProviderRequest(StrictSerializer):
    name = StrictCharField(max_length=200)
    uscc = UsccField()
    listing = serializers.ChoiceField(choices=Provider.Listing.choices)
    facilities = FacilitiesField()


class ProviderFacilitiesRequest(StrictSerializer):
    facilities = FacilitiesField()
    reason = StrictCharField(max_length=REASON_LENGTH_MAX, help_text="Why (for the person who decides).")


class ProviderStatusRequest(StrictSerializer):
    reason = StrictCharField(max_length=REASON_LENGTH_MAX, help_text="Why (for the person who decides).")


class ApiKeyRequest(StrictSerializer):
    name = StrictCharField(max_length=100)


class ApiKeyCreated(ApiKeySerializer):
    key = serializers.CharField(read_only=True, help_text="The secret. Shown once; store it now.")

    class Meta(ApiKeySerializer.Meta):
        fields = [*ApiKeySerializer.Meta.fields, "key"]
        read_only_fields = fields


class UserRequest(StrictSerializer):
    username = UsernameField()
    password = NewPasswordField()
    # No `default`: the schema would put it inside the email-format branch, where "" is invalid.
    email = serializers.EmailField(required=False, allow_blank=True, help_text="Optional; absent or empty: none.")
    roles = serializers.ListField(child=serializers.ChoiceField(choices=Role.choices), required=False, default=list)
    enterprise = StrictIntegerField(required=False, allow_null=True, default=None)
    provider = StrictIntegerField(required=False, allow_null=True, default=None)
    programs = serializers.ListField(
        child=serializers.SlugField(max_length=USER_PROGRAM_SLUG_LENGTH_MAX),
        max_length=USER_PROGRAMS_COUNT_MAX,
        required=False,
        default=list,
        help_text="Limit a staff user's roles to these programs (slugs); absent or empty: every program.",
    )


class UserProgramsRequest(StrictSerializer):
    programs = serializers.ListField(
        child=serializers.SlugField(max_length=USER_PROGRAM_SLUG_LENGTH_MAX),
        max_length=USER_PROGRAMS_COUNT_MAX,
        help_text="The programs (slugs) the staff user's roles are limited to; empty: every program.",
    )
    reason = StrictCharField(
        max_length=REASON_LENGTH_MAX,
        required=False,
        help_text="Why, for the superuser who decides a widening (a default names the change).",
    )


def is_api_key(request: Request) -> bool:
    return isinstance(request.auth, ApiKey)


# --- Scopes -------------------------------------------------------------------------------------


def enterprises_visible_to(user: User) -> QuerySet[Enterprise]:
    if user.is_staff_member:
        return Enterprise.objects.all()
    if user.enterprise_id is not None:
        return Enterprise.objects.filter(pk=user.enterprise_id)
    return Enterprise.objects.none()


def providers_visible_to(user: User) -> QuerySet[Provider]:
    """Staff see every provider; others see the listed, active ones (and their own)."""
    if user.is_staff_member:
        return Provider.objects.all()
    own = Provider.objects.filter(pk=user.provider_id) if user.provider_id else Provider.objects.none()
    return Provider.objects.filter(status=Provider.Status.ACTIVE) | own


def providers_shown_to(user: User) -> QuerySet[Provider]:
    """`providers_visible_to`, with their facilities in one more query however long the page."""
    return providers_visible_to(user).prefetch_related("facilities")


# --- Authentication ---------------------------------------------------------------------------


class TokenView(APIView):
    permission_classes = [AllowAny]
    authentication_classes: list[type] = []

    def get_authenticate_header(self, request: Request) -> str:
        # With no authenticators DRF would turn the 401 for a wrong password into a 403.
        return "Bearer"

    @extend_schema(
        request=TokenRequest,
        responses={200: TokenAnswer},
        tags=["auth"],
        summary="Get a bearer token",
        description=(
            "Send `username` and `password`, and `otp` (the 6-digit code from the authenticator app, or a "
            "recovery code) when the user has a second factor: staff must have one where the service "
            "requires it. Any wrong or missing part is 401 `authentication_failed`, never saying which. "
            "Failures are counted per username and address: after the `THROTTLE_LOGIN` limit the "
            "username is refused from that address (429 `throttled`, with `Retry-After`) for one period, "
            "even with the right password. A token lasts `API_TOKEN_LIFETIME_S`; changing the user's "
            "password revokes every token issued before it (they then answer 401 `authentication_failed`)."
        ),
    )
    def post(self, request: Request) -> Response:
        data = validated(TokenRequest, request.data)
        try:
            signed_in = sign_in_check(
                request=request._request, username=data["username"], password=data["password"], code=data["otp"]
            )
        except SignInFailed:
            raise AuthenticationFailed("The username, password or code is wrong.") from None
        token, secret = credentials.token_issue(user=signed_in.user)
        return Response(TokenAnswer({"token": secret, "expires_at": token.expires_at}).data)


class LogoutView(APIView):
    @extend_schema(
        request=None,
        responses={200: inline_serializer("LoggedOut", {"status": serializers.CharField()})},
        tags=["auth"],
        summary="Revoke the bearer token sent",
    )
    def post(self, request: Request) -> Response:
        validated(EmptyRequest, request.data)
        if is_api_key(request):
            raise PermissionDenied(
                "An API key is not signed out: revoke it at /providers/{id}/api-keys/{key_id}/revoke/."
            )
        if isinstance(request.auth, AccessToken):
            credentials.token_revoke(token=request.auth)
        return Response({"status": "signed_out"})


class MeView(APIView):
    @extend_schema(responses={200: UserSerializer}, tags=["auth"], summary="Who am I")
    def get(self, request: Request) -> Response:
        return Response(UserSerializer(request.user).data)


# --- Enterprises ------------------------------------------------------------------------------


class RegisterView(APIView):
    permission_classes = [AllowAny]

    @extend_schema(
        request=RegisterRequest,
        responses={201: RegisterAnswer},
        tags=["enterprises"],
        summary="Register an enterprise and its first member",
    )
    def post(self, request: Request) -> Response:
        data = validated(RegisterRequest, request.data)
        try:
            user, enterprise = enterprise_register(
                username=data["username"], password=data["password"], email=data.get("email", ""), **data["enterprise"]
            )
        except ValidationFailed as error:
            # The service names the enterprise's fields flat; the request nests them, and so do
            # the serializer's own errors for the same fields: name them as the client sent them.
            raise type(error)(
                {
                    f"enterprise.{name}" if name in _ENTERPRISE_FIELD_NAMES else name: messages
                    for name, messages in error.errors.items()
                }
            ) from None
        return Response(RegisterAnswer({"user": user, "enterprise": enterprise}).data, status=status.HTTP_201_CREATED)


class EnterpriseList(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = EnterpriseSerializer
    scoped_model = Enterprise
    scope = staticmethod(enterprises_visible_to)
    filterset_fields = ["status"]
    ordering_fields = ["id", "name"]
    ordering = ["id"]


class EnterpriseDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = EnterpriseSerializer
    scoped_model = Enterprise
    scope = staticmethod(enterprises_visible_to)


class EnterpriseSuspend(APIView):
    @extend_schema(request=None, responses={200: EnterpriseSerializer}, tags=["enterprises"])
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        enterprise = get_object_or_404(enterprises_visible_to(user), pk=pk)
        validated(EmptyRequest, request.data)
        return Response(EnterpriseSerializer(enterprise_suspend(enterprise=enterprise, actor=user)).data)


class EnterpriseVerify(APIView):
    @extend_schema(
        request=VerifyRequest,
        responses={200: EnterpriseSerializer},
        tags=["enterprises"],
        summary="Verify an enterprise and the flags staff confirm (reviewer)",
        description=(
            "A declared flag counts only once staff confirm it here (`true`); `false` withdraws a confirmation; "
            "a flag not sent keeps what staff last said. Each call that names flags is recorded with who and when."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        enterprise = get_object_or_404(enterprises_visible_to(user), pk=pk)
        require_role(user, Role.REVIEWER)
        flags = validated(VerifyRequest, request.data)
        verified = enterprise_verify(enterprise=enterprise, actor=user, flags=flags)
        return Response(EnterpriseSerializer(verified).data)


class EnterpriseFlags(APIView):
    @extend_schema(
        request=FlagsRequest,
        responses={200: EnterpriseSerializer},
        tags=["enterprises"],
        summary="Update what the enterprise declares (its members)",
        description=(
            "A changed flag (or filing number) loses its staff confirmation and counts only once a reviewer "
            "verifies it again; coupons already granted keep their rate."
        ),
    )
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        enterprise = get_object_or_404(enterprises_visible_to(user), pk=pk)
        if is_api_key(request) or user.enterprise_id != enterprise.pk:
            raise PermissionDenied("Only the enterprise's members declare its flags.")
        data = validated(FlagsRequest, request.data)
        changed = enterprise_flags_declare(enterprise=enterprise, actor=user, **data)
        return Response(EnterpriseSerializer(changed).data)


# --- The register of model filings ---------------------------------------------------------------


def model_filings_visible_to(user: User) -> QuerySet[ModelFiling]:
    return staff_only(ModelFiling.objects.all(), user)


class ModelFilingListCreate(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = ModelFilingSerializer
    scoped_model = ModelFiling
    scope = staticmethod(model_filings_visible_to)
    filterset_fields = ["filing_number"]
    ordering_fields = ["id", "filing_number"]
    ordering = ["id"]

    @extend_schema(
        request=ModelFilingRequest,
        responses={201: ModelFilingSerializer},
        tags=["model-filings"],
        summary="Record a filed model in the register (reviewer)",
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        require_role(user, Role.REVIEWER)
        data = validated(ModelFilingRequest, request.data)
        filing = model_filing_record(actor=user, **data)
        return Response(ModelFilingSerializer(filing).data, status=status.HTTP_201_CREATED)


class ModelFilingDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = ModelFilingSerializer
    scoped_model = ModelFiling
    scope = staticmethod(model_filings_visible_to)


class ModelFilingVerify(APIView):
    @extend_schema(
        request=None,
        responses={200: ModelFilingSerializer},
        tags=["model-filings"],
        summary="Verify a filing against the CAC's list (reviewer)",
    )
    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        filing = get_object_or_404(model_filings_visible_to(user), pk=pk)
        validated(EmptyRequest, request.data)
        return Response(ModelFilingSerializer(model_filing_verify(filing=filing, actor=user)).data)


# --- Providers and their API keys ---------------------------------------------------------------


class ProviderListCreate(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = ProviderSerializer
    scoped_model = Provider
    scope = staticmethod(providers_shown_to)
    filterset_fields = ["status", "listing"]
    ordering_fields = ["id", "name"]
    ordering = ["id"]

    @extend_schema(
        request=ProviderRequest,
        responses={201: ProviderSerializer},
        summary="List a provider with its facilities (superuser)",
        description=(
            "Each facility is a compute source the center offers and the days it is listed for it "
            "(`listed_until` null: until further notice; never before `listed_from`). A center takes "
            "part on a day when one of its facilities is listed that day; an application's "
            "`compute_source` must be one it offers on the day of submission."
        ),
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        require_superuser(user)
        data = validated(ProviderRequest, request.data)
        provider = provider_create(actor=user, **data)
        return Response(ProviderSerializer(provider).data, status=status.HTTP_201_CREATED)


class ProviderDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = ProviderSerializer
    scoped_model = Provider
    scope = staticmethod(providers_shown_to)


class ProviderChangeView(APIView):
    """A superuser asks for a change to a listed provider: answered 202 with the approval request.

    `change` is `suspend`, `reinstate` or `facilities`. The provider changes only when someone else
    approves the request (an approver, or another superuser): `POST /approval-requests/{id}/approve/`.
    """

    change = ""

    def post(self, request: Request, pk: int) -> Response:
        user = caller(request)
        provider = get_object_or_404(providers_visible_to(user), pk=pk)
        require_superuser(user)
        if self.change == "facilities":
            data = validated(ProviderFacilitiesRequest, request.data)
            changes: dict[str, Any] = {"facilities": data["facilities"]}
        else:
            data = validated(ProviderStatusRequest, request.data)
            status_to = Provider.Status.SUSPENDED if self.change == "suspend" else Provider.Status.ACTIVE
            changes = {"status": status_to}
        approval = provider_change_request(provider=provider, changes=changes, reason=data["reason"], requester=user)
        return Response(ApprovalRequestSerializer(approval).data, status=status.HTTP_202_ACCEPTED)


_CHANGE_DESCRIPTION = (
    "Answers 202 with an approval request (action `provider_change`, target `provider:<id>`, payload the new "
    "`status` or `facilities`); nothing changes until a different person, an approver or another superuser, "
    "approves it at `POST /approval-requests/{id}/approve/`, which applies it and records it in the provider's "
    "history. 409 `invalid_state` when it would change nothing or a change of the provider is already pending."
)


class ProviderSuspend(ProviderChangeView):
    change = "suspend"

    @extend_schema(
        request=ProviderStatusRequest,
        responses={202: ApprovalRequestSerializer},
        tags=["providers"],
        summary="Ask for a provider's suspension (superuser)",
        description=_CHANGE_DESCRIPTION,
    )
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)


class ProviderReinstate(ProviderChangeView):
    change = "reinstate"

    @extend_schema(
        request=ProviderStatusRequest,
        responses={202: ApprovalRequestSerializer},
        tags=["providers"],
        summary="Ask for a suspended provider's reinstatement (superuser)",
        description=_CHANGE_DESCRIPTION,
    )
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)


class ProviderFacilities(ProviderChangeView):
    change = "facilities"

    @extend_schema(
        request=ProviderFacilitiesRequest,
        responses={202: ApprovalRequestSerializer},
        tags=["providers"],
        summary="Ask to replace a provider's facilities (superuser)",
        description=_CHANGE_DESCRIPTION + " `facilities` is the whole new list.",
    )
    def post(self, request: Request, pk: int) -> Response:
        return super().post(request, pk)


def _own_provider(request: Request, pk: int) -> Provider:
    """The provider whose keys the caller manages: its own (or any, for a superuser); else 404."""
    user = caller(request)
    if is_api_key(request):
        raise PermissionDenied("An API key may not manage API keys.")
    if user.is_superuser or user.provider_id == pk:
        return get_object_or_404(Provider, pk=pk)
    if user.is_staff_member and Provider.objects.filter(pk=pk).exists():
        # Staff can see the provider, so hiding it would say nothing; their role may not do this.
        raise PermissionDenied("Only the provider's members manage its API keys.")
    raise NotFound()


class ApiKeyListCreate(ListFromReplica, generics.ListAPIView):
    serializer_class = ApiKeySerializer
    filterset_fields: list[str] = []
    ordering = ["id"]

    def get_queryset(self) -> QuerySet[ApiKey]:
        if getattr(self, "swagger_fake_view", False):
            return ApiKey.objects.none()
        provider = _own_provider(self.request, self.kwargs["pk"])
        return ApiKey.objects.filter(provider=provider).order_by("id")

    @extend_schema(
        request=ApiKeyRequest,
        responses={201: ApiKeyCreated},
        tags=["providers"],
        summary="Create an API key (the secret is shown once)",
    )
    def post(self, request: Request, pk: int) -> Response:
        provider = _own_provider(request, pk)
        data = validated(ApiKeyRequest, request.data)
        key, secret = credentials.api_key_create(provider=provider, name=data["name"], actor=caller(request))
        answer = dict(ApiKeySerializer(key).data)
        answer["key"] = secret
        return Response(answer, status=status.HTTP_201_CREATED)


class ApiKeyRevoke(APIView):
    @extend_schema(request=None, responses={200: ApiKeySerializer}, tags=["providers"], summary="Revoke an API key")
    def post(self, request: Request, pk: int, key_id: int) -> Response:
        provider = _own_provider(request, pk)
        validated(EmptyRequest, request.data)
        key = credentials.api_key_get(provider=provider, key_id=key_id)
        return Response(ApiKeySerializer(credentials.api_key_revoke(key=key, actor=caller(request))).data)


# --- Users ----------------------------------------------------------------------------------------


class UserCreate(APIView):
    @extend_schema(
        request=UserRequest,
        responses={201: UserCreated},
        tags=["users"],
        summary="Create a staff user or an organisation member (superuser)",
        description=(
            "The user is created at once, with no role: the `roles` asked for wait in an approval request "
            "(`roles_request`, action `role_grant`) that a different superuser, who is not the new user, approves "
            "at `POST /approval-requests/{id}/approve/`. One superuser alone cannot make an account that acts "
            "for the fund."
        ),
    )
    def post(self, request: Request) -> Response:
        require_superuser(caller(request))
        data = validated(UserRequest, request.data)
        enterprise = get_object_or_404(Enterprise, pk=data["enterprise"]) if data["enterprise"] else None
        provider = get_object_or_404(Provider, pk=data["provider"]) if data["provider"] else None
        user, roles_request = user_create(
            username=data["username"],
            password=data["password"],
            email=data.get("email", ""),
            roles=data["roles"],
            enterprise=enterprise,
            provider=provider,
            programs=data["programs"],
            actor=caller(request),
        )
        answer = UserSerializer(user).data
        answer["roles_request"] = roles_request.pk if roles_request is not None else None
        return Response(answer, status=status.HTTP_201_CREATED)


class UserPrograms(APIView):
    @extend_schema(
        request=UserProgramsRequest,
        responses={200: UserSerializer, 202: ApprovalRequestSerializer},
        tags=["users"],
        summary="Limit a staff user's roles to programs (superuser; widening needs a second)",
        description=(
            "Replaces the programs the staff user's roles reach: from their next request they see and act on "
            "only those programs' applications, grants, redemptions, claims, program years, figures and approval "
            "requests; an object of another program is 404 to them. An empty list lifts the limit (every "
            "program).\n\n"
            "Narrowing (or no change) holds at once: 200 with the user. Widening (a program added, or the limit "
            "lifted) gives the person's roles another program's money, so it answers 202 with an approval "
            "request (action `user_programs_widen`, payload `{user, username, programs, from}`) that a different "
            "superuser, who is not that user, approves with `POST /approval-requests/{id}/approve/`; until then "
            "the reach is unchanged. A request made stale by a later change is refused on approval (409 "
            "`invalid_state`); a second pending widening for the same user is 409 `invalid_state`.\n\n"
            "A slug that names no program is 404 `not_found` (on `programs`), as is an unknown user; a limit for "
            "a superuser or a member of an organisation is 409 `invalid_state`."
        ),
    )
    def put(self, request: Request, pk: int) -> Response:
        actor = caller(request)
        require_superuser(actor)
        data = validated(UserProgramsRequest, request.data)
        user = get_object_or_404(User, pk=pk)
        user, pending = user_programs_set(
            user=user, programs=data["programs"], actor=actor, reason=data.get("reason", "")
        )
        if pending is not None:
            return Response(ApprovalRequestSerializer(pending).data, status=status.HTTP_202_ACCEPTED)
        return Response(UserSerializer(user).data)
