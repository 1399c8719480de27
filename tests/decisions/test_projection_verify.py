"""`audit-trail projections verify`: the read model rebuilt from the entries in scratch tables
and compared with the live one. Rows edited in place, edited out of a filter, lost, or lost from
a timeline (which a selective export would then miss) are each reported as a
projection-mismatch with the chain, the decision, the column, what the entries say and what the
read model holds; nothing else is, and the live read model is left as it was."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta

import asyncpg
import httpx
import pytest
from decision_log.db import create_engine
from decision_log.decisions.verification import (
    ReadModelMismatch,
    ScheduledVerification,
    verify_projections,
)
from decision_log.settings import Settings
from decision_log.signing import LogSigner
from sqlalchemy.ext.asyncio import AsyncEngine
from typer.testing import CliRunner

from tests.decisions.helpers import (
    deployed,
    genai_span,
    overridden,
    projected,
    recorded,
    reviewed,
)
from tests.decisions.read_model import reproject
from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import append, headers


def now() -> datetime:
    return datetime.now(UTC)


async def history(client: httpx.AsyncClient, database_url: str, signer: LogSigner) -> TenantKeys:
    tenant = await make_tenant(database_url, signer)
    events = [deployed(), *(recorded(f"loan-{i}") for i in range(1, 6))]
    events += [reviewed("loan-2"), overridden("loan-3"), reviewed("loan-2")]
    response = await append(client, tenant.producer, tenant.chain, events, batch=True)
    assert response.status_code == 201, response.text
    await projected(database_url)
    return tenant


async def chain_id_of(database_url: str, tenant: TenantKeys) -> int:
    connection = await asyncpg.connect(database_url)
    try:
        found = await connection.fetchval(
            "SELECT c.id FROM chains c JOIN tenants t ON t.id = c.tenant_id "
            "WHERE t.slug = $1 AND c.slug = $2",
            tenant.tenant,
            tenant.chain,
        )
        return int(found)
    finally:
        await connection.close()


async def edit_read_model(database_url: str, chain: int, *statements: str) -> None:
    connection = await asyncpg.connect(database_url)
    try:
        for statement in statements:
            await connection.execute(statement, chain)
    finally:
        await connection.close()


@pytest.fixture
async def engine(settings: Settings) -> AsyncIterator[AsyncEngine]:
    made = create_engine(settings.database_url, role=settings.db_role, pool_size=2)
    yield made
    await made.dispose()


async def test_an_untouched_read_model_agrees_with_its_entries(
    client: httpx.AsyncClient, database_url: str, signer: LogSigner, engine: AsyncEngine
) -> None:
    tenant = await history(client, database_url, signer)
    chain = await chain_id_of(database_url, tenant)
    check = await verify_projections(engine, clock=now, chain_ids=[chain])
    assert check is not None
    assert (check.chains, check.entries, check.mismatch_count) == (1, 9, 0)
    assert check.mismatches == []


async def test_every_edit_of_the_read_model_is_a_mismatch(
    client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    engine: AsyncEngine,
    caplog: pytest.LogCaptureFixture,
) -> None:
    tenant = await history(client, database_url, signer)
    chain = await chain_id_of(database_url, tenant)
    await edit_read_model(
        database_url,
        chain,
        # The state says approved, the proven event declined.
        "UPDATE decisions SET current_decision = 'approved' "
        "WHERE chain_id = $1 AND decision_id = 'loan-1'",
        # Edited out of a filter: a search by the real model no longer finds it.
        "UPDATE decisions SET model_name = 'other-model' "
        "WHERE chain_id = $1 AND decision_id = 'loan-4'",
        # A review lost from a timeline: an export of the decision would miss it.
        "DELETE FROM decision_events WHERE chain_id = $1 AND decision_id = 'loan-2' "
        "AND idx = (SELECT min(idx) FROM decision_events WHERE chain_id = $1 "
        "AND decision_id = 'loan-2' AND event_type LIKE '%reviewed%')",
        # A decision gone altogether, and a deployment that never happened.
        "DELETE FROM decisions WHERE chain_id = $1 AND decision_id = 'loan-5'",
        "INSERT INTO model_deployments (chain_id, model_name, model_version, idx) "
        "VALUES ($1, 'credit-gbm', '9.9.9', 3)",
    )
    searched = await client.get(
        "/v1/decisions",
        params={"model_name": "credit-gbm", "chain": tenant.chain},
        headers=headers(tenant.auditor),
    )
    assert "loan-4" not in searched.text  # what an auditor would not see

    with caplog.at_level(logging.ERROR, logger="decision_log.decisions.verification"):
        check = await verify_projections(engine, clock=now, chain_ids=[chain])
    assert check is not None
    found = {(m.decision_id, m.column): m for m in check.mismatches}
    names = (tenant.tenant, tenant.chain)
    assert found[("loan-1", "current_decision")] == ReadModelMismatch(
        *names, "loan-1", "current_decision", "declined", "approved"
    )
    assert found[("loan-4", "model_name")] == ReadModelMismatch(
        *names, "loan-4", "model_name", "credit-gbm", "other-model"
    )
    lost = found[("loan-2", "timeline")]
    assert lost.expected is not None and "reviewed" in lost.expected and lost.found is None
    assert found[("loan-5", "row")].expected == "a row" and found[("loan-5", "row")].found is None
    assert found[(None, "model_deployments")].found == "credit-gbm 9.9.9 at entry 3"
    assert len(check.mismatches) == check.mismatch_count == 5
    assert all(m.kind == "projection-mismatch" for m in check.mismatches)
    # An operator sees it: one ERROR line per mismatch, with the details, and a summary.
    logged = [r.getMessage() for r in caplog.records if r.levelno == logging.ERROR]
    assert any(
        f"projection-mismatch in {tenant.tenant}/{tenant.chain} decision 'loan-1', "
        "current_decision: expected 'declined', found 'approved'" in line
        for line in logged
    ), logged
    assert any("5 mismatches" in line for line in logged)
    # The run is on record, and the live read model is left as it was.
    connection = await asyncpg.connect(database_url)
    try:
        recorded_count = await connection.fetchval(
            "SELECT mismatch_count FROM projection_checks ORDER BY id DESC LIMIT 1"
        )
        model = await connection.fetchval(
            "SELECT model_name FROM decisions WHERE chain_id = $1 AND decision_id = 'loan-4'",
            chain,
        )
    finally:
        await connection.close()
    assert (recorded_count, model) == (5, "other-model")
    await reproject(database_url, chain)
    check = await verify_projections(engine, clock=now, chain_ids=[chain])
    assert check is not None and check.mismatch_count == 0


def test_the_command_exits_non_zero_on_a_mismatch(
    database_url: str, signer: LogSigner, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The CLI as the CronJob runs it: JSON on stdout, exit 1 when the read model disagrees."""
    from audit_trail.cli import app as cli

    async def prepare() -> TenantKeys:
        tenant = await make_tenant(database_url, signer)
        chain = await chain_id_of(database_url, tenant)
        # A decision no entry of the chain records.
        await edit_read_model(
            database_url,
            chain,
            "INSERT INTO decisions (chain_id, decision_id, tenant_id, decided_at, received_at, "
            "reviewed, overridden, contested, last_idx) SELECT $1, 'invented', tenant_id, "
            "now(), now(), false, false, false, 0 FROM chains WHERE id = $1",
        )
        return tenant

    tenant = asyncio.run(prepare())
    monkeypatch.setenv("DATABASE_URL", database_url)
    result = CliRunner().invoke(cli, ["projections", "verify", "--tenant", tenant.tenant])
    assert result.exit_code == 1, result.output
    assert '"decision_id": "invented"' in result.output and '"column": "row"' in result.output

    async def restore() -> None:
        await reproject(database_url, await chain_id_of(database_url, tenant))

    asyncio.run(restore())


