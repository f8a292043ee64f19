"""`manage.py seed_demo`: open the program year and load the demo data of `make run`.

Both redemption modes are live at once: the year Y (the current one by default) is in
`provider_deduction` mode (centers deduct coupons from their bills), and Y-1 is seeded before it in
`enterprise_reimbursement` mode (enterprises pay in full and claim) with grants valid for 24 months
from issue, then closed as the annual reset closes it: its grants outlive the close, so its
enterprises still claim on them today.

Beside the city's program (`hangzhou-compute`), a district's runs in the current year: Binjiang's own
coupons (`binjiang-compute`), with its own pool and cap, and a stacking rule that lets the two
subsidise one contract up to 60% of its fee together; one contract of the Binjiang enterprise is
granted by both (docs/programs.md "Stacking").

Everything goes through the services, as a person would through the API: the year is created and
opened by the superuser, enterprises register and a reviewer verifies them, applications walk their
states, approvals issue grants in the ledger, providers redeem, finance settles. No money row is
written here. The command is idempotent: the year is opened only if it is not, `admin` is created
only if missing, and the rest only if the demo's first contract is absent; a second run reports
what it skipped and changes nothing. All of it runs in one transaction, so a failure leaves nothing
behind but the demo's chains' ledger partitions, made first (empty tables; `_partitions_ensure`).
"""

import datetime as dt
import struct
import zlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from django.contrib.auth.password_validation import validate_password
from django.core.exceptions import ValidationError
from django.core.management.base import BaseCommand, CommandError, CommandParser
from django.db import connection, transaction
from django.db.models.functions import Upper
from django.utils import timezone

from accounts.models import Enterprise, Provider, Role, User, listing_day
from accounts.services import (
    enterprise_register,
    enterprise_verify,
    model_filing_record,
    model_filing_verify,
    provider_change_request,
    provider_create,
    related_party_add,
    sanction_set,
    staff_user_create_bootstrap,
    user_create,
)
from accounts.uscc import check_character
from approvals.models import ApprovalRequest
from approvals.services import approval_request_approve
from config.errors import ApplicationError
from config.money import yuan_text
from coupons.models import (
    DEFAULT_PROGRAM,
    Application,
    Claim,
    ComputeSource,
    Grant,
    Program,
    ProgramYear,
    Purpose,
    Redemption,
)
from coupons.services.acknowledgements import redemption_acknowledge, redemption_dispute
from coupons.services.applications import (
    application_approve,
    application_confirm,
    application_reject,
    application_review,
    application_submit,
    application_withdraw,
)
from coupons.services.claims import claim_approve, claim_reject, claim_submit, settlement_create_for_enterprise
from coupons.services.grants import grant_revoke_request
from coupons.services.redemptions import (
    redemption_capture,
    redemption_create,
    redemption_reverse_request,
    redemption_void,
    redemptions_expire_holds,
)
from coupons.services.reset import annual_reset
from coupons.services.settlements import settlement_create, settlement_pay_request
from coupons.services.stacking import stacking_rule_create
from coupons.services.years import (
    CAP_FEN_DEFAULT,
    POOL_FEN_DEFAULT,
    PROGRAM_TIME_ZONE,
    cap_override_request,
    program_create,
    program_year_create,
    program_year_of,
    program_year_open,
    year_end,
)
from evidence.models import Document, Kind
from evidence.selectors import citations_of
from evidence.services import document_upload
from ledger.partitions import chain_partitions_create

