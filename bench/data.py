"""A year of data: the pages people open most, on a near-empty database and on one holding a
year of a busy deployment (100,000 runs, 1,000,000 steps, 5,000,000 events), each within 1.5x.

    make bench-data   (or: python -m bench.data, with DATABASE_URL set to a PostgreSQL database
                       of its own: the stage empties the runs tables first)

Each page is requested in this process through Django (no server, no concurrency), many times;
the figure is the median on the loaded database, its target 1.5x the median on the near-empty one
(p99 of both alongside). The near-empty samples are taken before and after the loaded ones, so
that a machine busier for a while weighs on both sides. A page whose queries read more rows as
the tables grow misses it.
"""

from __future__ import annotations

import os
import statistics
import sys
import time

os.environ.setdefault("DJANGO_SETTINGS_MODULE", "config.settings")

import django

django.setup()

from django.conf import settings  # noqa: E402
from django.contrib.auth import get_user_model  # noqa: E402
from django.core.management import call_command  # noqa: E402
from django.db import connection  # noqa: E402
from django.test import Client  # noqa: E402
from django.test.utils import override_settings  # noqa: E402

from bench import year  # noqa: E402
from bench.common import percentile, progress, quiet_client_logs, report  # noqa: E402
from core.choices import Role  # noqa: E402
from orchestrator.models import ApiToken, Organization  # noqa: E402
from runs.models import Run  # noqa: E402

ITERATIONS = 150
WARM_UP = 10
TARGET_RATIO = 1.5
TABLES = (
    "runs_runevent",
    "runs_sharelink",
    "runs_outputversion",
    "approvals_approval",
    "runs_steprun",
    "runs_run",
)


def empty() -> None:
    """Only this stage's rows are left: its database is its own. TRUNCATE, because deleting
    five million events row by row would take longer than writing them."""
    with connection.cursor() as cursor:
        cursor.execute(f"TRUNCATE {', '.join(TABLES)} CASCADE")
    Organization.objects.filter(slug__startswith="year-").delete()
    get_user_model().objects.filter(username="year-viewer").delete()


def pages(loaded: year.Loaded) -> dict[str, tuple[Client, str]]:
    """What to request, and with which client: the API with a viewer's token, pages signed in.
    Lists ask for pages of 10, which the near-empty database fills too."""
    org = loaded.organizations[0]
    _, raw_token = ApiToken.issue(org, Role.VIEWER, service_account="bench-data")
    api = Client(HTTP_AUTHORIZATION=f"Bearer {raw_token}")
    browser = Client()
    browser.force_login(loaded.user)
    # The newest run that ran to its end: ten steps, fifty events, at either scale.
    run = Run.objects.filter(organization=org, status="succeeded").order_by("-created_at").first()
    flow = loaded.orchestrations[0]
    return {
        "runs_list": (api, "/api/v1/runs?limit=10"),
        "runs_list_of_one_orchestration": (api, f"/api/v1/runs?limit=10&orchestration={flow.pk}"),
        "runs_list_failed": (api, "/api/v1/runs?limit=10&status=failed"),
        "run_detail": (api, f"/api/v1/runs/{run.pk}"),
        "run_events_page": (api, f"/api/v1/runs/{run.pk}/events?after=0"),
        "approvals_inbox": (api, "/api/v1/approvals?pending=true&limit=10"),
        "dashboard_page": (browser, "/"),
    }


def measure(targets: dict[str, tuple[Client, str]]) -> dict[str, list[float]]:
    """Milliseconds per request of every page. The pages take turns, so drift on a shared
    machine touches all of them alike."""
    samples: dict[str, list[float]] = {name: [] for name in targets}
    for round_ in range(WARM_UP + ITERATIONS):
        for name, (client, path) in targets.items():
            begun = time.perf_counter()
            response = client.get(path)
            elapsed = (time.perf_counter() - begun) * 1000
            if response.status_code != 200:
                raise RuntimeError(f"{path}: {response.status_code} {response.content[:300]!r}")
            if round_ >= WARM_UP:
                samples[name].append(elapsed)
    return samples


def settle() -> None:
    """What autovacuum does to freshly written rows before long (visibility map, hint bits,
    statistics): measured before it, the loaded pages would pay for it, and for its work."""
    with connection.cursor() as cursor:
        for table in TABLES:
            cursor.execute(f"VACUUM (ANALYZE) {table}")


def scaled(scale: year.Scale) -> dict[str, list[float]]:
    empty()
    loaded = year.create_organizations(scale)
    begun = time.perf_counter()
    year.load(scale, loaded)
    settle()
    progress(
        f"loaded {scale.runs:,} runs, {scale.steps:,} steps, {scale.events:,} events "
        f"in {time.perf_counter() - begun:.0f} s (vacuumed)"
    )
    return measure(pages(loaded))


def main() -> None:
    quiet_client_logs()
    if "postgresql" not in settings.DATABASES["default"]["ENGINE"]:
        sys.exit("bench.data runs on PostgreSQL: set DATABASE_URL")
    call_command("migrate", verbosity=0)
    # Static names as they are before collectstatic: the pages, not the manifest, are measured.
    plain_static = {
        **settings.STORAGES,
        "staticfiles": {"BACKEND": "django.contrib.staticfiles.storage.StaticFilesStorage"},
    }
    with override_settings(STORAGES=plain_static):
        progress("near-empty database")
        before = scaled(year.NEAR_EMPTY)
        progress("a year of data (minutes)")
        large = scaled(year.YEAR)
        progress("near-empty database again: the baseline brackets the loaded measurement")
        after = scaled(year.NEAR_EMPTY)
    small = {name: before[name] + after[name] for name in before}
    for name in small:
        baseline, loaded = statistics.median(small[name]), statistics.median(large[name])
        report(
            f"year_{name}",
            loaded,
            "ms",
            f"<= {TARGET_RATIO}x near-empty ({baseline:.2f} ms)",
            loaded <= TARGET_RATIO * baseline,
            ratio=round(loaded / baseline, 2),
            p99_ms=round(percentile(large[name], 99), 2),
            near_empty_ms=round(baseline, 3),
            near_empty_p99_ms=round(percentile(small[name], 99), 2),
            runs=year.YEAR.runs,
            steps=year.YEAR.steps,
            events=year.YEAR.events,
        )


if __name__ == "__main__":
    main()
