"""Witnesses: registered verifier identities, their API keys, and the cosignatures they post.

Revision ID: 0002_witnesses
Revises: 0001_ledger
Create Date: 2026-11-26
"""

from alembic import op

revision = "0002_witnesses"
down_revision = "0001_ledger"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"


def upgrade() -> None:
    for statement in (
        """
        CREATE TABLE witnesses (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL UNIQUE,
            verifier_key text NOT NULL UNIQUE,
            created_at timestamptz NOT NULL DEFAULT now(),
            revoked_at timestamptz
        )
        """,
        # A key belongs to a tenant or to a witness, never both: a witness sees every chain's
        # entries and checkpoints and may post cosignatures, and nothing else.
        "ALTER TABLE api_keys ALTER COLUMN tenant_id DROP NOT NULL",
        "ALTER TABLE api_keys ADD COLUMN witness_id bigint REFERENCES witnesses (id)",
        "ALTER TABLE api_keys DROP CONSTRAINT api_keys_roles_check",
        """
        ALTER TABLE api_keys ADD CONSTRAINT api_keys_owner_and_roles CHECK (
            (tenant_id IS NOT NULL AND witness_id IS NULL AND cardinality(roles) > 0
                AND roles <@ ARRAY['producer', 'auditor', 'admin']::text[])
            OR (tenant_id IS NULL AND witness_id IS NOT NULL AND roles = ARRAY['witness']::text[])
        )
        """,
        # One cosignature per witness per checkpoint; checked by the log before it is stored.
        """
        CREATE TABLE cosignatures (
            chain_id bigint NOT NULL,
            size bigint NOT NULL,
            witness_id bigint NOT NULL REFERENCES witnesses (id),
            cosigned_at bigint NOT NULL,
            signature_line text NOT NULL,
            received_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (chain_id, size, witness_id),
            FOREIGN KEY (chain_id, size) REFERENCES checkpoints (chain_id, size)
        )
        """,
        """
        CREATE TRIGGER cosignatures_append_only
            BEFORE UPDATE OR DELETE ON cosignatures
            FOR EACH ROW EXECUTE FUNCTION audit_trail_reject_change()
        """,
        """
        CREATE TRIGGER cosignatures_no_truncate
            BEFORE TRUNCATE ON cosignatures
            FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_reject_change()
        """,
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE ON witnesses TO {WRITER_ROLE};
                GRANT SELECT, INSERT ON cosignatures TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in (
        "DROP TABLE cosignatures",
        "ALTER TABLE api_keys DROP CONSTRAINT api_keys_owner_and_roles",
        "ALTER TABLE api_keys DROP COLUMN witness_id",
        "ALTER TABLE api_keys ALTER COLUMN tenant_id SET NOT NULL",
        "DROP TABLE witnesses",
    ):
        op.execute(statement)
