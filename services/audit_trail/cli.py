"""The ``audit-trail`` command: run the services, manage tenants, keys and chains."""

from __future__ import annotations

import asyncio
import json
import os
import shutil
import signal
import subprocess
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import datetime
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

from audit_trail.bundles import export_command, verify_bundle_command
from audit_trail.entry_check import check_entry_command
from audit_trail.local import (
    VERIFIER_DATABASE_NAME,
    EmbeddedPostgres,
    EmbeddedPostgresError,
    LocalPaths,
    database_url_from_environment,
)

if TYPE_CHECKING:
    from sqlalchemy.ext.asyncio import AsyncConnection

# The server's code (FastAPI, SQLAlchemy, the decision_log and the verifier) is imported inside
# the commands that use it: `audit-trail --help`, `export` and `verify-bundle` need none of it,
# and importing it all takes over a second.

app = typer.Typer(no_args_is_help=True, help=__doc__, pretty_exceptions_enable=False)
tenants_app = typer.Typer(no_args_is_help=True, help="Tenants (organisations).")
keys_app = typer.Typer(no_args_is_help=True, help="A tenant's API keys.")
chains_app = typer.Typer(no_args_is_help=True, help="A tenant's chains (one per AI system).")
app.add_typer(tenants_app, name="tenants")
app.add_typer(keys_app, name="keys")
app.add_typer(chains_app, name="chains")
witnesses_app = typer.Typer(no_args_is_help=True, help="Witnesses: verifiers that cosign.")
app.add_typer(witnesses_app, name="witnesses")
verifier_app = typer.Typer(
    help="The independent verifier: run it alone (no subcommand), or manage its findings."
)
app.add_typer(verifier_app, name="verifier")
app.command("export")(export_command)
app.command("verify-bundle")(verify_bundle_command)
app.command("check-entry")(check_entry_command)
projections_app = typer.Typer(no_args_is_help=True, help="Read models built from the log.")
app.add_typer(projections_app, name="projections")

DataDir = Annotated[
    Path,
    typer.Option(
        "--data-dir",
        envvar="AUDIT_TRAIL_DATA_DIR",
        help="Local data folder (embedded database, keys)",
    ),
]
Host = Annotated[str, typer.Option(envvar="AUDIT_TRAIL_HOST", help="Address to listen on")]
Port = Annotated[int, typer.Option(envvar="AUDIT_TRAIL_PORT", help="decision_log port")]
Workers = Annotated[
    int, typer.Option(envvar="AUDIT_TRAIL_WORKERS", help="uvicorn worker processes")
]
Tenant = Annotated[str, typer.Option("--tenant", help="Tenant slug")]
DEFAULT_DATA_DIR = Path("audit-trail-data")


@contextmanager
def embedded_unless_configured(
    data_dir: Path, *, exclusive: bool = False
) -> Iterator[EmbeddedPostgres | None]:
    """None if DATABASE_URL is set, else the data folder's embedded PostgreSQL, started (or
    joined); with `exclusive`, refused while another running process uses it."""
    if database_url_from_environment():
        yield None
        return
    paths = LocalPaths(data_dir.resolve())
    paths.ensure()
    try:
        embedded = EmbeddedPostgres(paths, exclusive=exclusive)
    except EmbeddedPostgresError as error:
        typer.secho(f"error: {error}", err=True, fg="red")
        raise typer.Exit(1) from None
    if embedded.orphaned_by is not None:
        left_by = "; ".join(user.describe() for user in embedded.orphaned_by) or "nobody known"
        typer.secho(
            f"stopped the embedded PostgreSQL left running by {left_by}, since exited; "
            "started it afresh",
            err=True,
            fg="yellow",
        )
    try:
        yield embedded
    finally:
        with stop_signals_ignored():
            embedded.stop()


@contextmanager
def stop_signals_ignored() -> Iterator[None]:
    """Ignore Ctrl-C and SIGTERM while stopping what was started.

    A second Ctrl-C (or a SIGTERM) would raise KeyboardInterrupt in the middle of the stop and
    leave the verifier or PostgreSQL running. Stopping is bounded (20 s for the verifier, see
    `stop_process`; 60 s for PostgreSQL), so nothing is lost by waiting for it.
    """
    if threading.current_thread() is not threading.main_thread():
        yield
        return
    previous = {number: signal.signal(number, signal.SIG_IGN) for number in STOP_SIGNALS}
    try:
        yield
    finally:
        for number, handler in previous.items():
            signal.signal(number, handler)


