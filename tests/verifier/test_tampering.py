"""Real tampering in the log's PostgreSQL, as a superuser with the triggers off: every kind is
caught, with a finding that names the chain and the first bad index, and nothing is cosigned
after it."""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
from decision_log.signing import LogSigner
from ledger.dsse import securesystemslib_keyid, verify_envelope
from ledger.keys import read_private_key
from verifier import repository
from verifier.epochs import acknowledge_finding
from verifier.service import ChainVerifier
from verifier.state import AppState

from tests.verifier import tamper
from tests.verifier.conftest import Followed, grow


async def only_finding(verifier_state: AppState, followed: Followed) -> Any:
    state = await verifier_state.verifier.verify(followed.name)
    assert state.halted_by is not None, "the tampering went unnoticed"
    async with verifier_state.engine.connect() as connection:
        findings = await repository.findings(connection, chain_id=state.id)
    assert len(findings) == 1
    finding = findings[0]
    # The negative attestation is signed by the verifier's key and names the chain and index.
    key = read_private_key(verifier_state.settings.key_file).public_key
    _, payload = verify_envelope(finding.attestation, {securesystemslib_keyid(key): key})
    statement = orjson.loads(payload)
    assert statement["predicate"]["result"] == "failed"
    assert statement["predicate"]["finding"]["tenant"] == followed.name.tenant
    assert statement["predicate"]["finding"]["chain"] == followed.name.chain
    assert statement["predicate"]["finding"]["first_bad_index"] == finding.first_bad_index
    return finding


async def assert_nothing_cosigned_after(
    verifier_state: AppState, followed: Followed, client: httpx.AsyncClient
) -> None:
    again = await verifier_state.verifier.verify(followed.name)
    assert again.halted_by is not None
    assert again.verified_size == 20
    note = (
        await client.get(
            f"/v1/chains/{followed.keys.chain}/checkpoint",
            headers={"Authorization": f"Bearer {followed.keys.auditor}"},
        )
    ).text
    assert verifier_state.signer.name not in note


async def test_one_changed_byte_in_an_event_is_caught_at_its_index(
    followed: Followed, verifier_state: AppState, database_url: str, client: httpx.AsyncClient
) -> None:
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.change_one_byte(db, chain, 27)
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("leaf-mismatch", 27)
    # The log's own (untouched) Merkle data proves which leaf hash was committed there.
    assert finding.evidence["expected"] != finding.evidence["found"]
    assert finding.evidence["symptom"] == {"kind": "broken-link", "index": 28}
    await assert_nothing_cosigned_after(verifier_state, followed, client)


async def test_a_changed_last_entry_is_caught_by_the_root(
    followed: Followed, verifier_state: AppState, database_url: str
) -> None:
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.change_one_byte(db, chain, followed.size - 1)
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("leaf-mismatch", followed.size - 1)


async def test_a_deleted_entry_is_caught(
    followed: Followed, verifier_state: AppState, database_url: str, client: httpx.AsyncClient
) -> None:
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.delete_entry(db, chain, 30)
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("missing-entry", 30)
    await assert_nothing_cosigned_after(verifier_state, followed, client)


async def test_swapped_entries_are_caught(
    followed: Followed, verifier_state: AppState, database_url: str
) -> None:
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.swap_entries(db, chain, 25, 33)
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("misplaced-leaf", 25)
    assert (finding.evidence["expected"], finding.evidence["found"]) == ("25", "33")


async def test_a_forged_entry_is_caught(
    followed: Followed, verifier_state: AppState, database_url: str
) -> None:
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.insert_forged(
            db, chain, 30, tenant=followed.name.tenant, name=followed.name.chain
        )
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("leaf-mismatch", 30)


async def test_a_rolled_back_tail_is_caught(
    followed: Followed,
    verifier: ChainVerifier,
    verifier_state: AppState,
    database_url: str,
    signer: LogSigner,
) -> None:
    assert (await verifier.verify(followed.name)).verified_size == 40
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.truncate_tail(
            db, chain, 33, signer, tenant=followed.name.tenant, name=followed.name.chain
        )
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("rollback", 33)
    assert "cosigned_checkpoint" in finding.evidence
    assert "served_checkpoint" in finding.evidence


async def test_a_rewrite_with_every_hash_recomputed_and_resigned_is_caught(
    followed: Followed,
    verifier: ChainVerifier,
    verifier_state: AppState,
    database_url: str,
    signer: LogSigner,
    client: httpx.AsyncClient,
) -> None:
    """The strongest insider: new leaves, links, Merkle nodes and checkpoints, all signed with
    the log's real key. Only what the verifier cosigned and remembers can tell."""
    assert (await verifier.verify(followed.name)).verified_size == 40
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.rewrite_history(
            db, chain, 12, signer, tenant=followed.name.tenant, name=followed.name.chain
        )
    # The log keeps appending on top of the rewritten history, with valid checkpoints.
    await grow(client, followed.keys, 5)
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("rewritten-history", 12)
    assert "cosigned_checkpoint" in finding.evidence
    assert "served_checkpoint" in finding.evidence


async def test_a_rewrite_at_the_same_size_is_caught(
    followed: Followed,
    verifier: ChainVerifier,
    verifier_state: AppState,
    database_url: str,
    signer: LogSigner,
) -> None:
    assert (await verifier.verify(followed.name)).verified_size == 40
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.rewrite_history(
            db, chain, 38, signer, tenant=followed.name.tenant, name=followed.name.chain
        )
    finding = await only_finding(verifier_state, followed)
    assert (finding.kind, finding.first_bad_index) == ("rewritten-history", 38)


async def test_a_replaced_checkpoint_signature_is_caught(
    followed: Followed, verifier_state: AppState, database_url: str
) -> None:
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        size = await tamper.replace_checkpoint_signature(db, chain)
    assert size == followed.size
    finding = await only_finding(verifier_state, followed)
    # No entry is at fault: the index is the first one the forged checkpoint would cover.
    assert (finding.kind, finding.first_bad_index) == ("bad-checkpoint-signature", 20)


async def test_an_acknowledged_finding_does_not_clear_what_is_still_wrong(
    followed: Followed, verifier: ChainVerifier, verifier_state: AppState, database_url: str
) -> None:
    async with tamper.superuser(database_url) as db:
        chain = await tamper.chain_id(db, followed.name.tenant, followed.name.chain)
        await tamper.delete_entry(db, chain, 39)
    finding = await only_finding(verifier_state, followed)
    await acknowledge_finding(
        verifier_state.engine,
        finding_id=finding.id,
        operator="ops@example.test",
        reason="restored from backup",
        now=datetime.now(UTC),
    )
    # The new epoch continues from the checkpoint cosigned before index 39 (size 20).
    state = await verifier.state(followed.name)
    assert (state.epoch, state.verified_size, state.halted_by) == (1, 20, None)
    # The entry is still missing, so the replay from there finds it again, in the new epoch.
    again = await verifier.verify(followed.name)
    assert again.halted_by is not None and again.halted_by != finding.id
