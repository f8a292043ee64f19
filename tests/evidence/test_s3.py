"""Documents in an S3-compatible store, through django-storages and boto3, against moto's real S3
server on a local port (HTTP on the loopback, not an in-process mock). The storage settings are the
ones `config/settings/base.py` builds from the DOCUMENTS_S3_* environment variables."""

import datetime as dt
import hashlib
import json
import runpy
import socket
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import boto3
import pytest
import requests
from django.utils import timezone
from moto.server import ThreadedMotoServer

from evidence.audit import stored_files_findings
from evidence.models import StoredFile
from tests.evidence.conftest import DOCUMENTS, sample, upload

pytestmark = pytest.mark.django_db

BUCKET = "coupons-documents"
BASE_DIR = Path(__file__).resolve().parents[2]
PUBLIC_GROUPS = (
    "http://acs.amazonaws.com/groups/global/AllUsers",
    "http://acs.amazonaws.com/groups/global/AuthenticatedUsers",
)


@pytest.fixture
def s3_endpoint() -> Iterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    server = ThreadedMotoServer(ip_address="127.0.0.1", port=port, verbose=False)
    server.start()
    try:
        yield f"http://127.0.0.1:{port}"
    finally:
        server.stop()


def storage_settings_from_environment(endpoint: str, monkeypatch: pytest.MonkeyPatch) -> dict[str, Any]:
    """STORAGES["documents"] as config/settings/base.py builds it when the operator sets these."""
    for name, value in {
        "DOCUMENTS_S3_BUCKET": BUCKET,
        "DOCUMENTS_S3_ENDPOINT_URL": endpoint,
        "DOCUMENTS_S3_REGION": "us-east-1",
        "DOCUMENTS_S3_ACCESS_KEY_ID": "testing",
        "DOCUMENTS_S3_SECRET_ACCESS_KEY": "testing",
    }.items():
        monkeypatch.setenv(name, value)
    return runpy.run_path(str(BASE_DIR / "config" / "settings" / "base.py"))["STORAGES"]["documents"]


@pytest.fixture
def s3(s3_endpoint: str, settings: Any, monkeypatch: pytest.MonkeyPatch) -> Any:
    client = boto3.client(
        "s3",
        endpoint_url=s3_endpoint,
        aws_access_key_id="testing",
        aws_secret_access_key="testing",
        region_name="us-east-1",
    )
    client.create_bucket(Bucket=BUCKET)
    documents = storage_settings_from_environment(s3_endpoint, monkeypatch)
    assert documents["BACKEND"] == "storages.backends.s3.S3Storage"
    assert (
        documents["OPTIONS"]["default_acl"] == "private" and documents["OPTIONS"]["client_config"].connect_timeout == 5
    )
    settings.STORAGES = {**settings.STORAGES, "documents": documents}
    return client


def _keys(s3: Any) -> list[str]:
    return [entry["Key"] for entry in s3.list_objects_v2(Bucket=BUCKET).get("Contents", [])]


def test_a_document_goes_to_the_bucket_content_addressed_and_private_and_comes_back(s3, s3_endpoint, people):
    data = sample("invoice.ofd")
    sha256 = hashlib.sha256(data).hexdigest()
    created = upload(people.client(people.clerk), data, name="invoice.ofd")
    assert created.status_code == 201, created.content
    key = f"documents/{sha256[:2]}/{sha256[2:4]}/{sha256}"
    assert _keys(s3) == [key]
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data

    # Private: an unsigned GET of the object's URL is refused, where a public object in the same
    # bucket is served (so the refusal is the ACL's, not the server refusing everyone); the owner
    # alone holds a grant, and no group of "everyone" or "any AWS user" does.
    assert requests.get(f"{s3_endpoint}/{BUCKET}/{key}", timeout=10).status_code == 403
    s3.put_object(Bucket=BUCKET, Key="public-probe", Body=b"hello", ACL="public-read")
    assert requests.get(f"{s3_endpoint}/{BUCKET}/public-probe", timeout=10).content == b"hello"
    s3.delete_object(Bucket=BUCKET, Key="public-probe")
    acl = s3.get_object_acl(Bucket=BUCKET, Key=key)
    assert [grant["Permission"] for grant in acl["Grants"]] == ["FULL_CONTROL"]
    assert acl["Grants"][0]["Grantee"]["Type"] == "CanonicalUser"
    assert not [g for g in acl["Grants"] if g["Grantee"].get("URI") in PUBLIC_GROUPS]
    bucket_acl = s3.get_bucket_acl(Bucket=BUCKET)
    assert not [g for g in bucket_acl["Grants"] if g["Grantee"].get("URI") in PUBLIC_GROUPS]

    # Downloaded through the API, which checks the caller; the store's URL is never handed out.
    response = people.client(people.clerk).get(f"{DOCUMENTS}{created.json()['id']}/content/")
    assert response.status_code == 200 and response["Content-Type"] == "application/ofd"
    assert b"".join(response.streaming_content) == data
    assert s3_endpoint not in json.dumps(created.json())
    assert people.client(people.stranger).get(f"{DOCUMENTS}{created.json()['id']}/content/").status_code == 404

    # The same bytes from another organisation: one object still.
    again = upload(people.client(people.member), data, name="copy.ofd")
    assert again.status_code == 201 and _keys(s3) == [key] and StoredFile.objects.count() == 1


def test_the_audit_reads_the_bucket(s3, people):
    data = sample("contract.pdf")
    upload(people.client(people.member), data, kind="contract")
    sha256 = hashlib.sha256(data).hexdigest()
    key = f"documents/{sha256[:2]}/{sha256[2:4]}/{sha256}"
    assert stored_files_findings(findings_max=50) == ([], 1)

    s3.put_object(Bucket=BUCKET, Key=key, Body=data.replace(b"%%EOF", b"%%EOX"))
    (changed,) = stored_files_findings(findings_max=50)[0]
    assert changed["problem"] == "changed" and changed["sha256"] == sha256

    s3.delete_object(Bucket=BUCKET, Key=key)
    assert stored_files_findings(findings_max=50)[0] == [{"sha256": sha256, "problem": "missing", "size": len(data)}]

    stray = "documents/00/11/0011" + "f" * 60
    s3.put_object(Bucket=BUCKET, Key=stray, Body=b"left behind")
    later = timezone.now() + dt.timedelta(hours=2)
    findings, _ = stored_files_findings(findings_max=50, now=later)
    assert {"name": stray, "problem": "unreferenced"} in findings

    # The next upload of the bytes writes the object again.
    upload(people.client(people.stranger), data, kind="contract")
    assert s3.get_object(Bucket=BUCKET, Key=key)["Body"].read() == data
