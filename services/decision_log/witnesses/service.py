"""Witnesses: registration (operator), and the cosignatures they post (checked before stored).

A cosignature (C2SP tlog-cosignature, cosignature/v1) is accepted only from a registered,
unrevoked witness, only for a checkpoint this log signed, and only if it verifies under the
witness's registered key. The log then serves it as an extra signature line of that checkpoint.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from ledger.errors import NoteError
from ledger.note import ALG_COSIGNATURE_V1, NoteSignature, NoteVerifier, verify_cosignature
from sqlalchemy.ext.asyncio import AsyncConnection

from decision_log import admin_actions
from decision_log.keys.service import Witness, new_api_key, secret_hash
from decision_log.problems import Conflict, InvalidInput, NotFound
from decision_log.witnesses import repository


async def register_witness(
    connection: AsyncConnection, *, verifier_key: str, label: str = ""
) -> tuple[str, str]:
    """Register a witness by its cosignature verifier key; returns (name, API key shown once)."""
    try:
        verifier = NoteVerifier.from_verifier_key(verifier_key)
    except NoteError as error:
        raise InvalidInput(
            f"not a signed-note verifier key: {error}", pointer="/verifier_key"
        ) from None
    if verifier.alg != ALG_COSIGNATURE_V1:
        raise InvalidInput(
            "a witness key must be a cosignature/v1 (type 0x04) verifier key",
            pointer="/verifier_key",
        )
    witness_id = await repository.insert_witness(
        connection, name=verifier.name, verifier_key=verifier_key
    )
    if witness_id < 0:
        raise Conflict(f"witness {verifier.name!r} is already registered")
    await admin_actions.note(
        connection,
        tenant_id=None,
        actor=admin_actions.command_line_actor(),
        action="witness.register",
        target={"witness": verifier.name},
        changes={"verifier_key": verifier_key, "label": label},
        at=datetime.now(UTC),
    )
    return verifier.name, await add_witness_key(connection, witness_id=witness_id, label=label)


async def add_witness_key(connection: AsyncConnection, *, witness_id: int, label: str) -> str:
    key_id, api_key = new_api_key()
    await repository.insert_witness_key(
        connection,
        key_id=key_id,
        witness_id=witness_id,
        secret_hash=secret_hash(api_key),
        label=label,
    )
    return api_key


async def list_witnesses(connection: AsyncConnection) -> list[Any]:
    return await repository.list_witnesses(connection)


async def revoke_witness(connection: AsyncConnection, *, name: str) -> None:
    if await repository.witness_by_name(connection, name=name) is None:
        raise NotFound(f"no witness {name!r}")
    await repository.revoke_witness(connection, name=name)
    await admin_actions.note(
        connection,
        tenant_id=None,
        actor=admin_actions.command_line_actor(),
        action="witness.revoke",
        target={"witness": name},
        at=datetime.now(UTC),
    )


async def add_cosignature(
    connection: AsyncConnection, *, witness: Witness, chain_id: int, size: int, signature_line: str
) -> bool:
    """Check and store a cosignature of the chain's checkpoint of ``size``; False if known."""
    checkpoint = await repository.checkpoint_at(connection, chain_id=chain_id, size=size)
    if checkpoint is None:
        raise NotFound(f"the log signed no checkpoint of size {size} for this chain")
    note: str = checkpoint.note
    body = note[: note.rfind("\n\n") + 1]
    try:
        signature = NoteSignature.from_line(signature_line)
        verifier = NoteVerifier.from_verifier_key(witness.verifier_key)
        cosigned_at = verify_cosignature(body, signature, verifier)
    except NoteError as error:
        raise InvalidInput(f"cosignature refused: {error}", pointer="/signature") from None
    return await repository.insert_cosignature(
        connection,
        chain_id=chain_id,
        size=size,
        witness_id=witness.witness_id,
        cosigned_at=cosigned_at,
        signature_line=signature.to_line().rstrip("\n"),
    )
