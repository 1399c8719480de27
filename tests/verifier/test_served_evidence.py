"""What the log serves after real tampering of a chain the verifier has cosigned: raw routes
serve the stored bytes and say beside them what does not check out (never a 500, never a
silent gap); evidence-bearing routes (a decision's view) serve nothing unchecked as proven.

One row per tamper, performed as a superuser with the append-only triggers off, on a chain of
40 decisions whose first 20 entries the verifier has checked and cosigned.
"""

from __future__ import annotations

import base64
import hashlib
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import asyncpg
import httpx
import orjson
import pytest
from decision_log.signing import LogSigner
from ledger.canonical import canonicalize
from ledger.leaf import Leaf, build_leaf
from ledger.merkle import leaf_hash

from tests.decisions.helpers import projected
from tests.service.helpers import append, decision_event, headers
from tests.verifier import tamper
from tests.verifier.conftest import Followed


@dataclass
class Scene:
    client: httpx.AsyncClient
    followed: Followed
    db: asyncpg.Connection
    chain: int
    signer: LogSigner
    subjects: dict[int, str]

    async def get(self, path: str, **params: Any) -> httpx.Response:
        return await self.client.get(
            f"/v1/chains/{self.followed.keys.chain}{path}",
            params=params,
            headers=headers(self.followed.keys.auditor),
        )

    async def view(self, index: int) -> httpx.Response:
        return await self.get(f"/decisions/{self.subjects[index]}")


async def rewrite_leaves_only(db: asyncpg.Connection, chain: int, start: int, scene: Scene) -> None:
    """Rewrite entries from `start` with recomputed hashes and links, leaving the Merkle tree
    and the checkpoints alone: what an insider without the log key can do."""
    rows = await db.fetch(
        "SELECT idx, leaf FROM entries WHERE chain_id = $1 AND idx >= $2 ORDER BY idx",
        chain,
        start,
    )
    prev = leaf_hash(await tamper.leaf_at(db, chain, start - 1))
    for row in rows:
        old = Leaf.parse(bytes(row["leaf"]))
        event = old.event
        if row["idx"] == start:
            event = {**event, "data": {**event["data"], "output": {"decision": "approved"}}}
        leaf = build_leaf(
            tenant=scene.followed.name.tenant,
            chain=scene.followed.name.chain,
            index=row["idx"],
            received_at=old.received_at,
            prev=prev,
            event_json=canonicalize(event),
        )
        prev = leaf_hash(leaf)
        await db.execute(
            "UPDATE entries SET leaf = $3, leaf_hash = $4, content_digest = $5 "
            "WHERE chain_id = $1 AND idx = $2",
            chain,
            row["idx"],
            leaf,
            prev,
            hashlib.sha256(leaf).digest(),
        )


async def problem(response: httpx.Response, *, check: str, index: int) -> None:
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["type"].endswith("/integrity-failure")
    assert (body["check"], body["index"]) == (check, index), body


async def byte_edit(scene: Scene) -> None:
    await tamper.change_one_byte(scene.db, scene.chain, 5)


async def expect_byte_edit(scene: Scene) -> None:
    entry = (await scene.get("/entries/5")).json()
    assert entry["problems"] == ["leaf-hash"]
    await problem(await scene.view(5), check="leaf-hash", index=5)
    assert (await scene.view(4)).status_code == 200


async def deletion(scene: Scene) -> None:
    await tamper.delete_entry(scene.db, scene.chain, 5)


async def expect_deletion(scene: Scene) -> None:
    await problem(await scene.get("/entries/5"), check="missing", index=5)
    page = (await scene.get("/entries", start=4, limit=3)).json()["entries"]
    assert [(e["index"], e.get("problems")) for e in page] == [
        (4, None),
        (5, ["missing"]),
        (6, None),
    ]
    streamed = (await scene.get("/entries/stream", start=4, end=7)).content.splitlines()
    assert orjson.loads(streamed[1]) == {"integrity_failure": {"index": 5, "check": "missing"}}
    await problem(await scene.view(5), check="missing", index=5)
    await problem(await scene.view(6), check="missing", index=5)
    proof = await scene.get("/proof/inclusion", index=4, tree_size=20)
    await problem(proof, check="missing", index=5)


async def swap(scene: Scene) -> None:
    await tamper.swap_entries(scene.db, scene.chain, 5, 9)


async def expect_swap(scene: Scene) -> None:
    assert "index" in (await scene.get("/entries/5")).json()["problems"]
    await problem(await scene.view(5), check="index", index=5)


async def rewrite_without_key(scene: Scene) -> None:
    await rewrite_leaves_only(scene.db, scene.chain, 10, scene)


