from django.apps import AppConfig


class OrchestratorConfig(AppConfig):
    name = "orchestrator"
    verbose_name = "Orchestrations"

    def ready(self) -> None:
        from orchestrator.api import schema  # noqa: F401  registers the OpenAPI auth schemes
