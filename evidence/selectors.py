"""Who may read which document, and what else cites the same bytes."""

from collections.abc import Callable

from django.db.models import Exists, OuterRef, Q, QuerySet

from accounts.models import User
from evidence.models import Citation, Document

STAFF = "staff"


def organisation_key(user: User) -> str:
    """The organisation a user acts for, as documents record it: "enterprise:5", "provider:3", or
    "staff" for the fund's own people (who belong to no organisation)."""
    if user.enterprise_id is not None:
        return f"enterprise:{user.enterprise_id}"
    if user.provider_id is not None:
        return f"provider:{user.provider_id}"
    return STAFF


# Staff whose roles are limited to programs (`User.programs`) read only the documents that no object
# cites, or that an object within their reach cites. This app knows nothing of programs: the app that
# cites documents registers, at start-up, which citations such a person reaches (a filter on Citation).
CitationsWithinReach = Callable[[User], Q]
_citations_within_reach: CitationsWithinReach | None = None


def citations_within_reach_register(within_reach: CitationsWithinReach) -> None:
    global _citations_within_reach
    _citations_within_reach = within_reach


def documents_visible_to(user: User) -> QuerySet[Document]:
    """Staff see every document (staff limited to programs: those no object cites, and those an object
    of their programs cites); a member of an organisation sees what its organisation uploaded and
    what is cited by an object it is a party to (the other side of an application or a bill)."""
    documents = Document.objects.select_related("file")
    if user.is_staff_member:
        if user.program_limit is None:
            return documents
        reach = _citations_within_reach(user) if _citations_within_reach is not None else Q(pk__in=[])
        cited = Citation.objects.filter(document=OuterRef("pk"))
        return documents.filter(~Exists(cited) | Exists(cited.filter(reach)))
    if user.enterprise_id is None and user.provider_id is None:
        return documents.none()
    key = organisation_key(user)
    cited_to_me = Citation.objects.filter(document=OuterRef("pk"), parties__contains=[key])
    return documents.filter(Q(owner=key) | Exists(cited_to_me))


def citations_of(subject: str) -> QuerySet[Citation]:
    return Citation.objects.filter(subject=subject).select_related("document", "document__file").order_by("pk")


def same_bytes_elsewhere(*, sha256: str, principal: str) -> list[Citation]:
    """Citations of the same bytes for another organisation: the same file offered as evidence by two
    enterprises, which a reviewer must see before accepting it."""
    return list(
        Citation.objects.filter(sha256=sha256).exclude(principal=principal).select_related("document").order_by("pk")
    )
