"""Export bundles (auditor key): ask for one, follow its progress, download it."""

from __future__ import annotations

import base64
from typing import Any

from fastapi import APIRouter, Response
from fastapi.responses import StreamingResponse

from decision_log.boundary import ChainSlug, ExportId
from decision_log.exports import service
from decision_log.exports.schemas import ExportJob, ExportList, ExportRequest
from decision_log.state import Caller, State

router = APIRouter(tags=["exports"])

_ERRORS: dict[int | str, dict[str, Any]] = {
    400: {"description": "Invalid request (the problem body names the field)"},
    403: {"description": "The key lacks the auditor role"},
    404: {"description": "No such chain, decision or export for this key"},
}


@router.post(
    "/v1/chains/{chain}/exports",
    response_model=ExportJob,
    status_code=201,
    summary="Export a range, a time span or chosen decisions as a signed bundle "
    "(201 when built at once, 202 while it builds)",
    responses={
        **_ERRORS,
        202: {"model": ExportJob, "description": "Building; poll the job"},
        403: {
            "description": "The key lacks the auditor role (or, with override_reason, the "
            "admin role)"
        },
        409: {
            "description": "Refused: integrity-failure (an entry does not verify, naming its "
            "index and check, or the verifier has an unacknowledged finding: check "
            "verifier-finding), verifier-unavailable (no verifier configured or answering), "
            "or projection-mismatch (the read model's timeline of a decision disagrees with "
            "itself). An administrator may override with override_reason."
        },
    },
)
async def create_export(
    chain: ChainSlug,
    request: ExportRequest,
    state: State,
    principal: Caller,
    response: Response,
) -> ExportJob:
    export = await service.create_export(
        state,
        principal,
        chain=chain,
        request=request,
    )
    if export.status == "running":
        response.status_code = 202
    response.headers["Location"] = f"/v1/exports/{export.id}"
    return export


@router.get("/v1/exports", response_model=ExportList, summary="This tenant's exports, newest first")
async def list_exports(state: State, principal: Caller) -> ExportList:
    return ExportList(exports=await service.list_exports(state, principal))


@router.get(
    "/v1/exports/{export_id}", response_model=ExportJob, summary="One export: status, progress"
)
async def get_export(export_id: ExportId, state: State, principal: Caller) -> ExportJob:
    return await service.get_export(state, principal, export_id=export_id)


@router.get(
    "/v1/exports/{export_id}/bundle",
    summary="Download a finished bundle (application/zip; the download is logged)",
    response_class=StreamingResponse,
    responses={
        **_ERRORS,
        200: {"content": {"application/zip": {}}, "description": "The bundle"},
        409: {"description": "The export is not ready (still building, or failed)"},
    },
)
async def download_bundle(
    export_id: ExportId, state: State, principal: Caller
) -> StreamingResponse:
    export, chunks = await service.open_bundle(state, principal, export_id=export_id)
    digest = base64.b64encode(bytes.fromhex(export.sha256 or "")).decode()
    return StreamingResponse(
        chunks,
        media_type="application/zip",
        headers={
            "Content-Length": str(export.bytes),
            "Content-Disposition": f'attachment; filename="{export.chain}-{export_id}.zip"',
            # RFC 9530: the digest of the whole bundle as a structured field (base64).
            "Repr-Digest": f"sha-256=:{digest}:",
        },
    )
