"""Every list is paginated: {"count", "next", "previous", "results"}, at most PAGE_SIZE_MAX a page.

`?page_size=` and `?page=` are read as strictly as a request body: a whole number (page_size from 1
to PAGE_SIZE_MAX, page from 1), or the request is refused (400), never quietly replaced by the
default. The schema says the same.
"""

from typing import Any

from rest_framework.pagination import PageNumberPagination
from rest_framework.request import Request

from config.errors import ValidationFailed

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


class Pagination(PageNumberPagination):
    page_size = PAGE_SIZE_DEFAULT
    page_size_query_param = "page_size"
    max_page_size = PAGE_SIZE_MAX

    def get_page_size(self, request: Request) -> int:
        values = request.query_params.getlist(self.page_size_query_param)
        if not values:
            return self.page_size
        value = values[-1]
        if len(values) > 1 or not value.isascii() or not value.isdigit() or not 1 <= int(value) <= PAGE_SIZE_MAX:
            raise ValidationFailed(
                f"Send one page_size, a whole number from 1 to {PAGE_SIZE_MAX}.", field=self.page_size_query_param
            )
        return int(value)

    def get_page_number(self, request: Request, paginator: Any) -> Any:
        values = request.query_params.getlist(self.page_query_param)
        if not values:
            return 1
        value = values[-1]
        if len(values) > 1 or not value.isascii() or not value.isdigit() or int(value) < 1:
            raise ValidationFailed("Send one page, a whole number from 1.", field=self.page_query_param)
        return value  # A page past the last is DRF's 404.

    def get_schema_operation_parameters(self, view: Any) -> list[dict[str, Any]]:
        parameters = super().get_schema_operation_parameters(view)
        for parameter in parameters:
            if parameter["name"] == self.page_size_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1, "maximum": PAGE_SIZE_MAX}
                parameter["description"] = f"Results a page: 1 to {PAGE_SIZE_MAX} (default {PAGE_SIZE_DEFAULT})."
            elif parameter["name"] == self.page_query_param:
                parameter["schema"] = {"type": "integer", "minimum": 1}
                parameter["description"] = "The page, from 1 (default 1); past the last page: 404."
        return parameters
