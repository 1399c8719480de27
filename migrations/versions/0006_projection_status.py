"""Projection status: each chain's unprojectable entries; a decision's unprojectable fields.

Entries no read-model key can hold (see decisions/projection.py) are left out and counted per
chain. A decision lists in ``unprojectable`` the columns an event gave a value for that the
column cannot take (NUL, over-long, a time out of range), which are NULL (``decided_at``: the
receive time) instead.

Adding columns with constant defaults rewrites no table (PostgreSQL 11+).

Revision ID: 0006_projection_status
Revises: 0005_exports
Create Date: 2026-12-02
"""

from alembic import op

revision = "0006_projection_status"
down_revision = "0005_exports"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        """
        ALTER TABLE projection_positions
            ADD COLUMN unprojectable_entries bigint NOT NULL DEFAULT 0,
            ADD COLUMN last_unprojectable_idx bigint
        """,
        "ALTER TABLE decisions ADD COLUMN unprojectable text[] NOT NULL DEFAULT '{}'",
        # Table grants (0003_decisions) already cover new columns; granted again so that this
        # migration, like each one before it, grants the writer role what it touches.
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE
                    ON decisions, projection_positions TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("ALTER TABLE decisions DROP COLUMN unprojectable")
    op.execute(
        """
        ALTER TABLE projection_positions
            DROP COLUMN unprojectable_entries,
            DROP COLUMN last_unprojectable_idx
        """
    )
