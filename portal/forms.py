"""The portal's forms. They check input in the person's language before any service is called;
the services check again (the API reaches them without these forms)."""

import datetime as dt
from typing import Any

from django import forms
from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.utils.translation import gettext_lazy as _

from accounts.models import (
    FACILITY_DESCRIPTION_LENGTH_MAX,
    RELATED_PARTY_NOTE_LENGTH_MAX,
    Enterprise,
    Provider,
    User,
    username_normal,
)
from accounts.uscc import check_character, validate_uscc
from config.limits import REASON_LENGTH_MAX
from config.money import fen_from_yuan_text, yuan_grouping_misplaced, yuan_text
from coupons.invoices import INPUT_LENGTH_MAX as INVOICE_INPUT_LENGTH_MAX
from coupons.models import (
    CONTRACT_FEE_FEN_MAX,
    CONTRACT_TERM_MONTHS_CEILING,
    DEFAULT_PROGRAM,
    ComputeSource,
    Program,
    Purpose,
)
from coupons.services.applications import DOCUMENTS_MAX
from portal.words import choices

EXPORT_PERIOD_DAYS_MAX = 3 * 366
EXPORT_YEAR_MIN, EXPORT_YEAR_MAX = 2000, 2999  # The program years the service knows (as the API's ?year=).
YUAN_TEXT_LENGTH_MAX = 24  # "100,000,000,000.00" with room for spaces and a ¥


class YuanField(forms.CharField):
    """An amount typed in yuan ('1,234.56'), cleaned to whole fen (an int). No float on the way."""

    def __init__(self, *, maximum_fen: int = CONTRACT_FEE_FEN_MAX, allow_zero: bool = False, **kwargs: Any) -> None:
        self.maximum_fen, self.allow_zero = maximum_fen, allow_zero
        # No max_length: CharField's length validator would run on the cleaned int. The length
        # is checked in to_python instead, before the text is read.
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        attrs = {"inputmode": "decimal", "autocomplete": "off", "maxlength": str(YUAN_TEXT_LENGTH_MAX)}
        return {**super().widget_attrs(widget), **attrs}

    def to_python(self, value: Any) -> int | None:  # type: ignore[override]
        text = super().to_python(value)
        if text is None or text in self.empty_values:
            return None
        fen = fen_from_yuan_text(text) if len(text) <= YUAN_TEXT_LENGTH_MAX else None
        if fen is None and yuan_grouping_misplaced(text):
            raise forms.ValidationError(
                _("Put commas only between groups of three digits, such as 1,234,567.89, or leave them out."),
                code="invalid_grouping",
            )
        if fen is None:
            raise forms.ValidationError(
                _("Enter an amount in yuan, with at most two decimals, such as 1,234.56."), code="invalid"
            )
        if fen == 0 and not self.allow_zero:
            raise forms.ValidationError(_("Enter an amount above zero."), code="min_value")
        if fen > self.maximum_fen:
            raise forms.ValidationError(
                _("Enter at most %(maximum)s.") % {"maximum": yuan_text(self.maximum_fen)}, code="max_value"
            )
        return fen


class UsccField(forms.CharField):
    """A unified social credit code (GB 32100-2015), upper-cased, its check character verified,
    and what is wrong said in the person's language."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("max_length", 18)
        kwargs.setdefault("min_length", 18)
        super().__init__(**kwargs)

    def to_python(self, value: Any) -> str:
        return (super().to_python(value) or "").upper()

    def validate(self, value: Any) -> None:
        super().validate(value)
        if not value:
            return
        try:
            validate_uscc(value)
        except ValidationError as error:
            code = error.code
            message: Any  # text, or a lazy translation
            if code == "uscc_check":
                expected = check_character(value[:-1])
                message = _("The check character is wrong: GB 32100-2015 gives %(expected)s here.") % {
                    "expected": expected
                }
            elif code == "uscc_alphabet":
                message = _("A credit code uses digits and capital letters other than I, O, S, V and Z.")
            else:
                message = _("A credit code has exactly 18 characters.")
            raise forms.ValidationError(message, code=code or "invalid") from None


def _text(label: Any, *, max_length: int, required: bool = True, help_text: Any = "") -> forms.CharField:
    return forms.CharField(label=label, max_length=max_length, required=required, help_text=help_text, strip=True)


class DocumentFileField(forms.FileField):
    """A document's file; what it is, is judged from its bytes by the service, not here."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("help_text", _("PDF, OFD, JPEG or PNG."))
        super().__init__(**kwargs)

    def widget_attrs(self, widget: forms.Widget) -> dict[str, Any]:
        accept = ".pdf,.ofd,.jpg,.jpeg,.png,application/pdf,application/ofd,image/jpeg,image/png"
        return {**super().widget_attrs(widget), "accept": accept}


