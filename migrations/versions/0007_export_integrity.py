"""Exports that refuse what does not verify; the log's checks of its read model.

An export refused while it builds ends ``failed`` with the problem it was refused with
(``problem``: the RFC 9457 body, an integrity-failure naming the entry and the check). One built
under an administrator's override keeps the reason and what failed (``override_reason``,
``overridden``); the same is printed at the top of its bundle and the override is on the access
chain.

``projection_checks``: one row per run of ``audit-trail projections verify`` (on a schedule in the
decision_log, or as a CronJob), with the mismatches it reported between the read model and a
rebuild of it from the entries. Like the read model it is the log's own bookkeeping, not part of
the ledger: old rows are deleted.

Revision ID: 0007_export_integrity
Revises: 0006_projection_status
Create Date: 2026-12-03
"""

from alembic import op

revision = "0007_export_integrity"
down_revision = "0006_projection_status"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        """
        ALTER TABLE exports
            ADD COLUMN problem jsonb,
            ADD COLUMN override_reason text,
            ADD COLUMN overridden jsonb
        """,
        """
        CREATE TABLE projection_checks (
            id bigserial PRIMARY KEY,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            chains integer NOT NULL,
            entries bigint NOT NULL,
            mismatch_count bigint NOT NULL,
            mismatches jsonb NOT NULL
        )
        """,
        "CREATE INDEX projection_checks_recent ON projection_checks (started_at DESC)",
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON exports TO {WRITER_ROLE};
                GRANT SELECT, INSERT, DELETE ON projection_checks TO {WRITER_ROLE};
                GRANT USAGE ON SEQUENCE projection_checks_id_seq TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE projection_checks")
    op.execute(
        "ALTER TABLE exports DROP COLUMN problem, DROP COLUMN override_reason, "
        "DROP COLUMN overridden"
    )
