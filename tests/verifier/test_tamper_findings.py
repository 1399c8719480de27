"""The verifier's column of issue 13: real tampering in the log's PostgreSQL (as a superuser with
the append-only triggers off) of entries the verifier has already checked and cosigned, caught
by ONE sweep with the finding's kind and first bad index, after which nothing is cosigned and
the attestation says failed. Then: acknowledging a finding never re-certifies what was
tampered with, and `verify?full=true` is a job, one per chain at a time.

The chains here have 40 entries cosigned at two checkpoints (20 and 40) before they are
tampered with, and the incremental check is never run between the tamper and the sweep: the
sweep alone must see it (before it existed, most of these went unnoticed until someone asked
for a full verification, and none was named this way).
"""

from __future__ import annotations

import asyncio
import base64
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any

import httpx
import orjson
import pytest
from decision_log.signing import LogSigner
from ledger.dsse import securesystemslib_keyid, verify_envelope
from ledger.keys import read_private_key
from verifier import repository
from verifier.acknowledgements import report_to_log
from verifier.epochs import acknowledge_finding
from verifier.log_client import ChainName, LogClient
from verifier.problems import LogUnavailable
from verifier.service import ChainVerifier
from verifier.state import AppState

from tests.service.conftest import make_tenant
from tests.service.helpers import headers
from tests.service.test_admin_actions import admin_records
from tests.verifier import tamper
from tests.verifier.conftest import COSIGNED, Cosigned, grow

# -------------------------------------------------------------------------------------------------
# The table: one row per tamper kind
# -------------------------------------------------------------------------------------------------


async def edit_one_byte(chain: Cosigned) -> None:
    """One byte of entry 27's event changed; its stored leaf hash and the tree left alone."""
    async with tamper.superuser(chain.database_url) as db:
        await tamper.change_one_byte(db, await tamper.chain_id(db, *_names(chain)), 27)


async def delete_one(chain: Cosigned) -> None:
    async with tamper.superuser(chain.database_url) as db:
        await tamper.delete_entry(db, await tamper.chain_id(db, *_names(chain)), 30)


async def swap_two(chain: Cosigned) -> None:
    async with tamper.superuser(chain.database_url) as db:
        await tamper.swap_entries(db, await tamper.chain_id(db, *_names(chain)), 25, 33)


async def rewrite_without_the_key(chain: Cosigned) -> None:
    """Entries 31 to 39 rewritten with leaves, links and stored hashes recomputed; the Merkle
    nodes and the checkpoints left as they were (no log key needed)."""
    async with tamper.superuser(chain.database_url) as db:
        chain_id = await tamper.chain_id(db, *_names(chain))
        await tamper.rewrite_entries(db, chain_id, 31, tenant=chain.name.tenant, name=_chain(chain))


async def rewrite_with_the_key(chain: Cosigned) -> None:
    """Entries 12 to 39 rewritten, the tree rebuilt and every checkpoint from 12 on re-signed
    with the log's real key: the log's own data is consistent again."""
    async with tamper.superuser(chain.database_url) as db:
        chain_id = await tamper.chain_id(db, *_names(chain))
        await tamper.rewrite_history(
            db, chain_id, 12, chain.signer, tenant=chain.name.tenant, name=_chain(chain)
        )


async def cut_back(chain: Cosigned) -> None:
    """Entries from 33 on deleted; only the checkpoints past 33 removed, so the newest one the
    log keeps is the one of size 20, below the first missing index."""
    async with tamper.superuser(chain.database_url) as db:
        chain_id = await tamper.chain_id(db, *_names(chain))
        await tamper.truncate_tail(
            db,
            chain_id,
            33,
            chain.signer,
            tenant=chain.name.tenant,
            name=_chain(chain),
            resign=False,
        )


