"""A chain whose checkpoint cannot be signed never holds back the others' (invariant 8).

The database is made to refuse one chain's checkpoints for real (a trigger, as a fault in that
chain's stored state would); the chains after it in the checkpointer's order still get theirs,
and the refused chain gets its own once the fault is gone."""

from __future__ import annotations

import asyncpg
import httpx
from decision_log.chains.checkpointer import Checkpointer
from decision_log.db import create_engine
from decision_log.signing import LogSigner

from tests.service.conftest import make_tenant
from tests.service.helpers import append, decision_event, wait_for_checkpoint
from tests.verifier import tamper


async def test_one_chain_that_cannot_be_checkpointed_holds_back_no_other(
    client: httpx.AsyncClient, database_url: str, signer: LogSigner
) -> None:
    refused = await make_tenant(database_url, signer)
    later = await make_tenant(database_url, signer)  # created after: signed after, by id
    connection = await asyncpg.connect(database_url)
    try:
        refused_id = await tamper.chain_id(connection, refused.tenant, refused.chain)
        await connection.execute(
            "CREATE FUNCTION test_refuse_checkpoint() RETURNS trigger LANGUAGE plpgsql AS $$ "
            f"BEGIN IF NEW.chain_id = {refused_id} THEN "
            "RAISE EXCEPTION 'checkpoint refused by the test'; END IF; RETURN NEW; END $$"
        )
        await connection.execute(
            "CREATE TRIGGER test_refuse_checkpoint BEFORE INSERT ON checkpoints "
            "FOR EACH ROW EXECUTE FUNCTION test_refuse_checkpoint()"
        )
        try:
            for keys in (refused, later):
                answer = await append(client, keys.producer, keys.chain, decision_event())
                assert answer.status_code == 201, answer.text
            await wait_for_checkpoint(client, later.auditor, later.chain, size=1)
            # One pass over both, as after a restart's sweep: the refused chain comes first by
            # id; the pass goes on past it, and keeps it for the next.
            engine = create_engine(database_url, role="audit_trail_writer", pool_size=2)
            try:
                checkpointer = Checkpointer(engine=engine, signer=signer, interval_seconds=1)
                later_id = await tamper.chain_id(connection, later.tenant, later.chain)
                checkpointer.mark_grown(later_id)
                checkpointer.mark_grown(refused_id)
                await checkpointer.sign_pending()
                assert checkpointer._dirty == {refused_id}
            finally:
                await engine.dispose()
            size = await connection.fetchval(
                "SELECT max(size) FROM checkpoints WHERE chain_id = $1", refused_id
            )
            assert size == 0
        finally:
            await connection.execute("DROP TRIGGER test_refuse_checkpoint ON checkpoints")
            await connection.execute("DROP FUNCTION test_refuse_checkpoint()")
        await wait_for_checkpoint(client, refused.auditor, refused.chain, size=1)
    finally:
        await connection.close()
