"""Documents' test set-up: each test stores its files in a directory of its own (so "nothing was
written" is "the directory is empty"), a cast of people in three organisations and staff, and
helpers to upload through the API and to list what is on disk."""

import hashlib
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
from django.core.files.uploadedfile import SimpleUploadedFile
from rest_framework.test import APIClient

from accounts.models import User
from evidence.models import Citation, Document, StoredFile
from tests.api.conftest import signed_in
from tests.coupons.conftest import Cast, make_cast
from tests.factories import EnterpriseFactory, UserFactory

SAMPLES = Path(__file__).resolve().parents[2] / "evidence" / "samples"
DOCUMENTS = "/api/v1/documents/"


def documents_storage_settings(root: Path, backend: str = "django.core.files.storage.FileSystemStorage") -> dict:
    """The "documents" storage on the local file system under `root`, as the base settings set it."""
    return {
        "BACKEND": backend,
        "OPTIONS": {"location": str(root), "base_url": None, "file_permissions_mode": 0o640},
    }


@pytest.fixture(autouse=True)
def documents_root(settings: Any, tmp_path: Path) -> Path:
    root = tmp_path / "documents-storage"
    settings.STORAGES = {**settings.STORAGES, "documents": documents_storage_settings(root)}
    return root


def files_on_disk(root: Path) -> list[Path]:
    return sorted(path for path in root.rglob("*") if path.is_file())


def sha256_of(path: Path) -> str:
    return hashlib.sha256(path.read_bytes()).hexdigest()


def nothing_stored(root: Path) -> bool:
    return (
        not files_on_disk(root)
        and not Document.objects.exists()
        and not StoredFile.objects.exists()
        and not Citation.objects.exists()
    )


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def upload(
    client: APIClient,
    data: bytes,
    *,
    kind: str = "invoice",
    name: str = "file.pdf",
    content_type: str = "",
    **extra: Any,
) -> Any:
    """POST /documents/ as a browser or a generated client sends it: multipart, `file` and `kind`."""
    body: dict[str, Any] = {"file": SimpleUploadedFile(name, data, content_type=content_type or "application/pdf")}
    if kind:
        body["kind"] = kind
    body.update(extra)
    return client.post(DOCUMENTS, body, format="multipart")


class People:
    """The cast of the coupon tests plus a second enterprise, each with a signed-in API client."""

    def __init__(self, cast: Cast) -> None:
        self.cast = cast
        self.member = cast.member
        self.colleague = UserFactory(enterprise=cast.enterprise)
        self.clerk = cast.clerk
        self.reviewer = cast.reviewer
        self.stranger = UserFactory(enterprise=EnterpriseFactory())
        self._clients: dict[int, APIClient] = {}

    def client(self, user: User) -> APIClient:
        if user.pk not in self._clients:
            self._clients[user.pk] = signed_in(user)
        return self._clients[user.pk]


@pytest.fixture
def people(db: None) -> People:
    return People(make_cast())


@pytest.fixture
def as_member(people: People) -> APIClient:
    return people.client(people.member)


@pytest.fixture
def upload_as(people: People) -> Callable[..., Any]:
    return lambda user, data, **kwargs: upload(people.client(user), data, **kwargs)
