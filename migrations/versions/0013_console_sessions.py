"""Sessions of the auditor console, kept in PostgreSQL so that any worker or replica serves them.

A session row holds the SHA-256 of the random id in the browser's cookie (a stolen table opens no
session), the id of the API key that signed in (never the key: every request checks that key
again, so a session dies as soon as its key is revoked or expires), the session's CSRF token and
the times that bound it (idle and absolute timeouts, settings of the decision_log). Expired rows
are deleted by the log (``console.sessions.forget_expired``).

Revision ID: 0013_console_sessions
Revises: 0012_decision_source
Create Date: 2026-12-02
"""

from alembic import op

revision = "0013_console_sessions"
down_revision = "0012_decision_source"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        """
        CREATE TABLE console_sessions (
            id_hash bytea PRIMARY KEY CHECK (octet_length(id_hash) = 32),
            tenant_id bigint NOT NULL REFERENCES tenants (id) ON DELETE CASCADE,
            key_id text NOT NULL,
            csrf_token text NOT NULL,
            created_at timestamptz NOT NULL,
            last_seen_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX console_sessions_last_seen ON console_sessions (last_seen_at)",
        "CREATE INDEX console_sessions_created ON console_sessions (created_at)",
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON console_sessions TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE console_sessions")