STOP_SIGNALS = (signal.SIGINT, signal.SIGTERM)


@contextmanager
def database(data_dir: Path) -> Iterator[str]:
    """DATABASE_URL if set, else the embedded PostgreSQL of the data folder (started if needed)."""
    with embedded_unless_configured(data_dir) as embedded:
        yield embedded.url if embedded else str(database_url_from_environment())


@contextmanager
def databases(data_dir: Path, *, exclusive: bool = False) -> Iterator[tuple[str, str]]:
    """(log database URL, verifier database URL).

    Embedded: two databases on the data folder's PostgreSQL. With DATABASE_URL, the verifier
    uses AUDIT_TRAIL_VERIFIER_DATABASE_URL, else the same database (its tables live in the
    schema ``verifier``, apart from the log's).
    """
    with embedded_unless_configured(data_dir, exclusive=exclusive) as embedded:
        if embedded is not None:
            yield embedded.url, embedded.ensure_database(VERIFIER_DATABASE_NAME)
            return
        url = str(database_url_from_environment())
        yield url, os.environ.get("AUDIT_TRAIL_VERIFIER_DATABASE_URL") or url


def run(coroutine: Any) -> Any:
    from decision_log.problems import Problem

    try:
        return asyncio.run(coroutine)
    except Problem as problem:
        typer.secho(f"error: {problem.detail}", err=True, fg="red")
        raise typer.Exit(1) from None


def guarded_http_protocol() -> type[asyncio.Protocol]:
    """The HTTP/1.1 protocol both services are served with: uvicorn's httptools one with
    header and body timeouts and a header size cap (see audit_trail.server), its limits read
    from the environment here, so that a wrong one stops the command at once."""
    from pydantic import ValidationError

    from audit_trail.server import GuardedHttpToolsProtocol, limits_from_environment

    try:
        limits_from_environment()
    except ValidationError as error:
        raise typer.BadParameter(f"HTTP limits: {error}") from None
    return GuardedHttpToolsProtocol


def log_level() -> str:
    return os.environ.get("AUDIT_TRAIL_LOG_LEVEL", "info")


def command_line_hint() -> str:
    """How to run this command from a shell: its path when the virtual environment that holds
    it is not on PATH (``make up`` does not activate it)."""
    executable = Path(sys.argv[0])
    if executable.name == "audit-trail" and shutil.which("audit-trail") != str(executable):
        try:
            return str(executable.resolve().relative_to(Path.cwd()))
        except ValueError:
            return str(executable)
    return "audit-trail"


def serve_decision_log(*, host: str, port: int, workers: int) -> None:
    from audit_trail.server import logging_config, multiprocess_metrics, run_server

    multiprocess_metrics(workers=workers)
    run_server(
        "decision_log.app:create_app",
        http=guarded_http_protocol(),
        host=host,
        port=port,
        workers=workers,
        access_log=False,
        # The service reads no client address, so forwarded headers buy nothing; and it does
        # not name its server software.
        proxy_headers=False,
        server_header=False,
        log_level=log_level(),
        log_config=logging_config(log_level()),
    )


