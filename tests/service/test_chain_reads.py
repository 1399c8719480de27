"""Reading a chain as a third party: leaves, links, checkpoints, proofs, all recomputed."""

from __future__ import annotations

from typing import Any

import httpx
import orjson
import pytest
from decision_log.events.appender import COPY_FROM_ENTRIES
from ledger.canonical import canonicalize
from ledger.merkle import EMPTY_ROOT, leaf_hash, root_hash, verify_consistency, verify_inclusion
from ledger.note import Checkpoint, NoteVerifier, open_note

from tests.service.conftest import LOG_ORIGIN, TenantKeys
from tests.service.helpers import (
    all_entries,
    append,
    decision_event,
    headers,
    leaf_bytes,
    wait_for_checkpoint,
)


async def published_verifier(client: httpx.AsyncClient) -> NoteVerifier:
    keys = (await client.get("/v1/log/keys")).json()
    assert keys["origin"] == LOG_ORIGIN
    return NoteVerifier.from_verifier_key(keys["keys"][0]["verifier_key"])


async def fill(client: httpx.AsyncClient, tenant: TenantKeys, count: int) -> None:
    events = [decision_event() for _ in range(count)]
    response = await append(client, tenant.producer, tenant.chain, events, batch=True)
    assert response.status_code == 201


async def checked_inclusion(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    hashes: list[bytes],
    *,
    index: int,
    size: int,
    root: bytes,
) -> dict[str, Any]:
    """The log's inclusion proof of entry `index` in the tree of `size`, verified against `root`."""
    proof: dict[str, Any] = (
        await client.get(
            f"/v1/chains/{tenant.chain}/proof/inclusion",
            params={"index": index, "tree_size": size},
            headers=headers(tenant.auditor),
        )
    ).json()
    verify_inclusion(
        leaf_hash=hashes[index],
        index=index,
        size=size,
        proof=[bytes.fromhex(h) for h in proof["hashes"]],
        root=root,
    )
    return proof


async def checked_consistency(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    hashes: list[bytes],
    *,
    old: int,
    new: int,
    new_root: bytes,
) -> dict[str, Any]:
    """The log's consistency proof from size `old` to `new`, verified against the roots."""
    proof: dict[str, Any] = (
        await client.get(
            f"/v1/chains/{tenant.chain}/proof/consistency",
            params={"from": old, "to": new},
            headers=headers(tenant.auditor),
        )
    ).json()
    verify_consistency(
        old_size=old,
        new_size=new,
        proof=[bytes.fromhex(h) for h in proof["hashes"]],
        old_root=root_hash(hashes[:old]),
        new_root=new_root,
    )
    return proof