async def cut_back_and_append(chain: Cosigned) -> None:
    """Cut back to 33 (re-signed there), then the log goes on: 3 new events at 33, 34, 35."""
    async with tamper.superuser(chain.database_url) as db:
        chain_id = await tamper.chain_id(db, *_names(chain))
        await tamper.truncate_tail(
            db, chain_id, 33, chain.signer, tenant=chain.name.tenant, name=_chain(chain)
        )
    await grow(chain.client, chain.keys, 3)


@dataclass(frozen=True)
class Row:
    tamper: Callable[[Cosigned], Awaitable[None]]
    kind: str
    first_bad_index: int
    # Whether the log still proves the first entry against the root the verifier cosigned
    # (not once its tree is rebuilt or cut back).
    cosigned_tree_kept: bool = True


TAMPERS = {
    "byte edit": Row(edit_one_byte, "leaf-mismatch", 27),
    "deletion": Row(delete_one, "missing-entry", 30),
    "swap": Row(swap_two, "misplaced-leaf", 25),
    "rewrite without the key": Row(rewrite_without_the_key, "rewritten-history", 31),
    "rewrite with the key, checkpoint re-signed": Row(
        rewrite_with_the_key, "rewritten-history", 12, cosigned_tree_kept=False
    ),
    "truncation": Row(cut_back, "rollback", 33, cosigned_tree_kept=False),
    "truncation, then new appends": Row(
        cut_back_and_append, "forked-history", 33, cosigned_tree_kept=False
    ),
}


@pytest.mark.parametrize("row", TAMPERS.values(), ids=TAMPERS.keys())
async def test_one_sweep_names_the_tamper_and_cosigning_stops(
    row: Row,
    cosigned: Cosigned,
    verifier: ChainVerifier,
    verifier_state: AppState,
    verifier_client: httpx.AsyncClient,
) -> None:
    await row.tamper(cosigned)

    # One sweep, nothing else: the finding, its kind and its first bad index come from it.
    swept = await verifier_state.sweeper.sweep_chain(cosigned.name)
    assert swept.result == "failed"
    assert (swept.kind, swept.first_bad_index) == (row.kind, row.first_bad_index)
    state = await verifier.state(cosigned.name)
    assert state.halted_by == swept.finding_id
    async with verifier_state.engine.connect() as connection:
        (finding,) = await repository.findings(connection, chain_id=state.id)
    assert (finding.kind, finding.first_bad_index) == (row.kind, row.first_bad_index)
    assert finding.evidence["sweep"]["pass"] == swept.number
    assert "cosigned_checkpoint" in finding.evidence

    # Cosigning has stopped: the log's next checkpoint is not cosigned.
    await grow(cosigned.client, cosigned.keys, 2)
    again = await verifier.verify(cosigned.name)
    assert again.halted_by == finding.id and again.verified_size == COSIGNED
    note = (
        await cosigned.client.get(
            f"/v1/chains/{cosigned.keys.chain}/checkpoint", headers=headers(cosigned.keys.auditor)
        )
    ).text
    assert verifier_state.signer.name not in note

    # The attestation says failed, signed, naming the finding; so do the status and the route.
    auditor = headers(cosigned.keys.auditor)
    answer = await verifier_client.post(f"/v1/chains/{cosigned.keys.chain}/verify", headers=auditor)
    assert answer.status_code == 200, answer.text
    body = answer.json()
    assert body["attestation"]["result"] == "failed"
    predicate = statement_of(verifier_state, body["attestation"]["envelope"])["predicate"]
    assert predicate["result"] == "failed"
    assert predicate["finding"]["kind"] == row.kind
    assert predicate["finding"]["first_bad_index"] == row.first_bad_index
    assert body["status"]["halted"] is True
    # Coverage of an entry before the tamper still says what was cosigned, and that the chain
    # is halted, by which finding, from which index.
    # Where the log no longer proves that entry against the cosigned root (its tree was
    # rebuilt or cut back), coverage is a 409 naming the check, never a 503 to retry.
    coverage = await verifier_client.get(
        f"/v1/chains/{cosigned.keys.chain}/entries/0/coverage", headers=auditor
    )
    if not row.cosigned_tree_kept:
        assert coverage.status_code == 409, coverage.text
        assert coverage.json()["check"] == "inclusion"
    else:
        assert coverage.status_code == 200, coverage.text
        assert coverage.json()["covered"] is True
        assert coverage.json()["halted_by"] == {
            "id": finding.id,
            "kind": row.kind,
            "first_bad_index": row.first_bad_index,
        }
    (shown,) = body["status"]["findings"]
    assert (shown["kind"], shown["first_bad_index"]) == (row.kind, row.first_bad_index)
    assert body["status"]["sweep"]["running"] is False
    full = await verifier_client.post(
        f"/v1/chains/{cosigned.keys.chain}/verify", params={"full": "true"}, headers=auditor
    )
    assert full.status_code == 409, full.text
    route = await verifier_client.get(
        f"/v1/chains/{cosigned.keys.chain}/sweeps/{swept.number}", headers=auditor
    )
    assert route.json()["state"] == "failed"
    assert route.json()["finding"] == {
        "id": finding.id,
        "kind": row.kind,
        "first_bad_index": row.first_bad_index,
    }


