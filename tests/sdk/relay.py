"""A small real HTTP server in front of a live decision_log, that answers some requests itself
(503 + Retry-After, 500, a refusal that names no event) and relays the others, changing the log's
answer only when a test tampers with it."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer

import httpx


class Relay:
    def __init__(self, target: str) -> None:
        self.target = target
        # Answers the relay gives itself to the next requests, as (status, headers).
        self.canned: list[tuple[int, dict[str, str]]] = []
        self.refuse_marker: bytes | None = None  # batches holding it get a 400 with no pointer
        self.arrivals: list[tuple[float, int]] = []  # (monotonic time, status answered)
        self.bodies: list[bytes] = []  # every request body, as received
        self.rewrite_answer: Callable[[bytes], bytes] | None = None  # tampers with the log's
        self.lost_answers = 0  # how many of the next requests are relayed but answered 502
        self.lock = threading.Lock()

    def answer(self, body: bytes) -> tuple[int, dict[str, str], bytes]:
        with self.lock:
            if self.canned:
                status, headers = self.canned.pop(0)
                return status, headers, b'{"status": %d}' % status
        if self.refuse_marker is not None and self.refuse_marker in body:
            return 400, {}, b'{"status": 400, "title": "Bad request", "detail": "no pointer"}'
        return 0, {}, body


@contextmanager
def relay_to(target: str) -> Iterator[tuple[Relay, str]]:
    relay = Relay(target)
    http = httpx.Client(timeout=30)

    class Handler(BaseHTTPRequestHandler):
        def do_POST(self) -> None:
            body = self.rfile.read(int(self.headers["Content-Length"]))
            with relay.lock:
                relay.bodies.append(body)
            status, headers, content = relay.answer(body)
            if status == 0:
                forwarded = http.post(
                    target + self.path,
                    content=body,
                    headers={
                        "Authorization": self.headers["Authorization"],
                        "Content-Type": self.headers["Content-Type"],
                    },
                )
                status, content = forwarded.status_code, forwarded.content
                if relay.rewrite_answer is not None:
                    content = relay.rewrite_answer(content)
                with relay.lock:
                    if relay.lost_answers:
                        relay.lost_answers -= 1
                        status, content = 502, b'{"status": 502}'
                headers = {"Content-Type": forwarded.headers["Content-Type"]}
            with relay.lock:
                relay.arrivals.append((time.monotonic(), status))
            self.send_response(status)
            for name, value in {**headers, "Content-Length": str(len(content))}.items():
                self.send_header(name, value)
            self.end_headers()
            self.wfile.write(content)

        def log_message(self, format: str, *args: object) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    try:
        yield relay, f"http://127.0.0.1:{server.server_address[1]}"
    finally:
        server.shutdown()
        server.server_close()
        http.close()
