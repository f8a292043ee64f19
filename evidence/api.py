"""Documents over the API: upload one (multipart), list and read what the caller may see, and
download its bytes through a view that checks the caller first. There is no public URL for a file."""

from collections.abc import Iterable

from django.http import FileResponse
from django.urls import path
from drf_spectacular.utils import OpenApiResponse, extend_schema, extend_schema_view
from rest_framework import generics, serializers, status
from rest_framework.negotiation import BaseContentNegotiation
from rest_framework.parsers import BaseParser, MultiPartParser
from rest_framework.renderers import BaseRenderer, JSONRenderer
from rest_framework.request import Request
from rest_framework.response import Response
from rest_framework.views import APIView

from accounts.caller import caller
from api.scoping import ScopedQuerysetMixin
from api.serializers import StrictSerializer
from config.errors import NotFound, ValidationFailed
from config.replica import ListFromReplica
from evidence import sniff, storage
from evidence.errors import DocumentTooLarge, NotMultipart
from evidence.models import Document, Kind
from evidence.selectors import documents_visible_to
from evidence.services import document_size_max, document_upload

TAGS = ["documents"]
# Multipart framing around the file (boundaries, part headers, the kind field) stays well under this.
MULTIPART_OVERHEAD_BYTES = 64 * 1024
PROBLEM = {"$ref": "#/components/schemas/Problem"}
BINARY = {"type": "string", "format": "binary"}


class DocumentSerializer(serializers.ModelSerializer):
    sha256 = serializers.CharField(source="file_id", read_only=True, help_text="SHA-256 of the bytes, hex.")
    size = serializers.IntegerField(read_only=True, help_text="Bytes.")
    content_type = serializers.CharField(read_only=True, help_text="Judged from the bytes: PDF, OFD, JPEG or PNG.")

    class Meta:
        model = Document
        fields = ["id", "kind", "sha256", "size", "content_type", "original_name", "uploaded_at"]
        read_only_fields = fields


class DocumentUpload(StrictSerializer):
    """multipart/form-data: the file and what it is. Documents the request only: the view reads the
    parts itself, so that an extra or repeated part is refused rather than ignored (the schema says so:
    a StrictSerializer's body is closed)."""

    file = serializers.FileField(
        help_text="PDF, OFD, JPEG or PNG, judged from the bytes; at most DOCUMENT_SIZE_MAX_BYTES."
    )
    kind = serializers.ChoiceField(choices=Kind.choices)


def _content_length(request: Request) -> int:
    try:
        return max(int(request.META.get("CONTENT_LENGTH") or 0), 0)
    except ValueError:
        return 0  # Django reads no body of a length it cannot parse.


def _uploaded_bytes(request: Request) -> tuple[str, bytes, str]:
    """The `kind` and the file's bytes and name from a multipart body with exactly those two parts."""
    if not (request.content_type or "").startswith("multipart/form-data"):
        raise NotMultipart(
            "Send the file as multipart/form-data with two parts: file (the bytes) and kind "
            f"({', '.join(Kind.values)})."
        )
    length = _content_length(request)
    if length > document_size_max() + MULTIPART_OVERHEAD_BYTES:
        # Refused before the body is read: nothing of it reaches the disk.
        raise DocumentTooLarge(
            f"The request has {length} bytes; a file of at most {document_size_max()} bytes is accepted.",
            size_max=document_size_max(),
        )
    fields, files = request.POST, request.FILES  # The multipart parser's two halves of the body.
    unknown = sorted((set(fields.keys()) | set(files.keys())) - {"file", "kind"})
    if unknown:
        raise ValidationFailed({name: ["Unknown field."] for name in unknown})
    kinds = fields.getlist("kind")
    if len(kinds) != 1 or kinds[0] not in Kind.values:
        raise ValidationFailed(f"Send one kind: one of {', '.join(Kind.values)}.", field="kind")
    uploads = files.getlist("file")
    if len(uploads) != 1 or "file" in fields:
        raise ValidationFailed("Send exactly one file, as the multipart part named file.", field="file")
    upload = uploads[0]
    if upload.size is not None and upload.size > document_size_max():
        raise DocumentTooLarge(
            f"The file has {upload.size} bytes; at most {document_size_max()} are accepted.",
            size_max=document_size_max(),
        )
    return kinds[0], upload.read(), upload.name or ""


