"""The sweep that re-reads every chain on a schedule, and epochs that continue from the last
good cosigned checkpoint after an acknowledged finding.

Revision ID: v0002_sweeps_and_epochs
Revises: v0001_verifier_state
Create Date: 2026-12-03
"""

from alembic import op

revision = "v0002_sweeps_and_epochs"
down_revision = "v0001_verifier_state"
branch_labels = None
depends_on = None

VERIFIER_ROLE = "audit_trail_verifier"
APPEND_ONLY_TABLES = ("epochs", "sweep_passes")


def upgrade() -> None:
    for statement in (
        # Where each epoch after the first starts: the last checkpoint cosigned before the
        # acknowledged finding's first bad index (its remembered leaf hashes below start_size
        # stay in force), or 0 with history_replaced when no such checkpoint exists.
        """
        CREATE TABLE verifier.epochs (
            chain_id bigint NOT NULL REFERENCES verifier.chains (id),
            epoch integer NOT NULL CHECK (epoch > 0),
            start_size bigint NOT NULL CHECK (start_size >= 0),
            start_root bytea NOT NULL CHECK (length(start_root) = 32),
            history_replaced boolean NOT NULL,
            after_finding bigint NOT NULL UNIQUE REFERENCES verifier.findings (id),
            started_at timestamptz NOT NULL,
            PRIMARY KEY (chain_id, epoch)
        )
        """,
        # Until now an acknowledgement started its chain over from an empty tree.
        """
        INSERT INTO verifier.epochs (chain_id, epoch, start_size, start_root, history_replaced,
                                     after_finding, started_at)
        SELECT f.chain_id, f.epoch + 1, 0, sha256(''::bytea), true, f.id, a.acknowledged_at
          FROM verifier.findings f JOIN verifier.acknowledgements a ON a.finding_id = f.id
        """,
        # The received_at of the last entry under a cosigned checkpoint: an epoch that starts
        # there checks the next entry's time against it. NULL for checkpoints cosigned before.
        "ALTER TABLE verifier.cosigned_checkpoints ADD COLUMN last_received_at text",
        # The current (or last) sweep pass of each chain: mutable, like verifier.chains. A pass
        # re-reads entries [0, end_size) window by window; cursor and frontier (over the
        # remembered leaf hashes [0, cursor)) are where it resumes after a restart.
        # round_started_at: the round of the chain's last scheduled pass (kept while an
        # on-demand pass runs), so a restart knows which round runs and who is done with it.
        """
        CREATE TABLE verifier.sweeps (
            chain_id bigint PRIMARY KEY REFERENCES verifier.chains (id),
            epoch integer NOT NULL,
            number bigint NOT NULL CHECK (number > 0),
            requested text NOT NULL CHECK (requested IN ('schedule', 'on-demand')),
            started_at timestamptz NOT NULL,
            round_started_at timestamptz,
            end_size bigint NOT NULL CHECK (end_size >= 0),
            end_root bytea NOT NULL CHECK (length(end_root) = 32),
            cursor bigint NOT NULL CHECK (cursor >= 0 AND cursor <= end_size),
            frontier bytea NOT NULL DEFAULT ''::bytea,
            finished_at timestamptz,
            result text CHECK (result IN ('passed', 'failed', 'abandoned')),
            finding_id bigint REFERENCES verifier.findings (id),
            CHECK ((finished_at IS NULL) = (result IS NULL))
        )
        """,
        # Every pass that ended, for good.
        """
        CREATE TABLE verifier.sweep_passes (
            chain_id bigint NOT NULL REFERENCES verifier.chains (id),
            number bigint NOT NULL,
            epoch integer NOT NULL,
            requested text NOT NULL,
            started_at timestamptz NOT NULL,
            finished_at timestamptz NOT NULL,
            size bigint NOT NULL,
            result text NOT NULL CHECK (result IN ('passed', 'failed', 'abandoned')),
            finding_id bigint REFERENCES verifier.findings (id),
            PRIMARY KEY (chain_id, number)
        )
        """,
    ):
        op.execute(statement)
    for table in APPEND_ONLY_TABLES:
        # As in v0001: row triggers for UPDATE and DELETE, a statement trigger for TRUNCATE.
        op.execute(
            f"CREATE TRIGGER {table}_append_only BEFORE UPDATE OR DELETE ON verifier.{table} "
            "FOR EACH ROW EXECUTE FUNCTION verifier.reject_change()"
        )
        op.execute(
            f"CREATE TRIGGER {table}_no_truncate BEFORE TRUNCATE ON verifier.{table} "
            "FOR EACH STATEMENT EXECUTE FUNCTION verifier.reject_change()"
        )
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{VERIFIER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE ON verifier.sweeps TO {VERIFIER_ROLE};
                GRANT SELECT, INSERT ON verifier.epochs, verifier.sweep_passes
                    TO {VERIFIER_ROLE};
            END IF;
        END;
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE verifier.sweep_passes, verifier.sweeps, verifier.epochs")
    op.execute("ALTER TABLE verifier.cosigned_checkpoints DROP COLUMN last_received_at")
