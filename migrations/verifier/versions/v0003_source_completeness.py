"""Completeness of each chain's producers, folded from the entries the verifier replays.

Revision ID: v0003_source_completeness
Revises: v0002_sweeps_and_epochs
Create Date: 2026-12-04
"""

from alembic import op

revision = "v0003_source_completeness"
down_revision = "v0002_sweeps_and_epochs"
branch_labels = None
depends_on = None

VERIFIER_ROLE = "audit_trail_verifier"


def upgrade() -> None:
    for statement in (
        # The entries the per-source state below is folded from: [completeness_start,
        # completeness_size) of epoch completeness_epoch. It moves with verified_size, in the
        # same transaction. A chain verified before this revision, or after an epoch that
        # replaced history, starts its fold where the verifier stands then: the state never
        # mixes entries it did not replay itself.
        "ALTER TABLE verifier.chains ADD COLUMN completeness_epoch integer",
        "ALTER TABLE verifier.chains ADD COLUMN completeness_start bigint",
        "ALTER TABLE verifier.chains ADD COLUMN completeness_size bigint",
        # One row per chain and source: ledger.completeness.SourceState as JSON. Mutable, like
        # verifier.chains: it is a fold, and what it vouches for is signed in attestations.
        """
        CREATE TABLE verifier.source_completeness (
            chain_id bigint NOT NULL REFERENCES verifier.chains (id),
            source text NOT NULL,
            state jsonb NOT NULL,
            PRIMARY KEY (chain_id, source)
        )
        """,
    ):
        op.execute(statement)
    op.execute(
        f"""
        DO $$
        BEGIN
            IF EXISTS (SELECT 1 FROM pg_roles WHERE rolname = '{VERIFIER_ROLE}') THEN
                GRANT SELECT, INSERT, UPDATE, DELETE ON verifier.source_completeness
                    TO {VERIFIER_ROLE};
            END IF;
        END;
        $$
        """
    )


def downgrade() -> None:
    op.execute("DROP TABLE verifier.source_completeness")
    for column in ("completeness_size", "completeness_start", "completeness_epoch"):
        op.execute(f"ALTER TABLE verifier.chains DROP COLUMN {column}")