@extend_schema_view(
    get=extend_schema(
        summary="List the documents you may see",
        description="Your organisation's uploads and the documents cited by an application or bill your organisation "
        "is a party to; staff see all. Newest first.",
        tags=TAGS,
    )
)
class DocumentList(ListFromReplica, ScopedQuerysetMixin, generics.ListAPIView):
    serializer_class = DocumentSerializer
    scoped_model = Document
    scope = staticmethod(documents_visible_to)
    parser_classes = [MultiPartParser]
    ordering_fields = ["id", "uploaded_at"]
    ordering = ["-id"]

    @extend_schema(
        request={"multipart/form-data": DocumentUpload},
        responses={
            201: OpenApiResponse(DocumentSerializer, description="Stored: the new document."),
            200: OpenApiResponse(
                DocumentSerializer,
                description="The same bytes of the same kind were already "
                "uploaded for your organisation: that document.",
            ),
            (413, "application/problem+json"): OpenApiResponse(
                PROBLEM,
                description="`document_too_large`: the file (or the whole request) is over DOCUMENT_SIZE_MAX_BYTES; "
                "nothing was stored.",
            ),
            (415, "application/problem+json"): OpenApiResponse(
                PROBLEM, description="`unsupported_media_type`: the body is not multipart/form-data."
            ),
        },
        summary="Upload a document (multipart: file, kind)",
        description=(
            "Any signed-in user. The type is judged from the bytes: a complete PDF, OFD, JPEG or PNG, else 400 "
            "`unsupported_document` (an empty, truncated or renamed file, a PDF that is really HTML); over "
            "the size limit (DOCUMENT_SIZE_MAX_BYTES, 20 MB by default) 413 `document_too_large`. Nothing is "
            "stored on a refusal. The file is stored once by its SHA-256 however often it is uploaded; the "
            "document is then cited by id (`contract_document` of an application, `invoice_document` of a "
            "redemption or claim). See docs/evidence.md."
        ),
        tags=TAGS,
    )
    def post(self, request: Request) -> Response:
        user = caller(request)
        kind, data, name = _uploaded_bytes(request)
        uploaded = document_upload(actor=user, kind=kind, data=data, name=name)
        return Response(
            DocumentSerializer(uploaded.document).data,
            status=status.HTTP_201_CREATED if uploaded.created else status.HTTP_200_OK,
        )


@extend_schema_view(
    get=extend_schema(
        summary="Read a document's metadata",
        description="The uploader's organisation, staff, and the other party of an application or bill that cites "
        "it; anyone else 404.",
        tags=TAGS,
    )
)
class DocumentDetail(ScopedQuerysetMixin, generics.RetrieveAPIView):
    serializer_class = DocumentSerializer
    scoped_model = Document
    scope = staticmethod(documents_visible_to)


class _AnyAccept(BaseContentNegotiation):
    """The bytes go out with their own type whatever the Accept header asks (a generated client may
    ask for application/octet-stream); a refusal goes out as problem JSON."""

    def select_parser(self, request: Request, parsers: Iterable[BaseParser]) -> BaseParser:
        return next(iter(parsers))

    def select_renderer(
        self, request: Request, renderers: Iterable[BaseRenderer], format_suffix: str | None = None
    ) -> tuple[BaseRenderer, str]:
        renderer = next(iter(renderers))
        return renderer, renderer.media_type


class DocumentContent(APIView):
    renderer_classes = [JSONRenderer]
    content_negotiation_class = _AnyAccept

    @extend_schema(
        summary="Download a document's bytes",
        description="Scoped as the metadata. Served as an attachment with its detected type (one of the four "
        "below), never inline, and never from a public URL; streamed, so a large file is not held in memory.",
        responses={
            (200, content_type): OpenApiResponse(response=BINARY, description="The file.")
            for content_type in sniff.ACCEPTED_TYPES
        },
        tags=TAGS,
    )
    def get(self, request: Request, pk: int) -> FileResponse:
        user = caller(request)
        document = documents_visible_to(user).filter(pk=pk).first()
        if document is None:
            raise NotFound(f"No document {pk}.")
        extension = sniff.EXTENSIONS.get(document.content_type, "bin")
        response = FileResponse(
            storage.open_stored(document.file.storage_name),
            as_attachment=True,
            filename=f"document-{document.pk}.{extension}",
            content_type=document.content_type,
        )
        response["Content-Length"] = str(document.size)
        response["X-Content-Type-Options"] = "nosniff"
        response["Content-Security-Policy"] = "default-src 'none'; sandbox"
        return response


urlpatterns = [
    path("documents/", DocumentList.as_view(), name="document-list"),
    path("documents/<int:pk>/", DocumentDetail.as_view(), name="document-detail"),
    path("documents/<int:pk>/content/", DocumentContent.as_view(), name="document-content"),
]
