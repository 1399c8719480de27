"""The verifier's rules: check a chain against the log's key and the verifier's own memory,
cosign what checks out, attest, and raise findings with evidence.

A chain is verified in numbered steps (see `ChainVerifier._check`). The verifier's replay
position is always the last checkpoint it cosigned, so "consistent with what was cosigned" and
"consistent with what was replayed" are the same statement, and a cosignature is only ever made
for the newest checkpoint the verifier has checked. Entries cosigned before are re-read by the
sweep (`verifier.sweep`); a finding halts the chain until it is acknowledged
(`verifier.epochs`).
"""

from __future__ import annotations

import asyncio
import base64
import logging
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

import orjson
from ledger.errors import NoteError, ProofError
from ledger.leaf import GENESIS_PREV
from ledger.merkle import (
    EMPTY_ROOT,
    MerkleFrontier,
    root_from_inclusion_proof,
    verify_consistency,
    verify_inclusion,
)
from ledger.note import Checkpoint, NoteVerifier, open_note
from sqlalchemy.ext.asyncio import AsyncConnection, AsyncEngine

from verifier import completeness, metrics, repository
from verifier.attestations import ChainSubject, acknowledged_finding, epoch_start, statement
from verifier.log_client import ChainName, LogClient
from verifier.problems import Conflict, IntegrityFailure, LogUnavailable
from verifier.remembered import LEAF_HASH_RUN
from verifier.replay import EntryReplay, Finding, first_unproven_size
from verifier.rereading import HistoryReader
from verifier.signing import VerifierSigner

log = logging.getLogger(__name__)

Clock = Callable[[], datetime]


@dataclass
class _Pass:
    """What one verification pass learnt, for the evidence of a finding."""

    name: ChainName
    state: Any
    served_note: str | None = None
    served: Checkpoint | None = None
    evidence: dict[str, Any] = field(default_factory=dict)


