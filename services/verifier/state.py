"""What the verifier process holds for its lifetime, and the request dependencies that reach it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Annotated

from fastapi import Depends, Request
from fastapi.security import HTTPAuthorizationCredentials, HTTPBearer
from http_edge.readiness import Readiness
from sqlalchemy.ext.asyncio import AsyncEngine

from verifier.auth import Caller, CallerAuthenticator
from verifier.limits import OnDemandLimiter
from verifier.log_client import LogClient
from verifier.service import ChainVerifier
from verifier.settings import Settings
from verifier.signing import VerifierSigner
from verifier.sweep import Sweeper
from verifier.worker import Worker


@dataclass(frozen=True)
class AppState:
    settings: Settings
    engine: AsyncEngine
    log_client: LogClient
    signer: VerifierSigner
    verifier: ChainVerifier
    sweeper: Sweeper
    worker: Worker
    authenticator: CallerAuthenticator
    on_demand: OnDemandLimiter
    readiness: Readiness


async def app_state(request: Request) -> AppState:
    state: AppState = request.app.state.verifier
    return state


State = Annotated[AppState, Depends(app_state)]

bearer = HTTPBearer(
    auto_error=False, description="A tenant API key of the decision_log (auditor or admin role)"
)


async def caller(
    state: State,
    credentials: Annotated[HTTPAuthorizationCredentials | None, Depends(bearer)],
) -> Caller:
    return await state.authenticator.authenticate(
        None if credentials is None else credentials.credentials
    )


AuditorCaller = Annotated[Caller, Depends(caller)]
