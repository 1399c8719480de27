"""The request guard on a real server: an exception no route handles is a problem+json 500 that
closes the connection (so a client never sends its next request into a broken one), and the
request id travels in the header, the problem body and the log line."""

from __future__ import annotations

import asyncio
import json
import logging
import logging.config
import socket
from collections.abc import AsyncIterator

import httpx
import pytest
import uvicorn
from fastapi import FastAPI
from fastapi.responses import StreamingResponse
from http_edge.guard import RequestGuard
from http_edge.handlers import install_problem_handlers


def broken_app() -> FastAPI:
    app = FastAPI()
    install_problem_handlers(app)
    app.add_middleware(RequestGuard)

    @app.get("/fails")
    async def fails() -> None:
        raise RuntimeError("a bug")

    @app.get("/fails-midway")
    async def fails_midway() -> StreamingResponse:
        async def lines() -> AsyncIterator[bytes]:
            yield b"first\n"
            raise RuntimeError("a bug after the answer began")

        return StreamingResponse(lines())

    @app.get("/works")
    async def works() -> dict[str, str]:
        return {"status": "ok"}

    return app


@pytest.fixture
async def server() -> AsyncIterator[str]:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    config = uvicorn.Config(broken_app(), host="127.0.0.1", port=port, log_level="critical")
    instance = uvicorn.Server(config)
    task = asyncio.create_task(instance.serve())
    while not instance.started:
        await asyncio.sleep(0.01)
    yield f"http://127.0.0.1:{port}"
    instance.should_exit = True
    await task


async def test_an_unexpected_error_is_a_problem_that_closes_the_connection(
    server: str, caplog: pytest.LogCaptureFixture
) -> None:
    caplog.set_level(logging.ERROR, logger="http_edge")
    async with httpx.AsyncClient(base_url=server) as client:
        failed = await client.get("/fails", headers={"X-Request-Id": "req-1"})
        assert failed.status_code == 500
        assert failed.headers["content-type"] == "application/problem+json"
        assert failed.headers["connection"] == "close"
        assert failed.headers["x-request-id"] == "req-1"
        problem = failed.json()
        assert problem["request_id"] == "req-1"
        assert "a bug" not in failed.text and "Traceback" not in failed.text
        # The client opens a new connection and the service answers it.
        assert (await client.get("/works")).status_code == 200
    assert any("GET /fails" in record.getMessage() for record in caplog.records)


async def test_an_error_after_the_answer_began_ends_the_stream(server: str) -> None:
    async with httpx.AsyncClient(base_url=server) as client:
        with pytest.raises(httpx.RemoteProtocolError):
            await client.get("/fails-midway")
        assert (await client.get("/works")).status_code == 200


async def test_log_lines_are_json_with_the_request_id_and_no_query(
    capsys: pytest.CaptureFixture[str],
) -> None:
    from audit_trail.server import logging_config

    root = logging.getLogger()
    saved = (list(root.handlers), root.level)
    logging.config.dictConfig(logging_config("info"))
    try:
        transport = httpx.ASGITransport(app=broken_app())
        async with httpx.AsyncClient(transport=transport, base_url="http://edge") as client:
            await client.get(
                "/fails?access_token=atk_secret",
                headers={
                    "X-Request-Id": "trace-7",
                    "traceparent": "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01",
                },
            )
    finally:
        root.handlers[:], root.level = saved
    lines = [json.loads(line) for line in capsys.readouterr().err.splitlines() if line[:1] == "{"]
    # What the service logged (httpx, the test's client, logs its own requests at INFO).
    lines = [line for line in lines if not line["logger"].startswith("httpx")]
    assert lines and "atk_secret" not in json.dumps(lines)
    mine = [line for line in lines if line["request_id"] == "trace-7"]
    assert {line["logger"] for line in mine} >= {"http_edge", "http_edge.requests"}
    (request,) = [line for line in mine if line["message"] == "request"]
    assert request["route"] == "/fails" and request["status"] == 500
    assert request["traceparent"].startswith("00-4bf92f35")
