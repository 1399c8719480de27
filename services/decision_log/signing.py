"""The one place that signs for the log: checkpoints (signed notes) and receipts (DSSE)."""

from __future__ import annotations

import asyncio
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from typing import Any

from ledger.dsse import securesystemslib_keyid, sign_envelope
from ledger.keys import SigningKey
from ledger.note import Checkpoint, NoteSigner, sign_note

RECEIPTS_PAYLOAD_TYPE = "application/vnd.audit-trail.receipts+json"


@dataclass(frozen=True)
class LogSigner:
    """The log's Ed25519 key in its two roles.

    Checkpoints of every chain are signed under one key name, the log origin, so that one
    verifier key checks them all and publishing it names no chain (a deliberate deviation from
    C2SP's SHOULD that the key name equal the checkpoint origin; see README).
    """

    key: SigningKey
    origin: str
    note_signer: NoteSigner
    dsse_keyid: str

    @classmethod
    def create(cls, *, key: SigningKey, origin: str) -> LogSigner:
        return cls(
            key=key,
            origin=origin,
            note_signer=NoteSigner(name=origin, key=key),
            dsse_keyid=securesystemslib_keyid(key.public_key),
        )

    def chain_origin(self, *, tenant: str, chain: str) -> str:
        return f"{self.origin}/{tenant}/{chain}"

    def sign_checkpoint(self, checkpoint: Checkpoint) -> str:
        return sign_note(checkpoint.to_text(), [self.note_signer])

    def sign_receipts(self, payload: bytes) -> dict[str, Any]:
        return sign_envelope(payload_type=RECEIPTS_PAYLOAD_TYPE, payload=payload, key=self.key)

    def public_keys(self) -> list[dict[str, str]]:
        return [
            {
                "name": self.origin,
                "verifier_key": self.note_signer.verifier_key,
                "note_key_id": self.note_signer.key_id.hex(),
                "dsse_keyid": self.dsse_keyid,
                "public_key": self.key.public_key.raw.hex(),
                "algorithm": "ed25519",
            }
        ]


class ReceiptSigner:
    """Signs receipts off the event loop, a burst at a time.

    A group commit wakes all its requests in one turn of the loop; each asks for its receipt's
    signature, and the whole burst is signed in one hop to a signing thread. Ed25519 signing
    releases the GIL, so the loop goes on serving requests on the other core meanwhile, and one
    thread hop costs far less than the signatures it carries.
    """

    def __init__(self, signer: LogSigner) -> None:
        self._signer = signer
        self._pending: list[tuple[bytes, asyncio.Future[dict[str, Any]]]] = []
        self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="receipt-signer")

    async def sign(self, payload: bytes) -> dict[str, Any]:
        loop = asyncio.get_running_loop()
        future: asyncio.Future[dict[str, Any]] = loop.create_future()
        if not self._pending:
            loop.call_soon(self._flush, loop)
        self._pending.append((payload, future))
        return await future

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        burst, self._pending = self._pending, []
        payloads = [payload for payload, _ in burst]
        signed = loop.run_in_executor(self._thread, self._sign_all, payloads)

        def answer(done: asyncio.Future[list[dict[str, Any]]]) -> None:
            error = done.exception()
            for position, (_, future) in enumerate(burst):
                if future.done():
                    continue  # its request was cancelled
                if error is not None:
                    future.set_exception(error)
                else:
                    future.set_result(done.result()[position])

        signed.add_done_callback(answer)

    def _sign_all(self, payloads: list[bytes]) -> list[dict[str, Any]]:
        return [self._signer.sign_receipts(payload) for payload in payloads]

    def close(self) -> None:
        self._thread.shutdown(wait=True)
