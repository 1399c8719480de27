"""What the decision page hands to the browser's own check (static/verify.js): the leaf bytes,
the proofs and the signed checkpoints the server served, the values the explanation cites, and
the keys this server would have the auditor trust, offered as trust on first use only.

When the server refuses a decision (an entry fails its checks: 409), the page still shows what
the store holds for the failing entry, through the chain API's own services (``read_entry``,
``inclusion_proof``, ``checkpoint_note``), so the browser can see for itself where it fails.
"""

from __future__ import annotations

import base64
from typing import Any

import orjson

from decision_log.chains import service as chains
from decision_log.decisions.schemas import DecisionView
from decision_log.keys.service import Principal
from decision_log.problems import IntegrityFailure, NotFound, Problem
from decision_log.state import AppState
from decision_log.witnesses import service as witnesses

# The explanation's values the browser compares with the recorded event's (path in its data).
CITED = {
    "decision": ("output", "decision"),
    "score": ("output", "score"),
    "model_name": ("model", "name"),
    "model_version": ("model", "version"),
    "policy_version": ("policy", "version"),
}


async def trusted_on_first_use(state: AppState) -> dict[str, Any]:
    """The log's key and the registered witnesses' keys, as this server knows them."""
    async with state.engine.connect() as connection:
        rows = await witnesses.list_witnesses(connection)
    return {
        "log": state.signer.note_signer.verifier_key,
        "verifiers": [row.verifier_key for row in rows if row.revoked_at is None],
    }


def view_payload(view: DecisionView) -> dict[str, Any]:
    proofs = {proof.index: proof for proof in view.evidence.proofs}
    cited: dict[str, Any] | None = None
    if view.explanation is not None and view.explanation.model:
        explanation = view.explanation
        cited = {
            "index": explanation.index,
            "values": {
                "decision": explanation.decision,
                "score": explanation.score,
                "model_name": explanation.model.get("name"),
                "model_version": explanation.model.get("version"),
                "policy_version": (explanation.policy or {}).get("version"),
            },
            "paths": {name: list(path) for name, path in CITED.items()},
        }
    return {
        "chain": view.chain,
        "origin": view.evidence.origin,
        "entries": [
            {
                "index": event.index,
                "leaf": event.leaf,
                "leaf_hash": proofs[event.index].leaf_hash,
                "event": event.event,
                "tree_size": proofs[event.index].tree_size,
                "proof": proofs[event.index].hashes,
            }
            for event in view.timeline
        ],
        "checkpoints": [
            {"size": checkpoint.size, "note": checkpoint.note}
            for checkpoint in view.evidence.checkpoints
        ],
        "cited": cited,
    }


async def refused_payload(
    state: AppState, principal: Principal, *, chain: str, failure: IntegrityFailure
) -> dict[str, Any] | None:
    """The failing entry as stored, with the stored proof to the latest checkpoint; None when
    the failure names no entry or the store holds none to show."""
    index = failure.extensions.get("index")
    if not isinstance(index, int):
        return None
    async with state.engine.connect() as connection:
        try:
            row = await chains.get_chain(connection, tenant_id=principal.tenant_id, chain=chain)
            entry = await chains.read_entry(connection, row=row, index=index)
            proof = await chains.inclusion_proof(connection, row=row, index=index, tree_size=None)
            note = await chains.checkpoint_note(connection, row=row)
        except (NotFound, Problem):
            return None
    if entry.leaf is None:
        return None
    try:
        event = orjson.loads(base64.b64decode(entry.leaf)).get("event")
    except (orjson.JSONDecodeError, AttributeError):
        event = None
    return {
        "chain": chain,
        "origin": state.signer.chain_origin(tenant=principal.tenant, chain=chain),
        "entries": [
            {
                "index": index,
                "leaf": entry.leaf,
                "leaf_hash": proof.leaf_hash,
                "event": event,
                "tree_size": proof.tree_size,
                "proof": proof.hashes,
                "problems": sorted(set((entry.problems or []) + (proof.problems or []))),
            }
        ],
        "checkpoints": [{"size": proof.tree_size, "note": note}],
        "cited": None,
    }
