"""What one worker process holds for its lifetime, and the request dependencies that reach it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import TYPE_CHECKING, Annotated

import httpx
from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from http_edge.readiness import Readiness
from sqlalchemy.ext.asyncio import AsyncEngine

from decision_log.auth import (
    ApiKeyAuthenticator,
    Clock,
    refuse_url_key,
    tenant_caller,
    witness_caller,
)
from decision_log.chains.checkpointer import Checkpointer
from decision_log.chains.service import ChainDirectory
from decision_log.events.appender import GroupCommitter
from decision_log.ingest.settings import IngestSettingsCache
from decision_log.keys.service import Principal, Witness
from decision_log.privacy.service import PersonalData
from decision_log.settings import Settings
from decision_log.signing import LogSigner, ReceiptSigner
from decision_log.verifier_client import VerifierClient

if TYPE_CHECKING:  # the export runner's module needs this one
    from decision_log.exports.service import ExportRunner


@dataclass(frozen=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    signer: LogSigner
    receipts: ReceiptSigner
    clock: Clock
    authenticator: ApiKeyAuthenticator
    committer: GroupCommitter
    checkpointer: Checkpointer
    directory: ChainDirectory
    personal_data: PersonalData
    http: httpx.AsyncClient
    verifier: VerifierClient
    exports: ExportRunner
    readiness: Readiness
    ingest: IngestSettingsCache


async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.audit_trail
    return state


State = Annotated[AppState, Depends(app_state)]


bearer = HTTPBearer(auto_error=False, description="An API key: Authorization: Bearer atk_...")


async def any_caller(
    request: Request,
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Principal | Witness:
    refuse_url_key(request.scope.get("query_string", b""))
    return await state.authenticator.authenticate(
        None if credentials is None else credentials.credentials
    )


async def caller(found: Annotated[Principal | Witness, Depends(any_caller)]) -> Principal:
    return tenant_caller(found)


async def witness(found: Annotated[Principal | Witness, Depends(any_caller)]) -> Witness:
    return witness_caller(found)


Caller = Annotated[Principal, Depends(caller)]
WitnessCaller = Annotated[Witness, Depends(witness)]
