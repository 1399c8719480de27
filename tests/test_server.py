"""The HTTP/1.1 protocol both services are served with: slow and oversized requests are cut off,
well-behaved ones are not. A real uvicorn on a loopback port, driven over raw sockets."""

from __future__ import annotations

import asyncio
import socket
import threading
import time
from collections.abc import Iterator
from typing import Any

import orjson
import pytest
import uvicorn
from audit_trail.server import GuardedHttpToolsProtocol, HttpLimits
from pydantic import ValidationError

TIMEOUT = 1.0  # the header and body timeouts of the server under test
SLOW_APP_SECONDS = 1.3  # longer than either timeout: the application's time is not the client's


class ShortLimits(GuardedHttpToolsProtocol):
    limits = HttpLimits(header_timeout_seconds=TIMEOUT, body_timeout_seconds=TIMEOUT)


async def echo(scope: dict[str, Any], receive: Any, send: Any) -> None:
    """Reads the whole body, then answers its length and that of a ce-metadata header."""
    assert scope["type"] == "http"
    body = b""
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return
        body += message.get("body", b"")
        if not message.get("more_body"):
            break
    if scope["path"] == "/slow":
        await asyncio.sleep(SLOW_APP_SECONDS)
    metadata = dict(scope["headers"]).get(b"ce-metadata", b"")
    answer = orjson.dumps({"body": len(body), "ce_metadata": len(metadata)})
    await send(
        {
            "type": "http.response.start",
            "status": 200,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(answer)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": answer})


@pytest.fixture(scope="module")
def port() -> Iterator[int]:
    listener = socket.socket()
    listener.bind(("127.0.0.1", 0))
    config = uvicorn.Config(echo, http=ShortLimits, lifespan="off", log_level="error")
    server = uvicorn.Server(config)
    thread = threading.Thread(target=server.run, kwargs={"sockets": [listener]}, daemon=True)
    thread.start()
    while not server.started:
        time.sleep(0.01)
    yield listener.getsockname()[1]
    server.should_exit = True
    thread.join(timeout=10)
    listener.close()


def connect(port: int) -> socket.socket:
    client = socket.create_connection(("127.0.0.1", port))
    client.settimeout(10)
    return client


def read_response(client: socket.socket) -> tuple[int, dict[str, str], bytes]:
    """One response: status, headers, body (by Content-Length)."""
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = client.recv(65536)
        if not chunk:
            raise ConnectionError(f"closed after {data!r}")
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.decode("latin-1").split("\r\n")
    headers = dict(line.lower().split(": ", 1) for line in lines[1:])
    while len(body) < int(headers.get("content-length", "0")):
        body += client.recv(65536)
    return int(lines[0].split(" ")[1]), headers, body


def closed_by_server(client: socket.socket) -> bool:
    """The server closed (or reset) the connection: end of stream, no answer."""
    try:
        return client.recv(65536) == b""
    except ConnectionResetError:
        return True


def post(path: str, body: bytes, *, extra: str = "") -> bytes:
    return (
        f"POST {path} HTTP/1.1\r\nHost: t\r\nContent-Length: {len(body)}\r\n{extra}\r\n"
    ).encode() + body


def test_a_client_that_sends_its_headers_a_byte_at_a_time_is_disconnected(port: int) -> None:
    client = connect(port)
    began = time.monotonic()
    client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n")
    for byte in b"X-Slow: " + b"a" * 100:  # a byte every 0.3 s: never idle, never done
        try:
            client.sendall(bytes([byte]))
        except (BrokenPipeError, ConnectionResetError):
            break
        client.settimeout(0.3)
        try:
            if client.recv(1) == b"":
                break
        except TimeoutError:
            continue
        except ConnectionResetError:
            break
    took = time.monotonic() - began
    assert TIMEOUT * 0.9 < took < TIMEOUT + 1.0, took


def test_a_client_that_connects_and_sends_nothing_is_disconnected(port: int) -> None:
    client = connect(port)
    began = time.monotonic()
    assert closed_by_server(client)
    assert time.monotonic() - began < TIMEOUT + 1.0


def test_headers_over_64_kib_are_refused_with_431_or_a_closed_connection(port: int) -> None:
    client = connect(port)
    request = b"GET / HTTP/1.1\r\nHost: t\r\nX-Big: " + b"a" * 100 * 1024 + b"\r\n\r\n"
    try:
        client.sendall(request)
        status, headers, body = read_response(client)
    except (BrokenPipeError, ConnectionError):
        return  # closed while we were still sending: refused too, only less politely
    assert status == 431
    assert headers["content-type"] == "application/problem+json"
    assert headers["connection"] == "close"
    assert orjson.loads(body)["status"] == 431
    assert closed_by_server(client)


def test_a_kserve_ce_metadata_header_of_40_kib_is_accepted(port: int) -> None:
    metadata = orjson.dumps({"outputs": [{"name": "score", "data": [0.25] * 8200}]})
    assert 40 * 1024 <= len(metadata) < 41 * 1024
    client = connect(port)
    client.sendall(post("/", b"{}", extra=f"ce-metadata: {metadata.decode()}\r\n"))
    status, _, body = read_response(client)
    assert status == 200
    assert orjson.loads(body) == {"body": 2, "ce_metadata": len(metadata)}


def test_a_stalled_body_is_answered_408_and_the_connection_closed(port: int) -> None:
    client = connect(port)
    client.sendall(b"POST / HTTP/1.1\r\nHost: t\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
    began = time.monotonic()
    status, headers, body = read_response(client)
    assert TIMEOUT * 0.9 < time.monotonic() - began < TIMEOUT + 1.0
    assert status == 408 and headers["connection"] == "close"
    assert orjson.loads(body)["title"] == "Request Timeout"
    assert closed_by_server(client)


def test_keep_alive_requests_slow_answers_and_trickled_bodies_still_work(port: int) -> None:
    client = connect(port)
    client.sendall(b"GET / HTTP/1.1\r\nHost: t\r\n\r\n")
    assert read_response(client)[0] == 200
    # Idle between requests for longer than the header timeout: the keep-alive timeout rules.
    time.sleep(TIMEOUT * 1.3)
    client.sendall(post("/", b"x" * 1000))
    assert orjson.loads(read_response(client)[2]) == {"body": 1000, "ce_metadata": 0}
    # An application slower than both timeouts.
    client.sendall(post("/slow", b"x"))
    assert read_response(client)[0] == 200
    # A body that keeps coming, for longer than the body timeout in all.
    request = post("/", b"y" * 8)
    head, body = request[: -len(b"y" * 8)], b"y" * 8
    client.sendall(head)
    for byte in body:
        time.sleep(TIMEOUT / 4)
        client.sendall(bytes([byte]))
    assert orjson.loads(read_response(client)[2]) == {"body": 8, "ce_metadata": 0}


def test_a_header_cap_below_what_kserve_sends_is_refused() -> None:
    with pytest.raises(ValidationError):
        HttpLimits(max_header_bytes=16 * 1024)
