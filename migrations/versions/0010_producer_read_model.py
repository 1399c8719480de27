"""The read model of model servers' and agents' decisions: GenAI columns and spans.

``decisions`` gains the agent, model provider and conversation of a GenAI decision, indexed as
the other search columns are (each index ends in the search's sort key; see 0003_decisions).
``genai_spans`` keeps every GenAI span's parent and the decision it belongs to, so that a
span that arrives after its children can gather them (decisions/genai.py), and the tools each
decision called, for search by tool. Like the rest of the read model it is rebuilt from the
entries alone.

Revision ID: 0010_producer_read_model
Revises: 0009_chain_ingest_settings
Create Date: 2026-12-02
"""

from alembic import op

revision = "0010_producer_read_model"
down_revision = "0009_chain_ingest_settings"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        "ALTER TABLE decisions ADD COLUMN genai_agent text, ADD COLUMN genai_provider text, "
        "ADD COLUMN genai_conversation text",
        "CREATE INDEX decisions_by_agent ON decisions "
        "(tenant_id, genai_agent, decided_at, chain_id, decision_id) WHERE genai_agent IS NOT NULL",
        "CREATE INDEX decisions_by_provider ON decisions "
        "(tenant_id, genai_provider, decided_at, chain_id, decision_id) "
        "WHERE genai_provider IS NOT NULL",
        "CREATE INDEX decisions_by_conversation ON decisions "
        "(tenant_id, genai_conversation, decided_at, chain_id, decision_id) "
        "WHERE genai_conversation IS NOT NULL",
        """
        CREATE TABLE genai_spans (
            chain_id bigint NOT NULL,
            trace_id text NOT NULL,
            span_id text NOT NULL,
            parent_span_id text,
            decision_span_id text NOT NULL,
            decision_id text NOT NULL,
            idx bigint NOT NULL,
            received_at timestamptz NOT NULL,
            started_at timestamptz NOT NULL,
            operation text,
            service text,
            agent_name text,
            provider text,
            request_model text,
            response_model text,
            conversation text,
            tool_name text,
            input_tokens bigint,
            output_tokens bigint,
            PRIMARY KEY (chain_id, trace_id, span_id)
        )
        """,
        "CREATE INDEX genai_spans_by_tool ON genai_spans (tool_name, chain_id, decision_id) "
        "WHERE tool_name IS NOT NULL",
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON decisions, genai_spans
                    TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE genai_spans")
    op.execute(
        "ALTER TABLE decisions DROP COLUMN genai_agent, DROP COLUMN genai_provider, "
        "DROP COLUMN genai_conversation"
    )
