"""The log's limits on what one request may carry (docs/api.md); the SDK stays under them."""

MAX_BODY_BYTES = 8 * 1024 * 1024
MAX_BATCH_EVENTS = 5_000
# Counted on the compact JSON the SDK sends; the log counts its RFC 8785 form, which is the
# same bytes for what the SDK builds (sorted keys change the order, not the length).
MAX_EVENT_BYTES = 256 * 1024
