"""Per-chain ingest settings: the event size limit, what an over-limit body becomes, and how
GenAI message content is kept.

A chain without a row takes the service's defaults (``AUDIT_TRAIL_MAX_EVENT_BYTES``, refuse,
seal per ``enduser.id``). Unlike the ledger tables, a row here is changed in place: each change
is also recorded as a ``dev.audit-trail.chain.ingest-configured.v1`` event in the chain itself,
so the log says from which index on bodies were kept as digests.

Revision ID: 0009_chain_ingest_settings
Revises: 0008_idempotency_with_type
Create Date: 2026-12-02
"""

from alembic import op

revision = "0009_chain_ingest_settings"
down_revision = "0008_idempotency_with_type"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        """
        CREATE TABLE chain_ingest_settings (
            chain_id bigint PRIMARY KEY REFERENCES chains (id),
            max_event_bytes integer NOT NULL CHECK (max_event_bytes >= 1024),
            oversize text NOT NULL CHECK (oversize IN ('refuse', 'digest')),
            genai_content text NOT NULL CHECK (genai_content IN ('seal', 'keep')),
            genai_subject_attribute text NOT NULL
                CHECK (length(genai_subject_attribute) BETWEEN 1 AND 128),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """,
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE ON chain_ingest_settings TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE chain_ingest_settings")
