"""The verifier's memory: chains followed, leaf hashes verified, checkpoints cosigned, findings,
acknowledgements and attestations.

Revision ID: v0001_verifier_state
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "v0001_verifier_state"
down_revision = None
branch_labels = None
depends_on = None

# What the verifier remembers is its evidence: a rewrite of the log that recomputes every hash
# is caught only against it (DESIGN.md, invariant 4). None of it is ever changed or removed.
APPEND_ONLY_TABLES = (
    "leaf_hashes",
    "cosigned_checkpoints",
    "findings",
    "acknowledgements",
    "attestations",
)

# The role the verifier acts as: it may add to what it remembers, never rewrite it. The log's
# role (audit_trail_writer) gets nothing here.
VERIFIER_ROLE = "audit_trail_verifier"


def upgrade() -> None:
    for statement in (
        # One row per chain followed: the only mutable state, the replay position. `epoch`
        # starts over (from an empty tree) only when an operator acknowledges a finding.
        """
        CREATE TABLE verifier.chains (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant text NOT NULL,
            chain text NOT NULL,
            epoch integer NOT NULL DEFAULT 0,
            verified_size bigint NOT NULL DEFAULT 0 CHECK (verified_size >= 0),
            verified_root bytea NOT NULL,
            frontier bytea NOT NULL DEFAULT ''::bytea,
            last_leaf_hash bytea NOT NULL,
            last_received_at text NOT NULL DEFAULT '',
            verified_at timestamptz,
            entries_replayed bigint NOT NULL DEFAULT 0,
            halted_by bigint,
            UNIQUE (tenant, chain)
        )
        """,
        # Every leaf hash the verifier recomputed and found committed, in runs of consecutive
        # indexes [start, start + length(hashes) / 32): it locates the first rewritten entry.
        """
        CREATE TABLE verifier.leaf_hashes (
            chain_id bigint NOT NULL REFERENCES verifier.chains (id),
            epoch integer NOT NULL,
            start bigint NOT NULL CHECK (start >= 0),
            hashes bytea NOT NULL CHECK (length(hashes) > 0 AND length(hashes) % 32 = 0),
            PRIMARY KEY (chain_id, epoch, start)
        )
        """,
        # Random hashes do not compress: skip TOAST's attempt.
        "ALTER TABLE verifier.leaf_hashes ALTER COLUMN hashes SET STORAGE EXTERNAL",
        """
        CREATE TABLE verifier.cosigned_checkpoints (
            chain_id bigint NOT NULL REFERENCES verifier.chains (id),
            epoch integer NOT NULL,
            size bigint NOT NULL CHECK (size >= 0),
            root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
            checkpoint_note text NOT NULL,
            cosignature text NOT NULL,
            cosigned_at timestamptz NOT NULL,
            PRIMARY KEY (chain_id, epoch, size)
        )
        """,
        """
        CREATE TABLE verifier.findings (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            chain_id bigint NOT NULL REFERENCES verifier.chains (id),
            epoch integer NOT NULL,
            kind text NOT NULL,
            first_bad_index bigint,
            detail text NOT NULL,
            evidence jsonb NOT NULL,
            attestation jsonb NOT NULL,
            found_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX findings_chain ON verifier.findings (chain_id, id)",
        """
        CREATE TABLE verifier.acknowledgements (
            finding_id bigint PRIMARY KEY REFERENCES verifier.findings (id),
            operator text NOT NULL,
            reason text NOT NULL,
            acknowledged_at timestamptz NOT NULL
        )
        """,
        """
        CREATE TABLE verifier.attestations (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            chain_id bigint NOT NULL REFERENCES verifier.chains (id),
            size bigint NOT NULL,
            root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
            result text NOT NULL CHECK (result IN ('passed', 'failed')),
            envelope jsonb NOT NULL,
            issued_at timestamptz NOT NULL
        )
        """,
        "CREATE INDEX attestations_chain ON verifier.attestations (chain_id, id)",
        """
        CREATE FUNCTION verifier.reject_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit-trail verifier: % on table % is refused: it is append-only',
                TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege';
        END;
        $$
        """,
    ):
        op.execute(statement)
    for table in APPEND_ONLY_TABLES:
        # Row triggers stop UPDATE and DELETE; TRUNCATE fires no row trigger, so it needs its own
        # statement-level one (https://www.postgresql.org/docs/current/sql-createtrigger.html).
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON verifier.{table} "
            "FOR EACH ROW EXECUTE FUNCTION verifier.reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON verifier.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION verifier.reject_change()"
        )
    # Roles are cluster-wide and need CREATEROLE; where the migrating user lacks it, the
    # operator creates the role, and the triggers still hold.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{VERIFIER_ROLE}') THEN
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user
                           AND (rolsuper OR rolcreaterole)) THEN
                    CREATE ROLE {VERIFIER_ROLE} NOLOGIN;
                END IF;
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{VERIFIER_ROLE}') THEN
                GRANT USAGE ON SCHEMA verifier TO {VERIFIER_ROLE};
                GRANT SELECT, INSERT, UPDATE ON verifier.chains TO {VERIFIER_ROLE};
                GRANT SELECT, INSERT ON verifier.leaf_hashes, verifier.cosigned_checkpoints,
                    verifier.findings, verifier.acknowledgements, verifier.attestations
                    TO {VERIFIER_ROLE};
                GRANT SELECT ON verifier.alembic_version TO {VERIFIER_ROLE};
                IF NOT pg_has_role(session_user, '{VERIFIER_ROLE}', 'MEMBER') THEN
                    EXECUTE format('GRANT {VERIFIER_ROLE} TO %I', session_user);
                END IF;
            END IF;
        END;
        $$
        """
    )


def downgrade() -> None:
    op.execute(
        "DROP TABLE verifier.attestations, verifier.acknowledgements, verifier.findings, "
        "verifier.cosigned_checkpoints, verifier.leaf_hashes, verifier.chains"
    )
    op.execute("DROP FUNCTION verifier.reject_change()")
