"""The decision_log served by a real uvicorn on a loopback port, as `audit-trail serve` serves it
(the guarded HTTP protocol), for clients that speak real HTTP: the OpenTelemetry exporter, the
copy-paste examples of docs/sending.md."""

from __future__ import annotations

import socket
import threading
import time
from collections.abc import Iterator

import uvicorn
from audit_trail.server import GuardedHttpToolsProtocol
from decision_log.app import create_app
from decision_log.settings import Settings


def serve_in_thread(settings: Settings, *, port: int = 0) -> Iterator[str]:
    """Yield the base URL of a decision_log running in a thread until the generator closes.
    ``port`` 0 takes a free one; a given port lets a test restart the service at one URL."""
    listener = socket.socket()
    listener.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    listener.bind(("127.0.0.1", port))
    config = uvicorn.Config(
        create_app(settings),
        http=GuardedHttpToolsProtocol,
        lifespan="on",
        log_level="warning",
        access_log=False,
    )
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    deadline = time.monotonic() + 30
    while not server.started:
        if time.monotonic() > deadline or not thread.is_alive():
            raise RuntimeError("the decision_log did not start")
        time.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{listener.getsockname()[1]}"
    finally:
        server.should_exit = True
        thread.join(timeout=15)
        listener.close()
