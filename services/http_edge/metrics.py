"""Prometheus metrics of both services, and the ``/metrics`` route that serves them.

Every uvicorn worker counts: with ``PROMETHEUS_MULTIPROC_DIR`` set (the CLI sets it, and wipes
the folder, before the workers start), prometheus-client keeps each process's values in files
there, and a scrape adds them up (https://prometheus.github.io/client_python/multiprocess/).
Gauges are ``livesum``/``livemax``: the files of a worker that has died are dropped before each
scrape, so a restarted worker leaves no stale series. Without the variable (tests, one process)
the default registry is served.

Labels never name a tenant or a chain (a tenant must not learn another exists from a shared
dashboard); routes are templates (``/v1/chains/{chain}``), statuses as sent.

``/metrics`` needs its own bearer token (``AUDIT_TRAIL_METRICS_TOKEN``), compared in constant
time; without one configured it is off (404). Who may scrape is never decided by the peer's
address: behind a proxy every request comes from the proxy's.
"""

from __future__ import annotations

import functools
import glob
import hmac
import os
import re
from typing import Any, Final

from fastapi import APIRouter, Request
from fastapi.responses import Response
from prometheus_client import (
    CONTENT_TYPE_LATEST,
    REGISTRY,
    CollectorRegistry,
    Counter,
    Histogram,
    generate_latest,
    values,
)
from prometheus_client.multiprocess import MultiProcessCollector, mark_process_dead

from http_edge.problems import NotFound, Unauthenticated

MULTIPROC_DIR_VARIABLE: Final = "PROMETHEUS_MULTIPROC_DIR"
TOKEN_VARIABLE: Final = "AUDIT_TRAIL_METRICS_TOKEN"  # noqa: S105  (a variable's name)
# Latency buckets from 1 ms to 30 s: an append answers in tens of milliseconds, an export in
# seconds, and the queue timeout bounds the rest.
LATENCY_BUCKETS: Final = (
    0.001,
    0.0025,
    0.005,
    0.01,
    0.025,
    0.05,
    0.1,
    0.25,
    0.5,
    1,
    2.5,
    5,
    10,
    30,
)

HTTP_REQUESTS = Counter(
    "audit_trail_http_requests_total",
    "HTTP requests answered, by route template, method and status",
    ["route", "method", "status"],
)
HTTP_DURATION = Histogram(
    "audit_trail_http_request_duration_seconds",
    "Time from a request's arrival at the service to its answer, by route template",
    ["route"],
    buckets=LATENCY_BUCKETS,
)

_PID_FILE = re.compile(r"_(\d+)\.db$")


def observe_request(*, route: str, method: str, status: int, seconds: float) -> None:
    _requests(route, method, status).inc()
    _duration(route).observe(seconds)


# The labelled children, looked up once: ``labels()`` takes a lock and builds a key on every
# call, which the append route would pay per event. Routes and statuses are few (templates).
@functools.cache
def _requests(route: str, method: str, status: int) -> Any:
    return HTTP_REQUESTS.labels(route, method, str(status))


@functools.cache
def _duration(route: str) -> Any:
    return HTTP_DURATION.labels(route)


def scrape() -> tuple[bytes, str]:
    """The metrics of every live and past worker, in the Prometheus text format."""
    folder = os.environ.get(MULTIPROC_DIR_VARIABLE)
    if not folder or not multiprocess_mode():
        return generate_latest(REGISTRY), CONTENT_TYPE_LATEST
    _forget_dead_workers(folder)
    registry = CollectorRegistry()
    MultiProcessCollector(registry, path=folder)  # type: ignore[no-untyped-call]
    return generate_latest(registry), CONTENT_TYPE_LATEST


def multiprocess_mode() -> bool:
    """Whether this process's metrics live in the multiprocess folder: prometheus-client
    decides when it is first imported, by whether the folder was named then."""
    return values.ValueClass is not values.MutexValue


def _forget_dead_workers(folder: str) -> None:
    for path in glob.glob(os.path.join(folder, "gauge_live*_*.db")):
        found = _PID_FILE.search(path)
        if found is None:
            continue
        pid = int(found.group(1))
        try:
            os.kill(pid, 0)
        except ProcessLookupError:
            mark_process_dead(pid, folder)  # type: ignore[no-untyped-call]
        except PermissionError:
            pass  # alive, another user's


def may_scrape(authorization: str | None) -> bool | None:
    """True if the bearer token is the metrics token, False if not, None if metrics are off."""
    token = os.environ.get(TOKEN_VARIABLE)
    if not token:
        return None
    scheme, _, given = (authorization or "").partition(" ")
    return scheme.lower() == "bearer" and hmac.compare_digest(given.encode(), token.encode())


router = APIRouter()


@router.get("/metrics", include_in_schema=False)
async def metrics(request: Request) -> Response:
    """Prometheus text format, for the bearer of the metrics token only."""
    allowed = may_scrape(request.headers.get("authorization"))
    if allowed is None:
        raise NotFound(f"metrics are off; set {TOKEN_VARIABLE} to serve them")
    if not allowed:
        raise Unauthenticated("send the metrics token as 'Authorization: Bearer <token>'")
    body, content_type = scrape()
    return Response(body, media_type=content_type)
