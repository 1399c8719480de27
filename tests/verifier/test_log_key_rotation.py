"""Rotating the log's signing key as docs/operations.md says: stop the log, replace its key
file, restart it and the verifier with the new key. The verifier goes on cosigning without a
finding (the first checkpoint under the new key extends what it cosigned under the old), its
sweep re-reads the old entries cleanly, an old decision's evidence is still served as cosigned,
and an export verifies offline under the new key. A log and a verifier of their own, so that
the other tests' chains never see the second key."""

from __future__ import annotations

import asyncio
import io
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from pathlib import Path

import httpx
from audit_trail import admin
from decision_log import migrations as log_migrations
from decision_log.app import create_app as create_log_app
from decision_log.settings import Settings as LogSettings
from decision_log.signing import LogSigner
from decision_log.witnesses import service as witnesses
from ledger.bundle import verify_bundle
from ledger.keys import SigningKey, read_private_key, write_private_key
from ledger.note import CosignatureSigner
from sqlalchemy.ext.asyncio import AsyncConnection
from verifier import migrations as verifier_migrations
from verifier.app import create_app as create_verifier_app
from verifier.log_client import ChainName
from verifier.settings import Settings as VerifierSettings
from verifier.state import AppState

from tests.databases import own_database
from tests.decisions.helpers import projected, recorded
from tests.service.conftest import LOG_ORIGIN, TenantKeys, make_tenant
from tests.service.helpers import headers
from tests.verifier.bundles import export
from tests.verifier.conftest import append_and_checkpoint


@asynccontextmanager
async def running(
    log_settings: LogSettings, verifier_settings: VerifierSettings
) -> AsyncIterator[tuple[httpx.AsyncClient, httpx.AsyncClient, AppState]]:
    """The log, its verifier reading it over HTTP, and the log as it serves auditors (asking
    the verifier when it exports), as tests/verifier/conftest.py runs them: (auditors' log
    client, verifier client, verifier state)."""
    log_app = create_log_app(log_settings)
    async with log_app.router.lifespan_context(log_app):
        verifier_app = create_verifier_app(
            verifier_settings, log_transport=httpx.ASGITransport(app=log_app), run_worker=False
        )
        async with verifier_app.router.lifespan_context(verifier_app):
            exporting = create_log_app(
                log_settings.model_copy(update={"verifier_url": "http://127.0.0.1:8001"}),
                verifier_transport=httpx.ASGITransport(app=verifier_app),
            )
            async with (
                exporting.router.lifespan_context(exporting),
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=exporting), base_url="http://decision-log"
                ) as log,
                httpx.AsyncClient(
                    transport=httpx.ASGITransport(app=verifier_app), base_url="http://verifier"
                ) as verifier,
            ):
                yield log, verifier, verifier_app.state.verifier


async def test_the_log_key_rotates_without_a_finding_and_old_evidence_still_checks(
    database_url: str,
    settings: LogSettings,
    cosigner: CosignatureSigner,
    verifier_key_file: Path,
    tmp_path: Path,
) -> None:
    async with (
        own_database(database_url, "rotation_log") as log_db,
        own_database(database_url, "rotation_verifier") as verifier_db,
    ):
        await asyncio.to_thread(log_migrations.upgrade, log_db)
        await asyncio.to_thread(verifier_migrations.upgrade, verifier_db)
        old_key, new_key = tmp_path / "log-old.pem", tmp_path / "log-new.pem"
        write_private_key(old_key, SigningKey.generate())
        write_private_key(new_key, SigningKey.generate())
        signers = {
            path: LogSigner.create(key=read_private_key(path), origin=LOG_ORIGIN)
            for path in (old_key, new_key)
        }

        async def register(connection: AsyncConnection) -> str:
            _, api_key = await witnesses.register_witness(
                connection, verifier_key=cosigner.verifier_key
            )
            return api_key

        witness_key = await admin.in_transaction(log_db, register)
        tenant = await make_tenant(log_db, signers[old_key])
        name = ChainName(tenant.tenant, tenant.chain)

        def configured(key: Path) -> tuple[LogSettings, VerifierSettings]:
            return settings.model_copy(
                update={"database_url": log_db, "log_key_file": key}
            ), VerifierSettings(
                database_url=verifier_db,
                key_file=verifier_key_file,
                log_url="http://decision-log",
                log_api_key=witness_key,
                log_verifier_key=signers[key].note_signer.verifier_key,
                name=cosigner.name,
                auth_cache_seconds=0.0,
            )

        async with running(*configured(old_key)) as (log, _, verifier):
            await append_and_checkpoint(log, tenant, [recorded(f"loan-{i}") for i in range(5)])
            state = await verifier.verifier.verify(name)
            assert (state.verified_size, state.halted_by) == (5, None)

        async with running(*configured(new_key)) as (log, verifier_client, verifier):
            await append_and_checkpoint(log, tenant, [recorded(f"loan-{i}") for i in range(5, 9)])
            state = await verifier.verifier.verify(name)
            assert (state.verified_size, state.halted_by) == (9, None)
            swept = await verifier.sweeper.sweep_chain(name)
            assert swept.result == "passed", swept
            status = await verifier_client.get(
                f"/v1/chains/{tenant.chain}", headers=headers(tenant.auditor)
            )
            assert status.status_code == 200, status.text
            assert status.json()["halted"] is False

            await projected(log_db)
            await evidence_is_cosigned(log, tenant, "loan-0")
            _, bundle = await export(log, tenant, {"kind": "range"})
            report = verify_bundle(
                io.BytesIO(bundle),
                log_key=signers[new_key].note_signer.verifier,
                verifier_key=cosigner.verifier,
            )
            assert report.entries == 9 and report.cosigned_by == [cosigner.name]


async def evidence_is_cosigned(log: httpx.AsyncClient, tenant: TenantKeys, decision: str) -> None:
    """A decision recorded under the old key is proved against a checkpoint the verifier
    cosigned; a view answered while that cosignature lands may cite the one before it."""
    for _ in range(100):
        view = await log.get(
            f"/v1/chains/{tenant.chain}/decisions/{decision}", headers=headers(tenant.auditor)
        )
        assert view.status_code == 200, view.text
        evidence = view.json()["evidence"]
        cosigned = {c["size"] for c in evidence["checkpoints"] if c["cosigned"]}
        if evidence["proofs"] and all(p["tree_size"] in cosigned for p in evidence["proofs"]):
            return
        await asyncio.sleep(0.05)
    raise AssertionError(f"never cosigned: {view.json()['evidence']}")
