"""The producer (CloudEvents ``source``) that recorded each decision, for search by source.

``decisions`` gains the source of the event that recorded the decision, indexed as the other
search columns are (each index ends in the search's sort key; see 0003_decisions). Like the
rest of the read model it comes from the entries alone: rows projected before this revision
take it here from the entry that recorded them (``decision_idx``); those recorded by a model
server's inference events get it when the read model is rebuilt
(``audit-trail projections rebuild``).

Revision ID: 0012_decision_source
Revises: 0011_admin_actions
Create Date: 2026-12-02
"""

from alembic import op

revision = "0012_decision_source"
down_revision = "0011_admin_actions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE decisions ADD COLUMN source text")
    op.execute(
        "UPDATE decisions d SET source = e.source FROM entries e "
        "WHERE e.chain_id = d.chain_id AND e.idx = d.decision_idx"
    )
    op.execute(
        "CREATE INDEX decisions_by_source ON decisions "
        "(tenant_id, source, decided_at, chain_id, decision_id) WHERE source IS NOT NULL"
    )


def downgrade() -> None:
    op.execute("DROP INDEX decisions_by_source")
    op.execute("ALTER TABLE decisions DROP COLUMN source")
