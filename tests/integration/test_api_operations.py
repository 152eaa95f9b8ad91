"""/healthz, /readyz and /metrics."""

from __future__ import annotations

import asyncpg
from prometheus_client.parser import text_string_to_metric_families

from herald.domain.channels import Channel
from herald.domain.errors import PermanentError
from herald.testing import RecordingProvider
from tests.conftest import POSTGRES_ADMIN
from tests.integration.api import Api, running_api


class UnreachableProvider(RecordingProvider):
    async def check(self) -> None:
        raise ConnectionRefusedError("smtp.example.org:587 refused the connection")


async def metrics(api: Api) -> dict[tuple[str, frozenset[tuple[str, str]]], float]:
    response = await api.client.get("/metrics")
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    return {
        (sample.name, frozenset(sample.labels.items())): sample.value
        for family in text_string_to_metric_families(response.text)
        for sample in family.samples
    }


def value(
    samples: dict[tuple[str, frozenset[tuple[str, str]]], float], name: str, **labels: str
) -> float:
    return samples.get((name, frozenset(labels.items())), 0.0)


async def test_healthz(api: Api):
    response = await api.client.get("/healthz")
    assert response.status_code == 200
    assert response.json() == {"status": "ok"}


async def test_readyz_when_everything_answers(api: Api):
    response = await api.client.get("/readyz")
    assert response.status_code == 200
    assert response.json() == {
        "status": "ready",
        "database": "ok",
        # Email goes to the recorder; the other channels capture.
        "providers": {"recorder": "ok", "capture": "ok"},
    }


async def test_readyz_is_degraded_but_200_when_a_provider_fails_its_check(database_url: str):
    providers = {Channel.EMAIL: [UnreachableProvider("smtp"), RecordingProvider("backup")]}
    async with running_api(database_url, providers=providers) as api:
        response = await api.client.get("/readyz")
        # Accepting still works while a provider is down: messages queue durably.
        accepted = await api.client.post(
            "/v1/notifications",
            json={"channel": "email", "to": "a@example.org", "subject": "s", "text": "t"},
        )

    assert response.status_code == 200
    body = response.json()
    assert body["status"] == "degraded"
    assert body["database"] == "ok"
    assert body["providers"]["backup"] == "ok"
    assert body["providers"]["smtp"].startswith("error:")
    assert "refused the connection" in body["providers"]["smtp"]
    assert accepted.status_code == 202


async def test_metrics_count_what_happens(api: Api):
    # Counters belong to the process, so compare before and after.
    before = await metrics(api)
    await api.send()
    await api.send()
    await api.send(send_at="2099-01-01T00:00:00Z")
    queued = await metrics(api)
    assert value(queued, "herald_queue_depth", status="queued") == 2
    assert value(queued, "herald_queue_depth", status="scheduled") == 1
    assert value(queued, "herald_queue_depth", status="dead") == 0

    api.recorder.fail_next(PermanentError("550 no such user"))
    await api.herald.drain()
    after = await metrics(api)

    def moved(name: str, **labels: str) -> float:
        return value(after, name, **labels) - value(before, name, **labels)

    assert moved("herald_notifications_accepted_total", channel="email") == 3
    assert moved("herald_notifications_sent_total", channel="email", provider="recorder") == 1
    assert moved("herald_notifications_dead_total", channel="email") == 1
    assert (
        moved(
            "herald_delivery_failures_total", channel="email", provider="recorder", kind="permanent"
        )
        == 1
    )
    assert value(after, "herald_queue_depth", status="queued") == 0
    assert value(after, "herald_queue_depth", status="dead") == 1
    assert moved("herald_accept_to_sent_seconds_count", channel="email") == 1


async def test_readyz_is_503_when_the_database_is_gone(postgres_url: str):
    async with running_api(postgres_url) as api:
        name = postgres_url.rsplit("/", 1)[1]
        admin = await asyncpg.connect(POSTGRES_ADMIN)
        try:
            await admin.execute(f'DROP DATABASE "{name}" WITH (FORCE)')
        finally:
            await admin.close()

        response = await api.client.get("/readyz")
        body = response.json()
        assert response.status_code == 503
        assert body["status"] == "unavailable"
        assert body["database"].startswith("error:")
        # Liveness and the process's own metrics do not depend on the database.
        assert (await api.client.get("/healthz")).status_code == 200
        assert (await api.client.get("/metrics")).status_code == 200
