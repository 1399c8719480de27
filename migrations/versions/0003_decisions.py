"""The decision read model: decisions, their timelines, model deployments, projector positions.

These tables are a projection of the log, not part of it: the projector rebuilds them from the
entries alone (``audit-trail projections rebuild``), so unlike the ledger tables they may be
updated and truncated, and the writer role is granted that.

Revision ID: 0003_decisions
Revises: 0002_witnesses
Create Date: 2026-11-27
"""

from alembic import op

revision = "0003_decisions"
down_revision = "0002_witnesses"
branch_labels = None
depends_on = None

WRITER_ROLE = "audit_trail_writer"
READ_MODEL_TABLES = ("decisions", "decision_events", "model_deployments", "projection_positions")


def upgrade() -> None:
    for statement in (
        # One row per (chain, decision id): the decision as recorded and its state after the
        # reviews, overrides, outcomes and contests that followed, in index order.
        """
        CREATE TABLE decisions (
            chain_id bigint NOT NULL,
            decision_id text NOT NULL,
            tenant_id bigint NOT NULL,
            decided_at timestamptz NOT NULL,
            received_at timestamptz NOT NULL,
            decision_idx bigint,
            system_name text,
            deployment text,
            model_name text,
            model_version text,
            policy_id text,
            policy_version text,
            decision text,
            score double precision,
            data_subject_ref text,
            solely_automated boolean,
            legal_or_similar_effect boolean,
            reviewed boolean NOT NULL DEFAULT false,
            overridden boolean NOT NULL DEFAULT false,
            contested boolean NOT NULL DEFAULT false,
            current_decision text,
            outcome text,
            last_idx bigint NOT NULL,
            PRIMARY KEY (chain_id, decision_id)
        )
        """,
        # Search pages are sorted newest first by (decided_at, chain_id, decision_id), the
        # keyset of the cursor; each index ends in that key so that a filtered page is one
        # ordered index range scan, not a sort of every match.
        "CREATE INDEX decisions_by_time ON decisions (tenant_id, decided_at, chain_id, decision_id)",
        "CREATE INDEX decisions_by_chain ON decisions (chain_id, decided_at, decision_id)",
        "CREATE INDEX decisions_by_model ON decisions "
        "(tenant_id, model_name, model_version, decided_at, chain_id, decision_id)",
        "CREATE INDEX decisions_by_policy ON decisions "
        "(tenant_id, policy_version, decided_at, chain_id, decision_id)",
        "CREATE INDEX decisions_by_value ON decisions "
        "(tenant_id, decision, decided_at, chain_id, decision_id)",
        "CREATE INDEX decisions_by_subject ON decisions "
        "(tenant_id, data_subject_ref, decided_at, chain_id, decision_id)",
        "CREATE INDEX decisions_by_score ON decisions (tenant_id, score)",
        # Reviewed, overridden and contested decisions are few: partial indexes stay small.
        "CREATE INDEX decisions_reviewed ON decisions (tenant_id, decided_at, chain_id, decision_id) "
        "WHERE reviewed",
        "CREATE INDEX decisions_overridden ON decisions "
        "(tenant_id, decided_at, chain_id, decision_id) WHERE overridden",
        "CREATE INDEX decisions_contested ON decisions "
        "(tenant_id, decided_at, chain_id, decision_id) WHERE contested",
        # The timeline: every entry whose subject is the decision id, by index.
        """
        CREATE TABLE decision_events (
            chain_id bigint NOT NULL,
            decision_id text NOT NULL,
            idx bigint NOT NULL,
            event_type text NOT NULL,
            PRIMARY KEY (chain_id, decision_id, idx)
        )
        """,
        # The model.deployed event of each model version, so a decision ties to its lineage.
        """
        CREATE TABLE model_deployments (
            chain_id bigint NOT NULL,
            model_name text NOT NULL,
            model_version text NOT NULL,
            idx bigint NOT NULL,
            PRIMARY KEY (chain_id, model_name, model_version, idx)
        )
        """,
        # How far the projector has read each chain: every entry below next_idx is projected.
        """
        CREATE TABLE projection_positions (
            chain_id bigint PRIMARY KEY,
            next_idx bigint NOT NULL DEFAULT 0 CHECK (next_idx >= 0)
        )
        """,
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{WRITER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE, TRUNCATE ON {", ".join(READ_MODEL_TABLES)}
                    TO {WRITER_ROLE};
            END IF;
        END;
        $$
        """,
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute(f"DROP TABLE {', '.join(READ_MODEL_TABLES)}")
