"""Decisions from producers as they are: KServe's and Seldon's payload loggers (requests shaped
exactly as their Go code sends them) and OpenTelemetry GenAI spans, searched and explained with
their evidence."""

from __future__ import annotations

import json
import uuid
from typing import Any

import asyncpg
import httpx
import orjson
from decision_log.db import create_engine
from decision_log.decisions.projector import rebuild
from ledger.merkle import verify_inclusion

from tests.decisions.helpers import projected, reviewed
from tests.service.conftest import TenantKeys
from tests.service.helpers import STRUCTURED, all_entries, headers, leaf_bytes

# The Go CloudEvents SDK writes header names canonicalised (Ce-Id), values raw, times with
# nanoseconds (RFC3339Nano), and KServe sets every extension, an empty endpoint included.
KSERVE_TIME = "2026-12-02T09:15:02.123456789Z"


def kserve_headers(kind: str, inference_id: str, **extra: str) -> dict[str, str]:
    return {
        "Ce-Id": inference_id,
        "Ce-Source": "http://sklearn-iris-predictor-00001-deployment-7f9c/",
        "Ce-Specversion": "1.0",
        "Ce-Type": f"org.kubeflow.serving.inference.{kind}",
        "Ce-Time": KSERVE_TIME,
        "Ce-Recordedtime": "2026-12-02T09:15:02.130000001Z",
        "Ce-Inferenceservicename": "sklearn-iris",
        "Ce-Namespace": "default",
        "Ce-Component": "predictor",
        "Ce-Endpoint": "",
        "Ce-Metadata": '{"X-Request-Id":["r-17"]}',
        "Content-Type": "application/json",
        **extra,
    }


async def post(
    client: httpx.AsyncClient, tenant: TenantKeys, sent: dict[str, str], body: Any
) -> httpx.Response:
    response = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=orjson.dumps(body),
        headers=headers(tenant.producer, sent),
    )
    assert response.status_code in (200, 201), response.text
    return response


async def view(client: httpx.AsyncClient, tenant: TenantKeys, decision_id: str) -> dict[str, Any]:
    response = await client.get(
        f"/v1/chains/{tenant.chain}/decisions/{decision_id}", headers=headers(tenant.auditor)
    )
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    return body


async def search(client: httpx.AsyncClient, tenant: TenantKeys, **filters: str) -> list[str]:
    response = await client.get(
        "/v1/decisions", params={"chain": tenant.chain, **filters}, headers=headers(tenant.auditor)
    )
    assert response.status_code == 200, response.text
    return [item["decision_id"] for item in response.json()["decisions"]]