@app.command()
def up(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    host: Host = "127.0.0.1",
    port: Port = 8000,
    workers: Workers = 1,
) -> None:
    """Start everything locally: embedded PostgreSQL (unless DATABASE_URL), keys, demo, the
    decision_log on PORT and the verifier on PORT + 1."""
    from decision_log import migrations
    from decision_log.privacy import keyring
    from decision_log.signing import LogSigner
    from ledger.note import CosignatureSigner
    from verifier import migrations as verifier_migrations

    from audit_trail import admin

    # SIGTERM (kill, systemd, docker stop) stops `up` as Ctrl-C does, through the same clean-up.
    # Left at its default it would end the process at once (uvicorn raises it again once it has
    # shut down), leaving the verifier and PostgreSQL running.
    signal.signal(signal.SIGTERM, signal.default_int_handler)
    # On a laptop the person at the terminal wants warnings, not a line per request (the
    # verifier polls the log every second); production runs `serve`, which logs every request.
    quiet = "AUDIT_TRAIL_LOG_LEVEL" not in os.environ
    os.environ.setdefault("AUDIT_TRAIL_LOG_LEVEL", "warning")
    paths = LocalPaths(data_dir.resolve())
    paths.ensure()
    # Alone on the data folder: a second `up` on it would serve the same log beside this one.
    with databases(paths.data_dir, exclusive=True) as (url, verifier_url):
        migrations.upgrade(url)
        verifier_migrations.upgrade(verifier_url)
        key = admin.ensure_key(paths.log_key_file)
        signer = LogSigner.create(key=key, origin=log_origin())
        api_url = f"http://{host}:{port}"
        if not paths.credentials_file.exists():
            credentials = run(
                admin.in_transaction(
                    url, lambda c: admin.create_demo(c, signer=signer, api_url=api_url)
                )
            )
            admin.write_credentials(paths.credentials_file, credentials)
        cosigner = CosignatureSigner(
            name=verifier_name(), key=admin.ensure_key(paths.verifier_key_file)
        )
        witness_key = admin.ensure_witness(
            url,
            verifier_key=cosigner.verifier_key,
            credentials_file=paths.verifier_credentials_file,
        )
        keyring.create_files(kek_file=paths.kek_file, pseudonym_key_file=paths.pseudonym_key_file)
        os.environ["AUDIT_TRAIL_DATABASE_URL"] = url
        os.environ["AUDIT_TRAIL_LOG_KEY_FILE"] = str(paths.log_key_file)
        os.environ["AUDIT_TRAIL_KEK_FILE"] = str(paths.kek_file)
        os.environ["AUDIT_TRAIL_PSEUDONYM_KEY_FILE"] = str(paths.pseudonym_key_file)
        verifier_env = {
            "AUDIT_TRAIL_VERIFIER_DATABASE_URL": verifier_url,
            "AUDIT_TRAIL_VERIFIER_KEY_FILE": str(paths.verifier_key_file),
            "AUDIT_TRAIL_VERIFIER_LOG_URL": api_url,
            "AUDIT_TRAIL_VERIFIER_LOG_API_KEY": witness_key,
            "AUDIT_TRAIL_VERIFIER_LOG_VERIFIER_KEY": signer.note_signer.verifier_key,
            "AUDIT_TRAIL_VERIFIER_NAME": cosigner.name,
        }
        # Prometheus scrapes /metrics of both services with this token (keys/metrics-token).
        os.environ.setdefault(
            "AUDIT_TRAIL_METRICS_TOKEN", admin.ensure_secret(paths.metrics_token_file)
        )
        verifier_url_public = f"http://{host}:{port + 1}"
        typer.echo(f"decision_log API: {api_url}  (OpenAPI docs at {api_url}/docs)")
        typer.echo(f"verifier API: {verifier_url_public}  (public keys at /v1/keys)")
        typer.echo(f"API keys of the demo tenant: {paths.credentials_file}")
        typer.echo(f"The command line, from another terminal: {command_line_hint()} --help")
        if quiet:
            typer.echo("Logs: warnings only here; AUDIT_TRAIL_LOG_LEVEL=info logs every request.")
        typer.echo("Press Ctrl-C to stop.")
        # A process of its own: the verifier shares nothing with the log but the HTTP API.
        command = [sys.executable, "-m", "audit_trail", "verifier"]
        verifier_process = subprocess.Popen(  # noqa: S603  (our own interpreter and module)
            [*command, "--host", host, "--port", str(port + 1)],
            env={**os.environ, **verifier_env},
        )
        # The log shows the verifier's status of a chain beside a decision's evidence.
        os.environ["AUDIT_TRAIL_VERIFIER_URL"] = verifier_url_public
        try:
            serve_decision_log(host=host, port=port, workers=workers)
        finally:
            with stop_signals_ignored():
                stop_process(verifier_process)


