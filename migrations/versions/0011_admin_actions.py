"""Administrative actions waiting to be appended to their tenant's access chain.

An action (a key created, changed or revoked; a chain created; a witness registered or revoked;
retention, holds, erasure) writes its record here in the same transaction as the change itself,
so no change commits without its record. The log then appends each record to the tenant's
``access-log`` chain, where it is hash-chained, proved and cosigned like any entry, and deletes
it here; an append repeated after a crash is answered from the first (the record's id is its
event id). The action's own transaction cannot append: appends go through the chain's group
commit.

Revision ID: 0011_admin_actions
Revises: 0010_producer_read_model
Create Date: 2026-12-02
"""

from alembic import op

revision = "0011_admin_actions"
down_revision = "0010_producer_read_model"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        """
        CREATE TABLE admin_actions_pending (
            id uuid PRIMARY KEY,
            tenant_id bigint NOT NULL REFERENCES tenants (id),
            recorded_at timestamptz NOT NULL,
            data jsonb NOT NULL
        )
        """,
        "CREATE INDEX admin_actions_pending_order ON admin_actions_pending (recorded_at)",
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                -- UPDATE only because SELECT ... FOR UPDATE asks for it; rows are never updated.
                GRANT SELECT, INSERT, UPDATE, DELETE ON admin_actions_pending TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE admin_actions_pending")
