"""API test set-up: clients signed in with real bearer tokens, and problem-details assertions."""

from collections.abc import Callable
from typing import Any

import pytest
from rest_framework.test import APIClient

from accounts.models import User
from config.errors import ErrorCode
from tests.coupons.conftest import Cast, make_cast, open_year

PASSWORD = "correct horse battery staple"  # tests.factories.UserFactory's password


def signed_in(user: User) -> APIClient:
    """A client holding a bearer token that the real sign-in endpoint issued to `user`."""
    client = APIClient()
    response = client.post("/api/v1/auth/token/", {"username": user.username, "password": PASSWORD}, format="json")
    assert response.status_code == 200, response.content
    client.credentials(HTTP_AUTHORIZATION=f"Bearer {response.json()['token']}")
    return client


def assert_problem(response: Any, status: int, code: str) -> dict[str, Any]:
    """The response is RFC 9457 problem details with this status and stable code."""
    assert response.status_code == status, (response.status_code, response.content[:500])
    assert response["Content-Type"].startswith("application/problem+json"), response["Content-Type"]
    body = response.json()
    assert body["code"] == code, body
    assert body["code"] in set(ErrorCode), f"{body['code']} is not in config.errors.ErrorCode"
    assert body["status"] == status and body["title"] and body["detail"] and body["type"].endswith(code)
    return body


def approved(asked: Any, decider: APIClient, reason: str = "") -> dict[str, Any]:
    """The 202 approval request that `asked` answered, approved by `decider` (a different person): the
    decided request (200). The action is done once this returns."""
    assert asked.status_code == 202, (asked.status_code, asked.content[:500])
    request_id = asked.json()["id"]
    response = decider.post(f"/api/v1/approval-requests/{request_id}/approve/", {"reason": reason}, format="json")
    assert response.status_code == 200, (response.status_code, response.content[:500])
    body = response.json()
    assert body["status"] == "approved" and body["decided_by"] != body["requested_by"]
    return body


@pytest.fixture
def as_user() -> Callable[[User], APIClient]:
    return signed_in


@pytest.fixture
def anonymous() -> APIClient:
    return APIClient()


@pytest.fixture
def cast(db: None) -> Cast:
    return make_cast()


@pytest.fixture
def year(cast: Cast):
    return open_year(cast.admin)
