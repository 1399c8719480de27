"""``/livez`` and ``/metrics`` for a process that serves no API of its own (the decision
projector, ``audit-trail projections follow --port``), so that Prometheus sees its series and
an orchestrator its liveness.

The server runs in the process's own event loop and leaves the signals to it: the process
stops its work on SIGTERM or Ctrl-C first, then this server.
"""

from __future__ import annotations

import asyncio
import contextlib
from collections.abc import AsyncIterator, Iterator

import uvicorn
from fastapi import FastAPI

from http_edge import metrics
from http_edge.handlers import install_problem_handlers


def metrics_app() -> FastAPI:
    app = FastAPI(openapi_url=None, docs_url=None, redoc_url=None)
    install_problem_handlers(app)
    app.include_router(metrics.router)

    @app.get("/livez")
    async def livez() -> dict[str, str]:
        return {"status": "ok"}

    return app


class _SignalsLeftToTheProcess(uvicorn.Server):
    @contextlib.contextmanager
    def capture_signals(self) -> Iterator[None]:
        yield


@contextlib.asynccontextmanager
async def serving_metrics(
    *, host: str, port: int, http: type[asyncio.Protocol]
) -> AsyncIterator[None]:
    """Serve ``/livez`` and ``/metrics`` on host:port for as long as the block runs."""
    config = uvicorn.Config(
        metrics_app(),
        host=host,
        port=port,
        http=http,
        lifespan="off",
        access_log=False,
        log_config=None,
        server_header=False,
    )
    server = _SignalsLeftToTheProcess(config)
    serving = asyncio.create_task(server.serve())
    while not server.started:
        if serving.done():
            serving.result()  # the port could not be bound: raise why
            raise RuntimeError(f"the metrics server on {host}:{port} stopped at once")
        await asyncio.sleep(0.05)
    try:
        yield
    finally:
        server.should_exit = True
        await serving