SAMPLES = Path(__file__).resolve().parents[3] / "evidence" / "samples"
PASSWORD_DEFAULT = "demo-pass-2026"  # noqa: S105  For local demos only: every demo user signs in with it.
ADMIN_USERNAME = "admin"
# The first contract of the demo: when it exists, the demo was loaded (in one transaction).
MARKER_CONTRACT_NUMBER = "HZ-DEMO-0001"
# The reimbursement year's contracts: a contract number is unique per center across years.
REIMBURSEMENT_CONTRACT_PREFIX = "HZ-DEMO-R"
# The reimbursement year's grants are valid for this many months from issue, so they outlive its close.
REIMBURSEMENT_GRANT_MONTHS = 24
STAFF = (
    ("reviewer", Role.REVIEWER),
    ("reviewer2", Role.REVIEWER),
    ("approver", Role.APPROVER),
    ("approver2", Role.APPROVER),
    ("finance", Role.FINANCE),
    ("finance2", Role.FINANCE),
    ("auditor", Role.AUDITOR),
)
PROVIDERS = (
    # username, name, listing, suspended
    ("provider1", "Hangzhou Artificial Intelligence Computing Center", Provider.Listing.PLANNING_LAYOUT, False),
    ("provider2", "Zhejiang Cloud Intelligent Computing Center", Provider.Listing.PLANNING_LAYOUT, False),
    ("provider3", "Qiantang Compute Matching Partner", Provider.Listing.MATCHED_PARTNER, False),
    ("provider4", "Xiaoshan Legacy Computing Center", Provider.Listing.PLANNING_LAYOUT, True),
)
# The program began in 2024: the demo centers have been listed since then.
LISTED_SINCE = dt.date(2024, 1, 1)
# What each demo center offers (by its username): provider1 domestic compute only, provider2 both,
# provider3 (a matching partner) other compute only, provider4 a window that has ended.
FACILITIES: dict[str, list[dict[str, object]]] = {
    "provider1": [
        {
            "compute_source": ComputeSource.DOMESTIC,
            "description": "Ascend 910B training cluster, 2,000 PFLOPS (FP16)",
            "listed_from": LISTED_SINCE,
            "listed_until": None,
        }
    ],
    "provider2": [
        {
            "compute_source": ComputeSource.DOMESTIC,
            "description": "Hygon DCU cluster for training and fine-tuning",
            "listed_from": LISTED_SINCE,
            "listed_until": None,
        },
        {
            "compute_source": ComputeSource.OTHER,
            "description": "A800 GPU cloud for inference",
            "listed_from": dt.date(2024, 3, 1),
            "listed_until": None,
        },
    ],
    "provider3": [
        {
            "compute_source": ComputeSource.OTHER,
            "description": "GPU capacity matched from partner data centers",
            "listed_from": dt.date(2024, 6, 1),
            "listed_until": None,
        }
    ],
    "provider4": [
        {
            "compute_source": ComputeSource.DOMESTIC,
            "description": "Legacy domestic CPU and accelerator cluster",
            "listed_from": LISTED_SINCE,
            "listed_until": dt.date(2025, 12, 31),
        }
    ],
}
MODEL_FILING_NUMBER = "Zhejiang-WestLakeModel-20240315"
ENTERPRISES = (
    # username, name, foundation model developer (with a registered model), small or medium, verified
    ("enterprise1", "West Lake Foundation Models Co., Ltd.", True, False, True),
    ("enterprise2", "Qiantang Vision Small Tech Co., Ltd.", False, True, True),
    ("enterprise3", "Binjiang Data Services Co., Ltd.", False, False, True),
    ("enterprise4", "Gongshu Robotics Start-up Co., Ltd.", False, False, False),
)
MODEL_SERVICES = (Purpose.MAAS, Purpose.AGENT, Purpose.APPLICATION)
# Where the demo's organisations are registered (GB/T 2260): Xihu, but the Binjiang enterprise.
XIHU_DIVISION = "330106"
BINJIANG_DIVISION = "330108"
DIVISIONS = {"enterprise3": BINJIANG_DIVISION}
# The district program beside the city's: Binjiang's own compute coupons, in its own pool, stacking
# with the city's up to 60% of a contract's fee together.
DISTRICT_PROGRAM: dict[str, Any] = {
    "slug": "binjiang-compute",
    "name": "滨江区算力券",
    "name_en": "Binjiang District computing-power coupons",
    "authority": "杭州市滨江区科学技术局 (Binjiang District Science and Technology Bureau)",
    "level": Program.Level.DISTRICT,
    "region": [BINJIANG_DIVISION],
}
DISTRICT_POOL_FEN = 5_000_000_000  # 50 million yuan
DISTRICT_CAP_FEN = 200_000_000  # 2 million yuan per enterprise
STACKING_RULE_NAME = "hangzhou-compute+binjiang-compute"
STACKING_SHARE_BP = 6000  # The city's and the district's coupons together: at most 60% of the fee.
# The contract both programs subsidise: Binjiang Data Services' training at provider 1.
STACKED_CONTRACT_NUMBER = "HZ-DEMO-0010"
RELAXED_CAP_FEN = 2_000_000_000  # 20 million yuan for the foundation-model developer.


def demo_uscc(serial: int, division: str = XIHU_DIVISION) -> str:
    """A valid credit code (GB 32100-2015) of a Hangzhou company registered in `division` (Xihu
    district unless named), numbered `serial`."""
    first_seventeen = f"91{division}MA2H{serial:05d}"
    return first_seventeen + check_character(first_seventeen)


def sample_upload(actor: User, kind: str, sample: str, label: str) -> Document:
    """One of the shipped sample documents (evidence/samples/), uploaded by `actor` as `kind`, made
    its own file by a PDF comment naming `label` after the sample's end. The demo's parties each cite
    their own bytes; the same file offered for two enterprises is flagged to reviewers, and the demo
    shows no false alarm."""
    data = (SAMPLES / sample).read_bytes()
    if sample.endswith(".png"):
        # A PNG ends with its IEND chunk: the label goes in a text chunk just before it.
        text = b"Comment\x00" + f"Demo copy: {label}".encode()
        chunk = struct.pack(">I", len(text)) + b"tEXt" + text + struct.pack(">I", zlib.crc32(b"tEXt" + text))
        data = data[:-12] + chunk + data[-12:]
    else:
        data += f"% Demo copy: {label}\n%%EOF\n".encode()
    return document_upload(actor=actor, kind=kind, data=data, name=sample).document


def fen(yuan_amount: int) -> int:
    return yuan_amount * 100


