"""The peer: the eventsourcing library's PostgreSQL recorder saving one-event aggregates.

Run in a subprocess so that its threads do not share a GIL with the load generator.
``python -m bench.peer_eventsourcing URL SECONDS THREADS`` prints events per second.
"""

from __future__ import annotations

import os
import sys
import threading
import time
from urllib.parse import parse_qs, urlsplit


def main() -> None:
    url, seconds, threads = sys.argv[1], float(sys.argv[2]), int(sys.argv[3])
    parts = urlsplit(url)
    host = parse_qs(parts.query).get("host", [parts.hostname or "127.0.0.1"])[0]
    os.environ.update(
        PERSISTENCE_MODULE="eventsourcing.postgres",
        POSTGRES_DBNAME=parts.path.lstrip("/"),
        POSTGRES_HOST=host,
        POSTGRES_PORT=str(parts.port or 5432),
        POSTGRES_USER=parts.username or "postgres",
        POSTGRES_PASSWORD=parts.password or "",
        POSTGRES_POOL_SIZE=str(threads),
        POSTGRES_MAX_OVERFLOW="0",
    )
    from eventsourcing.application import Application
    from eventsourcing.domain import Aggregate, event

    class Decision(Aggregate):
        @event("Recorded")
        def __init__(self, model: str, score: float, decision: str) -> None:
            self.model, self.score, self.decision = model, score, decision

    class DecisionLog(Application[object]):
        pass

    application = DecisionLog()
    counts = [0] * threads
    stop_at = time.perf_counter() + seconds

    def save(slot: int) -> None:
        while time.perf_counter() < stop_at:
            application.save(Decision(model="credit-gbm-4.2.0", score=0.37, decision="declined"))
            counts[slot] += 1

    workers = [threading.Thread(target=save, args=(n,)) for n in range(threads)]
    began = time.perf_counter()
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join()
    elapsed = time.perf_counter() - began
    print(f"{sum(counts) / elapsed:.1f}")


if __name__ == "__main__":
    main()
