"""The client's address as the service sees it, for the throttles, the sign-in lockout and the logs.

Behind `TRUSTED_PROXIES` proxies that each append the address they saw to X-Forwarded-For (nginx's
`$proxy_add_x_forwarded_for`, deploy/nginx.conf), REMOTE_ADDR is the last proxy's own address, the
same for every client: the client is the entry that the outermost trusted proxy appended, the
`TRUSTED_PROXIES`-th from the right. Entries left of it were written by the client and are never
believed. With no trusted proxy (the default), X-Forwarded-For is ignored. DRF's throttles read the
same rule from REST_FRAMEWORK["NUM_PROXIES"], set from the same setting.
"""

from django.conf import settings
from django.http import HttpRequest


def client_address(request: HttpRequest) -> str | None:
    remote = request.META.get("REMOTE_ADDR") or None
    proxies = int(settings.TRUSTED_PROXIES)
    forwarded = request.META.get("HTTP_X_FORWARDED_FOR", "")
    hops = [hop.strip() for hop in forwarded.split(",") if hop.strip()]
    if proxies <= 0 or not hops:
        return remote
    return hops[-min(proxies, len(hops))]
