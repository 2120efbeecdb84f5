"""Reading `/metrics` the way Prometheus does: its own parser, then samples by name and labels."""

from __future__ import annotations

from django.test import Client
from prometheus_client.parser import text_string_to_metric_families

METRICS_TOKEN = "metrics-test-token"


class Scrape:
    def __init__(self, text: str) -> None:
        self.text = text
        self.samples = [
            sample for family in text_string_to_metric_families(text) for sample in family.samples
        ]

    @property
    def names(self) -> set[str]:
        return {sample.name for sample in self.samples}

    def value(self, name: str, **labels: str) -> float:
        """The one sample with exactly these labels; a missing series is an error, not 0."""
        found = [s.value for s in self.samples if s.name == name and s.labels == labels]
        assert len(found) == 1, f"{name}{labels}: {len(found)} samples"
        return found[0]

    def series(self, name: str) -> dict[tuple[tuple[str, str], ...], float]:
        return {tuple(sorted(s.labels.items())): s.value for s in self.samples if s.name == name}


def scrape(settings) -> Scrape:
    """GET /metrics with the METRICS_TOKEN setting, as a Prometheus job would."""
    settings.METRICS_TOKEN = METRICS_TOKEN
    response = Client().get("/metrics", HTTP_AUTHORIZATION=f"Bearer {METRICS_TOKEN}")
    assert response.status_code == 200, response.content
    assert response["Content-Type"].startswith("text/plain")
    return Scrape(response.content.decode())
