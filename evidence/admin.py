"""Documents in the admin: read-only. Files are read through the API's scoped content view, never
from a URL of the storage."""

from django.contrib import admin

from evidence.models import Citation, Document, StoredFile
from ledger.admin import ReadOnlyAdmin


@admin.register(Document)
class DocumentAdmin(ReadOnlyAdmin):
    list_display = ["id", "kind", "owner", "content_type", "size", "file", "uploaded_by", "uploaded_at"]
    list_filter = ["kind", "content_type"]
    list_select_related = ["file", "uploaded_by"]
    search_fields = ["file__sha256", "owner", "original_name"]
    date_hierarchy = "uploaded_at"


@admin.register(StoredFile)
class StoredFileAdmin(ReadOnlyAdmin):
    list_display = ["sha256", "content_type", "size", "stored_at"]
    list_filter = ["content_type"]
    search_fields = ["sha256"]


@admin.register(Citation)
class CitationAdmin(ReadOnlyAdmin):
    list_display = ["id", "subject", "role", "principal", "document", "cited_by", "cited_at"]
    list_filter = ["role"]
    list_select_related = ["document", "cited_by"]
    search_fields = ["subject", "principal", "sha256"]
