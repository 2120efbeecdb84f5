from django.apps import AppConfig


class RunsConfig(AppConfig):
    name = "runs"
    verbose_name = "Runs"

    def ready(self) -> None:
        # Registers the Celery tasks in every process (web too): runs.services.dispatch sends
        # them by name, since tasks.py imports the services. In ready(): tasks load models.
        from runs import tasks  # noqa: F401