async def test_a_cut_is_named_at_its_first_missing_index_by_the_incremental_check_too(
    cosigned: Cosigned, verifier: ChainVerifier, verifier_state: AppState
) -> None:
    """The newest checkpoint the log keeps is at 20; the first missing entry is 33."""
    await cut_back(cosigned)
    state = await verifier.verify(cosigned.name)
    async with verifier_state.engine.connect() as connection:
        (finding,) = await repository.findings(connection, chain_id=state.id)
    assert (finding.kind, finding.first_bad_index) == ("rollback", 33)


async def test_a_fork_is_named_at_the_cut_by_the_incremental_check_too(
    cosigned: Cosigned, verifier: ChainVerifier, verifier_state: AppState
) -> None:
    await cut_back_and_append(cosigned)
    state = await verifier.verify(cosigned.name)
    async with verifier_state.engine.connect() as connection:
        (finding,) = await repository.findings(connection, chain_id=state.id)
    assert (finding.kind, finding.first_bad_index) == ("forked-history", 33)


async def test_an_untouched_chain_passes_its_sweep(
    cosigned: Cosigned, verifier_state: AppState
) -> None:
    swept = await verifier_state.sweeper.sweep_chain(cosigned.name)
    assert (swept.result, swept.cursor, swept.finding_id) == ("passed", COSIGNED, None)


# -------------------------------------------------------------------------------------------------
# Acknowledgement: a new epoch that never re-certifies the tampered history
# -------------------------------------------------------------------------------------------------


async def test_an_acknowledgement_is_recorded_in_the_tenants_access_log(
    cosigned: Cosigned, verifier_state: AppState, witness_api_key: str
) -> None:
    """The verifier reports it as the witness; auditors find it among the admin actions, with
    who acknowledged what, where and why. A tenant's own key cannot report one."""
    await cut_back_and_append(cosigned)
    swept = await verifier_state.sweeper.sweep_chain(cosigned.name)
    reason = "restored from backup after a disk loss; 7 entries re-sent"
    await acknowledge_finding(
        verifier_state.engine,
        finding_id=swept.finding_id,
        operator="ops@example.test",
        reason=reason,
        now=datetime.now(UTC),
    )

    def log_client(key: str) -> LogClient:
        http = httpx.AsyncClient(
            transport=cosigned.client._transport, base_url=str(cosigned.client.base_url)
        )
        return LogClient(http=http, api_key=key)

    as_tenant = log_client(cosigned.keys.admin)
    with pytest.raises(LogUnavailable, match="403"):
        await report_to_log(verifier_state.engine, finding_id=swept.finding_id, log=as_tenant)
    await as_tenant.aclose()
    as_witness = log_client(witness_api_key)
    await report_to_log(verifier_state.engine, finding_id=swept.finding_id, log=as_witness)
    await as_witness.aclose()
    (record,) = [
        event["data"]
        for event in await admin_records(cosigned.client, cosigned.keys)
        if event["data"]["action"] == "finding.acknowledge"
    ]
    assert record["actor"]["via"] == "verifier"
    assert record["actor"]["operator"] == "ops@example.test"
    assert record["reason"] == reason
    assert record["target"]["chain"] == cosigned.keys.chain
    assert record["target"]["finding_id"] == swept.finding_id
    assert (record["target"]["kind"], record["target"]["first_bad_index"]) == (
        "forked-history",
        33,
    )
    assert record["target"]["epoch"] == 1


