"""The OpenAPI schema describes the documents' endpoints well enough for a generated client: the
upload as multipart (a binary `file`, a `kind` from an enum), 413 `document_too_large`, and the
download as binary. The last test is such a client: it reads field names, types and paths from the
served schema alone and uploads, then downloads, over HTTP against a live server."""

from typing import Any

import pytest
import requests
import yaml
from django.test import Client

from evidence import sniff
from evidence.models import Kind
from tests.api.conftest import PASSWORD
from tests.evidence.conftest import sample
from tests.factories import EnterpriseFactory, UserFactory

UPLOAD = "/api/v1/documents/"
CONTENT = "/api/v1/documents/{id}/content/"


def _resolve(schema: dict[str, Any], node: dict[str, Any]) -> dict[str, Any]:
    while "$ref" in node:
        node = schema["components"]["schemas"][node["$ref"].rsplit("/", 1)[-1]]
    if "allOf" in node and len(node["allOf"]) == 1:
        return _resolve(schema, node["allOf"][0])
    return node


@pytest.fixture
def schema(db: None) -> dict[str, Any]:
    response = Client().get("/api/schema/")
    assert response.status_code == 200
    return yaml.safe_load(response.content)


def test_the_upload_is_declared_multipart_with_a_binary_file_and_a_kind(schema):
    operation = schema["paths"][UPLOAD]["post"]
    body = operation["requestBody"]
    assert body["required"] is True
    assert list(body["content"]) == ["multipart/form-data"]
    form = _resolve(schema, body["content"]["multipart/form-data"]["schema"])
    assert sorted(form["required"]) == ["file", "kind"] and set(form["properties"]) == {"file", "kind"}
    assert form["properties"]["file"] == {**form["properties"]["file"], "type": "string", "format": "binary"}
    assert _resolve(schema, form["properties"]["kind"])["enum"] == list(Kind.values)
    document = _resolve(schema, operation["responses"]["201"]["content"]["application/json"]["schema"])
    assert {"id", "kind", "sha256", "size", "content_type", "uploaded_at"} <= set(document["required"])
    too_large = operation["responses"]["413"]
    assert "document_too_large" in too_large["description"]
    assert too_large["content"]["application/problem+json"]["schema"] == {"$ref": "#/components/schemas/Problem"}
    assert "415" in operation["responses"]


def test_the_download_is_declared_binary_in_each_type_it_serves(schema):
    responses = schema["paths"][CONTENT]["get"]["responses"]
    assert set(responses["200"]["content"]) == set(sniff.ACCEPTED_TYPES)
    for declared in responses["200"]["content"].values():
        assert declared["schema"] == {"type": "string", "format": "binary"}


@pytest.mark.django_db(transaction=True)
def test_a_client_written_from_the_schema_alone_uploads_and_downloads(live_server, documents_root):
    base = live_server.url
    member = UserFactory(enterprise=EnterpriseFactory())
    schema = yaml.safe_load(requests.get(f"{base}/api/schema/", timeout=30).content)
    token = requests.post(
        f"{base}/api/v1/auth/token/", json={"username": member.username, "password": PASSWORD}, timeout=30
    ).json()["token"]
    auth = {"Authorization": f"Bearer {token}"}

    # Build the request from the declared body: each binary property is a file part, each other
    # property a field with a value its schema allows.
    operation = schema["paths"][UPLOAD]["post"]
    (media_type,) = operation["requestBody"]["content"]
    assert media_type == "multipart/form-data"
    form = _resolve(schema, operation["requestBody"]["content"][media_type]["schema"])
    data = sample("invoice.pdf")
    files, fields = {}, {}
    for name, declared in form["properties"].items():
        declared = _resolve(schema, declared)
        if declared.get("format") == "binary":
            files[name] = ("invoice.pdf", data, "application/octet-stream")
        else:
            fields[name] = declared["enum"][0]
    assert set(files) | set(fields) == set(form["required"])
    created = requests.post(f"{base}{UPLOAD}", files=files, data=fields, headers=auth, timeout=30)
    assert created.status_code == 201, created.text
    document = created.json()
    declared_response = _resolve(schema, operation["responses"]["201"]["content"]["application/json"]["schema"])
    assert set(declared_response["required"]) <= set(document)

    # Download it as declared: the path template filled in, asking for a declared media type.
    download = schema["paths"][CONTENT]["get"]
    (parameter,) = download["parameters"]
    url = base + CONTENT.replace("{" + parameter["name"] + "}", str(document["id"]))
    accept = ", ".join(download["responses"]["200"]["content"])
    response = requests.get(url, headers={**auth, "Accept": accept}, timeout=30)
    assert response.status_code == 200
    assert response.content == data
    assert response.headers["Content-Type"] in download["responses"]["200"]["content"]

    # A refusal comes back in the declared problem shape.
    refused = requests.post(
        f"{base}{UPLOAD}",
        files={name: ("fake.pdf", b"<html></html>", "application/pdf") for name in files},
        data=fields,
        headers=auth,
        timeout=30,
    )
    assert refused.status_code == 400 and refused.headers["Content-Type"].startswith("application/problem+json")
    problem = _resolve(schema, operation["responses"]["400"]["content"]["application/problem+json"]["schema"])
    assert set(problem["required"]) <= set(refused.json()) and refused.json()["code"] == "unsupported_document"
