from django.apps import AppConfig


class ApiConfig(AppConfig):
    name = "api"
    verbose_name = "API infrastructure"

    def ready(self) -> None:
        from api import schema  # noqa: F401  (registers the authentication schemes)
        from config import replica  # noqa: F401  (registers the read replica's system check)