class MultipleFileInput(forms.ClearableFileInput):
    allow_multiple_selected = True


class MoreDocumentsField(DocumentFileField):
    """Any number of files (at most `DOCUMENTS_MAX`), each a document of kind other."""

    def __init__(self, **kwargs: Any) -> None:
        kwargs.setdefault("widget", MultipleFileInput())
        super().__init__(**kwargs)

    def clean(self, data: Any, initial: Any = None) -> list[Any]:
        files = data if isinstance(data, (list, tuple)) else [data] if data else []
        if len(files) > DOCUMENTS_MAX:
            raise forms.ValidationError(_("At most %(count)s more documents.") % {"count": DOCUMENTS_MAX})
        return [super(MoreDocumentsField, self).clean(file, initial) for file in files]


class ProgramChoiceField(forms.ModelChoiceField):
    """A program, shown by its name (杭州市算力券), sent by its slug."""

    def label_from_instance(self, obj: Any) -> str:
        return str(obj.name)


class ApplyForm(forms.Form):
    program = ProgramChoiceField(
        label=_("Program"),
        # The compute programs: the other measures ask for inputs this form has not (the API takes them).
        queryset=Program.objects.filter(status=Program.Status.ACTIVE, basis=Program.Basis.COMPUTE_CONTRACT).order_by(
            "slug"
        ),
        to_field_name="slug",
        initial=DEFAULT_PROGRAM,
        empty_label=None,
        required=False,  # Absent (an older form, a script): the default program.
    )
    provider = forms.ModelChoiceField(
        label=_("Computing center"),
        queryset=Provider.objects.filter(status=Provider.Status.ACTIVE).order_by("name"),
        empty_label=_("Choose a computing center"),
    )
    contract_number = _text(_("Contract number"), max_length=100)
    contract_fee = YuanField(label=_("Contract fee (yuan)"))
    compute_source = forms.ChoiceField(label=_("Compute source"), choices=choices(*ComputeSource.values))
    purpose = forms.ChoiceField(label=_("Purpose"), choices=choices(*Purpose.values))
    requested = YuanField(
        label=_("Amount requested (yuan)"),
        required=False,
        help_text=_("Leave empty to request the whole eligible amount."),
    )
    model_filing_number = _text(
        _("CAC filing number of the model the work relies on"),
        max_length=100,
        required=False,
        help_text=_(
            "For MaaS, agents and applications built on a filed model (yours or another's). The registered-model "
            "rate applies only once the fund's staff have verified this filing."
        ),
    )
    contract_file = DocumentFileField(
        label=_("Signed contract"), help_text=_("The signed contract: PDF, OFD, JPEG or PNG.")
    )
    contract_signed_on = forms.DateField(
        label=_("Contract signed on"), widget=forms.DateInput(attrs={"type": "date"}), help_text=_("YYYY-MM-DD.")
    )
    contract_term_months = forms.IntegerField(
        label=_("Contract term (months)"), min_value=1, max_value=CONTRACT_TERM_MONTHS_CEILING
    )
    filing_certificate_file = DocumentFileField(
        label=_("Model filing certificate"),
        required=False,
        help_text=_("With a filing number: the certificate, where the program year asks for it."),
    )
    more_files = MoreDocumentsField(
        label=_("More documents"), required=False, help_text=_("Optional: anything else the reviewer should see.")
    )


class FlagsForm(forms.Form):
    """What an enterprise declares about itself; each change waits for a reviewer to confirm it."""

    has_registered_model = forms.BooleanField(
        label=_("We provide services on a registered (CAC-filed) generative model"), required=False
    )
    model_filing_number = _text(
        _("CAC filing number of the model"),
        max_length=100,
        required=False,
        help_text=_("Needed with a registered model."),
    )
    foundation_model_developer = forms.BooleanField(
        label=_("We develop a large generative multimodal foundation model"), required=False
    )
    small_or_medium = forms.BooleanField(label=_("We are a small or medium enterprise"), required=False)


