"""The log's limits on what one request may carry (docs/api.md); the SDK stays under them."""

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BATCH_EVENTS = 5_000
# The log's default for one event (a chain may take more). Counted here on the compact JSON
# the SDK sends; the log counts the RFC 8785 form, which differs only in key order and in how
# some numbers are written, so an event the log still refuses is reported like any refusal.
MAX_EVENT_BYTES = 256 * 1024
