from django.apps import AppConfig


class ApprovalsConfig(AppConfig):
    name = "approvals"
    verbose_name = "Approvals"

    def ready(self) -> None:
        # runs stands below approvals and cannot import it, so approvals hands the reaper its
        # expiry and escalation. In ready(): the services load models, which apps.py cannot.
        from approvals.services import reap
        from runs.services import timers

        timers.register_due_work(reap)
