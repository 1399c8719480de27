"""The idempotency key becomes (chain, source, type, id).

KServe's payload logger sends an inference's request and its response as two events with one
`ce-id` and one `ce-source`, told apart only by `ce-type`; under the old key (chain, source, id)
the response would be refused as a conflict. The new unique index is a superset of the old key,
so every row that satisfied the old one satisfies it.

Both steps run outside a transaction, CONCURRENTLY, so that appends go on while the index is
built on a large `entries` table (https://www.postgresql.org/docs/current/sql-createindex.html#SQL-CREATEINDEX-CONCURRENTLY):
the new index is built first and the old one dropped after, so a unique index guards the chain
throughout. A build that failed half-way leaves an INVALID index of the new name, which is
dropped before building again. The new index then takes the old name, so the appender and the
documentation name one index whatever the history.

Revision ID: 0008_idempotency_with_type
Revises: 0007_export_integrity
Create Date: 2026-12-02
"""

from alembic import op

revision = "0008_idempotency_with_type"
down_revision = "0007_export_integrity"
branch_labels = None
depends_on = None


def _rebuild(columns: str) -> None:
    with op.get_context().autocommit_block():
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS entries_idempotency_new")
        op.execute(
            f"CREATE UNIQUE INDEX CONCURRENTLY entries_idempotency_new ON entries ({columns})"
        )
        op.execute("DROP INDEX CONCURRENTLY IF EXISTS entries_idempotency")
        op.execute("ALTER INDEX entries_idempotency_new RENAME TO entries_idempotency")


def upgrade() -> None:
    _rebuild("chain_id, source, event_type, event_id")


def downgrade() -> None:
    # Fails if some (source, id) now has events of two types: the old key cannot hold them.
    _rebuild("chain_id, source, event_id")
