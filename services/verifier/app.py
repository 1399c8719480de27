"""The verifier FastAPI application and its background worker."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from datetime import UTC, datetime
from typing import Any

import httpx
from fastapi import FastAPI
from fastapi.openapi.utils import get_openapi
from http_edge import metrics
from http_edge.api_docs import api_docs_router
from http_edge.guard import RequestGuard
from http_edge.openapi import document_problems, forbid_nul_in_requests
from http_edge.readiness import Readiness
from ledger.keys import read_private_key
from ledger.note import ALG_ED25519, NoteVerifier

from verifier import VERSION, endpoints
from verifier.auth import CallerAuthenticator
from verifier.db import create_engine
from verifier.limits import OnDemandLimiter
from verifier.log_client import LogClient
from verifier.pacing import EntryRate
from verifier.problems import install_problem_handlers
from verifier.service import ChainVerifier, Clock
from verifier.settings import Settings
from verifier.signing import VerifierSigner
from verifier.state import AppState
from verifier.sweep import Sweeper
from verifier.worker import Worker

DESCRIPTION = """
An independent verifier of the decision_log: it replays every chain it can see from the raw leaf
bytes, trusting only the log's public key and its own store, cosigns checkpoints that check out
(C2SP tlog-cosignature), issues attestations (in-toto Statement v1 in DSSE) and raises findings
with evidence. Callers authenticate with a tenant API key of the log (auditor or admin role).
"""


def utc_now() -> datetime:
    return datetime.now(UTC)


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utc_now,
    log_transport: httpx.AsyncBaseTransport | None = None,
    run_worker: bool = True,
) -> FastAPI:
    """Build the app; ``settings`` default to the ``AUDIT_TRAIL_VERIFIER_*`` environment.

    ``log_transport`` lets tests reach a decision_log in the same process (ASGI); the worker
    can be left to the caller (``run_worker=False``) to drive passes one at a time.
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or Settings()  # type: ignore[call-arg]
        log_verifier = NoteVerifier.from_verifier_key(config.log_verifier_key)
        if log_verifier.alg != ALG_ED25519:
            raise ValueError("the log verifier key must be an Ed25519 (type 0x01) note key")
        engine = create_engine(config.database_url, role=config.db_role)
        signer = VerifierSigner.create(key=read_private_key(config.key_file), name=config.name)
        log_client = LogClient(
            http=httpx.AsyncClient(
                base_url=config.log_url,
                transport=log_transport,
                timeout=httpx.Timeout(30.0, connect=5.0),
                headers={"User-Agent": f"audit-trail-verifier/{VERSION}"},
            ),
            api_key=config.log_api_key,
        )
        verifier = ChainVerifier(
            engine=engine,
            log_client=log_client,
            signer=signer,
            log_verifier=log_verifier,
            clock=clock,
            completeness_gap_age_seconds=config.completeness_gap_age_seconds,
        )
        sweeper = Sweeper(
            verifier=verifier,
            engine=engine,
            clock=clock,
            period_seconds=config.sweep_period_seconds,
            rate=EntryRate(config.sweep_rate_entries_per_second),
            window_entries=config.sweep_window_entries,
            idle_seconds=config.poll_interval_seconds,
        )
        worker = Worker(
            verifier=verifier,
            sweeper=sweeper,
            log_client=log_client,
            poll_interval_seconds=config.poll_interval_seconds,
            attestation_interval_seconds=config.attestation_interval_seconds,
        )
        app.state.verifier = AppState(
            settings=config,
            engine=engine,
            log_client=log_client,
            signer=signer,
            verifier=verifier,
            sweeper=sweeper,
            worker=worker,
            authenticator=CallerAuthenticator(
                log_client=log_client,
                cache_seconds=config.auth_cache_seconds,
                log_key=log_verifier.public_key,
                name=config.name,
            ),
            on_demand=OnDemandLimiter(
                burst=config.on_demand_burst, per_minute=config.on_demand_per_minute
            ),
            readiness=Readiness(outage_grace_seconds=config.readiness_outage_seconds),
        )
        if run_worker:
            await worker.start()
        try:
            with app.state.verifier.readiness.watching_termination():
                yield
        finally:
            await worker.stop()  # the sweep's schedule and its on-demand jobs too
            await log_client.aclose()
            await engine.dispose()

    app = FastAPI(
        title="audit-trail verifier",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by http_edge.api_docs from the package's own files, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.add_middleware(RequestGuard)

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            document_problems(
                schema,
                without_database=("/livez", "/healthz", "/v1/keys"),
                extra={
                    ("POST", "/v1/chains/{chain}/verify"): (409, 429),
                    ("GET", "/v1/chains/{chain}/entries/{index}/coverage"): (409,),
                },
            )
            forbid_nul_in_requests(schema)
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    app.include_router(endpoints.router)
    app.include_router(endpoints.public)
    app.include_router(metrics.router)
    app.include_router(api_docs_router("audit-trail verifier"))
    return app