async def test_acknowledging_a_fork_continues_from_the_last_good_checkpoint(
    cosigned: Cosigned,
    verifier: ChainVerifier,
    verifier_state: AppState,
    verifier_client: httpx.AsyncClient,
) -> None:
    await cut_back_and_append(cosigned)
    swept = await verifier_state.sweeper.sweep_chain(cosigned.name)
    assert (swept.kind, swept.first_bad_index) == ("forked-history", 33)
    acknowledged_at = datetime.now(UTC)
    started = await acknowledge_finding(
        verifier_state.engine,
        finding_id=swept.finding_id,
        operator="ops@example.test",
        reason="the log was restored from a backup and continued; accepted",
        now=acknowledged_at,
    )
    # The last checkpoint cosigned before index 33 is the one of size 20: the new epoch starts
    # there, keeping what was remembered below it; nothing from 33 on is carried over.
    assert (started.epoch, started.start_size, started.history_replaced) == (1, 20, False)
    state = await verifier.state(cosigned.name)
    assert (state.epoch, state.verified_size, state.halted_by) == (1, 20, None)

    # Operation continues: the log's history from 20 on is replayed and cosigned as new.
    await grow(cosigned.client, cosigned.keys, 4)
    state = await verifier.verify(cosigned.name)
    assert (state.verified_size, state.halted_by) == (40, None)
    note = (
        await cosigned.client.get(
            f"/v1/chains/{cosigned.keys.chain}/checkpoint", headers=headers(cosigned.keys.auditor)
        )
    ).text
    assert verifier_state.signer.name in note
    # The sweep of the new epoch compares [0, 20) with epoch 0's memory, the rest with its own.
    assert (await verifier_state.sweeper.sweep_chain(cosigned.name)).result == "passed"

    # A later attestation spanning index 33 names the acknowledged finding: what, where, who,
    # when and why, and the epoch it started.
    auditor = headers(cosigned.keys.auditor)
    body = (
        await verifier_client.post(f"/v1/chains/{cosigned.keys.chain}/verify", headers=auditor)
    ).json()
    assert body["attestation"]["result"] == "passed"
    predicate = statement_of(verifier_state, body["attestation"]["envelope"])["predicate"]
    assert predicate["epoch"]["number"] == 1
    assert predicate["epoch"]["start_size"] == 20
    assert predicate["epoch"]["history_replaced"] is False
    assert predicate["epoch"]["after_finding"] == swept.finding_id
    (named,) = predicate["acknowledged_findings"]
    assert named["id"] == swept.finding_id
    assert (named["kind"], named["first_bad_index"]) == ("forked-history", 33)
    assert named["acknowledged_by"] == "ops@example.test"
    assert named["reason"].startswith("the log was restored")
    assert named["acknowledged_at"] == acknowledged_at.isoformat().replace("+00:00", "Z")
    assert named["next_epoch"] == {"number": 1, "start_size": 20, "history_replaced": False}
    assert predicate["checked"]["last_full_sweep"]["size"] == 40
    # The status and the finding say the same.
    status = body["status"]
    assert status["epoch_start"]["start_size"] == 20
    assert status["epoch_start"]["after_finding"] == swept.finding_id
    (shown,) = status["findings"]
    assert shown["acknowledged"]["operator"] == "ops@example.test"
    assert shown["next_epoch"]["start_size"] == 20


