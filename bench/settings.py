"""Settings of the benchmark's server: the product's, with the plain DRF list mounted beside
the API (bench.urls). Used through DJANGO_SETTINGS_MODULE=bench.settings by bench.api only."""

from config.settings import *  # noqa: F403

INSTALLED_APPS = [*INSTALLED_APPS, "bench.plain"]  # noqa: F405
ROOT_URLCONF = "bench.urls"
