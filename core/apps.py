from django.apps import AppConfig


class CoreConfig(AppConfig):
    name = "core"
    verbose_name = "Core"

    def ready(self) -> None:
        # Importing the module registers the OpenAPI auth schemes with drf-spectacular.
        from core.api import schema  # noqa: F401