async def test_acknowledging_a_rewrite_under_the_first_checkpoint_records_history_replaced(
    cosigned: Cosigned, verifier: ChainVerifier, verifier_state: AppState
) -> None:
    async with tamper.superuser(cosigned.database_url) as db:
        chain_id = await tamper.chain_id(db, *_names(cosigned))
        await tamper.rewrite_history(
            db, chain_id, 5, cosigned.signer, tenant=cosigned.name.tenant, name=_chain(cosigned)
        )
    swept = await verifier_state.sweeper.sweep_chain(cosigned.name)
    assert (swept.kind, swept.first_bad_index) == ("rewritten-history", 5)
    started = await acknowledge_finding(
        verifier_state.engine,
        finding_id=swept.finding_id,
        operator="ops@example.test",
        reason="accepted",
        now=datetime.now(UTC),
    )
    # Nothing was cosigned below index 5 (the first checkpoint cosigned is of size 20).
    assert (started.start_size, started.history_replaced) == (0, True)
    state = await verifier.verify(cosigned.name)
    assert (state.epoch, state.verified_size, state.halted_by) == (1, COSIGNED, None)
    attested = await verifier.attest(cosigned.name, only_if_grown=False)
    predicate = statement_of(verifier_state, attested.envelope)["predicate"]
    assert predicate["result"] == "passed"
    assert predicate["epoch"]["history_replaced"] is True
    assert [f["first_bad_index"] for f in predicate["acknowledged_findings"]] == [5]


async def test_a_later_acknowledgement_keeps_what_an_earlier_epoch_cosigned_below_it(
    client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    verifier: ChainVerifier,
    verifier_state: AppState,
    verifier_client: httpx.AsyncClient,
) -> None:
    """Epoch 0 cosigned 10, 20 and 40; a fork at 33 starts epoch 1 from 20. Entry 15, under
    epoch 1's start, is then edited: epoch 2 starts from 10, cosigned in epoch 0."""
    keys = await make_tenant(database_url, signer)
    chain = Cosigned(
        keys=keys,
        name=ChainName(keys.tenant, keys.chain),
        database_url=database_url,
        signer=signer,
        client=client,
    )
    for count in (10, 10, 20):
        await grow(client, keys, count)
        assert (await verifier.verify(chain.name)).halted_by is None
    await cut_back_and_append(chain)
    forked = await verifier_state.sweeper.sweep_chain(chain.name)
    assert (forked.kind, forked.first_bad_index) == ("forked-history", 33)
    first = await acknowledge_finding(
        verifier_state.engine,
        finding_id=forked.finding_id,
        operator="ops@example.test",
        reason="accepted",
        now=datetime.now(UTC),
    )
    assert (first.epoch, first.start_size) == (1, 20)
    assert (await verifier.verify(chain.name)).verified_size == 36

    async with tamper.superuser(database_url) as db:
        await tamper.change_one_byte(db, await tamper.chain_id(db, *_names(chain)), 15)
    edited = await verifier_state.sweeper.sweep_chain(chain.name)
    assert (edited.kind, edited.first_bad_index) == ("leaf-mismatch", 15)
    second = await acknowledge_finding(
        verifier_state.engine,
        finding_id=edited.finding_id,
        operator="ops@example.test",
        reason="accepted",
        now=datetime.now(UTC),
    )
    assert (second.epoch, second.start_size, second.history_replaced) == (2, 10, False)
    status = (
        await verifier_client.get(f"/v1/chains/{keys.chain}", headers=headers(keys.auditor))
    ).json()
    assert (status["epoch"], status["verified_size"]) == (2, 10)
    assert status["cosigned_checkpoint"]["size"] == 10
    assert [(f["kind"], f["next_epoch"]["start_size"]) for f in status["findings"]] == [
        ("forked-history", 20),
        ("leaf-mismatch", 10),
    ]


# -------------------------------------------------------------------------------------------------
# verify?full=true: a job, one per chain at a time
# -------------------------------------------------------------------------------------------------


