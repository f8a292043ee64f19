"""The OpenAPI schema and its interactive docs, served from this service alone (no CDN)."""

import re

import pytest
import yaml
from django.test import Client

from api.schema import PROBLEM_CODES

pytestmark = pytest.mark.django_db


def test_schema_is_openapi_3_and_documents_every_error_code(client: Client):
    response = client.get("/api/schema/")
    assert response.status_code == 200
    schema = yaml.safe_load(response.content)
    assert schema["openapi"].startswith("3.")
    paths = schema["paths"]
    for path in (
        "/api/v1/redemptions/",
        "/api/v1/redemptions/batch/",
        "/api/v1/applications/{id}/approve/",
        "/api/v1/settlements/{id}/lines.csv",
        "/api/v1/stats/pool/",
        "/api/v1/public/awards/",
    ):
        assert path in paths, path
    problem = schema["components"]["schemas"]["Problem"]
    assert set(problem["properties"]["code"]["enum"]) == set(PROBLEM_CODES)
    for path_item in paths.values():
        for operation in path_item.values():
            assert {"400", "401", "403", "404", "409", "429"} <= set(operation["responses"]), operation["operationId"]
    redeem = paths["/api/v1/redemptions/"]["post"]
    header = next(p for p in redeem["parameters"] if p["name"] == "Idempotency-Key")
    assert header["in"] == "header" and header["required"] is True


def test_docs_load_their_assets_from_this_service(client: Client):
    response = client.get("/api/docs/")
    assert response.status_code == 200
    html = response.content.decode()
    assets = re.findall(r'(?:src|href)="([^"]+)"', html)
    assert assets, html[:500]
    for asset in assets:
        assert not asset.startswith(("http://", "https://", "//")), f"external asset {asset}"
    scripts = [a for a in assets if a.endswith(".js")]
    assert scripts
    for script in scripts:
        assert client.get(script).status_code == 200, script
