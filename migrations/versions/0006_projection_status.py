"""Projection status: each chain's failure and unprojectable entries; unprojectable fields.

The projector isolates a failure to its chain: while ``error`` is set, the chain's read model
stops at ``next_idx`` (the entry it could not project), ``attempts`` counts the failed tries
since ``first_failed_at``, and the chain is tried again from ``retry_at`` on (backoff, not every
pass). The first pass that makes progress clears all five. Entries no read-model key can hold
(see decisions/projection.py) are left out and counted. A decision lists in ``unprojectable``
the columns an event gave a value for that the column cannot take (NUL, over-long, a time out of
range), which are NULL (``decided_at``: the receive time) instead.

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
            ADD COLUMN error text,
            ADD COLUMN attempts integer NOT NULL DEFAULT 0 CHECK (attempts >= 0),
            ADD COLUMN first_failed_at timestamptz,
            ADD COLUMN last_failed_at timestamptz,
            ADD COLUMN retry_at timestamptz,
            ADD COLUMN unprojectable_entries bigint NOT NULL DEFAULT 0,
            ADD COLUMN last_unprojectable_idx bigint
        """,
        # /readyz counts the failing chains on every probe; failing chains are few.
        "CREATE INDEX projection_positions_failing ON projection_positions (chain_id) "
        "WHERE error IS NOT NULL",
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
    op.execute("DROP INDEX projection_positions_failing")
    op.execute(
        """
        ALTER TABLE projection_positions
            DROP COLUMN error,
            DROP COLUMN attempts,
            DROP COLUMN first_failed_at,
            DROP COLUMN last_failed_at,
            DROP COLUMN retry_at,
            DROP COLUMN unprojectable_entries,
            DROP COLUMN last_unprojectable_idx
        """
    )
