"""Which computing centers take part on a day, as the program's refusals.

The rule itself is `Provider.takes_part_on(day)` (active, listed, and at least one facility whose
listing window covers the day, in Asia/Shanghai); submission, confirmation, approval and
redemption (single and batch) all refuse through `provider_require_listed`, so they cannot
disagree.
"""

import datetime as dt

from accounts.models import Provider
from coupons.errors import ProviderNotListed


def provider_require_listed(provider: Provider, day: dt.date) -> None:
    """409 provider_not_listed unless the provider takes part on `day`."""
    if provider.takes_part_on(day):
        return
    if not provider.takes_part:
        raise ProviderNotListed(f"{provider.name} is {provider.status} and takes no part in the program.")
    raise ProviderNotListed(f"{provider.name} has no facility listed on {day.isoformat()}.")