class RegisterForm(FlagsForm):
    """An enterprise registers with its first member, declaring its flags; a reviewer verifies it (and
    confirms the flags) before it may apply."""

    field_order = ["name", "uscc", *FlagsForm.base_fields]
    name = _text(_("Enterprise name"), max_length=200)
    uscc = UsccField(label=_("Unified social credit code"))
    username = _text(_("Username for signing in"), max_length=150, help_text=_("Letters, digits and @/./+/-/_ only."))
    email = forms.EmailField(label=_("Email"), max_length=254)
    password = forms.CharField(label=_("Password"), strip=False, widget=forms.PasswordInput(render_value=False))
    password_again = forms.CharField(
        label=_("Password again"), strip=False, widget=forms.PasswordInput(render_value=False)
    )

    def clean_username(self) -> str:
        # NFKC first (`ａｄｍｉｎ` is `admin`), as accounts.services does.
        username: str = username_normal(self.cleaned_data["username"])
        try:
            User.username_validator(username)
        except ValidationError as error:
            raise forms.ValidationError(error.messages) from None
        if User.objects.filter(username__iexact=username).exists():
            raise forms.ValidationError(_("This username is taken."))
        return username

    def clean_uscc(self) -> str:
        uscc: str = self.cleaned_data["uscc"]
        if Enterprise.objects.filter(uscc=uscc).exists() or Provider.objects.filter(uscc=uscc).exists():
            raise forms.ValidationError(_("An organisation with this credit code is already registered."))
        return uscc

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if data.get("has_registered_model") and not data.get("model_filing_number"):
            self.add_error("model_filing_number", _("A registered model needs its CAC filing number."))
        password, again = data.get("password"), data.get("password_again")
        if password and again and password != again:
            self.add_error("password_again", _("The two passwords differ."))
        elif password:
            try:
                validate_password(password, User(username=data.get("username", ""), email=data.get("email", "")))
            except ValidationError as error:
                self.add_error("password", error)
        return data


class ReviewForm(forms.Form):
    """The reviewer's recommendation and the documents they checked (the page lists each one beside
    its checkbox: kind, size, hash, a download link and any warning)."""

    recommended = YuanField(label=_("Recommended amount (yuan)"))
    note = _text(_("Note"), max_length=REASON_LENGTH_MAX, required=False)
    note.widget = forms.Textarea(attrs={"rows": 2})
    evidence_checked = forms.TypedMultipleChoiceField(
        label=_("Documents checked"),
        coerce=int,
        widget=forms.CheckboxSelectMultiple,
        error_messages={"required": _("Tick the documents you checked: at least the signed contract.")},
    )

    def __init__(self, *args: Any, documents: list[int], contract: int | None = None, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self.contract = contract
        field = self.fields["evidence_checked"]
        assert isinstance(field, forms.TypedMultipleChoiceField)
        field.choices = [(pk, str(pk)) for pk in documents]
        field.required = bool(documents)

    def clean_evidence_checked(self) -> list[int]:
        checked: list[int] = self.cleaned_data.get("evidence_checked") or []
        if self.contract is not None and self.contract not in checked:
            raise forms.ValidationError(_("Tick the signed contract: a reviewer checks at least the contract."))
        return checked


class ApproveForm(forms.Form):
    approved = YuanField(
        label=_("Amount approved (yuan)"),
        required=False,
        help_text=_("At most the recommended amount; leave empty to approve it whole."),
    )


class ReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Reason"), max_length=REASON_LENGTH_MAX, strip=True, widget=forms.Textarea(attrs={"rows": 2})
    )


class OptionalReasonForm(forms.Form):
    reason = forms.CharField(
        label=_("Note"),
        max_length=REASON_LENGTH_MAX,
        strip=True,
        required=False,
        widget=forms.Textarea(attrs={"rows": 1}),
    )


