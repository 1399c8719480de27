"""Decision events of every type, and waiting for the projector to catch up."""

from __future__ import annotations

import asyncio
import uuid
from typing import Any

import asyncpg

PREFIX = "dev.audit-trail."


def recorded(decision_id: str, **data: Any) -> dict[str, Any]:
    body: dict[str, Any] = {
        "system": {"name": "credit-scoring", "deployment": "eu-prod"},
        "model": {
            "name": "credit-gbm",
            "version": "4.2.0",
            "registry_uri": "models:/credit-gbm/4.2.0",
            "digest": "sha256:" + "ab" * 32,
        },
        "policy": {"id": "lending-eu", "version": "7", "thresholds": {"approve": 0.5}},
        "input": {"digest": "sha256:" + "cd" * 32, "reference": "s3://inputs/1"},
        "output": {"decision": "declined", "score": 0.37},
        "explanation": {
            "method": "shap",
            "attributions": [
                {"feature": "income", "weight": 0.08},
                {"feature": "debt_ratio", "weight": -0.21},
                {"feature": "tenure_months", "weight": 0.03},
            ],
            "counterfactual": {"changes": {"debt_ratio": 0.25}, "decision": "approved"},
            "summary": "High debt ratio.",
        },
        "purpose": "consumer credit",
        "solely_automated": True,
        "legal_or_similar_effect": True,
        "data_subject_ref": "hmac:subject-1",
    }
    body.update(data)
    return event("decision.recorded.v1", decision_id, body)


def event(
    kind: str, decision_id: str | None, data: Any, *, time: str = "2026-11-26T10:00:00Z"
) -> dict[str, Any]:
    value: dict[str, Any] = {
        "specversion": "1.0",
        "id": str(uuid.uuid4()),
        "source": "urn:test:credit",
        "type": PREFIX + kind,
        "time": time,
        "data": data,
    }
    if decision_id is not None:
        value["subject"] = decision_id
    return value


def reviewed(decision_id: str, **data: Any) -> dict[str, Any]:
    body = {"reviewer_ref": "hmac:officer-9", "role": "credit-officer", "action": "confirmed"}
    return event("decision.reviewed.v1", decision_id, body | data)


def overridden(decision_id: str, **data: Any) -> dict[str, Any]:
    body = {
        "reviewer_ref": "hmac:officer-9",
        "role": "credit-officer",
        "action": "overridden",
        "new_decision": "approved",
        "reason": "Income verified by payslips.",
    }
    return event("decision.overridden.v1", decision_id, body | data)


def contested(decision_id: str) -> dict[str, Any]:
    return event("decision.contested.v1", decision_id, {"grounds": "My debt was repaid."})


def outcome(decision_id: str, value: str = "repaid") -> dict[str, Any]:
    return event("outcome.observed.v1", decision_id, {"outcome": value})


def deployed(name: str = "credit-gbm", version: str = "4.2.0") -> dict[str, Any]:
    return event(
        "model.deployed.v1",
        None,
        {
            "model": {"name": name, "version": version, "digest": "sha256:" + "ab" * 32},
            "deployment": "eu-prod",
            "lineage": {
                "training_data": [{"uri": "s3://data/2026-10", "digest": "sha256:" + "ef" * 32}]
            },
        },
    )


async def projected(database_url: str, *, timeout: float = 10.0) -> None:
    """Wait until the read model covers every committed entry of every chain, but chains whose
    projection is failing (tampered ones, left by other tests), which are retried, not waited
    for."""
    connection = await asyncpg.connect(database_url)
    try:
        deadline = asyncio.get_running_loop().time() + timeout
        while True:
            behind = await connection.fetchval(
                "SELECT count(*) FROM chains c LEFT JOIN projection_positions p "
                "ON p.chain_id = c.id WHERE c.slug <> 'access-log' "
                "AND c.size > coalesce(p.next_idx, 0) AND p.error IS NULL"
            )
            if behind == 0:
                return
            if asyncio.get_running_loop().time() > deadline:
                raise AssertionError(f"{behind} chains not projected within {timeout}s")
            await asyncio.sleep(0.02)
    finally:
        await connection.close()


def genai_span(
    trace_id: str,
    span_id: str,
    *,
    parent: str | None = None,
    operation: str = "chat",
    start: int = 1_764_662_400_000_000_000,
    service: str = "support-agent",
    **attributes: Any,
) -> dict[str, Any]:
    """A GenAI span's event as the OTLP receiver writes it (otlp/genai.py): OTLP/JSON span,
    resource and scope; ``attributes`` with dots written as double underscores."""
    values = [{"key": "gen_ai.operation.name", "value": {"stringValue": operation}}]
    for name, value in attributes.items():
        key = name.replace("__", ".")
        values.append(
            {
                "key": key,
                "value": {"intValue": str(value)}
                if isinstance(value, int)
                else {"stringValue": value},
            }
        )
    data: dict[str, Any] = {
        "traceId": trace_id,
        "spanId": span_id,
        "name": f"{operation} {span_id[:4]}",
        "kind": 1,
        "startTimeUnixNano": str(start),
        "endTimeUnixNano": str(start + 1000),
        "attributes": values,
        "status": {},
        "resource": {"attributes": [{"key": "service.name", "value": {"stringValue": service}}]},
    }
    if parent is not None:
        data["parentSpanId"] = parent
    return {
        "specversion": "1.0",
        "id": f"{trace_id}-{span_id}",
        "source": f"otlp:{service}",
        "type": "dev.audit-trail.genai.invocation.v1",
        "subject": trace_id,
        "time": "2025-12-02T08:00:00.000000000Z",
        "datacontenttype": "application/json",
        "data": data,
    }
