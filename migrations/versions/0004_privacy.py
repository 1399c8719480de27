"""Personal data: per-subject data keys (wrapped), pseudonyms on entries, retention, legal holds.

Revision ID: 0004_privacy
Revises: 0003_decisions
Create Date: 2026-11-26
"""

from alembic import op

revision = "0004_privacy"
down_revision = "0003_decisions"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        # The keyed-HMAC pseudonym of the event's data subject; never the raw identifier.
        "ALTER TABLE entries ADD COLUMN data_subject text",
        "CREATE INDEX entries_data_subject ON entries (chain_id, data_subject) "
        "WHERE data_subject IS NOT NULL",
        # One data key per (tenant, data subject), stored only wrapped under a key-encryption
        # key kept outside the database. Erasure sets wrapped_key to NULL: the row stays as the
        # record that the key existed and was destroyed.
        """
        CREATE TABLE subject_keys (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id bigint NOT NULL REFERENCES tenants (id),
            pseudonym text NOT NULL,
            kid text NOT NULL UNIQUE,
            wrapped_key bytea,
            kek_id text,
            created_at timestamptz NOT NULL DEFAULT now(),
            destroyed_at timestamptz,
            CHECK ((wrapped_key IS NULL) = (destroyed_at IS NOT NULL))
        )
        """,
        "CREATE UNIQUE INDEX subject_keys_live ON subject_keys (tenant_id, pseudonym) "
        "WHERE destroyed_at IS NULL",
        "CREATE INDEX subject_keys_kek ON subject_keys (kek_id) WHERE wrapped_key IS NOT NULL",
        # AI Act Art. 19(1) and 26(6): logs are kept at least six months.
        "ALTER TABLE chains ADD COLUMN retention_days integer NOT NULL DEFAULT 183 "
        "CHECK (retention_days >= 183)",
        """
        CREATE TABLE legal_holds (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            chain_id bigint NOT NULL REFERENCES chains (id),
            reason text NOT NULL,
            set_by text NOT NULL,
            set_at timestamptz NOT NULL DEFAULT now(),
            lifted_by text,
            lifted_at timestamptz,
            lift_reason text
        )
        """,
        "CREATE INDEX legal_holds_active ON legal_holds (chain_id) WHERE lifted_at IS NULL",
        "ALTER TABLE api_keys DROP CONSTRAINT api_keys_owner_and_roles",
        """
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_owner_and_roles CHECK (
            (tenant_id IS NOT NULL AND witness_id IS NULL AND cardinality(roles) > 0
                AND roles <@ ARRAY['producer', 'auditor', 'admin', 'personal-data']::text[])
            OR (tenant_id IS NULL AND witness_id IS NOT NULL AND roles = ARRAY['witness']::text[])
        )
        """,
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE ON subject_keys, legal_holds TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "ALTER TABLE api_keys DROP CONSTRAINT api_keys_owner_and_roles",
        """
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_owner_and_roles CHECK (
            (tenant_id IS NOT NULL AND witness_id IS NULL AND cardinality(roles) > 0
                AND roles <@ ARRAY['producer', 'auditor', 'admin']::text[])
            OR (tenant_id IS NULL AND witness_id IS NOT NULL AND roles = ARRAY['witness']::text[])
        )
        """,
        "DROP TABLE legal_holds",
        "ALTER TABLE chains DROP COLUMN retention_days",
        "DROP TABLE subject_keys",
        "ALTER TABLE entries DROP COLUMN data_subject",
    ):
        op.execute(statement)
