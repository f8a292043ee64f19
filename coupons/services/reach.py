"""Whether a staff member's roles reach an object's program (`User.programs`, docs/programs.md "Roles
limited to programs"). Every write by staff on an application, grant, redemption, claim or program
year checks it, so a person limited to program P who names an object of program Q is
refused as if the object did not exist (404 `not_found`), by the API, the portal and the approvals
alike. Members of organisations are not limited by program: their organisation scopes them.
"""

from accounts.models import User
from accounts.roles import require_program
from config.errors import PermissionDenied
from coupons.models import Claim, Grant, ProgramYear, Redemption


def program_of_grant(grant: Grant) -> str:
    """The slug of the grant's program (one query unless its year is loaded)."""
    if "year" in grant._state.fields_cache:
        return grant.year.program_id
    return ProgramYear.objects.values_list("program_id", flat=True).get(pk=grant.year_id)


def program_of_redemption(redemption: Redemption) -> str:
    return ProgramYear.objects.values_list("program_id", flat=True).get(grants__pk=redemption.grant_id)


def program_of_claim(claim: Claim) -> str:
    return ProgramYear.objects.values_list("program_id", flat=True).get(grants__pk=claim.grant_id)


def reach_program(actor: User, program: str, what: str) -> None:
    """The actor's roles reach the program, else NotFound naming `what` (`application 12`)."""
    require_program(actor, program, what=what)


def reach_every_program(actor: User, action: str) -> None:
    """An action that spans every program is for staff whose roles reach every program: an audit of the
    whole ledger, a sanction (it bars a party from every program)."""
    if actor.program_limit is not None:
        raise PermissionDenied(f"{action} spans every program; your roles are limited to some.")
