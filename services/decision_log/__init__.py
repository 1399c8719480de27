"""decision_log: the append-only, hash-chained, Merkle-proved log of AI decisions."""

VERSION = "0.1.0"