async def test_a_full_verification_is_a_job_one_per_chain(
    cosigned: Cosigned,
    verifier: ChainVerifier,
    verifier_state: AppState,
    verifier_client: httpx.AsyncClient,
) -> None:
    auditor = headers(cosigned.keys.auditor)
    path = f"/v1/chains/{cosigned.keys.chain}/verify"
    # While the chain's lock is held the job cannot move, so both requests meet it running.
    async with verifier.lock(cosigned.name):
        first, second = await asyncio.gather(
            verifier_client.post(path, params={"full": "true"}, headers=auditor),
            verifier_client.post(path, params={"full": "true"}, headers=auditor),
        )
    assert (first.status_code, second.status_code) == (202, 202), (first.text, second.text)
    assert first.json()["state"] == "running" and first.json()["requested"] == "on-demand"
    assert first.json()["number"] == second.json()["number"]
    location = first.headers["location"]
    assert location == second.headers["location"]
    assert location == f"/v1/chains/{cosigned.keys.chain}/sweeps/{first.json()['number']}"

    deadline = asyncio.get_running_loop().time() + 20
    while (polled := (await verifier_client.get(location, headers=auditor)).json())[
        "state"
    ] == "running":
        assert asyncio.get_running_loop().time() < deadline, polled
        await asyncio.sleep(0.05)
    assert (polled["state"], polled["cursor"], polled["end"]) == ("passed", COSIGNED, COSIGNED)
    # The job attests when it ends, saying when the chain was last re-read in full.
    latest = (
        await verifier_client.get(
            f"/v1/chains/{cosigned.keys.chain}/attestations/latest", headers=auditor
        )
    ).json()
    predicate = statement_of(verifier_state, latest["envelope"])["predicate"]
    assert predicate["checked"]["last_full_sweep"]["size"] == COSIGNED
    # A pass that ended leaves room for the next one.
    third = await verifier_client.post(path, params={"full": "true"}, headers=auditor)
    assert third.status_code == 202
    assert third.json()["number"] == first.json()["number"] + 1
    assert (await verifier_client.get(f"{location}0", headers=auditor)).status_code == 404


# -------------------------------------------------------------------------------------------------
# Coverage: a proof that does not verify is an integrity failure, not an outage
# -------------------------------------------------------------------------------------------------


async def test_coverage_with_a_proof_that_does_not_verify_is_an_integrity_failure(
    cosigned: Cosigned, verifier_client: httpx.AsyncClient
) -> None:
    async with tamper.superuser(cosigned.database_url) as db:
        chain_id = await tamper.chain_id(db, *_names(cosigned))
        await db.execute(
            "UPDATE merkle_nodes SET hash = $2 WHERE chain_id = $1 AND level = 2 AND idx = 0",
            chain_id,
            bytes(32),
        )
    response = await verifier_client.get(
        f"/v1/chains/{cosigned.keys.chain}/entries/4/coverage",
        headers=headers(cosigned.keys.auditor),
    )
    assert response.status_code == 409, response.text
    body = response.json()
    assert body["type"].endswith("/integrity-failure")
    assert (body["check"], body["index"]) == ("inclusion", 4)
    cosigned_root = (
        await verifier_client.get(
            f"/v1/chains/{cosigned.keys.chain}", headers=headers(cosigned.keys.auditor)
        )
    ).json()["cosigned_checkpoint"]["root_hash"]
    assert body["expected"] == cosigned_root and body["found"] != cosigned_root


def statement_of(verifier_state: AppState, envelope: dict[str, Any]) -> dict[str, Any]:
    """The in-toto statement of an envelope, once its signature verifies under the verifier's
    key."""
    key = read_private_key(verifier_state.settings.key_file).public_key
    _, payload = verify_envelope(envelope, {securesystemslib_keyid(key): key})
    statement: dict[str, Any] = orjson.loads(payload)
    assert base64.b64decode(envelope["payload"]) == payload
    return statement


def _names(chain: Cosigned) -> tuple[str, str]:
    return chain.name.tenant, chain.name.chain


def _chain(chain: Cosigned) -> str:
    return chain.name.chain
