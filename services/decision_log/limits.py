"""What one request, one event and one stored value may hold: every limit of the log in one place.

The string limits exist because PostgreSQL indexes them: a btree index row holds at most about
2,700 bytes (https://www.postgresql.org/docs/current/btree.html, "the maximum size of an index
entry"), and a UTF-8 character takes up to 4 bytes. They count characters (code points), as JSON
Schema's ``maxLength`` does, so the published schemas state exactly what the log accepts, and
their sums stay under the index limit in the worst case: the idempotency key (source, type, id)
is at most 4 x 600 = 2,400 bytes; a decision row's widest index (model name, model version,
decision id) 4 x 456 = 1,824.

docs/api.md ("Limits") lists them for producers; a test holds the two together.
"""

from __future__ import annotations

# CloudEvents attributes the log stores in indexed columns, in characters.
MAX_ID_CHARS = 200
MAX_SOURCE_CHARS = 300
MAX_TYPE_CHARS = 100
MAX_SUBJECT_CHARS = 200  # the decision id
ATTRIBUTE_MAX_CHARS = {
    "id": MAX_ID_CHARS,
    "source": MAX_SOURCE_CHARS,
    "type": MAX_TYPE_CHARS,
    "subject": MAX_SUBJECT_CHARS,
}

# Values of event data that the decision read model indexes (model name and version, policy,
# decision value, data-subject reference, ...), in characters.
MAX_INDEXED_TEXT_CHARS = 128

# Times the log stores: what PostgreSQL and Python both represent, years 1 to 9999 in UTC.
MIN_YEAR_UTC = 1
MAX_YEAR_UTC = 9999

# Integers PostgreSQL stores in bigint columns (indexes, sizes, ids).
MAX_BIGINT = 2**63 - 1
# Integers stored in integer columns (retention days).
MAX_INT4 = 2**31 - 1

# Retention periods, in days: at least the AI Act's six months, at most a century (a longer one
# would overflow the date arithmetic of disposal and means "keep forever", which is the default).
MIN_RETENTION_DAYS = 183
MAX_RETENTION_DAYS = 36_525

# The event size limit a chain may be given (docs/api.md): at least 1 KiB, at most the largest
# append body (AUDIT_TRAIL_MAX_BODY_BYTES' default), since an event arrives in one body.
MIN_EVENT_BYTES = 1024
MAX_EVENT_BYTES_CEILING = 8 * 1024 * 1024