class ChainVerifier:
    def __init__(
        self,
        *,
        engine: AsyncEngine,
        log_client: LogClient,
        signer: VerifierSigner,
        log_verifier: NoteVerifier,
        clock: Clock,
        completeness_gap_age_seconds: float = 600.0,
    ) -> None:
        self._engine = engine
        self._log = log_client
        self._signer = signer
        self._log_verifier = log_verifier
        self._clock = clock
        self.completeness_gap_age_seconds = completeness_gap_age_seconds
        self._locks: dict[ChainName, asyncio.Lock] = {}
        self.history = HistoryReader(
            engine=engine, log_client=log_client, log_verifier=log_verifier
        )

    def now(self) -> datetime:
        return self._clock()

    @property
    def log_origin(self) -> str:
        # The log signs every chain's checkpoints under one key name, its origin.
        return self._log_verifier.name

    def chain_origin(self, name: ChainName) -> str:
        return f"{self.log_origin}/{name.tenant}/{name.chain}"

    def lock(self, name: ChainName) -> asyncio.Lock:
        """The chain's cosigning lock: held while a checkpoint is checked and cosigned, and
        while the sweep compares one window, so that nothing is cosigned between a difference
        being seen and its finding halting the chain."""
        return self._locks.setdefault(name, asyncio.Lock())

    async def state(self, name: ChainName) -> Any:
        async with self._engine.begin() as connection:
            row = await repository.chain_state(connection, tenant=name.tenant, chain=name.chain)
            if row is None:
                await repository.insert_chain(
                    connection,
                    tenant=name.tenant,
                    chain=name.chain,
                    empty_root=EMPTY_ROOT,
                    genesis=GENESIS_PREV,
                )
                row = await repository.chain_state(connection, tenant=name.tenant, chain=name.chain)
        return row

    # -----------------------------------------------------------------------------------------
    # Verification
    # -----------------------------------------------------------------------------------------

    async def verify(self, name: ChainName) -> Any:
        """Bring the chain up to the log's latest checkpoint; return the state afterwards.

        Only the entries new since the last cosigned checkpoint are read; the sweep
        (`verifier.sweep`) re-reads the older ones on its schedule.
        """
        await self._log.detect_mode()
        async with self.lock(name):
            state = await self.state(name)
            if state.halted_by is not None:
                return state
            current = _Pass(name=name, state=state)
            try:
                await self._check(current)
            except Finding as finding:
                await self.record_finding(
                    name,
                    state,
                    finding,
                    served_note=current.served_note,
                    served=current.served,
                    evidence=current.evidence,
                )
            return await self.state(name)

    async def _check(self, current: _Pass) -> None:
        name, state = current.name, current.state
        verified_size, verified_root = int(state.verified_size), bytes(state.verified_root)
        # 1. The latest checkpoint is signed by the log's key (the only key trusted) and names
        #    this chain.
        note = await self._log.checkpoint(name)
        current.served_note = note
        current.evidence["served_checkpoint"] = note
        try:
            opened = open_note(note, [self._log_verifier])
            checkpoint = Checkpoint.parse(opened.text)
        except NoteError as error:
            raise Finding(
                "bad-checkpoint-signature",
                f"the latest checkpoint does not verify under the log's key: {error}",
                index=verified_size,
                expected=self._log_verifier.verifier_key,
            ) from None
        current.served = checkpoint
        if checkpoint.origin != self.chain_origin(name):
            raise Finding(
                "wrong-origin",
                "the checkpoint names another chain",
                index=verified_size,
                expected=self.chain_origin(name),
                found=checkpoint.origin,
            )
        if verified_size:
            cosigned = await self._latest_cosigned(state)
            if cosigned is not None:
                current.evidence["cosigned_checkpoint"] = cosigned
        # 2. It never shrinks what was cosigned (a rollback) ...
        #    Whenever the log's checkpoint does not extend what was cosigned, the entries
        #    cosigned are re-read first: the finding is then the first entry that is no longer
        #    what was cosigned, named by the kind of change (`verifier.history`), and the
        #    checkpoint itself is blamed only when every entry is still as it was. (The
        #    cosigning lock stays held while locating: the chain is about to halt, so there is
        #    nothing it could hold up.)
        if checkpoint.size < verified_size:
            await self._raise_first_difference(current, end=verified_size)
            raise Finding(
                "rollback",
                f"the log still serves the {verified_size} entries this verifier cosigned, "
                f"but its latest checkpoint has {checkpoint.size}",
                index=checkpoint.size,
                expected=f"size >= {verified_size}",
                found=str(checkpoint.size),
            )
        # 3. ... and is consistent with it: the same root at the same size, or an RFC 6962
        #    consistency proof from the cosigned root to the new root.
        if checkpoint.size == verified_size:
            if checkpoint.root_hash != verified_root:
                await self._raise_first_difference(current, end=verified_size)
                raise Finding(
                    "forked-history",
                    f"a checkpoint of size {verified_size} with another root than the one "
                    "cosigned, and no entry differs: the log signed two trees",
                    index=verified_size,
                    expected=verified_root.hex(),
                    found=checkpoint.root_hash.hex(),
                )
            await self._ensure_posted(name, state, note, checkpoint)
            return
        if verified_size:
            proof = await self._log.consistency_proof(
                name, old_size=verified_size, new_size=checkpoint.size
            )
            current.evidence["consistency_proof"] = [h.hex() for h in proof]
            try:
                verify_consistency(
                    old_size=verified_size,
                    new_size=checkpoint.size,
                    proof=proof,
                    old_root=verified_root,
                    new_root=checkpoint.root_hash,
                )
            except ProofError as error:
                await self._raise_first_difference(current, end=verified_size)
                raise Finding(
                    "inconsistent-checkpoint",
                    f"the log cannot prove its checkpoint extends the one cosigned: {error}",
                    index=verified_size,
                    expected=verified_root.hex(),
                    found=checkpoint.root_hash.hex(),
                ) from None
        # 4. Replay the new entries from their raw bytes onto the verifier's own frontier, and
        #    rebuild the root the checkpoint claims.
        replay = EntryReplay(
            tenant=name.tenant,
            chain=name.chain,
            frontier=MerkleFrontier.from_bytes(verified_size, bytes(state.frontier)),
            prev=bytes(state.last_leaf_hash),
            last_received_at=str(state.last_received_at),
        )
        producers = completeness.ChainFold(engine=self._engine, state=state)
        try:
            entries = self._log.entries(name, start=verified_size, end=checkpoint.size)
            async for chunk, frames in entries:
                replay.feed(chunk, binary=frames)
                await producers.take(replay.events)
            replay.finish(checkpoint.size)
            await producers.take(replay.events)
            if replay.frontier.root() != checkpoint.root_hash:
                raise Finding(
                    "root-mismatch",
                    "the root rebuilt from the entries is not the checkpoint's root",
                    index=None,
                    expected=checkpoint.root_hash.hex(),
                    found=replay.frontier.root().hex(),
                )
        except Finding as finding:
            raise await self._locate(current, replay, checkpoint, finding) from None
        # 5. Everything checks out: cosign the checkpoint, remember it with the leaf hashes and
        #    the producers' completeness folded from the same entries, then give the
        #    cosignature to the log.
        await self._cosign(
            current,
            opened_text=opened.text,
            checkpoint=checkpoint,
            replay=replay,
            producers=producers,
        )

    async def _locate(
        self, current: _Pass, replay: EntryReplay, checkpoint: Checkpoint, finding: Finding
    ) -> Finding:
        """Move a finding from where it showed to the first bad entry, where that is proven.

        A leaf at position j that says it is entry k < j, and is not the leaf seen at k, means
        entries from k on were shifted: entry k is the intruder. Otherwise a binary search by
        consistency proofs finds the first entry m the signed checkpoint does not commit to;
        the finding moves there when the log's own inclusion proof of m (checked against the
        signed root) shows another leaf hash committed at m than the one served. The log's
        proofs come from its own, possibly damaged, Merkle data, so a proof that fails is not
        taken as evidence of anything.
        """
        state = current.state
        base = MerkleFrontier.from_bytes(int(state.verified_size), bytes(state.frontier))
        hashes = list(replay.hashes)
        if replay.failed_hash is not None:
            hashes.append(replay.failed_hash)
        if (
            finding.kind == "misplaced-leaf"
            and finding.index is not None
            and finding.found is not None
            and finding.found.isdigit()
            and base.size <= int(finding.found) < finding.index
            and hashes[int(finding.found) - base.size] != replay.failed_hash
        ):
            claimed = int(finding.found)
            return finding.at(
                claimed,
                kind="leaf-mismatch",
                detail=f"entry {claimed} is not the entry committed there: the leaf that says "
                f"it is entry {claimed} was served at index {finding.index}",
            )

        async def proof_from(size: int) -> list[bytes]:
            try:
                return await self._log.consistency_proof(
                    current.name, old_size=size, new_size=checkpoint.size
                )
            except LogUnavailable:
                return []

        first = await first_unproven_size(
            base=base,
            hashes=hashes,
            checkpoint_size=checkpoint.size,
            checkpoint_root=checkpoint.root_hash,
            consistency_proof=proof_from,
        )
        if finding.index is not None and finding.index <= first:
            return finding
        ours = hashes[first - base.size].hex() if first - base.size < len(hashes) else None
        committed = await self._committed_leaf_hash(current.name, first, checkpoint)
        if finding.index is not None and (committed is None or committed == ours):
            return finding
        moved = finding.at(
            first,
            kind="leaf-mismatch",
            detail=f"entry {first} is not the leaf the checkpoint of size {checkpoint.size} "
            "commits to",
        )
        moved.expected, moved.found = committed, ours
        return moved

    async def _committed_leaf_hash(
        self, name: ChainName, index: int, checkpoint: Checkpoint
    ) -> str | None:
        """The leaf hash the signed checkpoint commits to at `index`, if the log can prove it."""
        try:
            claimed, proof = await self._log.inclusion_proof(
                name, index=index, tree_size=checkpoint.size
            )
            verify_inclusion(
                leaf_hash=claimed,
                index=index,
                size=checkpoint.size,
                proof=proof,
                root=checkpoint.root_hash,
            )
        except (LogUnavailable, ProofError):
            return None
        return claimed.hex()

    async def _raise_first_difference(self, current: _Pass, *, end: int) -> None:
        """Raise the finding at the first of entries [0, end) that is no longer what this
        verifier checked and cosigned, if any is."""
        difference = await self.history.first_difference(current.name, current.state, end=end)
        if difference is not None:
            raise await self.history.diagnose(
                current.name, current.state, difference, served=current.served
            )

    async def _cosign(
        self,
        current: _Pass,
        *,
        opened_text: str,
        checkpoint: Checkpoint,
        replay: EntryReplay,
        producers: completeness.ChainFold,
    ) -> None:
        state, now = current.state, self._clock()
        line = self._signer.cosign(opened_text, timestamp=int(now.timestamp()))
        log_signed = _log_signed_note(current.served_note or "", opened_text, self._log_verifier)
        async with self._engine.begin() as connection:
            moved = await repository.advance(
                connection,
                chain_id=state.id,
                epoch=state.epoch,
                old_size=int(state.verified_size),
                new_size=checkpoint.size,
                root=checkpoint.root_hash,
                frontier=replay.frontier.to_bytes(),
                last_leaf_hash=replay.prev,
                last_received_at=replay.last_received_at.decode(),
                verified_at=now,
                replayed=len(replay.hashes),
            )
            if not moved:
                raise Conflict("another verifier process advanced this chain first")
            start = int(state.verified_size)
            for offset in range(0, len(replay.hashes), LEAF_HASH_RUN):
                await repository.insert_leaf_hashes(
                    connection,
                    chain_id=state.id,
                    epoch=state.epoch,
                    start=start + offset,
                    hashes=b"".join(replay.hashes[offset : offset + LEAF_HASH_RUN]),
                )
            await producers.save(connection, new_size=checkpoint.size)
            await repository.insert_cosigned(
                connection,
                chain_id=state.id,
                epoch=state.epoch,
                size=checkpoint.size,
                root_hash=checkpoint.root_hash,
                checkpoint_note=log_signed,
                cosignature=line,
                cosigned_at=now,
                last_received_at=replay.last_received_at.decode(),
            )
        metrics.COSIGNATURES.inc()
        log.info(
            "cosigned %s/%s at %d",
            *_n(current.name),
            checkpoint.size,
        )
        await self._post(current.name, checkpoint.size, line)

    async def _post(self, name: ChainName, size: int, line: str) -> None:
        try:
            await self._log.post_cosignature(name, size=size, line=line)
        except LogUnavailable as error:
            # Kept in the store; posted again on the next pass (`_ensure_posted`).
            log.warning("cosignature of %s/%s at %d not posted: %s", *_n(name), size, error)

    async def _ensure_posted(
        self, name: ChainName, state: Any, note: str, checkpoint: Checkpoint
    ) -> None:
        async with self._engine.begin() as connection:
            await repository.touch(connection, chain_id=state.id, verified_at=self._clock())
            cosigned = await repository.latest_cosigned(
                connection, chain_id=state.id, epoch=state.epoch
            )
        if cosigned is None or int(cosigned.size) != checkpoint.size:
            return
        if f"\n{cosigned.cosignature}\n" not in note:
            await self._post(name, checkpoint.size, str(cosigned.cosignature))

    async def _latest_cosigned(self, state: Any) -> str | None:
        async with self._engine.connect() as connection:
            row = await repository.latest_cosigned(connection, chain_id=state.id, epoch=state.epoch)
        return None if row is None else f"{row.checkpoint_note}{row.cosignature}\n"

    async def record_finding(
        self,
        name: ChainName,
        state: Any,
        finding: Finding,
        *,
        served_note: str | None = None,
        served: Checkpoint | None = None,
        evidence: dict[str, Any] | None = None,
    ) -> int:
        """Record the finding with its signed negative attestation, and halt the chain: nothing
        is cosigned for it again until an operator acknowledges (`verifier.epochs`). The caller
        holds the chain's lock."""
        now = self._clock()
        evidence = {**(evidence or {}), **finding.evidence}
        if "cosigned_checkpoint" not in evidence and int(state.verified_size):
            cosigned = await self._latest_cosigned(state)
            if cosigned is not None:
                evidence["cosigned_checkpoint"] = cosigned
        described = {
            "kind": finding.kind,
            "tenant": name.tenant,
            "chain": name.chain,
            "first_bad_index": finding.index,
            "detail": finding.detail,
            "expected": finding.expected,
            "found": finding.found,
            "evidence": evidence,
        }
        subject = ChainSubject(
            tenant=name.tenant,
            chain=name.chain,
            origin=self.chain_origin(name),
            size=int(state.verified_size) if served is None else served.size,
            root_hash=bytes(state.verified_root) if served is None else served.root_hash,
        )
        log.error("finding on %s/%s: %s", *_n(name), finding)
        async with self._engine.begin() as connection:
            context = await self._attestation_context(connection, state, size=subject.size, now=now)
            envelope = self._signer.sign_statement(
                statement(
                    subject=subject,
                    verifier_name=self._signer.name,
                    log_verifier_key=self._log_verifier.verifier_key,
                    checkpoint_note=served_note,
                    verified_range=(0, int(state.verified_size)),
                    entries_replayed=int(state.entries_replayed),
                    verified_at=state.verified_at,
                    issued_at=now,
                    finding=described,
                    **context,
                )
            )
            finding_id = await repository.insert_finding(
                connection,
                chain_id=state.id,
                epoch=state.epoch,
                kind=finding.kind,
                first_bad_index=finding.index,
                detail=finding.detail,
                evidence={"expected": finding.expected, "found": finding.found, **evidence},
                attestation=envelope,
                found_at=now,
            )
            await repository.insert_attestation(
                connection,
                chain_id=state.id,
                size=subject.size,
                root_hash=subject.root_hash,
                result="failed",
                envelope=envelope,
                issued_at=now,
            )
        metrics.FINDINGS.labels(finding.kind).inc()
        metrics.ATTESTATIONS.labels("failed").inc()
        return finding_id

    async def _attestation_context(
        self, connection: AsyncConnection, state: Any, *, size: int, now: datetime
    ) -> dict[str, Any]:
        """What an attestation of [0, size) says beside its checks: the epoch it belongs to,
        the last full sweep, every acknowledged finding whose first bad index lies in the
        range (who acknowledged it, when and why), so that no range spanning tampered history
        is ever attested without naming it, and the completeness of the chain's producers over
        the entries replayed, judged at `now`."""
        epoch = int(state.epoch)
        started = next(
            (
                row
                for row in await repository.epochs(connection, chain_id=state.id)
                if int(row.epoch) == epoch
            ),
            None,
        )
        swept = await repository.last_passed_sweep(connection, chain_id=state.id, epoch=epoch)
        acknowledged = [
            acknowledged_finding(row)
            for row in await repository.acknowledged_findings(connection, chain_id=state.id)
            if row.first_bad_index is None or int(row.first_bad_index) < size
        ]
        return {
            "epoch": epoch_start(epoch, started),
            "last_full_sweep": None
            if swept is None
            else {"finished_at": swept.finished_at, "size": int(swept.size)},
            "acknowledged_findings": acknowledged,
            "completeness": completeness.attested(
                await self.completeness(connection, state, now=now)
            ),
        }

    async def completeness(
        self,
        connection: AsyncConnection,
        state: Any,
        *,
        now: datetime,
        source: str | None = None,
        needing_attention: bool = False,
        limit: int | None = None,
        after: str | None = None,
    ) -> dict[str, Any]:
        """The chain's producers' completeness as this verifier folded it, judged at `now`
        (`completeness.figures` says what the options select)."""
        return await completeness.figures(
            connection,
            state=state,
            now=now,
            gap_age_seconds=self.completeness_gap_age_seconds,
            source=source,
            needing_attention=needing_attention,
            limit=limit,
            after=after,
        )

    # -----------------------------------------------------------------------------------------
    # Attestations and coverage
    # -----------------------------------------------------------------------------------------

    async def halted_count(self) -> int:
        """Chains halted by a finding not yet acknowledged."""
        async with self._engine.connect() as connection:
            return await repository.halted_count(connection)

    async def silent_sources(self) -> int:
        """Producers silent now, over every chain followed."""
        async with self._engine.connect() as connection:
            return await repository.silent_sources(connection, now=self._clock())

    async def open_gaps(self) -> int:
        """Missing sequence ranges over every chain and source followed."""
        async with self._engine.connect() as connection:
            return await repository.open_gaps_total(connection)

    async def current_attestation(self, name: ChainName) -> Any | None:
        """The attestation of what is checked now: a new one only when the checked size grew
        since the last (or there is none yet); otherwise the last one stands, so asking again
        and again stores nothing."""
        issued = await self.attest(name, only_if_grown=True)
        if issued is not None:
            return issued
        state = await self.state(name)
        async with self._engine.connect() as connection:
            last = await repository.last_attestation(connection, chain_id=state.id)
        return last if last is not None else await self.attest(name, only_if_grown=False)

    async def attest(self, name: ChainName, *, only_if_grown: bool) -> Any | None:
        """Attest what the verifier has checked of the chain; None if nothing new to say.

        A halted chain gets its negative attestation (the finding's), not a new positive one.
        """
        async with self.lock(name):
            state = await self.state(name)
            async with self._engine.begin() as connection:
                last = await repository.last_attestation(connection, chain_id=state.id)
                if state.halted_by is not None:
                    return None if only_if_grown else last
                size = int(state.verified_size)
                # Nothing new to say: the last attestation passed at this size (after a finding,
                # once acknowledged, the chain's first passing attestation is new again) and
                # named as many silent producers as are silent now. A producer falls silent
                # when nothing arrives, so waiting for growth would never sign its silence.
                if only_if_grown and (
                    size == 0
                    or (
                        last is not None
                        and last.size >= size
                        and last.result == "passed"
                        and _attested_silent(last.envelope)
                        == await repository.silent_sources(
                            connection, now=self._clock(), chain_id=state.id
                        )
                    )
                ):
                    return None
                cosigned = await repository.latest_cosigned(
                    connection, chain_id=state.id, epoch=state.epoch
                )
                now = self._clock()
                subject = ChainSubject(
                    tenant=name.tenant,
                    chain=name.chain,
                    origin=self.chain_origin(name),
                    size=size,
                    root_hash=bytes(state.verified_root),
                )
                context = await self._attestation_context(connection, state, size=size, now=now)
                envelope = self._signer.sign_statement(
                    statement(
                        subject=subject,
                        verifier_name=self._signer.name,
                        log_verifier_key=self._log_verifier.verifier_key,
                        checkpoint_note=None
                        if cosigned is None
                        else f"{cosigned.checkpoint_note}{cosigned.cosignature}\n",
                        verified_range=(0, size),
                        entries_replayed=int(state.entries_replayed),
                        verified_at=state.verified_at,
                        issued_at=now,
                        **context,
                    )
                )
                await repository.insert_attestation(
                    connection,
                    chain_id=state.id,
                    size=size,
                    root_hash=subject.root_hash,
                    result="passed",
                    envelope=envelope,
                    issued_at=now,
                )
                metrics.ATTESTATIONS.labels("passed").inc()
                return await repository.last_attestation(connection, chain_id=state.id)

    async def coverage(self, name: ChainName, *, index: int) -> dict[str, Any]:
        """Whether entry `index` is under a checkpoint this verifier cosigned, with the proof."""
        state = await self.state(name)
        async with self._engine.connect() as connection:
            cosigned = await repository.latest_cosigned(
                connection, chain_id=state.id, epoch=state.epoch
            )
            halting = (
                None
                if state.halted_by is None
                else next(
                    (
                        {"id": f.id, "kind": f.kind, "first_bad_index": f.first_bad_index}
                        for f in await repository.findings(connection, chain_id=state.id)
                        if f.id == state.halted_by
                    ),
                    None,
                )
            )
        if cosigned is None or index >= int(cosigned.size):
            return {
                "index": index,
                "halted_by": halting,
                "covered": False,
                "cosigned_size": None if cosigned is None else int(cosigned.size),
                "checkpoint": None,
                "inclusion_proof": None,
            }
        size, root = int(cosigned.size), bytes(cosigned.root_hash)
        try:
            claimed, proof = await self._log.inclusion_proof(name, index=index, tree_size=size)
        except LogUnavailable as error:
            if error.extensions.get("log_status") != 400:
                raise
            # The log refuses a tree size this verifier cosigned: it serves a smaller tree
            # now, so the history was cut back. Not an outage: asking again will not help.
            raise IntegrityFailure(
                f"the log no longer serves the tree of size {size} this verifier cosigned "
                "(its history was cut back)",
                check="inclusion",
                index=index,
                expected=root.hex(),
                found=None,
            ) from None
        try:
            verify_inclusion(leaf_hash=claimed, index=index, size=size, proof=proof, root=root)
        except ProofError as error:
            try:
                reached: str | None = root_from_inclusion_proof(
                    leaf_hash=claimed, index=index, size=size, proof=proof
                ).hex()
            except ProofError:
                reached = None
            raise IntegrityFailure(
                f"the log's inclusion proof does not verify against the cosigned root: {error}",
                check="inclusion",
                index=index,
                expected=root.hex(),
                found=reached,
            ) from None
        return {
            "index": index,
            "halted_by": halting,
            "covered": True,
            "cosigned_size": size,
            "checkpoint": f"{cosigned.checkpoint_note}{cosigned.cosignature}\n",
            "inclusion_proof": {
                "tree_size": size,
                "leaf_hash": claimed.hex(),
                "root_hash": root.hex(),
                "hashes": [h.hex() for h in proof],
            },
        }


def _log_signed_note(note: str, text: str, verifier: NoteVerifier) -> str:
    """The checkpoint with the log's own signature lines only (what the log signed)."""
    opened = open_note(note, [verifier])
    return text + "\n" + "".join(signature.to_line() for signature in opened.verified)


def _n(name: ChainName) -> tuple[str, str]:
    return name.tenant, name.chain


def _attested_silent(envelope: dict[str, Any]) -> int | None:
    """How many silent producers an attestation's completeness summary counted (None for an
    attestation made before it counted them)."""
    statement = orjson.loads(base64.b64decode(envelope["payload"]))
    silent = (statement["predicate"].get("completeness") or {}).get("summary", {}).get("silent")
    return silent if isinstance(silent, int) else None