DEMO_USERNAMES = (
    *(username for username, _ in STAFF),
    *(row[0] for row in PROVIDERS),
    *(row[0] for row in ENTERPRISES),
)
DEMO_USCCS = tuple(
    demo_uscc(serial, DIVISIONS.get(username, XIHU_DIVISION))
    for serial, username in enumerate([*(row[0] for row in PROVIDERS), *(row[0] for row in ENTERPRISES)], start=1)
)


@dataclass
class _Cast:
    admin: User
    staff: dict[str, User]
    providers: list[Provider]
    provider_members: list[User]
    enterprises: list[Enterprise]
    enterprise_members: list[User]


class Command(BaseCommand):
    help = (
        "Open the program year (default: the current one, Asia/Shanghai) with the 2024 measures and "
        "load demo users, organisations, applications, grants, redemptions and settlements through the "
        "services. Idempotent: a second run skips what exists. The demo password is for local demos only."
    )

    def add_arguments(self, parser: CommandParser) -> None:
        parser.add_argument(
            "--password",
            default=PASSWORD_DEFAULT,
            help=f"The password of every demo user (default {PASSWORD_DEFAULT!r}; for local demos only, "
            "never on a server others can reach).",
        )
        parser.add_argument(
            "--year",
            type=int,
            default=None,
            help="The program year to open and fill (default: the current one; not a future one); the year "
            "before it is filled in enterprise reimbursement mode and closed.",
        )

    def handle(self, *args: object, **options: object) -> None:
        password = str(options["password"])
        year_option = options["year"]
        current = program_year_of(timezone.now())
        year = current if year_option is None else int(str(year_option))
        # The year before is the reimbursement year: its centers must be listed then, and its grants,
        # issued at the real time (approval takes no `now`), run their 24 months from today, so a
        # future year's claims would fall after their expiry.
        if not LISTED_SINCE.year < year <= current:
            raise CommandError(
                f"--year: the demo also fills the year before in reimbursement mode, which needs its centers "
                f"listed (from {LISTED_SINCE.year}) and its grants valid (from today); choose "
                f"{LISTED_SINCE.year + 1} to {current}."
            )
        self._partitions_ensure(year)
        try:
            with transaction.atomic():
                admin = self._admin_ensure(password)
                demo_present = Application.objects.filter(contract_number=MARKER_CONTRACT_NUMBER).exists()
                self._year_ensure(year, admin, demo_needed=not demo_present)
                if demo_present:
                    previous = ProgramYear.objects.filter(program_id=DEFAULT_PROGRAM, year=year - 1).first()
                    if previous is not None:
                        self.stdout.write(f"Program year {year - 1}: {previous.status}, skipped.")
                    if Program.objects.filter(slug=DISTRICT_PROGRAM["slug"]).exists():
                        self.stdout.write(f"Program {DISTRICT_PROGRAM['slug']}: present, skipped.")
                    self.stdout.write(f"Demo data: present (contract {MARKER_CONTRACT_NUMBER}), skipped.")
                    return
                self._check_no_demo_names_taken()
                if ProgramYear.objects.filter(program_id=DEFAULT_PROGRAM, year=year - 1).exists():
                    raise CommandError(
                        f"Program year {year - 1} exists: the demo seeds it in enterprise reimbursement mode, "
                        "so it loads only into a database without it; nothing was written."
                    )
                cast = self._cast_create(admin, password)
                self._flows_create(cast, year)
                self._district_create(cast, year)
                self._reimbursement_create(cast, year - 1, demo_year=year)
                # Seal the demo's transfers into the hash chain and audit them, as beat would.
                from coupons.services.audit import audit_execute, audit_run_create
                from ledger.chain import ledger_seal

                self.stdout.write(f"Ledger: {ledger_seal()} transfers sealed.")
                audit = audit_execute(run_id=audit_run_create(started_by=admin).pk)
                self.stdout.write(f"Audit {audit.pk}: {audit.status}.")
                from coupons.services.alerts import alerts_check

                self.stdout.write(f"Alerts raised: {len(alerts_check())}.")
        except ApplicationError as error:
            raise CommandError(f"{error.code}: {error.detail} (nothing was written)") from error
        self.stdout.write(self.style.SUCCESS(f"Demo data loaded for {year}; the demo users' password is {password}."))

    # --- The ledger's partitions, the year and the superuser --------------------------------------

    def _partitions_ensure(self, year: int) -> None:
        """The demo's chains get their ledger partitions first, each made and committed on its own.

        The demo is written in one transaction, so that a failure leaves nothing behind; but a year
        created inside it gets its partitions only once its creation commits (docs/ledger-history.md),
        which here is after its first transfers went to the DEFAULT partition, where the hook then
        leaves them. Made before, they are only empty tables until the demo writes; a demo that fails
        leaves them empty, which is harmless (a year of that chain created later finds them made).
        Inside a caller's transaction (a test's) no DDL can be committed: they are not made then."""
        if connection.in_atomic_block:
            return
        chains = [
            *(f"{DEFAULT_PROGRAM}:{each}" for each in (year, year - 1)),
            f"{DISTRICT_PROGRAM['slug']}:{year}",
        ]
        for program_year in ProgramYear.objects.filter(program_id=DEFAULT_PROGRAM, year__in=(year, year - 1)):
            chains.append(program_year.chain)  # A year made before programs keeps its old chain.
        for chain in sorted(set(chains)):
            if chain_partitions_create(chain=chain):
                self.stdout.write(f"Ledger partitions of chain {chain}: present.")
            else:
                self.stdout.write(f"Ledger chain {chain}: its transfers are in the DEFAULT partition.")

    def _admin_ensure(self, password: str) -> User:
        admin = User.objects.filter(username__iexact=ADMIN_USERNAME).first()
        if admin is not None:
            if not (admin.username == ADMIN_USERNAME and admin.is_active and admin.is_superuser):
                raise CommandError(f"User {admin.username!r} exists and is not an active superuser {ADMIN_USERNAME!r}.")
            self.stdout.write(f"Superuser {ADMIN_USERNAME}: exists, skipped (password unchanged).")
            return admin
        admin = User(username=ADMIN_USERNAME, email=f"{ADMIN_USERNAME}@example.com")
        try:
            validate_password(password, admin)
        except ValidationError as error:
            raise CommandError(f"--password: {' '.join(error.messages)}") from None
        admin = User.objects.create_superuser(
            username=ADMIN_USERNAME, email=f"{ADMIN_USERNAME}@example.com", password=password
        )
        self.stdout.write(f"Superuser {ADMIN_USERNAME}: created.")
        return admin

    def _year_ensure(self, year: int, admin: User, *, demo_needed: bool) -> None:
        program_year = ProgramYear.objects.filter(program_id=DEFAULT_PROGRAM, year=year).first()
        if program_year is None:
            program_year_create(year=year, actor=admin)  # The defaults are the 2024 measures.
            program_year_open(year=year, actor=admin)
            self.stdout.write(
                f"Program year {year}: created and opened with the 2024 measures (pool {yuan_text(POOL_FEN_DEFAULT)}, "
                f"cap {yuan_text(CAP_FEN_DEFAULT)} per enterprise, 0 grace days)."
            )
        elif program_year.status == ProgramYear.Status.DRAFT:
            program_year_open(year=year, actor=admin)
            self.stdout.write(f"Program year {year}: was a draft, opened with its own policy.")
        elif program_year.status == ProgramYear.Status.OPEN:
            self.stdout.write(f"Program year {year}: open, skipped.")
        elif demo_needed:
            raise CommandError(f"Program year {year} is {program_year.status}; choose an open year with --year.")
        else:
            self.stdout.write(f"Program year {year}: {program_year.status}, skipped.")

    def _check_no_demo_names_taken(self) -> None:
        """The demo is loaded whole or not at all: refuse to mix it with users or codes that exist."""
        # Usernames are the same whatever their case: `ENTERPRISE1` takes `enterprise1`.
        taken = sorted(
            User.objects.annotate(upper=Upper("username"))
            .filter(upper__in=[username.upper() for username in DEMO_USERNAMES])
            .values_list("username", flat=True)
        )
        codes = sorted(
            [
                *Enterprise.objects.filter(uscc__in=DEMO_USCCS).values_list("uscc", flat=True),
                *Provider.objects.filter(uscc__in=DEMO_USCCS).values_list("uscc", flat=True),
            ]
        )
        if taken or codes:
            raise CommandError(
                "The demo data is absent but some of its names are taken "
                f"(users: {', '.join(taken) or 'none'}; credit codes: {', '.join(codes) or 'none'}); "
                "nothing was written."
            )

    # --- People and organisations ---------------------------------------------------------------

    def _cast_create(self, admin: User, password: str) -> _Cast:
        staff = {
            # As createsuperuser does for the admin: roles at once, from the command line only.
            username: staff_user_create_bootstrap(
                username=username, password=password, email=f"{username}@example.com", roles=[role]
            )
            for username, role in STAFF
        }
        self.stdout.write(f"Staff: created {', '.join(staff)}.")

        serials = iter(range(1, len(DEMO_USCCS) + 1))
        providers, provider_members = [], []
        for username, name, listing, suspended in PROVIDERS:
            provider = provider_create(
                name=name,
                uscc=demo_uscc(next(serials)),
                listing=listing,
                facilities=FACILITIES[username],
                actor=admin,
            )
            member, _ = user_create(
                username=username, password=password, email=f"{username}@example.com", provider=provider, actor=admin
            )
            provider_members.append(member)
            if suspended:
                # A listed center changes by maker-checker: the superuser asks, an approver decides.
                approval = provider_change_request(
                    provider=provider,
                    changes={"status": Provider.Status.SUSPENDED},
                    reason="The center's facilities left the city's planning layout (demo).",
                    requester=admin,
                )
                approval_request_approve(request_id=approval.pk, decider=staff["approver"])
                provider.refresh_from_db()
            providers.append(provider)
        self.stdout.write(f"Providers: created {len(providers)} (one suspended), each with a member.")

        enterprises, enterprise_members = [], []
        for username, name, foundation_model, small_or_medium, verified in ENTERPRISES:
            member, enterprise = enterprise_register(
                username=username,
                password=password,
                email=f"{username}@example.com",
                name=name,
                uscc=demo_uscc(next(serials), DIVISIONS.get(username, XIHU_DIVISION)),
                has_registered_model=foundation_model,
                model_filing_number=MODEL_FILING_NUMBER if foundation_model else "",
                foundation_model_developer=foundation_model,
                small_or_medium=small_or_medium,
            )
            if verified:
                # The reviewer confirms what the enterprise declared: a flag counts only then.
                declared = {"has_registered_model": foundation_model, "foundation_model_developer": foundation_model}
                flags = {name: True for name, value in declared.items() if value}
                if small_or_medium:
                    flags["small_or_medium"] = True
                enterprise = enterprise_verify(enterprise=enterprise, actor=staff["reviewer"], flags=flags)
            enterprises.append(enterprise)
            enterprise_members.append(member)
        self.stdout.write(
            f"Enterprises: registered {len(enterprises)} (one left pending), each with a member; "
            "the flags of the verified ones confirmed by a reviewer."
        )
        filing = model_filing_record(
            filing_number=MODEL_FILING_NUMBER,
            model_name="West Lake multimodal foundation model",
            holder_name=enterprises[0].name,
            holder_uscc=enterprises[0].uscc,
            actor=staff["reviewer"],
        )
        model_filing_verify(filing=filing, actor=staff["reviewer2"])
        self.stdout.write(f"Model filings: {MODEL_FILING_NUMBER} recorded and verified in the register.")

        # The plain enterprise and the matching partner belong to one group: they may not deal.
        related_party_add(
            uscc_a=enterprises[2].uscc,
            uscc_b=providers[2].uscc,
            note="Same parent group (demo).",
            actor=staff["reviewer"],
        )
        self.stdout.write(f"Related parties: listed {enterprises[2].name} and {providers[2].name}.")
        # The suspended center is also sanctioned: one reviewer asked, a different approver decided.
        sanction_set(
            uscc=providers[3].uscc,
            reason="Billed compute it did not deliver (demo).",
            valid_from=dt.date(2024, 1, 1),
            valid_until=None,
            requested_by=staff["reviewer"],
            actor=staff["approver"],
        )
        self.stdout.write(f"Sanctions: {providers[3].name}, until further notice.")
        return _Cast(admin, staff, providers, provider_members, enterprises, enterprise_members)

    # --- Applications, grants, redemptions, settlements ------------------------------------------

    def _flows_create(self, cast: _Cast, year: int) -> None:
        # Services judge "now" against the year; for a year other than the current one, act mid-year.
        now = None if year == program_year_of(timezone.now()) else dt.datetime(year, 7, 1, 12, tzinfo=PROGRAM_TIME_ZONE)
        staff = cast.staff
        p1, p2, p3, _ = cast.providers
        c1, c2, c3, _ = cast.provider_members
        e1 = cast.enterprises[0]
        m1, m2, m3, _ = cast.enterprise_members
        clerk_of = {p1.pk: c1, p2.pk: c2, p3.pk: c3}

        # Every sensitive action is asked for by one person and approved by another (maker-checker).
        def approved(request: ApprovalRequest, decider: str) -> None:
            approval_request_approve(request_id=request.pk, decider=staff[decider])

        approved(
            cap_override_request(
                year=year,
                enterprise=e1,
                cap_fen=RELAXED_CAP_FEN,
                reason="Develops a registered generative multimodal foundation model; relaxed cap under the measures.",
                requester=staff["reviewer"],
            ),
            "approver2",
        )
        self.stdout.write(f"Cap override: {e1.name} may be granted {yuan_text(RELAXED_CAP_FEN)} in {year}.")

        # Contracts were signed this year, no later than the demo's day.
        today = listing_day(now)
        signed_on = max(dt.date(year, 1, 1), today - dt.timedelta(days=60))

        def submit(
            member: User, provider: Provider, number: int, fee_yuan: int, source: str, purpose: str
        ) -> Application:
            contract_number = f"HZ-DEMO-{number:04d}"
            # The foundation-model developer's model services rely on its own filed model.
            filed = member == m1 and purpose in MODEL_SERVICES
            return application_submit(
                actor=member,
                provider=provider,
                contract_number=contract_number,
                contract_fee_fen=fen(fee_yuan),
                compute_source=source,
                purpose=purpose,
                model_filing_number=MODEL_FILING_NUMBER if filed else "",
                contract_document=sample_upload(member, Kind.CONTRACT, "contract.pdf", contract_number),
                contract_signed_on=signed_on,
                contract_term_months=12,
                filing_certificate_document=(
                    sample_upload(member, Kind.FILING_CERTIFICATE, "filing-certificate.pdf", MODEL_FILING_NUMBER)
                    if filed
                    else None
                ),
                now=now,
            )

        def confirm(application: Application) -> Application:
            return application_confirm(application=application, actor=clerk_of[application.provider_id])

        def review(application: Application, reviewer: str, recommended_fen: int | None = None) -> Application:
            return application_review(
                application=confirm(application),
                actor=staff[reviewer],
                recommended_fen=recommended_fen or application.requested_fen,
                evidence_checked=list(
                    citations_of(f"application:{application.pk}").values_list("document_id", flat=True)
                ),
                note="Contract and filing certificate checked (demo).",
            )

        def approve(
            application: Application, reviewer: str, approver: str, recommended_fen: int | None = None
        ) -> Grant:
            application_approve(application=review(application, reviewer, recommended_fen), actor=staff[approver])
            return Grant.objects.get(application=application)

        domestic, other = ComputeSource.DOMESTIC, ComputeSource.OTHER
        # The marker contract comes first. 30% of 50M is 15M, past the default 8M cap: the relaxed
        # cap lets the approver grant the 12M recommended.
        g1 = approve(submit(m1, p1, 1, 50_000_000, domestic, Purpose.MAAS), "reviewer", "approver", fen(12_000_000))
        g2 = approve(submit(m2, p2, 2, 2_000_000, domestic, Purpose.TRAINING), "reviewer2", "approver2")
        g3 = approve(submit(m2, p2, 3, 1_000_000, other, Purpose.INFERENCE), "reviewer", "approver2")
        g4 = approve(submit(m3, p2, 4, 10_000_000, other, Purpose.INFERENCE), "reviewer2", "approver")
        submit(m3, p1, 5, 3_000_000, domestic, Purpose.APPLICATION)
        confirm(submit(m2, p3, 6, 1_500_000, other, Purpose.TRAINING))
        review(submit(m1, p2, 7, 8_000_000, domestic, Purpose.AGENT), "reviewer2", fen(2_000_000))
        application_reject(
            application=review(submit(m3, p1, 8, 4_000_000, domestic, Purpose.TRAINING), "reviewer"),
            actor=staff["approver2"],
            reason="The contract covers storage, not compute.",
        )
        application_withdraw(application=confirm(submit(m2, p1, 9, 500_000, domestic, Purpose.INFERENCE)), actor=m2)
        self.stdout.write(
            "Applications: 9 (submitted, confirmed, reviewed, 4 approved, rejected, withdrawn); grants: 4."
        )

        invoice_serial = iter(range(1, 1000))

        def redeem(grant: Grant, bill: str, bill_yuan: int, *, capture: bool = False) -> Redemption:
            clerk = clerk_of[grant.provider_id]
            return redemption_create(
                grant=grant,
                bill_number=bill,
                bill_amount_fen=fen(bill_yuan),
                actor=clerk,
                capture=capture,
                # A fully digital e-invoice per bill: 2-digit year, 6-digit issuer area, a serial.
                invoice_number=f"{year % 100:02d}332000{next(invoice_serial):012d}",
                invoice_document=sample_upload(clerk, Kind.INVOICE, "invoice.pdf", bill),
                now=now,
            )

        # Provider 1 on the foundation-model grant: captured at once, held then captured, voided, expired.
        r1 = redeem(g1, "BILL-1001", 5_000_000, capture=True)
        r2 = redemption_capture(redemption=redeem(g1, "BILL-1002", 3_000_000), actor=c1, now=now)
        redemption_void(redemption=redeem(g1, "BILL-1003", 1_000_000), actor=c1, now=now)
        r4 = redeem(g1, "BILL-1004", 2_000_000)
        assert r4.expires_at is not None
        # As the hold-expiry job does once the hold's time is up.
        redemptions_expire_holds(now=r4.expires_at + dt.timedelta(seconds=1))
        r4.refresh_from_db()
        if r4.status != Redemption.Status.EXPIRED:
            raise CommandError(f"The hold of bill BILL-1004 did not expire: it is {r4.status}.")
        # The enterprise acknowledges its captured bills: only those are settled. Finance settles and
        # pays provider 1; then a paid redemption is reversed, and provider 1's next settlement (left
        # open) nets that clawback against a new capture.
        for bill_row in (r1, r2):
            redemption_acknowledge(redemption=bill_row, actor=m1, now=now)
        first = settlement_create(provider=p1, actor=staff["finance"])
        approved(
            settlement_pay_request(settlement=first, requester=staff["finance"], bank_reference="DEMO-BANK-0001"),
            "finance2",
        )
        approved(
            redemption_reverse_request(
                redemption=r2, requester=staff["reviewer"], reason="The billing system sent bill BILL-1002 twice."
            ),
            "approver",
        )
        redemption_acknowledge(redemption=redeem(g1, "BILL-1005", 4_000_000, capture=True), actor=m1, now=now)
        second = settlement_create(provider=p1, actor=staff["finance"])
        # Left for the demo's deciders: the open settlement's payment waits for finance2.
        settlement_pay_request(settlement=second, requester=staff["finance"], bank_reference="DEMO-BANK-0002")
        self.stdout.write(
            f"Settlements: {yuan_text(first.total_fen)} paid to {p1.name}; {yuan_text(second.total_fen)} open "
            "(a capture less a clawback)."
        )

        # Provider 2: captures on three grants, left unsettled: one disputed by its enterprise (for a
        # reviewer to uphold or dismiss), one acknowledged, one awaiting its enterprise; and a grant
        # revoked with a hold on it.
        redemption_dispute(
            redemption=redeem(g4, "BILL-2001", 2_000_000, capture=True),
            actor=m3,
            reason="Bill BILL-2001 lists GPU hours our jobs never used (demo).",
            now=now,
        )
        redemption_acknowledge(
            redemption=redemption_capture(redemption=redeem(g2, "BILL-2002", 1_000_000), actor=c2, now=now),
            actor=m2,
            now=now,
        )
        redeem(g3, "BILL-2003", 500_000, capture=True)
        redeem(g3, "BILL-2004", 200_000)
        approved(
            grant_revoke_request(
                grant=g3, requester=staff["approver2"], reason="The contract was terminated early (demo)."
            ),
            "approver",
        )
        # Last, so that the expiry above left it alone: a hold awaiting capture.
        redeem(g1, "BILL-1006", 1_500_000)
        self.stdout.write(
            "Redemptions: 10 (pending, captured, voided, expired, reversed); grant "
            f"{g3.code} revoked, its hold voided and its unused balance returned to the pool."
        )

    # --- The reimbursement year (Y-1) ------------------------------------------------------------

    def _district_create(self, cast: _Cast, year: int) -> None:
        """The district program beside the city's, its year open with its own pool and cap, the rule
        that lets the two stack up to 60% of a contract's fee, and one contract of the Binjiang
        enterprise subsidised by both: the city's 30% first, then the district's up to the 60%."""
        now = None if year == program_year_of(timezone.now()) else dt.datetime(year, 7, 1, 12, tzinfo=PROGRAM_TIME_ZONE)
        staff, admin = cast.staff, cast.admin
        slug = str(DISTRICT_PROGRAM["slug"])
        program_create(actor=admin, **DISTRICT_PROGRAM)
        program_year_create(
            year=year, actor=admin, program=slug, pool_fen=DISTRICT_POOL_FEN, default_cap_fen=DISTRICT_CAP_FEN
        )
        program_year_open(year=year, actor=admin, program=slug)
        stacking_rule_create(
            actor=admin, name=STACKING_RULE_NAME, programs=[DEFAULT_PROGRAM, slug], share_bp=STACKING_SHARE_BP
        )
        self.stdout.write(
            f"Program {slug} ({DISTRICT_PROGRAM['name']}): year {year} opened (pool {yuan_text(DISTRICT_POOL_FEN)}, "
            f"cap {yuan_text(DISTRICT_CAP_FEN)} per enterprise); it stacks with {DEFAULT_PROGRAM} up to "
            f"{STACKING_SHARE_BP // 100}% of a contract's fee."
        )

        provider, clerk = cast.providers[0], cast.provider_members[0]
        member, enterprise = cast.enterprise_members[2], cast.enterprises[2]
        today = listing_day(now)
        signed_on = max(dt.date(year, 1, 1), today - dt.timedelta(days=30))
        contract = sample_upload(member, Kind.CONTRACT, "contract.pdf", STACKED_CONTRACT_NUMBER)
        grants = []
        for program, reviewer, approver in (
            (DEFAULT_PROGRAM, "reviewer", "approver"),
            (slug, "reviewer2", "approver2"),
        ):
            application = application_submit(
                actor=member,
                provider=provider,
                contract_number=STACKED_CONTRACT_NUMBER,
                contract_fee_fen=fen(2_000_000),
                compute_source=ComputeSource.DOMESTIC,
                purpose=Purpose.TRAINING,
                contract_document=contract,
                contract_signed_on=signed_on,
                contract_term_months=12,
                now=now,
                program=program,
            )
            application = application_confirm(application=application, actor=clerk)
            application = application_review(
                application=application,
                actor=staff[reviewer],
                recommended_fen=application.requested_fen,
                evidence_checked=[contract.pk],
                note="Contract checked; the contract is subsidised by the city and the district (demo).",
            )
            application_approve(application=application, actor=staff[approver])
            grants.append(Grant.objects.get(application=application))
        self.stdout.write(
            f"Stacking: contract {STACKED_CONTRACT_NUMBER} of {enterprise.name} granted "
            f"{yuan_text(grants[0].amount_fen)} by {DEFAULT_PROGRAM} and {yuan_text(grants[1].amount_fen)} by {slug}, "
            f"within their combined {STACKING_SHARE_BP // 100}% of its {yuan_text(fen(2_000_000))} fee."
        )

    def _reimbursement_create(self, cast: _Cast, year: int, *, demo_year: int) -> None:
        """Y-1 in enterprise reimbursement mode: contracts approved into grants valid for 24 months,
        claims in every status (one paid through an enterprise settlement), then the year closed as
        the annual reset closes it, and a claim submitted on the demo's day for the reviewer's queue."""
        admin, staff = cast.admin, cast.staff
        p1, p2, _, _ = cast.providers
        c1, c2, _, _ = cast.provider_members
        e1, e2, e3, _ = cast.enterprises
        m1, m2, m3, _ = cast.enterprise_members
        clerk_of = {p1.pk: c1, p2.pk: c2}
        program_year_create(
            year=year,
            actor=admin,
            redemption_mode=ProgramYear.RedemptionMode.ENTERPRISE_REIMBURSEMENT,
            grant_validity=ProgramYear.GrantValidity.MONTHS,
            grant_validity_months=REIMBURSEMENT_GRANT_MONTHS,
        )
        program_year_open(year=year, actor=admin)
        # Services judge "now" against the year: inside Y-1 they act mid-year. The demo's day is
        # today for the current year, or mid-Y for a year given with --year.
        now = dt.datetime(year, 7, 1, 12, tzinfo=PROGRAM_TIME_ZONE)
        demo_now = (
            timezone.now()
            if demo_year == program_year_of(timezone.now())
            else dt.datetime(demo_year, 7, 1, 12, tzinfo=PROGRAM_TIME_ZONE)
        )
        signed_on = listing_day(now) - dt.timedelta(days=60)

        def grant_of(member: User, provider: Provider, number: int, fee_yuan: int, source: str, purpose: str) -> Grant:
            contract_number = f"{REIMBURSEMENT_CONTRACT_PREFIX}{number:03d}"
            application = application_submit(
                actor=member,
                provider=provider,
                contract_number=contract_number,
                contract_fee_fen=fen(fee_yuan),
                compute_source=source,
                purpose=purpose,
                contract_document=sample_upload(member, Kind.CONTRACT, "contract.pdf", contract_number),
                contract_signed_on=signed_on,
                contract_term_months=12,
                now=now,
            )
            application_confirm(application=application, actor=clerk_of[provider.pk])
            application_review(
                application=application,
                actor=staff["reviewer"],
                recommended_fen=application.requested_fen,
                evidence_checked=list(
                    citations_of(f"application:{application.pk}").values_list("document_id", flat=True)
                ),
                note="Contract checked (demo).",
            )
            application_approve(application=application, actor=staff["approver"])
            return Grant.objects.get(application=application)

        g1 = grant_of(m1, p1, 1, 2_000_000, ComputeSource.DOMESTIC, Purpose.TRAINING)
        g2 = grant_of(m2, p2, 2, 1_000_000, ComputeSource.OTHER, Purpose.INFERENCE)
        g3 = grant_of(m3, p1, 3, 500_000, ComputeSource.DOMESTIC, Purpose.INFERENCE)
        self.stdout.write(
            f"Program year {year}: created and opened in enterprise reimbursement mode, grants valid "
            f"{REIMBURSEMENT_GRANT_MONTHS} months from issue; applications: 3 approved, grants: 3 "
            f"({', '.join(grant.code for grant in (g1, g2, g3))})."
        )

        # A fully digital e-invoice per bill, numbered apart from Y's (another year, another serial range).
        invoice_serial = iter(range(501, 1000))

        def claim(grant: Grant, member: User, bill_yuan: int, at: dt.datetime) -> Claim:
            serial = next(invoice_serial)
            return claim_submit(
                grant=grant,
                actor=member,
                invoice_number=f"{year % 100:02d}332000{serial:012d}",
                invoice_document=sample_upload(member, Kind.INVOICE, "invoice.pdf", f"R-INVOICE-{serial}"),
                payment_proof_document=sample_upload(
                    member, Kind.PAYMENT_PROOF, "payment-proof.png", f"R-PAYMENT-{serial}"
                ),
                bill_amount_fen=fen(bill_yuan),
                now=at,
            )

        paid = claim_approve(claim=claim(g2, m2, 200_000, now), actor=staff["reviewer"], now=now)
        claim_approve(claim=claim(g3, m3, 100_000, now), actor=staff["reviewer2"], now=now)
        claim_reject(
            claim=claim(g1, m1, 300_000, now),
            actor=staff["reviewer2"],
            reason="The payment proof shows 80,000 yuan paid, not the 300,000 yuan billed (demo).",
            now=now,
        )
        settlement = settlement_create_for_enterprise(enterprise=e2, actor=staff["finance"])
        approval_request_approve(
            request_id=settlement_pay_request(
                settlement=settlement, requester=staff["finance"], bank_reference="DEMO-BANK-R001"
            ).pk,
            decider=staff["finance2"],
        )
        self.stdout.write(
            f"Claims in {year}: {yuan_text(paid.coupon_fen)} paid to {e2.name} by an enterprise settlement; one "
            f"approved for {e3.name}, awaiting settlement; one of {e1.name} rejected."
        )

        # Closed as the annual reset closes it on the demo's day: Y is open already, so the reset
        # only closes Y-1, and its grants, valid for months, stay active with their balance.
        report = annual_reset(year=year, now=max(demo_now, year_end(year)))
        self.stdout.write(
            f"Program year {year}: closed by the annual reset; {report.grants_outliving_the_year} grants "
            "stay valid for months after the close."
        )
        # On the demo's day, after the close: a claim on a grant that outlived its year, for the reviewer.
        claim(g1, m1, 400_000, demo_now)
        self.stdout.write(f"Claims in {year}: one of {e1.name} submitted today, in the reviewers' queue.")
