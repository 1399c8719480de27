"""Event types: published schemas match the models, known types are validated before the lock."""

from __future__ import annotations

import httpx
import orjson
import pytest
from decision_log.decisions.event_types import (
    EVENT_DATA_MODELS,
    SCHEMA_DIR,
    render_schema,
    schema_file_name,
)
from pydantic import BaseModel

from tests.decisions.helpers import event, recorded
from tests.service.conftest import TenantKeys
from tests.service.helpers import (
    all_entries,
    append,
    chain_size,
    decision_event,
    headers,
    leaf_bytes,
)


@pytest.mark.parametrize("event_type", sorted(EVENT_DATA_MODELS))
def test_committed_schema_files_match_the_models(event_type: str) -> None:
    committed = (SCHEMA_DIR / schema_file_name(event_type)).read_bytes()
    assert committed == render_schema(event_type), (
        "stale schema: run `python -m decision_log.decisions.event_types` and commit"
    )


def test_no_stray_schema_files() -> None:
    names = {path.name for path in SCHEMA_DIR.glob("*.json")}
    assert names == {schema_file_name(t) for t in EVENT_DATA_MODELS}


def _models(model: type[BaseModel]) -> list[type[BaseModel]]:
    found = [model]
    for field in model.model_fields.values():
        for candidate in getattr(field.annotation, "__args__", (field.annotation,)):
            inner = getattr(candidate, "__args__", (candidate,))
            for kind in inner:
                if isinstance(kind, type) and issubclass(kind, BaseModel):
                    found.extend(_models(kind))
    return found


@pytest.mark.parametrize("event_type", sorted(EVENT_DATA_MODELS))
def test_every_field_is_documented(event_type: str) -> None:
    for model in _models(EVENT_DATA_MODELS[event_type]):
        for name, field in model.model_fields.items():
            assert field.description, f"{model.__name__}.{name} has no description"


async def test_schemas_are_served_without_a_key(client: httpx.AsyncClient) -> None:
    listed = (await client.get("/v1/schemas")).json()["types"]
    assert {item["type"] for item in listed} == set(EVENT_DATA_MODELS)
    for item in listed:
        response = await client.get(item["path"])
        assert response.status_code == 200
        assert response.headers["content-type"].startswith("application/schema+json")
        assert response.content == render_schema(item["type"])
        assert response.json()["$id"] == item["schema_id"]
    assert (await client.get("/v1/schemas/com.example.unknown.v1")).status_code == 404


async def test_invalid_data_of_a_known_type_names_the_field(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    bad = recorded("d-1")
    bad["data"]["model"]["version"] = 4
    response = await append(client, tenant.producer, tenant.chain, bad)
    assert response.status_code == 400
    body = response.json()
    assert body["pointer"] == "/data/model/version"
    assert "model.version" in body["detail"]

    batch = [recorded(f"d-{n}") for n in range(5)]
    del batch[3]["data"]["output"]["decision"]
    response = await append(client, tenant.producer, tenant.chain, batch, batch=True)
    assert response.status_code == 400
    assert response.json()["pointer"] == "/3/data/output/decision"

    attribution = recorded("d-9")
    attribution["data"]["explanation"]["attributions"][1]["weight"] = "high"
    response = await append(client, tenant.producer, tenant.chain, attribution)
    assert response.json()["pointer"] == "/data/explanation/attributions/1/weight"

    override = event(
        "decision.overridden.v1", "d-1", {"reviewer_ref": "r", "role": "x", "reason": "y"}
    )
    response = await append(client, tenant.producer, tenant.chain, override)
    assert response.status_code == 400
    assert response.json()["pointer"] == "/data/action"

    no_subject = recorded("d-1")
    del no_subject["subject"]
    response = await append(client, tenant.producer, tenant.chain, no_subject)
    assert response.json()["pointer"] == "/subject"

    # Longer than the read model's indexes hold (limits.MAX_INDEXED_TEXT_CHARS).
    too_long = recorded("d-1", model={"name": "m" * 129, "version": "4.2.0"})
    response = await append(client, tenant.producer, tenant.chain, too_long)
    assert response.status_code == 400
    assert response.json()["pointer"] == "/data/model/name"
    assert "model.name" in response.json()["detail"]
    # Nothing of the refused requests was written.
    assert await chain_size(client, tenant.auditor, tenant.chain) == 0


async def test_unknown_types_and_extra_members_are_appended_as_is(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    unknown = event("com.example.whatever.v3", "d-1", {"anything": [1, 2]})
    unknown["type"] = "com.example.whatever.v3"
    extra = recorded("d-2", producer_note={"free": "form"})
    legacy = decision_event()  # the shape the service tests send: extra members, valid core
    for item in (unknown, extra, legacy):
        response = await append(client, tenant.producer, tenant.chain, item)
        assert response.status_code == 201, response.text
    stored = [
        orjson.loads(leaf_bytes(entry))["event"]
        for entry in await all_entries(client, tenant.auditor, tenant.chain)
    ]
    assert stored == [unknown, extra, legacy]  # every member kept, none rewritten


async def test_completeness_attributes_are_kept_and_a_bad_interval_is_refused(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    tracked = recorded("d-1") | {"sequence": "00000000000000000001", "heartbeatinterval": "60"}
    untracked = recorded("d-2") | {"sequence": "not-a-number"}
    closed = event("producer.closed.v1", None, {"last_sequence": "00000000000000000002"})
    closed |= {"sequence": "00000000000000000002"}
    for item in (tracked, untracked, closed):
        response = await append(client, tenant.producer, tenant.chain, item)
        assert response.status_code == 201, response.text
    for bad in ("0", "60s", "-1", "1e3", 60):
        refused = recorded("d-3") | {"heartbeatinterval": bad}
        response = await append(client, tenant.producer, tenant.chain, refused)
        assert response.status_code == 400, bad
        assert response.json()["pointer"] == "/heartbeatinterval"
    bad_closing = event("producer.closed.v1", None, {"last_sequence": "last"})
    response = await append(client, tenant.producer, tenant.chain, bad_closing)
    assert response.status_code == 400
    assert response.json()["pointer"] == "/data/last_sequence"
    assert await chain_size(client, tenant.auditor, tenant.chain) == 3


async def test_producers_cannot_write_the_access_chain(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await append(client, tenant.producer, "access-log", recorded("d-1"))
    assert response.status_code == 403
    response = await client.get("/v1/decisions", headers=headers(tenant.producer))
    assert response.status_code == 403


def test_the_field_reference_page_is_current() -> None:
    from decision_log.decisions.field_reference import render

    from tests.conftest import PROJECT_ROOT

    committed = (PROJECT_ROOT / "docs" / "events.md").read_text()
    assert committed == render(), (
        "stale docs/events.md: run `python -m decision_log.decisions.field_reference "
        "docs/events.md`"
    )