def stop_process(process: subprocess.Popen[bytes]) -> None:
    """Stop a uvicorn child gracefully, then wait for it (killed after 20 s).

    SIGTERM, as uvicorn's own supervisor stops its workers: a Ctrl-C in the terminal has most
    likely sent the child SIGINT already, and a second SIGINT makes uvicorn force its exit,
    skipping the application's shutdown, whose cancelled lifespan then logs a CancelledError
    traceback. SIGTERM after SIGINT only asks again for the graceful shutdown under way.
    """
    if process.poll() is None:
        process.terminate()
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()


def verifier_name() -> str:
    return os.environ.get("AUDIT_TRAIL_VERIFIER_NAME", "verifier.localhost/witness")


@app.command()
def serve(host: Host = "127.0.0.1", port: Port = 8000, workers: Workers = 1) -> None:
    """Run the decision_log alone against DATABASE_URL, as in production."""
    if not database_url_from_environment():
        raise typer.BadParameter("set DATABASE_URL (or AUDIT_TRAIL_DATABASE_URL)")
    if not os.environ.get("AUDIT_TRAIL_LOG_KEY_FILE"):
        raise typer.BadParameter("set AUDIT_TRAIL_LOG_KEY_FILE to the log's signing key (PEM)")
    from decision_log.settings import Settings

    # Checked here, once, rather than by each worker as it starts (a traceback per worker).
    check_settings(Settings, "AUDIT_TRAIL_")
    serve_decision_log(host=host, port=port, workers=workers)


def check_settings(settings: Any, prefix: str) -> None:
    """Read the settings from the environment; a usage error naming each variable that is
    missing or invalid if they cannot be."""
    from pydantic import ValidationError

    try:
        settings()
    except ValidationError as error:
        problems = "; ".join(
            f"{prefix}{'_'.join(str(part) for part in item['loc']).upper()}: "
            + ("not set" if item["type"] == "missing" else item["msg"])
            for item in error.errors()
        )
        raise typer.BadParameter(problems) from None


@app.command()
def migrate(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Apply the database migrations."""
    from decision_log import migrations

    with database(data_dir) as url:
        migrations.upgrade(url)
    typer.echo(f"schema at {migrations.head_revision()}")


def log_origin() -> str:
    from decision_log.settings import Settings

    default: str = Settings.model_fields["log_origin"].default
    return os.environ.get("AUDIT_TRAIL_LOG_ORIGIN", default)


def echo_json(value: Any) -> None:
    typer.echo(json.dumps(value, indent=2, default=str))


@tenants_app.command("create")
def tenants_create(
    name: str,
    data_dir: DataDir = DEFAULT_DATA_DIR,
    with_admin_key: Annotated[bool, typer.Option(help="Also create an admin key")] = True,
) -> None:
    """Create a tenant (and its first admin key, shown once)."""
    from decision_log.keys import service as keys
    from decision_log.keys.schemas import KeyCreate
    from decision_log.tenants import service as tenants

    from audit_trail import admin

    async def action(connection: AsyncConnection) -> dict[str, Any]:
        tenant_id = await tenants.create_tenant(connection, slug=name)
        out: dict[str, Any] = {"tenant": name}
        if with_admin_key:
            created = await keys.create_key(
                connection,
                tenant_id=tenant_id,
                request=KeyCreate(roles=["admin"], label="first admin"),
            )
            out["admin_key"] = created.api_key
        return out

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)))


@tenants_app.command("list")
def tenants_list(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """List tenants."""
    from decision_log.tenants import service as tenants

    from audit_trail import admin

    with database(data_dir) as url:
        rows = run(admin.in_transaction(url, tenants.list_tenants))
    echo_json([{"tenant": slug, "created_at": created} for slug, created in rows])


@keys_app.command("create")
def keys_create(
    tenant: Tenant,
    role: Annotated[list[str], typer.Option("--role", help="producer, auditor or admin")],
    chain: Annotated[list[str] | None, typer.Option("--chain", help="Limit to this chain")] = None,
    label: str = "",
    expires_at: Annotated[datetime | None, typer.Option(help="ISO 8601, with time zone")] = None,
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Create an API key; the secret is printed once and stored only as a hash."""
    from decision_log.keys import service as keys
    from decision_log.keys.schemas import KeyCreate

    from audit_trail import admin

    request = KeyCreate.model_validate(
        {"roles": role, "chains": chain or None, "label": label, "expires_at": expires_at}
    )

    async def action(connection: AsyncConnection) -> Any:
        return await keys.create_key(
            connection, tenant_id=await admin.tenant_id(connection, tenant), request=request
        )

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)).model_dump(mode="json"))


