"""Every list is paginated: {"count", "next", "previous", "results"}, at most PAGE_SIZE_MAX a page."""

from rest_framework.pagination import PageNumberPagination

PAGE_SIZE_DEFAULT = 50
PAGE_SIZE_MAX = 200


class Pagination(PageNumberPagination):
    page_size = PAGE_SIZE_DEFAULT
    page_size_query_param = "page_size"
    max_page_size = PAGE_SIZE_MAX
