"""Staff whose roles are limited to programs (`User.programs`).

Programs belong to `coupons`, which this app may not import (docs/architecture.md): the coupon app
registers, at start-up (`CouponsConfig.ready`), how to tell which slugs name no program, the way it
registers its approval actions. Until it has, every slug is refused, so a limit is never written
unchecked.
"""

from collections.abc import Callable, Collection

ProgramsUnknown = Callable[[Collection[str]], list[str]]

_unknown: ProgramsUnknown | None = None


def program_slugs_register(unknown: ProgramsUnknown) -> None:
    """Register the check: given slugs, the ones that name no program."""
    global _unknown
    _unknown = unknown


def program_slugs_unknown(slugs: Collection[str]) -> list[str]:
    """The slugs among `slugs` that name no program (all of them while no app registered programs)."""
    return sorted(slugs) if _unknown is None else _unknown(slugs)
