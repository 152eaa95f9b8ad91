"""Prometheus metrics. Counters are per process; scrape every API and worker process."""

from __future__ import annotations

from functools import cache
from typing import TypeVar

from prometheus_client import Counter, Gauge, Histogram, disable_created_metrics
from prometheus_client.metrics import MetricWrapperBase

M = TypeVar("M", bound=MetricWrapperBase)

# The *_created series double the output and nothing in Herald's dashboards reads them.
disable_created_metrics()  # type: ignore[no-untyped-call]

ACCEPTED = Counter(
    "herald_notifications_accepted", "Notifications accepted (committed)", ["channel"]
)
SENT = Counter(
    "herald_notifications_sent", "Notifications a provider accepted", ["channel", "provider"]
)
FAILED = Counter(
    "herald_delivery_failures",
    "Failed delivery attempts, by kind: transient, permanent or unknown (maybe delivered)",
    ["channel", "provider", "kind"],
)
RETRIED = Counter("herald_notifications_retried", "Attempts scheduled for retry", ["channel"])
DEAD = Counter("herald_notifications_dead", "Notifications moved to the dead letters", ["channel"])
EXPIRED = Counter(
    "herald_notifications_expired", "Notifications expired before sending", ["channel"]
)
POSSIBLE_DUPLICATES = Counter(
    "herald_possible_duplicates",
    "Attempts whose outcome was unknown and were retried (the receiver may see two copies)",
    ["channel"],
)
LEASES_LOST = Counter(
    "herald_outcomes_fenced",
    "Outcomes discarded because the worker's lease had expired and the row was re-claimed",
)
OUTCOMES_DROPPED = Counter(
    "herald_outcomes_dropped",
    "Outcomes the database refused to store (the notification is retried when its lease ends)",
)
ACCEPT_TO_SENT = Histogram(
    "herald_accept_to_sent_seconds",
    "Time from due (accept, or send_at) to the provider's acceptance",
    ["channel"],
    buckets=(0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 300, 900, 3600),
)
QUEUE_DEPTH = Gauge("herald_queue_depth", "Notifications by non-terminal status", ["status"])
PARKED_REPORTS = Gauge(
    "herald_delivery_reports_parked",
    "Delivery reports (status callbacks) waiting for their message's send to be recorded",
)
CIRCUIT_STATE = Gauge(
    "herald_provider_circuit_state",
    "Circuit breaker state per provider in this process: 0 closed, 1 half-open, 2 open",
    ["provider"],
)
CIRCUIT_TRIPS = Counter(
    "herald_provider_circuit_trips", "Times a provider's circuit breaker opened", ["provider"]
)
RATE_LIMITED = Counter(
    "herald_provider_rate_limited",
    "Sends not made because the provider's rate or concurrency limit had no slot in time",
    ["provider"],
)


@cache
def labelled(metric: M, *values: str) -> M:
    """``metric.labels(*values)``, remembered: ``labels()`` checks and locks on every call,
    a cost that shows per delivered message. Label values here are few (channels,
    providers, kinds)."""
    return metric.labels(*values)
