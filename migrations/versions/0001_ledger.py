"""The ledger: tenants, keys, chains, append-only entries, Merkle nodes and checkpoints.

Revision ID: 0001_ledger
Revises:
Create Date: 2026-11-26
"""

from alembic import op

revision = "0001_ledger"
down_revision = None
branch_labels = None
depends_on = None

SLUG_CHECK = r"~ '^[a-z0-9](?:[a-z0-9-]{0,62}[a-z0-9])?$'"

# Tables whose rows are facts the log has committed to. Nothing may change or remove them, not
# even the service itself (DESIGN.md, invariant 3).
APPEND_ONLY_TABLES = ("entries", "merkle_nodes", "checkpoints")

# The role the services act as. It may add to the append-only tables but holds no UPDATE, DELETE
# or TRUNCATE on them, so a bug or an injected statement in the service cannot rewrite history
# even before the triggers are reached.
WRITER_ROLE = "audit_trail_writer"


def execute_script(script: str) -> None:
    """Run statements one by one: asyncpg prepares each, and a prepared statement holds one.

    Statements end with a semicolon at the end of a line; dollar-quoted bodies end with ``$$;``.
    """
    statement: list[str] = []
    in_body = False
    for line in script.splitlines():
        statement.append(line)
        if line.count("$$") % 2 == 1:
            in_body = not in_body
        if not in_body and line.rstrip().endswith(";"):
            sql = "\n".join(statement).strip()
            if sql.strip(";").strip():
                op.execute(sql)
            statement = []
    if "\n".join(statement).strip():
        op.execute("\n".join(statement))


def upgrade() -> None:
    execute_script(
        f"""
        CREATE TABLE tenants (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            slug text NOT NULL UNIQUE CHECK (slug {SLUG_CHECK}),
            created_at timestamptz NOT NULL DEFAULT now()
        );

        CREATE TABLE api_keys (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            key_id text NOT NULL UNIQUE,
            tenant_id bigint NOT NULL REFERENCES tenants (id),
            secret_hash bytea NOT NULL CHECK (length(secret_hash) = 32),
            roles text[] NOT NULL CHECK (cardinality(roles) > 0
                AND roles <@ ARRAY['producer', 'auditor', 'admin']::text[]),
            chains text[],
            label text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            expires_at timestamptz,
            revoked_at timestamptz
        );
        CREATE INDEX api_keys_tenant ON api_keys (tenant_id);

        -- One row per chain: its name and its head. The head (size, last leaf hash, Merkle
        -- frontier, root) is the only mutable state of the ledger; appenders serialise on this row.
        CREATE TABLE chains (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            tenant_id bigint NOT NULL REFERENCES tenants (id),
            slug text NOT NULL CHECK (slug {SLUG_CHECK}),
            description text NOT NULL DEFAULT '',
            created_at timestamptz NOT NULL DEFAULT now(),
            size bigint NOT NULL DEFAULT 0 CHECK (size >= 0),
            last_leaf_hash bytea NOT NULL DEFAULT '\\x0000000000000000000000000000000000000000000000000000000000000000'::bytea,
            frontier bytea NOT NULL DEFAULT ''::bytea,
            root_hash bytea NOT NULL,
            last_received_at timestamptz,
            UNIQUE (tenant_id, slug)
        );

        -- No foreign key to chains: the check would lock the chain row once per inserted entry,
        -- and entries are only ever written by the appender while it holds that row's lock.
        CREATE TABLE entries (
            chain_id bigint NOT NULL,
            idx bigint NOT NULL CHECK (idx >= 0),
            received_at timestamptz NOT NULL,
            source text NOT NULL,
            event_id text NOT NULL,
            event_type text NOT NULL,
            subject text,
            content_digest bytea NOT NULL,
            leaf bytea NOT NULL,
            leaf_hash bytea NOT NULL CHECK (length(leaf_hash) = 32),
            PRIMARY KEY (chain_id, idx)
        );
        -- The idempotency key of DESIGN.md: (chain, source, id).
        CREATE UNIQUE INDEX entries_idempotency ON entries (chain_id, source, event_id);

        -- Every perfect Merkle subtree of level >= 1, written once when it completes, so that an
        -- inclusion or consistency proof is O(log n) index reads (level 0 is entries.leaf_hash).
        CREATE TABLE merkle_nodes (
            chain_id bigint NOT NULL,
            level smallint NOT NULL CHECK (level > 0),
            idx bigint NOT NULL CHECK (idx >= 0),
            hash bytea NOT NULL CHECK (length(hash) = 32),
            PRIMARY KEY (chain_id, level, idx)
        );

        CREATE TABLE checkpoints (
            chain_id bigint NOT NULL REFERENCES chains (id),
            size bigint NOT NULL CHECK (size >= 0),
            root_hash bytea NOT NULL CHECK (length(root_hash) = 32),
            note text NOT NULL,
            signed_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (chain_id, size)
        );

        CREATE FUNCTION audit_trail_reject_change() RETURNS trigger
        LANGUAGE plpgsql AS $$
        BEGIN
            RAISE EXCEPTION 'audit-trail: % on table % is refused: the table is append-only',
                TG_OP, TG_TABLE_NAME
                USING ERRCODE = 'insufficient_privilege',
                      HINT = 'entries, Merkle nodes and checkpoints are never changed';
        END;
        $$;
        """
    )
    for table in APPEND_ONLY_TABLES:
        # Row triggers stop UPDATE and DELETE; TRUNCATE fires no row trigger, so it needs its own
        # statement-level one (https://www.postgresql.org/docs/current/sql-createtrigger.html).
        execute_script(
            f"""
            CREATE TRIGGER {table}_append_only
                BEFORE UPDATE OR DELETE ON {table}
                FOR EACH ROW EXECUTE FUNCTION audit_trail_reject_change();
            CREATE TRIGGER {table}_no_truncate
                BEFORE TRUNCATE ON {table}
                FOR EACH STATEMENT EXECUTE FUNCTION audit_trail_reject_change();
            """
        )

    # Roles are cluster-wide and need CREATEROLE; where the migrating user lacks it (a managed
    # database), the operator creates the role and grants it, and the triggers still hold.
    op.execute(
        f"""
        DO $$
        BEGIN
            IF NOT EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = current_user
                           AND (rolsuper OR rolcreaterole)) THEN
                    CREATE ROLE {WRITER_ROLE} NOLOGIN;
                END IF;
            END IF;
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                EXECUTE format('GRANT USAGE ON SCHEMA %I TO {WRITER_ROLE}', current_schema());
                GRANT SELECT, INSERT, UPDATE ON tenants, api_keys, chains TO {WRITER_ROLE};
                GRANT SELECT, INSERT ON entries, merkle_nodes, checkpoints
                    TO {WRITER_ROLE};
                GRANT SELECT ON alembic_version TO {WRITER_ROLE};
                IF NOT pg_has_role(session_user, '{WRITER_ROLE}', 'MEMBER') THEN
                    EXECUTE format('GRANT {WRITER_ROLE} TO %I', session_user);
                END IF;
            END IF;
        END;
        $$;
        """
    )


def downgrade() -> None:
    execute_script(
        """
        DROP TABLE checkpoints, merkle_nodes, entries, chains, api_keys, tenants;
        DROP FUNCTION audit_trail_reject_change();
        """
    )