async def test_a_kserve_request_and_response_are_one_decision(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    inference_id = str(uuid.uuid4())
    request = {"inputs": [{"name": "x", "shape": [1, 4], "datatype": "FP32",
                           "data": [6.8, 2.8, 4.8, 1.4]}]}  # fmt: skip
    response = {
        "model_name": "sklearn-iris",
        "model_version": "v3",
        "id": inference_id,
        "outputs": [{"name": "predict", "shape": [1], "datatype": "INT64", "data": [1]}],
    }
    await post(client, tenant, kserve_headers("request", inference_id), request)
    await post(client, tenant, kserve_headers("response", inference_id), response)
    await projected(database_url)

    decision = await view(client, tenant, inference_id)
    state = decision["state"]
    assert (state["system"], state["deployment"]) == ("default/sklearn-iris", "predictor")
    assert (state["model_name"], state["model_version"]) == ("sklearn-iris", "v3")
    assert (state["decision"], state["score"]) == ("1", 1.0)
    assert state["decided_at"].startswith("2026-12-02T09:15:02.123456")
    assert [event["type"] for event in decision["timeline"]] == [
        "org.kubeflow.serving.inference.request",
        "org.kubeflow.serving.inference.response",
    ]
    first = decision["timeline"][0]["event"]
    assert first["time"] == KSERVE_TIME  # every nanosecond, as sent
    assert first["endpoint"] == "" and json.loads(first["metadata"]) == {"X-Request-Id": ["r-17"]}
    exchange = decision["explanation"]["inference"]
    assert exchange["server"] == "kserve" and exchange["response"] == "recorded"
    assert exchange["steps"][0]["at"] == KSERVE_TIME
    assert exchange["steps"][0]["recorded_at"] == "2026-12-02T09:15:02.130000001Z"
    assert exchange["steps"][1]["data"]["outputs"][0]["data"] == [1]
    assert "sklearn-iris" in decision["explanation"]["text"]
    for proof in decision["evidence"]["proofs"]:
        assert proof["hashes"] is not None or proof["tree_size"] is None
    # The leaves hold the raw time; their hashes are what the proofs prove.
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    assert KSERVE_TIME.encode() in leaf_bytes(entries[0])
    assert verify_inclusion is not None
    assert await search(client, tenant, model_name="sklearn-iris") == [inference_id]


async def test_a_kserve_request_whose_response_never_came_says_so(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    inference_id = str(uuid.uuid4())
    old = kserve_headers("request", inference_id, **{"Ce-Time": "2026-01-02T00:00:00Z"})
    await post(client, tenant, old, {"instances": [[1, 2, 3, 4]]})
    await projected(database_url)
    decision = await view(client, tenant, inference_id)
    assert decision["explanation"]["inference"]["response"] == "not recorded"
    assert "No response was recorded" in decision["explanation"]["text"]
    assert decision["state"]["decision"] is None


async def test_a_seldon_graph_is_one_decision_per_request_id_with_a_step_per_node(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    puid = "b8f0c2d4-seldon-puid"

    def seldon(kind: str, node: str) -> dict[str, str]:
        # sdk-go v1 (Seldon's executor) sent extension values as quoted strings: the binding
        # still requires reading them (§3.1.3.2).
        return {
            "Ce-Id": str(uuid.uuid4()),  # every message its own id (predictor_process.go)
            "Ce-Source": "http://seldon-model-example-0-classifier:8000/",
            "Ce-Specversion": "1.0",
            "Ce-Type": f"io.seldon.serving.inference.{kind}",
            "Ce-Time": "2026-12-02T09:20:00.5Z",
            "Ce-Requestid": f'"{puid}"',
            "Ce-Modelid": node,
            "Ce-Inferenceservicename": "seldon-model",
            "Ce-Namespace": "seldon",
            "Ce-Endpoint": "example",
            "Ce-Protocol": "seldon",
            "Content-Type": "application/json",
        }

    payload = {"data": {"ndarray": [[1.0, 2.0, 5.0]]}}
    answer = {
        "data": {"names": ["proba"], "ndarray": [[0.0907]]},
        "meta": {"requestPath": {"classifier": "seldonio/mock_classifier:1.3"}},
    }
    await post(client, tenant, seldon("request", "transformer"), payload)
    await post(client, tenant, seldon("request", "classifier"), payload)
    await post(client, tenant, seldon("response", "classifier"), answer)
    await post(client, tenant, seldon("response", "transformer"), {"data": {"ndarray": [[1]]}})
    await projected(database_url)

    decision = await view(client, tenant, puid)
    assert len(decision["timeline"]) == 4
    steps = decision["explanation"]["inference"]["steps"]
    assert [step["node"] for step in steps] == [
        "transformer",
        "classifier",
        "classifier",
        "transformer",
    ]
    assert decision["state"]["system"] == "seldon/seldon-model"
    assert decision["state"]["deployment"] == "example"


def otlp(spans: list[dict[str, Any]]) -> bytes:
    return orjson.dumps(
        {
            "resourceSpans": [
                {
                    "resource": {
                        "attributes": [
                            {"key": "service.name", "value": {"stringValue": "support-agent"}}
                        ]
                    },
                    "scopeSpans": [{"scope": {"name": "agent-sdk"}, "spans": spans}],
                }
            ]
        }
    )


def span(span_id: str, parent: str | None, start: int, **attributes: Any) -> dict[str, Any]:
    value = {
        "traceId": TRACE,
        "spanId": span_id,
        "name": f"span {span_id[:4]}",
        "startTimeUnixNano": str(1_764_666_000_000_000_000 + start),
        "endTimeUnixNano": str(1_764_666_000_000_000_000 + start + 500),
        "attributes": [
            {
                "key": key.replace("__", "."),
                "value": {"intValue": item} if isinstance(item, int) else {"stringValue": item},
            }
            for key, item in attributes.items()
        ],
    }
    if parent:
        value["parentSpanId"] = parent
    return value


TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
AGENT, CHAT, TOOL = "00f067aa0ba902b7", "00f067aa0ba902b8", "00f067aa0ba902b9"


async def test_an_agent_invocation_whose_parent_comes_last_is_one_decision(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    children = [
        span(
            CHAT,
            AGENT,
            10,
            gen_ai__operation__name="chat",
            gen_ai__request__model="gpt-4o",
            gen_ai__response__model="gpt-4o-2024-08-06",
            gen_ai__provider__name="openai",
            gen_ai__usage__input_tokens=120,
            gen_ai__usage__output_tokens=30,
        ),
        span(
            TOOL,
            AGENT,
            20,
            gen_ai__operation__name="execute_tool",
            gen_ai__tool__name="lookup_order",
            gen_ai__tool__call__arguments='{"order":"A-17"}',
        ),
    ]
    root = span(
        AGENT,
        "ffffffffffffffff",  # the HTTP span above: no GenAI span, never sent
        0,
        gen_ai__operation__name="invoke_agent",
        gen_ai__agent__name="support",
        gen_ai__provider__name="openai",
        gen_ai__conversation__id="conv-42",
    )
    path = f"/v1/chains/{tenant.chain}/otlp/v1/traces"
    json_headers = headers(tenant.producer, {"Content-Type": "application/json"})
    first = await client.post(path, content=otlp(children), headers=json_headers)
    assert first.status_code == 200, first.text
    await projected(database_url)
    # Before its parent arrives, the chat stands for itself; after, it joins the agent's.
    assert sorted(await search(client, tenant)) == [f"{TRACE}-{CHAT}", f"{TRACE}-{TOOL}"]
    second = await client.post(path, content=otlp([root]), headers=json_headers)
    assert second.status_code == 200, second.text
    decision_id = f"{TRACE}-{AGENT}"
    review = reviewed(decision_id, action="confirmed", reviewer_ref="hmac:r", role="support-lead")
    reviewed_response = await client.post(
        f"/v1/chains/{tenant.chain}/events",
        content=orjson.dumps(review),
        headers=headers(tenant.producer, STRUCTURED),
    )
    assert reviewed_response.status_code == 201, reviewed_response.text
    await projected(database_url)

    for name, value in (
        ("agent", "support"),
        ("provider", "openai"),
        ("conversation", "conv-42"),
        ("tool", "lookup_order"),
        ("model_name", "gpt-4o"),
        ("source", "otlp:support-agent"),  # the OTLP producer, as completeness names it
    ):
        assert await search(client, tenant, **{name: value}) == [decision_id], name
    decision = await view(client, tenant, decision_id)
    state = decision["state"]
    assert (state["agent"], state["model_version"], state["reviewed"]) == (
        "support",
        "gpt-4o-2024-08-06",
        True,
    )
    explained = decision["explanation"]
    assert explained["genai"]["tools"] == ["lookup_order"]
    assert explained["genai"]["input_tokens"] == 120
    assert explained["genai"]["calls"][1]["arguments"] == {"stringValue": '{"order":"A-17"}'}
    assert explained["human_oversight"][0]["role"] == "support-lead"
    assert "gpt-4o" in explained["text"] and "lookup_order" in explained["text"]
    assert len(decision["timeline"]) == 4 and len(decision["evidence"]["proofs"]) == 4

    # The read model is rebuilt from the log alone to the same rows, whatever the arrival order.
    before = await genai_rows(database_url, tenant)
    engine = create_engine(database_url, role="audit_trail_writer", pool_size=2)
    try:
        await rebuild(engine)
    finally:
        await engine.dispose()
    assert await genai_rows(database_url, tenant) == before


async def genai_rows(database_url: str, tenant: TenantKeys) -> list[Any]:
    connection = await asyncpg.connect(database_url)
    try:
        rows = await connection.fetch(
            "SELECT d.decision_id, d.genai_agent, d.model_name, d.model_version, d.reviewed, "
            "array(SELECT idx FROM decision_events e WHERE e.chain_id = d.chain_id "
            "AND e.decision_id = d.decision_id ORDER BY idx) AS timeline "
            "FROM decisions d JOIN chains c ON c.id = d.chain_id JOIN tenants t "
            "ON t.id = c.tenant_id WHERE t.slug = $1 ORDER BY d.decision_id",
            tenant.tenant,
        )
        return [tuple(row.values()) for row in rows]
    finally:
        await connection.close()


async def test_search_checks_model_server_and_agent_decisions_against_their_events(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    """A row no one event records (a KServe inference, a GenAI invocation) is checked in a
    search page against its whole timeline: untouched it shows no mismatch, altered it shows
    the events' values and names the fields."""
    inference_id = str(uuid.uuid4())
    await post(client, tenant, kserve_headers("request", inference_id), {"instances": [[1, 2]]})
    await post(
        client,
        tenant,
        kserve_headers("response", inference_id),
        {"model_name": "iris", "model_version": "v3", "outputs": [{"name": "p", "data": [1]}]},
    )
    agent = span(AGENT, None, 0, gen_ai__operation__name="invoke_agent", gen_ai__agent__name="a1")
    chat = span(CHAT, AGENT, 10, gen_ai__operation__name="chat", gen_ai__request__model="m")
    sent = await client.post(
        f"/v1/chains/{tenant.chain}/otlp/v1/traces",
        content=otlp([chat, agent]),
        headers=headers(tenant.producer, {"Content-Type": "application/json"}),
    )
    assert sent.status_code == 200, sent.text
    await projected(database_url)
    invocation = f"{TRACE}-{AGENT}"

    async def page() -> dict[str, dict[str, Any]]:
        response = await client.get(
            "/v1/decisions", params={"chain": tenant.chain}, headers=headers(tenant.auditor)
        )
        assert response.status_code == 200, response.text
        return {item["decision_id"]: item for item in response.json()["decisions"]}

    honest = await page()
    assert honest[inference_id]["read_model_mismatch"] == []
    assert honest[invocation]["read_model_mismatch"] == []
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(
            "UPDATE decisions SET decision = '0', model_version = 'v2', reviewed = true "
            "WHERE decision_id = $1",
            inference_id,
        )
        await connection.execute(
            "UPDATE decisions SET genai_agent = 'someone-else' WHERE decision_id = $1", invocation
        )
        altered = await page()
        # An agent's span listed in the inference's timeline: found out, and not folded in.
        await connection.execute(
            "INSERT INTO decision_events (chain_id, decision_id, idx, event_type) "
            "SELECT chain_id, $1, idx, event_type FROM decision_events WHERE decision_id = $2",
            inference_id,
            invocation,
        )
        borrowed = await page()
    finally:
        await connection.close()
    shown = altered[inference_id]
    assert sorted(shown["read_model_mismatch"]) == ["decision", "model_version", "reviewed"]
    assert (shown["decision"], shown["model_version"], shown["reviewed"]) == ("1", "v3", False)
    assert altered[invocation]["read_model_mismatch"] == ["agent"]
    assert altered[invocation]["agent"] == "a1"
    shown = borrowed[inference_id]
    assert "timeline" in shown["read_model_mismatch"]
    assert (shown["decision"], shown["model_version"]) == ("1", "v3")