async def expect_rewrite_without_key(scene: Scene) -> None:
    # The rewritten entries are consistent among themselves: the raw entries say nothing ...
    assert "problems" not in (await scene.get("/entries/10")).json()
    # ... but the stored tree does not commit to them.
    proof = (await scene.get("/proof/inclusion", index=10, tree_size=20)).json()
    assert proof["problems"] == ["inclusion"]
    await problem(await scene.view(10), check="inclusion", index=10)


async def rewrite_with_key(scene: Scene) -> None:
    await tamper.rewrite_history(
        scene.db,
        scene.chain,
        10,
        scene.signer,
        tenant=scene.followed.name.tenant,
        name=scene.followed.name.chain,
    )


async def expect_rewrite_with_key(scene: Scene) -> None:
    # A key holder's rewrite is consistent everywhere the log alone can look ...
    assert "problems" not in (await scene.get("/entries/10")).json()
    assert "problems" not in (await scene.get("/proof/inclusion", index=10, tree_size=20)).json()
    # ... but the witness's cosignature no longer verifies over the re-signed checkpoint, so
    # nothing is called cosigned, and the view says so.
    view = await scene.view(10)
    assert view.status_code == 200
    evidence = view.json()["evidence"]
    assert [c["cosigned"] for c in evidence["checkpoints"]] == [False]
    assert view.json()["state"]["decision"] == "approved"


async def truncation(scene: Scene) -> None:
    await tamper.truncate_tail(
        scene.db,
        scene.chain,
        15,
        scene.signer,
        tenant=scene.followed.name.tenant,
        name=scene.followed.name.chain,
    )


async def expect_truncation(scene: Scene) -> None:
    assert (await scene.get("/entries/16")).status_code == 404  # beyond the chain's size now
    await problem(await scene.view(16), check="missing", index=16)


async def expect_truncation_then_appends(scene: Scene) -> None:
    keys = scene.followed.keys
    response = await append(
        scene.client, keys.producer, keys.chain, [decision_event() for _ in range(3)], batch=True
    )
    assert response.status_code == 201, response.text
    await problem(await scene.view(16), check="index", index=16)


async def read_model_edit(scene: Scene) -> None:
    await scene.db.execute(
        "UPDATE decisions SET decision = 'approved', current_decision = 'approved' "
        "WHERE chain_id = $1 AND decision_id = $2",
        scene.chain,
        scene.subjects[5],
    )


async def expect_read_model_edit(scene: Scene) -> None:
    state = (await scene.view(5)).json()["state"]
    assert (state["decision"], state["current_decision"]) == ("declined", "declined")
    assert state["read_model_mismatch"] == ["decision", "current_decision"]
    found = (
        await scene.client.get(
            "/v1/decisions",
            params={"chain": scene.followed.keys.chain, "limit": 200},
            headers=headers(scene.followed.keys.auditor),
        )
    ).json()["decisions"]
    row = next(d for d in found if d["decision_id"] == scene.subjects[5])
    assert (row["decision"], row["read_model_mismatch"]) == ("declined", ["decision"])


Step = Callable[[Scene], Awaitable[None]]
TAMPERS: list[tuple[str, Step, Step]] = [
    ("byte edit", byte_edit, expect_byte_edit),
    ("deletion", deletion, expect_deletion),
    ("swap", swap, expect_swap),
    ("rewrite without the key", rewrite_without_key, expect_rewrite_without_key),
    ("rewrite with the key", rewrite_with_key, expect_rewrite_with_key),
    ("truncation", truncation, expect_truncation),
    ("truncation then appends", truncation, expect_truncation_then_appends),
    ("read-model edit", read_model_edit, expect_read_model_edit),
]


@pytest.mark.parametrize(("act", "expect"), [t[1:] for t in TAMPERS], ids=[t[0] for t in TAMPERS])
async def test_served_evidence_after_tampering(
    act: Step,
    expect: Step,
    followed: Followed,
    client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    await projected(database_url)
    keys = followed.keys
    page = (
        await client.get(
            f"/v1/chains/{keys.chain}/entries", params={"limit": 40}, headers=headers(keys.auditor)
        )
    ).json()["entries"]
    subjects = {
        e["index"]: orjson.loads(base64.b64decode(e["leaf"]))["event"]["subject"] for e in page
    }
    async with tamper.superuser(database_url) as db:
        scene = Scene(
            client=client,
            followed=followed,
            db=db,
            chain=await tamper.chain_id(db, followed.name.tenant, followed.name.chain),
            signer=signer,
            subjects=subjects,
        )
        await act(scene)
    await expect(scene)
