from evidence.api import urlpatterns

__all__ = ["urlpatterns"]