class RedeemForm(forms.Form):
    grant_code = _text(_("Coupon code"), max_length=32, help_text=_("The code on the enterprise's coupon."))
    bill_number = _text(_("Bill number"), max_length=100)
    bill_amount = YuanField(label=_("Bill amount (yuan)"))
    requested = YuanField(
        label=_("Coupon amount requested (yuan)"),
        required=False,
        help_text=_("Leave empty to apply as much as the rate and the coupon allow."),
    )
    invoice_number = _text(
        _("Invoice number"),
        max_length=INVOICE_INPUT_LENGTH_MAX,
        help_text=_("20 digits (fully digital e-invoice), or the 10 or 12-digit code and the 8-digit number."),
    )
    invoice_file = DocumentFileField(label=_("Invoice"), help_text=_("The invoice: PDF, OFD, JPEG or PNG."))
    invoice_amount = YuanField(
        label=_("Invoice amount (yuan)"),
        required=False,
        help_text=_("Leave empty when the invoice is for the bill amount; never less than the bill."),
    )
    capture = forms.BooleanField(
        label=_("Capture now (otherwise the amount is held until captured or voided)"), required=False, initial=True
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        bill, invoice = data.get("bill_amount"), data.get("invoice_amount")
        if bill is not None and invoice is not None and invoice < bill:
            self.add_error("invoice_amount", _("The invoice must cover the bill amount."))
        return data


def _paying_program() -> ProgramChoiceField:
    """The program whose fund pays a settlement: every program (a closed one still settles), the
    default preselected."""
    return ProgramChoiceField(
        label=_("Program"),
        queryset=Program.objects.order_by("slug"),
        to_field_name="slug",
        initial=DEFAULT_PROGRAM,
        empty_label=None,
        required=False,  # Absent (an older form, a script): the default program.
    )


def program_slug(data: dict[str, Any]) -> str:
    """The slug of the program a form names; the default program when it names none."""
    program = data.get("program")
    return str(program.slug) if program is not None else DEFAULT_PROGRAM


class SettlementForm(forms.Form):
    program = _paying_program()
    provider = forms.ModelChoiceField(
        label=_("Computing center"),
        queryset=Provider.objects.order_by("name"),
        empty_label=_("Choose a computing center"),
    )


class ClaimForm(forms.Form):
    """A bill the enterprise paid in full (enterprise reimbursement): the invoice and the proof of payment."""

    invoice_number = _text(
        _("Invoice number"),
        max_length=64,
        help_text=_("20 digits, or the 10 or 12-digit invoice code and the 8-digit number: CODE-NUMBER."),
    )
    invoice_file = forms.FileField(label=_("Invoice (PDF, OFD, JPEG or PNG)"))
    payment_proof_file = forms.FileField(label=_("Proof of payment (PDF, OFD, JPEG or PNG)"))
    bill_amount = YuanField(label=_("Bill amount paid (yuan)"))
    requested = YuanField(
        label=_("Coupon amount requested (yuan)"),
        required=False,
        help_text=_("Leave empty to claim as much as the rate and the coupon allow."),
    )


class EnterpriseSettlementForm(forms.Form):
    program = _paying_program()
    enterprise = forms.ModelChoiceField(
        label=_("Enterprise"),
        queryset=Enterprise.objects.filter(claims__status="approved", claims__settlement__isnull=True)
        .distinct()
        .order_by("name"),
        empty_label=_("Choose an enterprise"),
    )


class PayForm(forms.Form):
    bank_reference = _text(_("Bank reference"), max_length=100)


class ApiKeyForm(forms.Form):
    name = _text(_("Key name"), max_length=100, help_text=_("Say which system uses it, e.g. billing-prod."))


class ProviderForm(forms.Form):
    """A computing center and its first facilities: one per compute source ticked, with one window."""

    name = _text(_("Name"), max_length=200)
    uscc = UsccField(label=_("Unified social credit code"))
    listing = forms.ChoiceField(label=_("Listing"), choices=choices("planning_layout", "matched_partner"))
    offers_domestic = forms.BooleanField(label=_("Offers domestic compute"), required=False)
    offers_other = forms.BooleanField(label=_("Offers other compute"), required=False)
    facility = _text(
        _("Facilities"),
        max_length=FACILITY_DESCRIPTION_LENGTH_MAX,
        help_text=_("What the center offers, such as its clusters."),
    )
    listed_from = forms.DateField(label=_("Listed from"), widget=forms.DateInput(attrs={"type": "date"}))
    listed_until = forms.DateField(
        label=_("Listed until (inclusive)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Leave empty: listed until further notice."),
    )

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        if not (data.get("offers_domestic") or data.get("offers_other")):
            self.add_error("offers_domestic", _("Tick at least one compute source the center offers."))
        start, end = data.get("listed_from"), data.get("listed_until")
        if isinstance(start, dt.date) and isinstance(end, dt.date) and end < start:
            self.add_error("listed_until", _("The end comes before the start."))
        return data

    def facilities(self) -> list[dict[str, Any]]:
        """The facilities to list, from the cleaned form."""
        data = self.cleaned_data
        sources = [source for source in ComputeSource.values if data.get(f"offers_{source}")]
        return [
            {
                "compute_source": source,
                "description": data["facility"],
                "listed_from": data["listed_from"],
                "listed_until": data.get("listed_until"),
            }
            for source in sources
        ]


class ModelFilingForm(forms.Form):
    filing_number = _text(_("CAC filing number"), max_length=100)
    model_name = _text(_("Model name"), max_length=200)
    holder_name = _text(_("Holder (who filed the model)"), max_length=200)
    holder_uscc = _text(_("Holder's credit code"), max_length=18, required=False)


class SanctionForm(forms.Form):
    uscc = UsccField(label=_("Credit code of the organisation"))
    reason = forms.CharField(label=_("Reason"), max_length=REASON_LENGTH_MAX, widget=forms.Textarea(attrs={"rows": 2}))
    valid_from = forms.DateField(label=_("From (first day)"), widget=forms.DateInput(attrs={"type": "date"}))
    valid_until = forms.DateField(
        label=_("Until (last day)"),
        required=False,
        widget=forms.DateInput(attrs={"type": "date"}),
        help_text=_("Leave empty: until further notice."),
    )


class RelatedPartyForm(forms.Form):
    uscc_a = UsccField(label=_("Credit code of the first party"))
    uscc_b = UsccField(label=_("Credit code of the second party"))
    note = _text(_("Note"), max_length=RELATED_PARTY_NOTE_LENGTH_MAX, required=False)


class CapOverrideForm(forms.Form):
    enterprise = forms.ModelChoiceField(
        label=_("Enterprise"),
        queryset=Enterprise.objects.filter(
            foundation_model_developer=True, foundation_model_developer_verified=True, status=Enterprise.Status.VERIFIED
        ).order_by("name"),
        empty_label=_("Choose a foundation-model enterprise"),
    )
    cap = YuanField(label=_("New annual cap (yuan)"), maximum_fen=25_000_000_000)
    reason = forms.CharField(
        label=_("Written reason"), max_length=REASON_LENGTH_MAX, widget=forms.Textarea(attrs={"rows": 2})
    )


class ExportForm(forms.Form):
    what = forms.ChoiceField(
        label=_("What"),
        choices=[("grants", _("Grants")), ("redemptions", _("Redemptions")), ("settlements", _("Settlements"))],
    )
    start = forms.DateField(label=_("From (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))
    end = forms.DateField(label=_("To (inclusive)"), widget=forms.DateInput(attrs={"type": "date"}))
    file_format = forms.ChoiceField(label=_("Format"), choices=[("csv", "CSV"), ("xlsx", "XLSX (Excel)")])

    def clean(self) -> dict[str, Any]:
        data = super().clean() or {}
        start, end = data.get("start"), data.get("end")
        for name in ("start", "end"):
            day = data.get(name)
            if isinstance(day, dt.date) and not EXPORT_YEAR_MIN <= day.year <= EXPORT_YEAR_MAX:
                self.add_error(
                    name,
                    _("Choose a day between %(first)s and %(last)s.")
                    % {"first": EXPORT_YEAR_MIN, "last": EXPORT_YEAR_MAX},
                )
        start, end = data.get("start"), data.get("end")
        if isinstance(start, dt.date) and isinstance(end, dt.date) and not self.errors:
            if end < start:
                self.add_error("end", _("The end comes before the start."))
            elif (end - start).days > EXPORT_PERIOD_DAYS_MAX:
                self.add_error("end", _("Choose a period of at most three years."))
        return data


class DisputeResolveForm(forms.Form):
    """A reviewer's note on the decision to uphold or dismiss a dispute."""

    note = forms.CharField(
        label=_("Note"), max_length=REASON_LENGTH_MAX, strip=True, widget=forms.Textarea(attrs={"rows": 2})
    )