@keys_app.command("list")
def keys_list(tenant: Tenant, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """List a tenant's keys (never their secrets)."""
    from decision_log.keys import service as keys

    from audit_trail import admin

    async def action(connection: AsyncConnection) -> Any:
        return await keys.list_keys(connection, tenant_id=await admin.tenant_id(connection, tenant))

    with database(data_dir) as url:
        echo_json([key.model_dump(mode="json") for key in run(admin.in_transaction(url, action))])


@keys_app.command("revoke")
def keys_revoke(tenant: Tenant, key_id: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Revoke a key; every running worker refuses it at once."""
    from decision_log.auth import utc_now
    from decision_log.keys import service as keys

    from audit_trail import admin

    async def action(connection: AsyncConnection) -> Any:
        return await keys.revoke_key(
            connection,
            tenant_id=await admin.tenant_id(connection, tenant),
            key_id=key_id,
            now=utc_now(),
        )

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)).model_dump(mode="json"))


@keys_app.command("expire")
def keys_expire(
    tenant: Tenant,
    key_id: str,
    at: Annotated[datetime, typer.Option(help="ISO 8601 with time zone")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Set when a key stops working."""
    from decision_log.auth import utc_now
    from decision_log.keys import service as keys

    from audit_trail import admin

    async def action(connection: AsyncConnection) -> Any:
        return await keys.set_key_expiry(
            connection,
            tenant_id=await admin.tenant_id(connection, tenant),
            key_id=key_id,
            expires_at=at,
            now=utc_now(),
        )

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)).model_dump(mode="json"))


@chains_app.command("create")
def chains_create(
    tenant: Tenant, name: str, description: str = "", data_dir: DataDir = DEFAULT_DATA_DIR
) -> None:
    """Create a chain and sign its size-0 checkpoint."""
    from decision_log.admin_actions import command_line_actor
    from decision_log.chains import service as chains
    from decision_log.signing import LogSigner

    from audit_trail import admin

    paths = LocalPaths(data_dir.resolve())
    signer = LogSigner.create(key=admin.ensure_key(paths.log_key_file), origin=log_origin())

    async def action(connection: AsyncConnection) -> Any:
        tenant_id = await admin.tenant_id(connection, tenant)
        await chains.create_chain(
            connection,
            signer=signer,
            tenant_id=tenant_id,
            tenant=tenant,
            slug=name,
            description=description,
            recorded_as=command_line_actor(),
        )
        row = await chains.get_chain(connection, tenant_id=tenant_id, chain=name)
        return chains.chain_info(row, signer=signer)

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)).model_dump(mode="json"))


@chains_app.command("list")
def chains_list(tenant: Tenant, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """List a tenant's chains with their heads."""
    from decision_log.chains import service as chains
    from decision_log.signing import LogSigner

    from audit_trail import admin

    paths = LocalPaths(data_dir.resolve())
    signer = LogSigner.create(key=admin.ensure_key(paths.log_key_file), origin=log_origin())

    async def action(connection: AsyncConnection) -> Any:
        rows = await chains.list_chains(
            connection, tenant_id=await admin.tenant_id(connection, tenant)
        )
        return [chains.chain_info(row, signer=signer).model_dump(mode="json") for row in rows]

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)))


