"""``audit-trail export`` and ``audit-trail verify-bundle``: ask a log for a bundle, check one.

verify-bundle uses only the pure core (`ledger`): no database, no network, no server code.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING, Annotated, Any

import typer

if TYPE_CHECKING:
    import httpx
    from ledger.note import NoteVerifier

# httpx and the core's cryptography are imported by the commands that use them, so that the
# command line starts at once (`audit-trail --help` imports this module).

POLL_SECONDS = 1.0


def read_verifier_key(value: str, *, option: str) -> NoteVerifier:
    """A signed-note verifier key, given as is or as the path of a file holding it."""
    from ledger.errors import NoteError
    from ledger.note import NoteVerifier

    path = Path(value)
    text = path.read_text().strip() if "+" not in value and path.is_file() else value.strip()
    try:
        return NoteVerifier.from_verifier_key(text)
    except NoteError as error:
        raise typer.BadParameter(str(error), param_hint=option) from None


# verify-bundle's exit statuses, so that a script can tell them apart.
VERIFIED = 0
FAILED = 1
NOT_WITNESSED = 2  # consistent with the log key only: no verifier key was given
UNACCEPTED_FINDINGS = 3  # spans acknowledged findings that were not accepted by id


def verify_bundle_command(
    bundle: Annotated[Path, typer.Argument(help="The bundle (zip) to verify", exists=True)],
    log_key: Annotated[
        str, typer.Option("--log-key", help="The log's verifier key (or a file holding it)")
    ],
    verifier_key: Annotated[
        str | None,
        typer.Option(
            "--verifier-key",
            help="The verifier's cosignature verifier key (or a file holding it); without it "
            "the bundle is at best consistent with the log key, not witnessed (exit 2)",
        ),
    ] = None,
    extract: Annotated[
        Path | None,
        typer.Option(
            "--extract",
            help="Write the bundle's files into this new or empty directory, only once every "
            "check holds; read the bundle from there, never from the zip",
            file_okay=False,
        ),
    ] = None,
    accept_acknowledged: Annotated[
        list[str] | None,
        typer.Option(
            "--accept-acknowledged",
            help="Accept a bundle whose history spans this acknowledged finding (its id; "
            "repeat for several); otherwise such a bundle exits 3",
        ),
    ] = None,
) -> None:
    """Verify an export bundle offline. Exit 0: every check holds, under the log's and the
    verifier's keys; 1: a check failed (the first is named); 2: consistent with the log key
    only, not witnessed (no --verifier-key); 3: it spans an acknowledged finding not accepted."""
    from ledger.bundle import BundleError, verify_bundle
    from ledger.note import ALG_COSIGNATURE_V1

    log = read_verifier_key(log_key, option="--log-key")
    witness = (
        None if verifier_key is None else read_verifier_key(verifier_key, option="--verifier-key")
    )
    if witness is not None and witness.alg != ALG_COSIGNATURE_V1:
        raise typer.BadParameter(
            "give the verifier's cosignature key (type 0x04)", param_hint="--verifier-key"
        )
    try:
        with bundle.open("rb") as file:
            report = verify_bundle(file, log_key=log, verifier_key=witness, extract_to=extract)
    except OSError as error:
        typer.secho(f"FAILED {bundle}: cannot be read ({error.strerror})", err=True, fg="red")
        raise typer.Exit(FAILED) from None
    except BundleError as error:
        for line in error.warnings:
            typer.secho(line, err=True, fg="yellow")
        typer.secho(f"FAILED {error}", err=True, fg="red")
        raise typer.Exit(FAILED) from None
    for line in report.lines():
        typer.echo(line)
    if extract is not None:
        typer.echo(f"EXTRACTED      to {extract}: read the bundle's files from there, not the zip")
    if not report.witnessed:
        typer.secho(
            f"NOT WITNESSED {bundle}: consistent with the log key only, not witnessed "
            "(give --verifier-key to check the verifier's cosignature and attestation)",
            fg="yellow",
        )
        raise typer.Exit(NOT_WITNESSED)
    accepted = set(accept_acknowledged or ())
    unaccepted = [f for f in report.acknowledged_findings if str(f.get("id")) not in accepted]
    if unaccepted:
        ids = ", ".join(str(f.get("id")) for f in unaccepted)
        typer.secho(
            f"ACKNOWLEDGED FINDINGS {bundle}: its history spans finding(s) {ids}, acknowledged "
            "by an operator, not re-certified; accept each with --accept-acknowledged ID",
            fg="yellow",
        )
        raise typer.Exit(UNACCEPTED_FINDINGS)
    typer.secho(f"VERIFIED {bundle}", fg="green")


def export_command(
    chain: Annotated[str, typer.Argument(help="The chain to export from")],
    output: Annotated[Path, typer.Option("--output", "-o", help="Where to write the bundle")],
    url: Annotated[
        str, typer.Option(envvar="AUDIT_TRAIL_URL", help="The decision_log's base URL")
    ] = "http://127.0.0.1:8000",
    api_key_file: Annotated[
        Path | None,
        typer.Option(
            "--api-key-file",
            help="A file holding an auditor API key (its content, stripped); or set "
            "AUDIT_TRAIL_API_KEY",
        ),
    ] = None,
    api_key: Annotated[
        str,
        typer.Option(
            envvar="AUDIT_TRAIL_API_KEY",
            show_envvar=True,
            help="An auditor API key. Prefer AUDIT_TRAIL_API_KEY or --api-key-file: a key on "
            "the command line is seen by every user of the machine and kept in shell history",
        ),
    ] = "",
    start: Annotated[int | None, typer.Option(help="First index of a range")] = None,
    end: Annotated[int | None, typer.Option(help="One past the last index of a range")] = None,
    since: Annotated[str | None, typer.Option(help="Received at or after (RFC 3339)")] = None,
    until: Annotated[str | None, typer.Option(help="Received before (RFC 3339)")] = None,
    decision: Annotated[
        list[str] | None, typer.Option("--decision", help="A decision to export (repeat)")
    ] = None,
    consistency_from: Annotated[
        list[int] | None,
        typer.Option("--consistency-from", help="Size of a checkpoint you hold (repeat)"),
    ] = None,
    override_reason: Annotated[
        str | None,
        typer.Option(
            "--override-reason",
            help="Export even what does not verify (needs a key with the admin and auditor "
            "roles); the reason is logged and printed at the top of the bundle",
        ),
    ] = None,
) -> None:
    """Ask the log for an export bundle, wait until it is built, and download it."""
    import httpx

    request: dict[str, Any]
    if decision:
        request = {"kind": "decisions", "decision_ids": decision}
    elif since is not None or until is not None:
        request = {"kind": "time", "since": since, "until": until}
    else:
        request = {"kind": "range", "start": start, "end": end}
    request = {k: v for k, v in request.items() if v is not None}
    request["consistency_from"] = consistency_from or []
    if override_reason is not None:
        request["override_reason"] = override_reason
    headers = {"Authorization": f"Bearer {read_api_key(api_key, api_key_file)}"}
    with httpx.Client(base_url=url, headers=headers, timeout=120.0) as http:
        response = http.post(f"/v1/chains/{chain}/exports", json=request)
        job = _answer(response)
        while job["status"] == "running":
            typer.echo(f"building: {job['done']}/{job['total']} entries", err=True)
            time.sleep(POLL_SECONDS)
            job = _answer(http.get(f"/v1/exports/{job['id']}"))
        if job["status"] != "ready":
            typer.secho(
                f"error: export {job['id']} {job['status']}: {job['error']}", err=True, fg="red"
            )
            raise typer.Exit(1)
        if job.get("override_reason") is not None:
            typer.secho(
                f"warning: built under an override; {len(job.get('overridden') or [])} "
                "check(s) failed and are listed at the top of the bundle",
                err=True,
                fg="yellow",
            )
        with http.stream("GET", job["download"]) as download, output.open("wb") as out:
            if download.status_code != 200:
                download.read()
                _answer(download)
            for chunk in download.iter_bytes():
                out.write(chunk)
    typer.echo(f"{output}: {job['total']} entries, {job['bytes']} bytes, sha256 {job['sha256']}")


def read_api_key(given: str, path: Path | None) -> str:
    """The API key from --api-key-file, else from AUDIT_TRAIL_API_KEY or --api-key."""
    if path is None:
        key = given.strip()
    else:
        try:
            key = path.read_text(encoding="utf-8").strip()
        except (OSError, UnicodeDecodeError) as error:
            raise typer.BadParameter(
                f"cannot read {path}: {type(error).__name__}", param_hint="--api-key-file"
            ) from None
    if not key:
        raise typer.BadParameter(
            "give an API key: set AUDIT_TRAIL_API_KEY or use --api-key-file PATH",
            param_hint="--api-key-file",
        )
    return key


def _answer(response: httpx.Response) -> dict[str, Any]:
    if response.status_code >= 400:
        try:
            problem = response.json()
            detail = problem.get("detail", response.text)
            named = {k: problem[k] for k in ("check", "index") if problem.get(k) is not None}
            if named:
                detail += " (" + ", ".join(f"{k} {v}" for k, v in named.items()) + ")"
        except (ValueError, AttributeError):
            detail = response.text
        typer.secho(f"error: HTTP {response.status_code}: {detail}", err=True, fg="red")
        sys.exit(1)
    answer: dict[str, Any] = response.json()
    return answer


verify_app = typer.Typer(add_completion=False, pretty_exceptions_enable=False)
verify_app.command()(verify_bundle_command)
