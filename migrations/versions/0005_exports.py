"""Export jobs and their bundles (kept in the database so any replica can serve a download).

Revision ID: 0005_exports
Revises: 0004_privacy
Create Date: 2026-11-26
"""

from alembic import op

revision = "0005_exports"
down_revision = "0004_privacy"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        # A job is not a record of the ledger: it changes state while it runs and its bundle is
        # deleted when it expires. What was exported, and by whom, is on the access chain.
        """
        CREATE TABLE exports (
            id text PRIMARY KEY,
            tenant_id bigint NOT NULL REFERENCES tenants (id),
            chain_id bigint NOT NULL REFERENCES chains (id),
            requested_by text NOT NULL,
            selection jsonb NOT NULL,
            status text NOT NULL CHECK (status IN ('running', 'ready', 'failed')),
            checkpoint_size bigint NOT NULL,
            total bigint NOT NULL,
            done bigint NOT NULL DEFAULT 0,
            bytes bigint,
            sha256 text,
            error text,
            created_at timestamptz NOT NULL DEFAULT now(),
            finished_at timestamptz,
            expires_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX exports_tenant ON exports (tenant_id, created_at DESC)",
        """
        CREATE TABLE export_chunks (
            export_id text NOT NULL REFERENCES exports (id) ON DELETE CASCADE,
            seq integer NOT NULL,
            data bytea NOT NULL,
            PRIMARY KEY (export_id, seq)
        )
        """,
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON exports, export_chunks TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE export_chunks")
    op.execute("DROP TABLE exports")
