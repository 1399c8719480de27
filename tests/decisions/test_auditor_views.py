"""Auditor views over real HTTP and PostgreSQL: search, one decision explained with evidence,
access records, and a read model rebuilt from the log alone."""

from __future__ import annotations

import base64
from typing import Any

import asyncpg
import httpx
from decision_log.db import create_engine
from decision_log.decisions.projector import Projector, rebuild
from ledger.merkle import leaf_hash, verify_inclusion
from ledger.note import Checkpoint

from tests.decisions.helpers import (
    contested,
    deployed,
    event,
    outcome,
    overridden,
    projected,
    recorded,
    reviewed,
)
from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import all_entries, append, headers, wait_for_checkpoint
from tests.service.test_witness import register
from tests.verifier import tamper


def decision_at(n: int) -> dict[str, Any]:
    """Decision n of a varied set: 3 model versions, 2 policies, scores 0.00 .. 0.29."""
    item = recorded(
        f"d-{n:03d}",
        model={"name": "credit-gbm", "version": f"4.{n % 3}.0"},
        policy={"id": "lending-eu", "version": str(7 + n % 2)},
        output={"decision": "approved" if n % 4 == 0 else "declined", "score": n / 100},
        data_subject_ref=f"hmac:subject-{n % 5}",
    )
    item["time"] = f"2026-11-{1 + n // 10:02d}T10:{n % 60:02d}:00Z"
    return item


async def search(client: httpx.AsyncClient, key: str, **params: Any) -> httpx.Response:
    return await client.get("/v1/decisions", params=params, headers=headers(key))


async def all_pages(client: httpx.AsyncClient, key: str, **params: Any) -> list[str]:
    found: list[str] = []
    cursor = None
    while True:
        query = dict(params) | ({"cursor": cursor} if cursor else {})
        response = await search(client, key, **query)
        assert response.status_code == 200, response.text
        page = response.json()
        found.extend(d["decision_id"] for d in page["decisions"])
        cursor = page["next_cursor"]
        if cursor is None:
            return found


async def seeded(client: httpx.AsyncClient, tenant: TenantKeys, database_url: str) -> None:
    events = [decision_at(n) for n in range(30)]
    events += [reviewed("d-003"), overridden("d-005"), contested("d-007"), outcome("d-003")]
    response = await append(client, tenant.producer, tenant.chain, events, batch=True)
    assert response.status_code == 201, response.text
    await projected(database_url)


