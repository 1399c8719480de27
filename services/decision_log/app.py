"""The decision_log FastAPI application."""

from __future__ import annotations

import functools
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
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
from starlette.types import Receive, Scope, Send

from decision_log import VERSION, health, heap
from decision_log.auth import ApiKeyAuthenticator, Clock, utc_now
from decision_log.chains import endpoints as chains
from decision_log.chains.checkpointer import Checkpointer
from decision_log.chains.service import ChainDirectory
from decision_log.console import routes as console
from decision_log.db import create_engine
from decision_log.decisions import endpoints as decisions
from decision_log.decisions.admin_records import AdminRecordPasses
from decision_log.decisions.projector import Projector
from decision_log.decisions.verification import ScheduledVerification
from decision_log.events import endpoints as events
from decision_log.events.admission import Admission
from decision_log.events.appender import GroupCommitter
from decision_log.events.endpoints import append_chain, document_append, serve_append
from decision_log.exports import endpoints as exports
from decision_log.exports.service import ExportRunner
from decision_log.ingest import endpoints as ingest
from decision_log.ingest.settings import IngestSettingsCache
from decision_log.keys import endpoints as keys
from decision_log.otlp import endpoints as otlp
from decision_log.otlp.endpoints import (
    document_otlp,
    document_otlp_failures,
    otlp_chain,
    serve_otlp_traces,
)
from decision_log.privacy import endpoints as privacy
from decision_log.privacy.keyring import Keyring
from decision_log.privacy.service import PersonalData
from decision_log.problems import install_problem_handlers
from decision_log.settings import Settings
from decision_log.signing import LogSigner, ReceiptSigner
from decision_log.state import AppState
from decision_log.verifier_client import VerifierClient
from decision_log.witnesses import endpoints as witnesses

# Paths answered without the database (no 503), and the problems of single operations beyond the
# rules of http_edge.openapi.
ANSWERED_FROM_MEMORY = (
    "/livez",
    "/healthz",
    "/v1/log/keys",
    "/v1/schemas",
    "/v1/schemas/{event_type}",
)
FURTHER_PROBLEMS = {
    ("POST", "/v1/chains/{chain}/events"): (409, 415),
    ("POST", "/v1/chains/{chain}/otlp/v1/traces"): (415,),
    ("POST", "/v1/chains"): (409,),
    ("POST", "/v1/keys/{key_id}/revoke"): (409,),
    ("PATCH", "/v1/keys/{key_id}"): (409,),
    ("POST", "/v1/chains/{chain}/exports"): (409,),
    ("GET", "/v1/exports/{export_id}/bundle"): (409,),
    ("POST", "/v1/subjects/erase"): (409,),
    ("POST", "/v1/chains/{chain}/dispose"): (409,),
    ("POST", "/v1/chains/{chain}/sources/close"): (409,),
    ("GET", "/v1/chains/{chain}/entries/{index}/event"): (409,),
}

DESCRIPTION = """
Append AI decisions as CloudEvents to tamper-evident, hash-chained logs committed into RFC 6962
Merkle trees; read entries with their exact leaf bytes, signed checkpoints (C2SP signed notes)
and inclusion and consistency proofs. Errors are RFC 9457 problem details.
"""


