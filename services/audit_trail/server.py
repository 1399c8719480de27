"""How the CLI serves both services over HTTP/1.1: uvicorn with limits on slow and large heads.

Stock uvicorn with its httptools protocol waits for ever for a request's line and headers and for
its body, and takes headers of any size: a "slow loris" client that sends a byte now and then
holds its socket open for good, and a 16 MB header is read and kept. `GuardedHttpToolsProtocol`,
a subclass of uvicorn's `HttpToolsProtocol` given to ``uvicorn.run(http=...)``, adds three limits:

1. **Header timeout.** A connection whose request line and headers are not complete within
   ``AUDIT_TRAIL_HEADER_TIMEOUT_SECONDS`` (default 10 s) of its opening, or of the first byte of
   a later request on it, is closed. Between requests uvicorn's keep-alive timeout applies as
   before.
2. **Header size.** Request line and headers longer than ``AUDIT_TRAIL_MAX_HEADER_BYTES``
   (default 64 KiB, at least 32 KiB: KServe sends JSON in ``ce-metadata`` headers) are answered
   431 (RFC 6585, section 5) and the connection closed. Counted as the bytes arrive, before the
   parser buffers them.
3. **Body timeout.** A request whose body stalls, no byte of it for
   ``AUDIT_TRAIL_BODY_TIMEOUT_SECONDS`` (default 30 s), is answered 408 (RFC 9110, section
   15.5.9) if no response has started, and its connection closed either way. Time the server
   itself makes the client wait does not count: while reading is paused because the application
   has not taken the body yet, or while the client waits for ``100 Continue``.

The per-request cost is a few attribute checks: a request whose head (and body) arrive in one
read, the usual case on a keep-alive connection, arms no timer; see ``bench/http_guard.py``.
"""

from __future__ import annotations

import asyncio
import contextlib
import functools
import http
import os
import sys
import tempfile
from typing import Any, ClassVar

import orjson
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.config import Config
from uvicorn.protocols.http.httptools_impl import STATUS_LINE, HttpToolsProtocol
from uvicorn.server import ServerState

# KServe's CloudEvents binding carries inference metadata as JSON in ce-* headers.
MIN_HEADER_BYTES = 32 * 1024


class HttpLimits(BaseSettings):
    """How slowly and how much a client may send; from ``AUDIT_TRAIL_*`` variables."""

    model_config = SettingsConfigDict(env_prefix="AUDIT_TRAIL_", extra="ignore", frozen=True)

    header_timeout_seconds: float = Field(
        default=10.0, gt=0, description="Time for a request's line and headers to arrive"
    )
    body_timeout_seconds: float = Field(
        default=30.0, gt=0, description="Time a request body may go without a byte arriving"
    )
    max_header_bytes: int = Field(
        default=64 * 1024,
        ge=MIN_HEADER_BYTES,
        description="Largest request line plus headers, in bytes (KServe needs 32 KiB)",
    )


@functools.cache
def limits_from_environment() -> HttpLimits:
    """Read once per process: a protocol object is made for every connection."""
    return HttpLimits()


class GuardedHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's httptools protocol with a header timeout, a header size cap and a body timeout.

    Its limits are `limits` if a subclass sets it, else the environment's. uvicorn makes one
    object per connection; the parser calls its ``on_*`` methods while ``data_received`` feeds it.
    """

    limits: ClassVar[HttpLimits | None] = None

    def __init__(
        self,
        config: Config,
        server_state: ServerState,
        app_state: dict[str, Any],
        _loop: asyncio.AbstractEventLoop | None = None,
    ) -> None:
        super().__init__(config, server_state, app_state, _loop)
        limits = self.limits or limits_from_environment()
        self._header_timeout = limits.header_timeout_seconds
        self._body_timeout = limits.body_timeout_seconds
        self._max_head_bytes = limits.max_header_bytes
        # Reading the next request's line and headers (from the connection's start, or from
        # the end of the previous request), of which `_head_bytes` have come.
        self._reading_head = True
        self._head_bytes = 0
        self._heads_completed = 0
        self._reading_body = False
        self._body_seen_at = 0.0
        self._head_timer: asyncio.TimerHandle | None = None
        self._body_timer: asyncio.TimerHandle | None = None

    def connection_made(  # type: ignore[override]
        self, transport: asyncio.Transport
    ) -> None:
        super().connection_made(transport)
        # A client that connects and sends nothing is as slow as one that sends a byte a minute.
        self._head_timer = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def connection_lost(self, exc: Exception | None) -> None:
        self._cancel_timers()
        super().connection_lost(exc)

    # These three run for every request (the parser calls the last two): they call the base
    # class directly, which is measurably cheaper than through super() (bench/http_guard.py).

    def data_received(self, data: bytes) -> None:
        reading_head = self._reading_head
        if reading_head:
            if len(data) > self._max_head_bytes - self._head_bytes:
                self._receive_beyond_head_room(data)
                return
            self._head_bytes += len(data)
        heads_completed = self._heads_completed
        HttpToolsProtocol.data_received(self, data)
        if self._reading_body:
            self._body_seen_at = self.loop.time()
            if self._body_timer is None:
                self._body_timer = self.loop.call_later(self._body_timeout, self._body_timed_out)
        elif (
            reading_head
            and self._heads_completed == heads_completed
            and self._head_timer is None
            and not self.transport.is_closing()
        ):
            # Part of a head came, not its end: the usual request comes whole in one read.
            self._head_timer = self.loop.call_later(self._header_timeout, self._head_timed_out)

    def on_headers_complete(self) -> None:
        self._reading_head = False
        self._heads_completed += 1
        self._reading_body = True
        if self._head_timer is not None:
            self._head_timer.cancel()
            self._head_timer = None
        HttpToolsProtocol.on_headers_complete(self)

    def on_message_complete(self) -> None:
        self._reading_body = False
        self._reading_head = True
        self._head_bytes = 0
        if self._body_timer is not None:
            self._body_timer.cancel()
            self._body_timer = None
        HttpToolsProtocol.on_message_complete(self)

    def _receive_beyond_head_room(self, data: bytes) -> None:
        """Feed only what may still belong to the head; refuse the request if it goes on."""
        room = self._max_head_bytes - self._head_bytes
        self._head_bytes += room
        HttpToolsProtocol.data_received(self, data[:room])
        if self.transport.is_closing():
            return
        # Still the same head: the count starts again at 0 with each request.
        if self._reading_head and self._head_bytes >= self._max_head_bytes:
            self.logger.warning("Request line and headers over %d bytes.", self._max_head_bytes)
            previous_answered = self.cycle is None or self.cycle.response_complete
            self._refuse(
                431,
                f"The request line and headers exceed {self._max_head_bytes} bytes.",
                answer=previous_answered,
            )
            return
        self.data_received(data[room:])

    def handle_websocket_upgrade(self) -> None:
        # The transport goes to another protocol object: nothing here may close it later.
        self._cancel_timers()
        self._reading_head = self._reading_body = False
        super().handle_websocket_upgrade()

    # Timers.

    def _head_timed_out(self) -> None:
        self._head_timer = None
        if self._reading_head and not self.transport.is_closing():
            self.logger.warning("Request line and headers not received in time.")
            self._mark_disconnected()
            self.transport.close()

    def _body_timed_out(self) -> None:
        self._body_timer = None
        if not self._reading_body or self.transport.is_closing():
            return
        now = self.loop.time()
        # Not the client's doing: reading is paused until the application takes what came, or
        # the client waits for the 100 Continue that the application's first read sends.
        if self.flow.read_paused or (
            self.cycle is not None and self.cycle.waiting_for_100_continue
        ):
            self._body_seen_at = now
        quiet = now - self._body_seen_at
        if quiet < self._body_timeout:
            self._body_timer = self.loop.call_later(
                self._body_timeout - quiet, self._body_timed_out
            )
            return
        self.logger.warning("Request body stalled for %.0f s.", quiet)
        self._refuse(
            408,
            f"No byte of the request body came for {self._body_timeout:g} s.",
            answer=self.cycle is not None and not self.cycle.response_started,
        )

    def _cancel_timers(self) -> None:
        for timer in (self._head_timer, self._body_timer):
            if timer is not None:
                timer.cancel()
        self._head_timer = self._body_timer = None

    # Answers of the protocol's own.

    def _refuse(self, status: int, detail: str, *, answer: bool) -> None:
        """Close the connection, first answering ``status`` as problem+json (RFC 9457) if
        ``answer``: not when a response is under way on it, whose bytes ours would cut into."""
        if answer:
            self._write_problem(status, detail)
        self._mark_disconnected()
        self.transport.close()

    def _mark_disconnected(self) -> None:
        """What connection_lost will do, at once: the application's receive() returns
        http.disconnect and whatever it sends is dropped, never written after our answer."""
        if self.cycle is not None and not self.cycle.response_complete:
            self.cycle.disconnected = True
            self.cycle.message_event.set()

    def _write_problem(self, status: int, detail: str) -> None:
        problem = {
            "type": "about:blank",
            "title": http.HTTPStatus(status).phrase,
            "status": status,
            "detail": detail,
        }
        body = orjson.dumps(problem)
        head = [STATUS_LINE[status]]
        for name, value in self.server_state.default_headers:
            head.extend([name, b": ", value, b"\r\n"])
        head.extend(
            [
                b"content-type: application/problem+json\r\n",
                b"content-length: %d\r\n" % len(body),
                b"connection: close\r\n\r\n",
            ]
        )
        self.transport.write(b"".join([*head, body]))


def logging_config(level: str) -> dict[str, Any]:
    """uvicorn's ``log_config``: one JSON object per line on stderr (``http_edge.logs``), each
    carrying the id of the request being served (null outside one), for uvicorn's loggers and
    the services' own alike; ``AUDIT_TRAIL_LOG_FORMAT=text`` gives plain lines instead, for a
    person at a terminal."""
    if os.environ.get("AUDIT_TRAIL_LOG_FORMAT", "json") == "text":
        formatter: dict[str, Any] = {
            "format": "%(asctime)s %(levelname)s %(name)s [%(request_id)s] %(message)s"
        }
    else:
        formatter = {"()": "http_edge.logs.JsonLineFormatter"}
    handler = {
        "class": "logging.StreamHandler",
        "stream": "ext://sys.stderr",
        "formatter": "lines",
        "filters": ["request_id"],
    }
    return {
        "version": 1,
        "disable_existing_loggers": False,
        "filters": {"request_id": {"()": "http_edge.request_ids.RequestIdFilter"}},
        "formatters": {"lines": formatter},
        "handlers": {"stderr": handler},
        "root": {"handlers": ["stderr"], "level": level.upper()},
        "loggers": {
            # uvicorn's own are configured by uvicorn.run from log_level; they reach the root.
            "uvicorn": {"handlers": [], "propagate": True},
            "uvicorn.error": {"handlers": [], "propagate": True},
            "uvicorn.access": {"handlers": [], "propagate": True},
            # Every outbound call (the verifier's polling of the log, the log's calls to the
            # verifier) is logged by http_edge's request line at the receiving end, without its
            # query string; httpx's own line would repeat it with the query.
            "httpx": {"level": "WARNING"},
            "httpcore": {"level": "WARNING"},
        },
    }


def multiprocess_metrics(*, workers: int) -> None:
    """With several uvicorn workers, give them a folder for prometheus-client's multiprocess
    mode, unless the operator named one (``PROMETHEUS_MULTIPROC_DIR``, emptied at start by
    ``audit_trail.entry``). Workers are new processes that import the app after this, so they
    all write there; one worker serves its own registry."""
    if workers > 1 and not os.environ.get("PROMETHEUS_MULTIPROC_DIR"):
        os.environ["PROMETHEUS_MULTIPROC_DIR"] = tempfile.mkdtemp(prefix="audit-trail-metrics-")


def run_server(app: str, *, workers: int = 1, **options: Any) -> None:
    """``uvicorn.run`` for the app factory ``app``, except that it exits with uvicorn's
    startup-failure status (3) when a worker failed to start with several workers too: uvicorn
    then stops every worker but returns as if stopped on purpose (status 0), which a process
    manager restarting only on failure (systemd ``on-failure``, Docker ``on-failure``) takes
    for a clean stop."""
    import uvicorn
    from uvicorn.config import STARTUP_FAILURE
    from uvicorn.supervisors import Multiprocess

    if workers == 1:
        uvicorn.run(app, factory=True, workers=1, **options)  # exits 3 itself on a failure
        return
    config = uvicorn.Config(app, factory=True, workers=workers, **options)
    supervisor = Multiprocess(config, sockets=[config.bind_socket()])
    with contextlib.suppress(KeyboardInterrupt):  # as uvicorn.run
        supervisor.run()
    if any(process.exitcode == STARTUP_FAILURE for process in supervisor.processes):
        sys.exit(STARTUP_FAILURE)