async def test_the_schedule_runs_once_a_period_whatever_the_processes(
    settings: Settings, engine: AsyncEngine
) -> None:
    """Every decision_log process runs the loop; a run started less than a period ago (by any
    of them) makes the others skip theirs."""
    connection = await asyncpg.connect(settings.database_url)
    try:
        await connection.execute(
            "INSERT INTO projection_checks (started_at, finished_at, chains, entries, "
            "mismatch_count, mismatches) VALUES (now(), now(), 0, 0, 0, '[]')"
        )
    finally:
        await connection.close()
    hourly = ScheduledVerification(engine=engine, period_seconds=3600, clock=now)
    assert await hourly.verify_if_due() is None
    later = ScheduledVerification(
        engine=engine,
        period_seconds=3600,
        clock=lambda: now() + timedelta(hours=1),
    )
    assert await later.verify_if_due() is not None


async def test_an_edited_genai_span_is_a_mismatch(
    client: httpx.AsyncClient, database_url: str, signer: LogSigner, engine: AsyncEngine
) -> None:
    tenant = await make_tenant(database_url, signer)
    trace = "ab" * 16
    spans = [
        genai_span(trace, "a" * 16, operation="invoke_agent", gen_ai__agent__name="support"),
        genai_span(trace, "b" * 16, parent="a" * 16, gen_ai__request__model="gpt-x"),
    ]
    response = await append(client, tenant.producer, tenant.chain, spans, batch=True)
    assert response.status_code == 201, response.text
    await projected(database_url)
    chain = await chain_id_of(database_url, tenant)
    check = await verify_projections(engine, clock=now, chain_ids=[chain])
    assert check is not None and check.mismatch_count == 0
    await edit_read_model(
        database_url,
        chain,
        # The model a span called, changed: a search by model would now mislead.
        "UPDATE genai_spans SET request_model = 'other' WHERE chain_id = $1 AND span_id = "
        f"'{'b' * 16}'",
    )
    check = await verify_projections(engine, clock=now, chain_ids=[chain])
    assert check is not None
    span = f"span {trace}-{'b' * 16}"
    assert [(m.column, m.expected, m.found) for m in check.mismatches] == [
        ("genai_spans", span, span + " (differs)")
    ]
