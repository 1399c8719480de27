"""Exports: create one, follow it, download it, read its report."""

from __future__ import annotations

from fastapi import Request
from fastapi.responses import RedirectResponse, Response, StreamingResponse

from decision_log.boundary import ExportId
from decision_log.chains import service as chains
from decision_log.console import bundle_report, csrf, export_form
from decision_log.console.pages import SECURITY_HEADERS, form_fields, printable, render
from decision_log.console.routing import PREFIX, Session, console_router
from decision_log.exports import service as exports
from decision_log.state import State

router = console_router()


@router.get("/exports")
async def exports_page(request: Request, state: State, session: Session) -> Response:
    principal = session.principal
    jobs = await exports.list_exports(state, principal)
    async with state.engine.connect() as connection:
        chain_rows = await chains.list_chains(connection, tenant_id=principal.tenant_id)
    chain_names = [r.slug for r in chain_rows if principal.may_use_chain(r.slug)]
    chosen = [
        printable(value, name="decision_id")
        for value in request.query_params.getlist("decision_id")
    ]
    return render(
        request,
        "exports.html",
        session=session,
        jobs=jobs,
        chains=chain_names,
        chosen_chain=request.query_params.get("chain"),
        chosen=chosen,
    )


@router.post("/exports")
async def create_export(request: Request, state: State, session: Session) -> Response:
    fields = await form_fields(request)
    csrf.check_token(expected=session.csrf_token, given=fields.get(csrf.FIELD))
    chain, export_request = export_form.export_request(fields)
    job = await exports.create_export(state, session.principal, chain=chain, request=export_request)
    return RedirectResponse(f"{PREFIX}/exports/{job.id}", status_code=303, headers=SECURITY_HEADERS)


@router.get("/exports/{export_id}")
async def export_page(
    request: Request, state: State, session: Session, export_id: ExportId
) -> Response:
    job = await exports.get_export(state, session.principal, export_id=export_id)
    return render(request, "export.html", session=session, job=job)


@router.get("/exports/{export_id}/bundle")
async def export_bundle(state: State, session: Session, export_id: ExportId) -> Response:
    job, chunks = await exports.open_bundle(state, session.principal, export_id=export_id)
    headers = SECURITY_HEADERS | {
        "Content-Disposition": f'attachment; filename="{job.chain}-{export_id}.zip"'
    }
    return StreamingResponse(chunks, media_type="application/zip", headers=headers)


@router.get("/exports/{export_id}/report")
async def export_report(state: State, session: Session, export_id: ExportId) -> Response:
    job, chunks = await exports.open_bundle(state, session.principal, export_id=export_id)
    html = await bundle_report.report_html(chunks, size=job.bytes)
    return Response(
        html, media_type="text/html; charset=utf-8", headers=bundle_report.REPORT_HEADERS
    )