@witnesses_app.command("add")
def witnesses_add(
    verifier_key: Annotated[str, typer.Argument(help="The witness's cosignature verifier key")],
    label: str = "",
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Register a witness; prints its API key once."""
    from decision_log.witnesses import service as witnesses

    from audit_trail import admin

    async def action(connection: AsyncConnection) -> Any:
        name, api_key = await witnesses.register_witness(
            connection, verifier_key=verifier_key, label=label
        )
        return {"witness": name, "api_key": api_key}

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)))


@witnesses_app.command("list")
def witnesses_list(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """List registered witnesses."""
    from decision_log.witnesses import service as witnesses

    from audit_trail import admin

    async def action(connection: AsyncConnection) -> Any:
        return [
            {
                "witness": row.name,
                "verifier_key": row.verifier_key,
                "created_at": row.created_at,
                "revoked_at": row.revoked_at,
            }
            for row in await witnesses.list_witnesses(connection)
        ]

    with database(data_dir) as url:
        echo_json(run(admin.in_transaction(url, action)))


@witnesses_app.command("revoke")
def witnesses_revoke(name: str, data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Revoke a witness and all its keys."""
    from decision_log.witnesses import service as witnesses

    from audit_trail import admin

    with database(data_dir) as url:
        run(admin.in_transaction(url, lambda c: witnesses.revoke_witness(c, name=name)))
    typer.echo(f"witness {name} revoked")


@projections_app.command("rebuild")
def projections_rebuild(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Empty the decision read model and replay every chain into it, from the log alone."""
    from decision_log.db import create_engine
    from decision_log.decisions.projector import rebuild

    from audit_trail import admin

    async def action(url: str) -> int:
        engine = create_engine(url, role=admin.db_role(), pool_size=2)
        try:
            return await rebuild(engine)
        finally:
            await engine.dispose()

    with database(data_dir) as url:
        replayed = run(action(url))
    echo_json({"replayed_entries": replayed})


@projections_app.command("verify")
def projections_verify(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    tenant: Annotated[
        list[str] | None, typer.Option("--tenant", help="Only this tenant's chains (repeat)")
    ] = None,
) -> None:
    """Rebuild the decision read model from the log in scratch tables and report every
    difference from the live one (projection-mismatch: chain, decision, column, expected,
    found); exit 1 if there is any. The decision_log runs it every
    AUDIT_TRAIL_PROJECTION_VERIFY_SECONDS (an hour by default)."""
    from decision_log.auth import utc_now
    from decision_log.db import create_engine
    from decision_log.decisions.verification import verify_projections

    from audit_trail import admin

    async def action(url: str) -> Any:
        engine = create_engine(url, role=admin.db_role(), pool_size=1)
        try:
            return await verify_projections(engine, clock=utc_now, tenants=tenant or None)
        finally:
            await engine.dispose()

    with database(data_dir) as url:
        check = run(action(url))
    echo_json(check.summary())
    if check.mismatch_count:
        raise typer.Exit(1)


@projections_app.command("follow")
def projections_follow(
    data_dir: DataDir = DEFAULT_DATA_DIR,
    poll_seconds: Annotated[
        float, typer.Option(help="How often to look for new entries in every chain")
    ] = 0.2,
    host: Annotated[str, typer.Option(help="Address of /livez and /metrics")] = "127.0.0.1",
    port: Annotated[
        int | None,
        typer.Option(help="Serve /livez and /metrics (AUDIT_TRAIL_METRICS_TOKEN) on this port"),
    ] = None,
) -> None:
    """Keep the decision read model up to date, as a process of its own.

    Run it beside decision_log workers started with AUDIT_TRAIL_RUN_PROJECTOR=false: the
    projection's work then leaves the workers' cores to the requests. Any number may run.
    With --port, its series (how far the read model trails the log, failing chains) are
    served for Prometheus, since the workers no longer measure them.
    """
    from decision_log import heap
    from decision_log.db import create_engine
    from decision_log.decisions.projector import Projector
    from http_edge.metrics_server import serving_metrics

    from audit_trail import admin

    async def follow(url: str) -> None:
        engine = create_engine(url, role=admin.db_role(), pool_size=2)
        projector = Projector(engine=engine, poll_seconds=poll_seconds)
        stopped = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stopped.set)
        await projector.start()
        heap.settle()
        try:
            await stopped.wait()
        finally:
            await projector.stop()
            await engine.dispose()

    async def action(url: str) -> None:
        if port is None:
            await follow(url)
            return
        async with serving_metrics(host=host, port=port, http=guarded_http_protocol()):
            await follow(url)

    with database(data_dir) as url:
        typer.echo("projecting decisions; stop with Ctrl-C")
        run(action(url))


@verifier_app.callback(invoke_without_command=True)
def verifier(
    context: typer.Context,
    host: Annotated[
        str, typer.Option(envvar="AUDIT_TRAIL_VERIFIER_HOST", help="Address to listen on")
    ] = "127.0.0.1",
    port: Annotated[
        int, typer.Option(envvar="AUDIT_TRAIL_VERIFIER_PORT", help="verifier port")
    ] = 8001,
) -> None:
    """Run the verifier alone, configured by AUDIT_TRAIL_VERIFIER_* (see README, Verifier)."""
    from audit_trail import admin

    if context.invoked_subcommand is not None:
        return
    from ledger.note import CosignatureSigner
    from verifier import migrations as verifier_migrations
    from verifier.settings import Settings as VerifierSettings

    check_settings(VerifierSettings, "AUDIT_TRAIL_VERIFIER_")
    settings = VerifierSettings()  # type: ignore[call-arg]
    verifier_migrations.upgrade(settings.database_url)
    cosigner = CosignatureSigner(name=settings.name, key=admin.ensure_key(settings.key_file))
    typer.echo(f"verifier cosignature key: {cosigner.verifier_key}")
    typer.echo(f"following {settings.log_url}; API on http://{host}:{port}")
    from audit_trail.server import logging_config, run_server

    run_server(
        "verifier.app:create_app",
        http=guarded_http_protocol(),
        host=host,
        port=port,
        access_log=False,
        log_level=log_level(),
        log_config=logging_config(log_level()),
    )


@verifier_app.command("key")
def verifier_key(
    key_file: Annotated[
        Path,
        typer.Option(
            envvar="AUDIT_TRAIL_VERIFIER_KEY_FILE", help="PEM file of the verifier's Ed25519 key"
        ),
    ],
    name: Annotated[
        str, typer.Option(envvar="AUDIT_TRAIL_VERIFIER_NAME", help="Key name of its cosignatures")
    ] = "verifier.localhost/witness",
) -> None:
    """Print the verifier's cosignature verifier key, creating its key file (mode 0600) if
    there is none: register it with the log by `audit-trail witnesses add`."""
    from ledger.note import CosignatureSigner

    from audit_trail import admin

    typer.echo(CosignatureSigner(name=name, key=admin.ensure_key(key_file)).verifier_key)


@verifier_app.command("acknowledge")
def verifier_acknowledge(
    finding_id: int,
    operator: Annotated[str, typer.Option(help="Who acknowledges")],
    reason: Annotated[str, typer.Option(help="Why the chain may be followed again")],
    data_dir: DataDir = DEFAULT_DATA_DIR,
) -> None:
    """Acknowledge a finding, recorded for good: the chain continues in a new epoch from the
    last checkpoint cosigned before the finding's first bad index (or from 0, recorded as
    history replaced), and every later attestation spanning the finding names it."""
    from decision_log.auth import utc_now
    from verifier.db import create_engine as verifier_engine
    from verifier.epochs import EpochStart, acknowledge_finding

    async def action(url: str) -> EpochStart:
        engine = verifier_engine(url, role=os.environ.get("AUDIT_TRAIL_VERIFIER_DB_ROLE"))
        try:
            return await acknowledge_finding(
                engine, finding_id=finding_id, operator=operator, reason=reason, now=utc_now()
            )
        finally:
            await engine.dispose()

    configured = os.environ.get("AUDIT_TRAIL_VERIFIER_DATABASE_URL")
    if configured:
        started = run_verifier(action(configured))
        reported = report_acknowledgement(configured, finding_id, *witness_of_environment())
    else:
        with databases(data_dir) as (_, verifier_url):
            started = run_verifier(action(verifier_url))
            reported = report_acknowledgement(
                verifier_url, finding_id, *witness_of_data_dir(data_dir)
            )
    if started.history_replaced:
        where = "from 0: the history cosigned before is recorded as replaced"
    else:
        where = f"from the checkpoint of size {started.start_size} cosigned before the finding"
    typer.echo(f"finding {finding_id} acknowledged; epoch {started.epoch} continues {where}")
    if reported is None:
        typer.echo("recorded in the tenant's access log at the log")
    else:
        typer.secho(
            f"warning: not recorded at the log ({reported}); the acknowledgement stands in the "
            "verifier's store",
            err=True,
            fg="yellow",
        )
        raise typer.Exit(2)


def witness_of_environment() -> tuple[str | None, str | None]:
    """The log's URL and the witness key, as the verifier service is configured."""
    return (
        os.environ.get("AUDIT_TRAIL_VERIFIER_LOG_URL"),
        os.environ.get("AUDIT_TRAIL_VERIFIER_LOG_API_KEY"),
    )


def witness_of_data_dir(data_dir: Path) -> tuple[str | None, str | None]:
    """The log's URL and the witness key that `up` made in its data folder."""
    paths = LocalPaths(data_dir.resolve())
    try:
        url = json.loads(paths.credentials_file.read_text())["api_url"]
        key = json.loads(paths.verifier_credentials_file.read_text())["api_key"]
    except (OSError, ValueError, KeyError):
        return witness_of_environment()
    return url, key


def report_acknowledgement(
    verifier_url: str, finding_id: int, log_url: str | None, witness_key: str | None
) -> str | None:
    """Tell the log, as the witness; None once it has recorded it, else why not."""
    import httpx
    from verifier.acknowledgements import report_to_log
    from verifier.db import create_engine as verifier_engine
    from verifier.log_client import LogClient
    from verifier.problems import LogUnavailable

    if not log_url or not witness_key:
        return "no log URL and witness key (AUDIT_TRAIL_VERIFIER_LOG_URL, _LOG_API_KEY)"

    async def report() -> None:
        engine = verifier_engine(verifier_url, role=os.environ.get("AUDIT_TRAIL_VERIFIER_DB_ROLE"))
        log = LogClient(http=httpx.AsyncClient(base_url=log_url, timeout=30), api_key=witness_key)
        try:
            await report_to_log(engine, finding_id=finding_id, log=log)
        finally:
            await log.aclose()
            await engine.dispose()

    try:
        asyncio.run(report())
    except LogUnavailable as error:
        return str(error.detail)
    return None


def run_verifier(coroutine: Any) -> Any:
    from verifier.problems import Problem as VerifierProblem

    try:
        return asyncio.run(coroutine)
    except VerifierProblem as problem:
        typer.secho(f"error: {problem.detail}", err=True, fg="red")
        raise typer.Exit(1) from None


privacy_app = typer.Typer(no_args_is_help=True, help="Personal-data keys.")
app.add_typer(privacy_app, name="privacy")


@privacy_app.command("create-keys")
def privacy_create_keys(
    kek_file: Annotated[
        Path, typer.Option(envvar="AUDIT_TRAIL_KEK_FILE", help="File of the key-encryption keys")
    ],
    pseudonym_key_file: Annotated[
        Path,
        typer.Option(envvar="AUDIT_TRAIL_PSEUDONYM_KEY_FILE", help="File of the pseudonym key"),
    ],
) -> None:
    """Create the first key-encryption key and the pseudonym key, each in a 0600 file, for a
    decision_log run without a data folder; a file that exists is never overwritten."""
    from decision_log.privacy import keyring

    keyring.create_files(kek_file=kek_file, pseudonym_key_file=pseudonym_key_file)
    typer.echo(f"key-encryption keys: {kek_file}\npseudonym key: {pseudonym_key_file}")


@privacy_app.command("rotate-kek")
def privacy_rotate_kek(data_dir: DataDir = DEFAULT_DATA_DIR) -> None:
    """Rotate the key-encryption key: rewrap every surviving data key, retire the old KEKs.

    Run it on a schedule and after erasures: an erased subject's key is unrecoverable from
    backups and WAL only once the KEK that wrapped it is gone.
    """
    from decision_log.auth import utc_now
    from decision_log.db import create_engine
    from decision_log.privacy import keyring
    from decision_log.privacy.service import rotate_kek

    from audit_trail import admin

    paths = LocalPaths(data_dir.resolve())
    ring = keyring.Keyring.load(
        kek_file=paths.kek_file, pseudonym_key_file=paths.pseudonym_key_file
    )

    async def action(url: str) -> Any:
        engine = create_engine(url, role=admin.db_role(), pool_size=1)
        try:
            return await rotate_kek(engine, ring, now=utc_now)
        finally:
            await engine.dispose()

    with database(data_dir) as url:
        echo_json(run(action(url)))


def main() -> None:
    app()