async def test_search_filters_sort_and_paginate(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    await seeded(client, tenant, database_url)
    newest_first = [f"d-{n:03d}" for n in reversed(range(30))]
    assert await all_pages(client, tenant.auditor, limit=7) == newest_first
    assert await all_pages(client, tenant.auditor, chain=tenant.chain, limit=4) == newest_first

    async def ids(**params: Any) -> set[str]:
        return set(await all_pages(client, tenant.auditor, **params))

    def expect(predicate: Any) -> set[str]:
        return {f"d-{n:03d}" for n in range(30) if predicate(n)}

    assert await ids(model_version="4.1.0") == expect(lambda n: n % 3 == 1)
    assert await ids(model_name="credit-gbm", model_version="4.2.0") == expect(lambda n: n % 3 == 2)
    assert await ids(policy_version="8") == expect(lambda n: n % 2 == 1)
    assert await ids(decision="approved") == expect(lambda n: n % 4 == 0)
    assert await ids(score_min=0.1, score_max=0.2) == expect(lambda n: 10 <= n <= 20)
    assert await ids(
        decided_from="2026-11-02T00:00:00Z", decided_before="2026-11-03T00:00:00Z"
    ) == expect(lambda n: 10 <= n < 20)
    assert await ids(data_subject_ref="hmac:subject-2") == expect(lambda n: n % 5 == 2)
    assert await ids(reviewed=True) == {"d-003"}
    assert await ids(overridden=True) == {"d-005"}
    assert await ids(contested=True) == {"d-007"}
    assert await ids(contested=False) == expect(lambda n: n != 7)
    assert await ids(contested=False, decision="approved", model_version="4.0.0") == expect(
        lambda n: n % 12 == 0
    )

    page = (await search(client, tenant.auditor, overridden=True)).json()["decisions"][0]
    assert page["chain"] == tenant.chain and page["index"] == 5
    assert (page["decision"], page["current_decision"]) == ("declined", "approved")


async def test_search_limited_to_a_source(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    scorer, other = "scorer/00112233445566778899", "reviewer/aabbccddeeff0011"
    events = [recorded(f"s-{n}") | {"source": scorer if n % 3 else other} for n in range(9)]
    response = await append(client, tenant.producer, tenant.chain, events, batch=True)
    assert response.status_code == 201, response.text
    await projected(database_url)
    assert set(await all_pages(client, tenant.auditor, source=scorer)) == {
        f"s-{n}" for n in range(9) if n % 3
    }
    page = (await search(client, tenant.auditor, source=other)).json()["decisions"]
    assert {d["decision_id"] for d in page} == {"s-0", "s-3", "s-6"}
    assert {d["source"] for d in page} == {other}
    assert await all_pages(client, tenant.auditor, source="nobody/0000000000000000") == []
    # A read model whose source was altered is caught against the recorded event.
    alter = "UPDATE decisions SET source = $1 WHERE decision_id = 's-3'"
    connection = await asyncpg.connect(database_url)
    try:
        await connection.execute(alter, scorer)
        altered = (await search(client, tenant.auditor, source=scorer)).json()["decisions"]
        await connection.execute(alter, other)  # as it was, for the tests that compare after
    finally:
        await connection.close()
    shown = next(d for d in altered if d["decision_id"] == "s-3")
    assert (shown["source"], shown["read_model_mismatch"]) == (other, ["source"])


async def test_the_cursor_is_stable_while_decisions_arrive(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    await seeded(client, tenant, database_url)
    first = (await search(client, tenant.auditor, limit=10)).json()
    newer = recorded("d-new")
    newer["time"] = "2026-12-31T00:00:00Z"
    assert (await append(client, tenant.producer, tenant.chain, newer)).status_code == 201
    await projected(database_url)
    fresh = (await search(client, tenant.auditor, limit=10)).json()
    assert fresh["decisions"][0]["decision_id"] == "d-new"  # it is there, ahead of the cursor
    second = (await search(client, tenant.auditor, limit=10, cursor=first["next_cursor"])).json()
    assert [d["decision_id"] for d in second["decisions"]] == [
        f"d-{n:03d}" for n in reversed(range(10, 20))
    ]


async def test_invalid_filters_are_problems(client: httpx.AsyncClient, tenant: TenantKeys) -> None:
    cases = [
        ({"score_min": 0.9, "score_max": 0.1}, "score_min"),
        ({"score_min": "high"}, "score_min"),
        (
            {"decided_from": "2026-11-02T00:00:00Z", "decided_before": "2026-11-01T00:00:00Z"},
            "decided_from",
        ),
        ({"decided_from": "2026-11-02T00:00:00"}, "decided_from"),
        ({"decided_from": "yesterday"}, "decided_from"),
        ({"reviewed": "maybe"}, "reviewed"),
        ({"limit": 0}, "limit"),
        ({"limit": 201}, "limit"),
        ({"cursor": "not-a-cursor"}, "cursor"),
        ({"chain": "no-such-chain"}, "chain"),
        ({"model_version": ""}, "model_version"),
        ({"source": ""}, "source"),
        ({"source": "s" * 301}, "source"),
    ]
    for params, parameter in cases:
        response = await search(client, tenant.auditor, **params)
        assert response.status_code == 400, (params, response.text)
        assert response.headers["content-type"] == "application/problem+json"
        assert response.json()["parameter"] == parameter, params


async def test_one_decision_explained_with_its_evidence(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    events = [
        deployed(),
        recorded("loan-1"),
        recorded("loan-2"),
        reviewed("loan-1", action="escalated", reason="Borderline ratio."),
        overridden("loan-1"),
        contested("loan-1"),
        event("com.example.note.v1", "loan-1", {"free": "text"}),
    ]
    events[-1]["type"] = "com.example.note.v1"
    await append(client, tenant.producer, tenant.chain, events, batch=True)
    await projected(database_url)
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=len(events))

    response = await client.get(
        f"/v1/chains/{tenant.chain}/decisions/loan-1", headers=headers(tenant.auditor)
    )
    assert response.status_code == 200, response.text
    view = response.json()
    timeline = view["timeline"]
    assert [e["index"] for e in timeline] == [1, 3, 4, 5, 6]
    assert [e["known"] for e in timeline] == [True, True, True, True, False]
    for item in timeline:
        assert leaf_hash(base64.b64decode(item["leaf"])).hex() == item["leaf_hash"]
    state = view["state"]
    assert state["reviewed"] and state["overridden"] and state["contested"]
    assert (state["decision"], state["current_decision"]) == ("declined", "approved")

    explanation = view["explanation"]
    assert explanation["index"] == 1 and explanation["system"] == "credit-scoring"
    assert explanation["model"]["version"] == "4.2.0"
    assert explanation["model_deployment"]["index"] == 0
    assert [f["feature"] for f in explanation["factors"]] == [
        "debt_ratio",
        "income",
        "tenure_months",
    ]
    assert explanation["factors"][0]["direction"] == "lowered"
    assert explanation["counterfactual"]["changes"] == {"debt_ratio": 0.25}
    assert [a["action"] for a in explanation["human_oversight"]] == ["escalated", "overridden"]
    assert len(explanation["contests"]) == 1
    text = explanation["text"]
    for fragment in (
        "credit-scoring",
        "model credit-gbm version 4.2.0",
        "policy lending-eu version 7",
        "approve 0.5",
        "debt_ratio (lowered the score by 0.21), income (raised the score by 0.08)",
        "would have been “approved” if debt_ratio had been 0.25",
        "solely by automated means",
        "overrode it to “approved”",
        "“Income verified by payslips.”",
        "contested by the data subject",
    ):
        assert fragment in text, fragment

    # Evidence: no witness yet, so every event is proved against the latest checkpoint,
    # flagged as not cosigned.
    evidence = view["evidence"]
    assert [c["cosigned"] for c in evidence["checkpoints"]] == [False]
    checkpoint = evidence["checkpoints"][0]
    assert (
        Checkpoint.parse(checkpoint["note"][: checkpoint["note"].rfind("\n\n") + 1]).size
        == (checkpoint["size"])
    )
    assert [p["index"] for p in evidence["proofs"]] == [e["index"] for e in view["timeline"]]
    assert [p["leaf_hash"] for p in evidence["proofs"]] == [
        e["leaf_hash"] for e in view["timeline"]
    ]
    for proof in evidence["proofs"]:
        verify_inclusion(
            leaf_hash=bytes.fromhex(proof["leaf_hash"]),
            index=proof["index"],
            size=proof["tree_size"],
            proof=[bytes.fromhex(h) for h in proof["hashes"]],
            root=bytes.fromhex(checkpoint["root_hash"]),
        )

    # A witness cosigns that checkpoint; later events are proved against a newer, uncosigned one.
    cosigner, witness_key = await register(database_url, "witness.test/d-" + tenant.tenant)
    base = f"/v1/witness/chains/{tenant.tenant}/{tenant.chain}"
    note = (await client.get(f"{base}/checkpoint", headers=headers(witness_key))).text
    body = note[: note.rfind("\n\n") + 1]
    size = Checkpoint.parse(body).size
    line = cosigner.sign(body, timestamp=1_790_000_000)
    posted = await client.post(
        f"{base}/cosignatures", json={"size": size, "signature": line}, headers=headers(witness_key)
    )
    assert posted.status_code == 201, posted.text
    await append(client, tenant.producer, tenant.chain, outcome("loan-1", "repaid"))
    await projected(database_url)
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=size + 1)
    view = (
        await client.get(
            f"/v1/chains/{tenant.chain}/decisions/loan-1", headers=headers(tenant.auditor)
        )
    ).json()
    assert view["explanation"]["outcome"] == "repaid"
    cosigned, latest = view["evidence"]["checkpoints"]
    assert cosigned["cosigned"] and cosigned["size"] == size
    assert cosigned["cosignatures"][0]["witness"] == cosigner.name
    assert line in cosigned["note"]
    assert not latest["cosigned"] and latest["size"] == size + 1
    proofs = {p["index"]: p for p in view["evidence"]["proofs"]}
    assert proofs[size]["tree_size"] == size + 1
    assert {p["tree_size"] for i, p in proofs.items() if i < size} == {size}
    for proof in proofs.values():
        root = cosigned["root_hash"] if proof["tree_size"] == size else latest["root_hash"]
        verify_inclusion(
            leaf_hash=bytes.fromhex(proof["leaf_hash"]),
            index=proof["index"],
            size=proof["tree_size"],
            proof=[bytes.fromhex(h) for h in proof["hashes"]],
            root=bytes.fromhex(root),
        )


async def test_unknown_and_foreign_decisions_are_the_same_404(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, signer: Any
) -> None:
    other = await make_tenant(database_url, signer)  # also has a chain named "credit"
    await append(client, other.producer, other.chain, recorded("theirs"))
    await projected(database_url)
    seen = await client.get(
        f"/v1/chains/{other.chain}/decisions/theirs", headers=headers(other.auditor)
    )
    assert seen.status_code == 200
    foreign = await client.get(
        f"/v1/chains/{tenant.chain}/decisions/theirs", headers=headers(tenant.auditor)
    )
    unknown = await client.get(
        f"/v1/chains/{tenant.chain}/decisions/nobody", headers=headers(tenant.auditor)
    )
    no_chain = await client.get(
        "/v1/chains/nowhere/decisions/theirs", headers=headers(tenant.auditor)
    )
    assert foreign.status_code == unknown.status_code == no_chain.status_code == 404
    assert foreign.json()["title"] == unknown.json()["title"] == no_chain.json()["title"]
    assert "theirs" in foreign.json()["detail"] and "theirs" in no_chain.json()["detail"]
    found = (await search(client, tenant.auditor)).json()["decisions"]
    assert "theirs" not in {d["decision_id"] for d in found}


async def test_roles_producers_cannot_read_auditors_cannot_append(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    assert (await search(client, tenant.producer)).status_code == 403
    response = await client.get(
        f"/v1/chains/{tenant.chain}/decisions/x", headers=headers(tenant.producer)
    )
    assert response.status_code == 403
    assert (await append(client, tenant.auditor, tenant.chain, recorded("x"))).status_code == 403
    assert (await client.get("/v1/decisions")).status_code == 401


async def test_every_search_and_view_is_an_access_record(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    await append(client, tenant.producer, tenant.chain, recorded("loan-1"))
    await projected(database_url)
    await search(client, tenant.auditor, model_version="4.2.0")
    await client.get(f"/v1/chains/{tenant.chain}/decisions/loan-1", headers=headers(tenant.auditor))
    await client.get(f"/v1/chains/{tenant.chain}/decisions/nobody", headers=headers(tenant.auditor))
    entries = await all_entries(client, tenant.auditor, "access-log")
    events = [__import__("orjson").loads(base64.b64decode(e["leaf"]))["event"] for e in entries]
    # The tenant's access chain also holds the administrative records of its making (its keys,
    # created on the command line), appended by a background pass whenever it runs.
    records = [e for e in events if e["type"] == "dev.audit-trail.records.accessed.v1"]
    assert len(records) == 3
    assert [r["data"]["action"] for r in records] == [
        "decisions.search",
        "decision.view",
        "decision.view",
    ]
    key_id = tenant.auditor.split("_")[1]
    assert all(r["data"]["accessor"]["key_id"] == key_id for r in records)
    assert records[0]["data"]["query"] == {"model_version": "4.2.0"}
    assert [r["data"].get("decision_id") for r in records[1:]] == ["loan-1", "nobody"]
    # The access chain is checkpointed like any other, and never projected as decisions.
    await wait_for_checkpoint(client, tenant.auditor, "access-log", size=3)
    # A whole pass of a projector of its own, so that the count below follows one for certain.
    engine = create_engine(database_url, role="audit_trail_writer", pool_size=2)
    try:
        await Projector(engine=engine).catch_up(wait_for_others=True)
    finally:
        await engine.dispose()
    connection = await asyncpg.connect(database_url)
    try:
        projected_positions = await connection.fetchval(
            "SELECT count(*) FROM projection_positions p JOIN chains c ON c.id = p.chain_id "
            "WHERE c.slug = 'access-log'"
        )
    finally:
        await connection.close()
    assert projected_positions == 0  # the projector never even reads it


async def dump(database_url: str, tenant: str) -> dict[str, list[Any]]:
    """The read model of one tenant's chains (other tests share the database, and some tamper
    with their own chains' entries, which a rebuild then rightly reads differently)."""
    connection = await asyncpg.connect(database_url)
    try:
        return {
            table: [
                tuple(row.values())
                for row in await connection.fetch(
                    f"SELECT * FROM {table} t WHERE t.chain_id IN (SELECT c.id FROM chains c "
                    "JOIN tenants n ON n.id = c.tenant_id WHERE n.slug = $1) ORDER BY t::text",
                    tenant,
                )
            ]
            for table in (
                "decisions",
                "decision_events",
                "model_deployments",
                "projection_positions",
            )
        }
    finally:
        await connection.close()


async def test_rebuild_from_the_log_gives_the_same_read_model(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    await seeded(client, tenant, database_url)
    await append(client, tenant.producer, tenant.chain, [deployed(), recorded("late")], batch=True)
    await projected(database_url)
    before = await dump(database_url, tenant.tenant)
    assert before["decisions"] and before["model_deployments"]
    # As the service's role, which may truncate the read model but not the ledger.
    engine = create_engine(database_url, role="audit_trail_writer", pool_size=2)
    try:
        await rebuild(engine)
    finally:
        await engine.dispose()
    # The session's live server runs a projector too, which may take its share of the chains
    # (through the same position locks): how many entries this call replayed says nothing.
    assert await dump(database_url, tenant.tenant) == before


async def test_the_cli_rebuilds_the_read_model(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str, monkeypatch: Any
) -> None:
    import asyncio
    import json

    from audit_trail.cli import app as cli
    from typer.testing import CliRunner

    await seeded(client, tenant, database_url)
    before = await dump(database_url, tenant.tenant)
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = await asyncio.to_thread(CliRunner().invoke, cli, ["projections", "rebuild"])
    assert result.exit_code == 0, result.output
    assert json.loads(result.output)["replayed_entries"] > 0
    await projected(database_url)
    assert await dump(database_url, tenant.tenant) == before


async def test_a_leaf_that_is_no_event_any_more_is_named_in_search_not_a_500(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    """A stored leaf overwritten with bytes that are not an event (by someone with the
    database's own rights): the search page still answers, and names the row's leaf."""
    response = await append(client, tenant.producer, tenant.chain, [decision_at(1)], batch=True)
    assert response.status_code == 201, response.text
    await projected(database_url)
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, tenant.tenant, tenant.chain)
        await db.execute(
            "UPDATE entries SET leaf = '\\x6e6f74206a736f6e'::bytea WHERE chain_id = $1", chain
        )
    page = await search(client, tenant.auditor, chain=tenant.chain)
    assert page.status_code == 200, page.text
    (shown,) = page.json()["decisions"]
    assert "leaf" in shown["read_model_mismatch"]
    view = await client.get(
        f"/v1/chains/{tenant.chain}/decisions/{shown['decision_id']}",
        headers=headers(tenant.auditor),
    )
    assert view.status_code == 409, view.text  # and its view serves nothing as proven
    assert view.json()["check"] == "leaf-hash"
