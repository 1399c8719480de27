"""The negative: a long honest run, with producers appending concurrently while the verifier
follows, gives no finding; every pass cosigns the newest checkpoint, and the log serves it."""

from __future__ import annotations

import asyncio
import random

import httpx
from decision_log.signing import LogSigner
from ledger.note import CosignatureSigner, NoteVerifier, open_note
from verifier import repository
from verifier.log_client import ChainName
from verifier.remembered import lineage, remembered_window
from verifier.service import ChainVerifier
from verifier.state import AppState

from tests.service.conftest import make_tenant
from tests.service.helpers import append, decision_event, headers, wait_for_checkpoint


async def test_concurrent_appends_while_verifying_give_no_finding(
    client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    verifier: ChainVerifier,
    verifier_state: AppState,
    cosigner: CosignatureSigner,
) -> None:
    keys = await make_tenant(database_url, signer)
    name = ChainName(keys.tenant, keys.chain)
    rng = random.Random(7)
    appended = 0
    producing = True

    async def producer() -> None:
        nonlocal appended
        for _ in range(25):
            events = [decision_event() for _ in range(rng.randint(1, 12))]
            single = len(events) == 1
            response = await append(
                client, keys.producer, keys.chain, events[0] if single else events, batch=not single
            )
            assert response.status_code == 201, response.text
            appended += len(events)
            await asyncio.sleep(rng.random() / 100)

    sizes: list[int] = []

    async def follower() -> None:
        while producing:
            state = await verifier.verify(name)
            assert state.halted_by is None
            sizes.append(int(state.verified_size))
            await asyncio.sleep(0.02)

    following = asyncio.create_task(follower())
    await asyncio.gather(*(producer() for _ in range(4)))
    producing = False
    await following
    await wait_for_checkpoint(client, keys.auditor, keys.chain, size=appended)
    state = await verifier.verify(name)

    assert state.halted_by is None
    assert state.verified_size == appended
    assert sizes == sorted(sizes) and len(set(sizes)) > 2, sizes  # it followed incrementally
    assert state.entries_replayed == appended  # every entry replayed exactly once
    async with verifier_state.engine.connect() as connection:
        assert await repository.findings(connection, chain_id=state.id) == []
        remembered = await remembered_window(
            connection,
            chain_id=state.id,
            lineage=await lineage(connection, chain_id=state.id, epoch=0),
            start=0,
            stop=appended,
        )
    assert len(remembered) == 32 * appended

    # The log serves the newest checkpoint with this verifier's cosignature, and both verify.
    note = (
        await client.get(f"/v1/chains/{keys.chain}/checkpoint", headers=headers(keys.auditor))
    ).text
    log_key = NoteVerifier.from_verifier_key(signer.note_signer.verifier_key)
    opened = open_note(note, [log_key, cosigner.verifier])
    assert {s.name for s in opened.verified} == {signer.origin, cosigner.name}
    assert opened.text.splitlines()[1] == str(appended)


async def test_the_worker_follows_every_chain_and_attests(
    client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    verifier: ChainVerifier,
    verifier_state: AppState,
) -> None:
    keys = await make_tenant(database_url, signer)
    await append(
        client, keys.producer, keys.chain, [decision_event() for _ in range(7)], batch=True
    )
    await wait_for_checkpoint(client, keys.auditor, keys.chain, size=7)
    await verifier_state.worker.run_once(attest=True)
    name = ChainName(keys.tenant, keys.chain)
    state = await verifier.state(name)
    assert state.verified_size == 7
    async with verifier_state.engine.connect() as connection:
        latest = await repository.last_attestation(connection, chain_id=state.id)
    assert latest is not None and latest.size == 7 and latest.result == "passed"
    # Nothing grew: the schedule issues no new attestation.
    await verifier_state.worker.run_once(attest=True)
    async with verifier_state.engine.connect() as connection:
        assert (await repository.last_attestation(connection, chain_id=state.id)).id == latest.id
