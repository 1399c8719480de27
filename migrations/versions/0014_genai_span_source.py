"""The producer of each GenAI span, so that a GenAI decision can be searched by source.

A GenAI decision's producer is the source of its decision span's event (``otlp:<service>`` when
it came in over OTLP). ``genai_spans`` gains each span's source, taken here from its entry;
``decisions`` rows of GenAI decisions take their decision span's. Like the rest of the read
model it comes from the entries alone, and a rebuild gives the same.

Revision ID: 0014_genai_span_source
Revises: 0013_console_sessions
Create Date: 2026-12-02
"""

from alembic import op

revision = "0014_genai_span_source"
down_revision = "0013_console_sessions"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("ALTER TABLE genai_spans ADD COLUMN source text")
    op.execute(
        "UPDATE genai_spans s SET source = e.source FROM entries e "
        "WHERE e.chain_id = s.chain_id AND e.idx = s.idx"
    )
    op.execute(
        "UPDATE decisions d SET source = s.source FROM genai_spans s "
        "WHERE s.chain_id = d.chain_id AND s.decision_id = d.decision_id "
        "AND s.span_id = s.decision_span_id AND d.source IS NULL"
    )


def downgrade() -> None:
    op.execute(
        "UPDATE decisions d SET source = NULL FROM genai_spans s "
        "WHERE s.chain_id = d.chain_id AND s.decision_id = d.decision_id"
    )
    op.execute("ALTER TABLE genai_spans DROP COLUMN source")