def create_app(
    settings: Settings | None = None,
    *,
    clock: Clock = utc_now,
    verifier_transport: httpx.AsyncBaseTransport | None = None,
) -> FastAPI:
    """Build the app; ``settings`` default to the ``AUDIT_TRAIL_*`` environment.

    ``verifier_transport`` carries the calls to the verifier (tests reach one over ASGI).
    """

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        config = settings or Settings()  # type: ignore[call-arg]
        engine = create_engine(
            config.database_url,
            role=config.db_role,
            pool_size=config.pool_size,
            lock_timeout_seconds=config.lock_timeout_seconds,
        )
        signer = LogSigner.create(
            key=read_private_key(config.log_key_file), origin=config.log_origin
        )
        checkpointer = Checkpointer(
            engine=engine, signer=signer, interval_seconds=config.checkpoint_interval_seconds
        )
        projector = Projector(engine=engine)

        def on_commit(chain_id: int) -> None:
            checkpointer.mark_grown(chain_id)
            projector.mark_grown(chain_id)

        http = httpx.AsyncClient(timeout=2.0, transport=verifier_transport)
        state = AppState(
            settings=config,
            engine=engine,
            signer=signer,
            receipts=ReceiptSigner(signer),
            clock=clock,
            authenticator=ApiKeyAuthenticator(
                engine=engine, listen_dsn=plain_dsn(config.database_url), clock=clock
            ),
            committer=GroupCommitter(
                engine=engine,
                clock=clock,
                on_commit=on_commit,
                admission=Admission(
                    max_inflight_bytes=config.max_inflight_bytes,
                    max_pending_events=config.max_pending_events,
                    retry_after_seconds=config.retry_after_seconds,
                ),
                group_max_events=config.group_max_events,
                retry_after_seconds=config.retry_after_seconds,
                queue_timeout_seconds=config.queue_timeout_seconds,
            ),
            checkpointer=checkpointer,
            directory=ChainDirectory(engine),
            http=http,
            verifier=VerifierClient(
                http=http,
                base_url=config.verifier_url,
                signer=signer,
                plain_http=config.verifier_plain_http,
            ),
            exports=ExportRunner(engine=engine, signer=signer),
            personal_data=PersonalData(
                engine=engine,
                keyring=Keyring.load(
                    kek_file=config.kek_file, pseudonym_key_file=config.pseudonym_key_file
                ),
            ),
            readiness=Readiness(outage_grace_seconds=config.readiness_outage_seconds),
            ingest=IngestSettingsCache(engine=engine, max_event_bytes=config.max_event_bytes),
        )
        app.state.audit_trail = state
        if isinstance(app, DecisionLogApp):
            app.guard.max_body_bytes = config.max_request_body_bytes
        await state.authenticator.start()
        await checkpointer.start()
        admin_records = AdminRecordPasses(state)
        await admin_records.start()
        if config.run_projector:
            await projector.start()
        verification = ScheduledVerification(
            engine=engine, period_seconds=config.projection_verify_seconds, clock=clock
        )
        if config.projection_verify_seconds > 0:
            await verification.start()
        heap.settle()
        try:
            with state.readiness.watching_termination():
                yield
        finally:
            await state.exports.close()
            await admin_records.stop()
            await state.committer.close()
            await verification.stop()
            await projector.stop()
            await checkpointer.stop()
            await state.authenticator.stop()
            await state.http.aclose()
            await engine.dispose()
            state.receipts.close()

    app = DecisionLogApp(
        title="audit-trail decision_log",
        version=VERSION,
        description=DESCRIPTION,
        lifespan=lifespan,
        # Served by console.api_docs from the package's own files, not from a CDN.
        docs_url=None,
        redoc_url=None,
    )
    install_problem_handlers(app)
    app.include_router(events.router)
    app.include_router(otlp.router)
    app.include_router(chains.router)
    app.include_router(chains.public)
    app.include_router(keys.router)
    app.include_router(witnesses.router)
    app.include_router(privacy.router)
    app.include_router(decisions.router)
    app.include_router(decisions.public)
    app.include_router(exports.router)
    app.include_router(ingest.router)
    app.include_router(health.router)
    app.include_router(metrics.router)
    app.include_router(console.router)
    app.include_router(api_docs_router("audit-trail decision_log"))

    def openapi() -> dict[str, Any]:
        if app.openapi_schema is None:
            schema = get_openapi(
                title=app.title, version=app.version, description=app.description, routes=app.routes
            )
            document_append(schema)
            document_otlp(schema)
            document_problems(schema, without_database=ANSWERED_FROM_MEMORY, extra=FURTHER_PROBLEMS)
            document_otlp_failures(schema)
            # Event data may hold NUL (it is kept in the leaf, escaped); the append and OTLP
            # routes document their own rules.
            forbid_nul_in_requests(schema, besides=("append_events", "export_traces"))
            app.openapi_schema = schema
        return app.openapi_schema

    app.openapi = openapi  # type: ignore[method-assign]
    return app


class DecisionLogApp(FastAPI):
    """The service's FastAPI application, except that appends never enter FastAPI.

    The append route is the hot path; everything FastAPI and Starlette do per request
    (middleware, telemetry checks, routing) is work it does not need, so it is served by
    ``events.endpoints.serve_append`` directly. The OTLP traces route is served directly too
    (``otlp.endpoints``), for its larger, possibly compressed body. Every other request goes
    through FastAPI.
    Every other request passes the request guard first (``http_edge.guard``): request ids, the
    body cap, and no bare 500; the append route does the same inline (and caps its own body,
    after authentication), since each layer of middleware costs the hot path.
    """

    def __init__(self, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        # The body cap is set from the settings when the app starts (lifespan).
        self.guard = RequestGuard(functools.partial(FastAPI.__call__, self))

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        chain = append_chain(scope)
        if chain is not None:
            await serve_append(self.state.audit_trail, scope, receive, send, chain)
            return
        chain = otlp_chain(scope)
        if chain is not None:
            await serve_otlp_traces(self.state.audit_trail, scope, receive, send, chain)
            return
        await self.guard(scope, receive, send)


def plain_dsn(url: str) -> str:
    for prefix in ("postgresql+asyncpg://", "postgres://"):
        if url.startswith(prefix):
            return "postgresql://" + url[len(prefix) :]
    return url