async def test_new_chain_has_a_signed_size_zero_checkpoint(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    response = await client.get(
        f"/v1/chains/{tenant.chain}/checkpoint", headers=headers(tenant.auditor)
    )
    assert response.status_code == 200
    assert response.headers["content-type"].startswith("text/plain")
    opened = open_note(response.text, [await published_verifier(client)])
    checkpoint = Checkpoint.parse(opened.text)
    assert checkpoint.origin == f"{LOG_ORIGIN}/{tenant.tenant}/{tenant.chain}"
    assert checkpoint.size == 0 and checkpoint.root_hash == EMPTY_ROOT


# A group of COPY_FROM_ENTRIES or more entries is written by COPY, a smaller one by a single
# statement: both make the same chain, and each continues the other's.
@pytest.mark.parametrize("first", [37, COPY_FROM_ENTRIES + 3], ids=["statement", "copy"])
async def test_leaves_recompute_to_hashes_links_and_the_signed_root(
    client: httpx.AsyncClient, tenant: TenantKeys, first: int
) -> None:
    await fill(client, tenant, first)
    await fill(client, tenant, 5)
    size = first + 5
    chain = await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=size)
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    assert [e["index"] for e in entries] == list(range(size))

    prev = "0" * 64
    hashes = []
    for entry in entries:
        raw = leaf_bytes(entry)
        assert leaf_hash(raw).hex() == entry["leaf_hash"]
        leaf = orjson.loads(raw)
        assert set(leaf) == {"v", "tenant", "chain", "index", "received_at", "prev", "event"}
        assert canonicalize(leaf) == raw, "leaf bytes are RFC 8785 canonical"
        assert (leaf["v"], leaf["tenant"], leaf["chain"]) == (1, tenant.tenant, tenant.chain)
        assert leaf["index"] == entry["index"]
        assert leaf["prev"] == prev
        prev = entry["leaf_hash"]
        hashes.append(bytes.fromhex(entry["leaf_hash"]))

    note = (
        await client.get(f"/v1/chains/{tenant.chain}/checkpoint", headers=headers(tenant.auditor))
    ).text
    checkpoint = Checkpoint.parse(open_note(note, [await published_verifier(client)]).text)
    assert checkpoint.size == size
    assert checkpoint.root_hash == root_hash(hashes)
    assert chain["root_hash"] == root_hash(hashes).hex()

    # The stored Merkle nodes, whichever way they were written, give proofs that verify.
    for index in (0, first // 2, first - 1, first, size - 1):
        await checked_inclusion(
            client, tenant, hashes, index=index, size=size, root=checkpoint.root_hash
        )
    await checked_consistency(
        client, tenant, hashes, old=first, new=size, new_root=checkpoint.root_hash
    )


async def test_every_inclusion_and_consistency_proof_verifies(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await fill(client, tenant, 21)
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=21)
    entries = await all_entries(client, tenant.auditor, tenant.chain)
    hashes = [bytes.fromhex(e["leaf_hash"]) for e in entries]
    for size in (1, 2, 7, 8, 13, 21):
        root = root_hash(hashes[:size])
        for index in range(size):
            proof = await checked_inclusion(
                client, tenant, hashes, index=index, size=size, root=root
            )
            assert proof["root_hash"] == root.hex()
        for old in range(1, size + 1):
            proof = await checked_consistency(
                client, tenant, hashes, old=old, new=size, new_root=root
            )
            assert (proof["from"], proof["to"]) == (old, size)


@pytest.mark.parametrize(
    ("path", "params", "parameter"),
    [
        ("inclusion", {"index": 5, "tree_size": 5}, "index"),
        ("inclusion", {"index": 0, "tree_size": 99}, "tree_size"),
        ("inclusion", {"index": -1}, "index"),
        ("inclusion", {"index": "x"}, "index"),
        ("consistency", {"from": 0, "to": 3}, "from"),
        ("consistency", {"from": 4, "to": 3}, "from"),
        ("consistency", {"from": 1, "to": 99}, "to"),
    ],
)
async def test_bad_proof_requests_are_problems(
    client: httpx.AsyncClient,
    tenant: TenantKeys,
    path: str,
    params: dict[str, object],
    parameter: str,
) -> None:
    await fill(client, tenant, 5)
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=5)
    response = await client.get(
        f"/v1/chains/{tenant.chain}/proof/{path}", params=params, headers=headers(tenant.auditor)
    )
    assert response.status_code == 400
    assert response.headers["content-type"] == "application/problem+json"
    assert response.json()["parameter"] == parameter


async def test_unchanged_tree_is_not_signed_again(
    client: httpx.AsyncClient, tenant: TenantKeys, database_url: str
) -> None:
    import asyncio

    import asyncpg

    await fill(client, tenant, 3)
    await wait_for_checkpoint(client, tenant.auditor, tenant.chain, size=3)
    await asyncio.sleep(0.5)  # ten checkpoint intervals with nothing appended
    connection = await asyncpg.connect(database_url)
    try:
        sizes = await connection.fetch(
            "SELECT k.size FROM checkpoints k JOIN chains c ON c.id = k.chain_id "
            "JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = $1 AND c.slug = $2 "
            "ORDER BY k.size",
            tenant.tenant,
            tenant.chain,
        )
    finally:
        await connection.close()
    assert [row["size"] for row in sizes] == [0, 3]


async def test_entry_reads_stop_at_the_committed_size(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    await fill(client, tenant, 2)
    auth = headers(tenant.auditor)
    assert (
        await client.get(f"/v1/chains/{tenant.chain}/entries/1", headers=auth)
    ).status_code == 200
    missing = await client.get(f"/v1/chains/{tenant.chain}/entries/2", headers=auth)
    assert missing.status_code == 404
    assert missing.headers["content-type"] == "application/problem+json"
    page = (
        await client.get(
            f"/v1/chains/{tenant.chain}/entries", params={"start": 1, "limit": 10}, headers=auth
        )
    ).json()
    assert [e["index"] for e in page["entries"]] == [1] and page["next_start"] is None
