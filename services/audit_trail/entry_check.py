"""``audit-trail check-entry``: check one entry of a live log from outside, as a third party.

It trusts nothing the log says about itself: the keys are the caller's, the leaf hash is
recomputed from the leaf bytes, the inclusion proof is folded up to the checkpoint's root, and
the checkpoint's signature and the verifier's cosignature are checked with those keys. Only the
pure core (``ledger``) and an HTTP client are used.
"""

from __future__ import annotations

import base64
import contextlib
from datetime import UTC, datetime
from typing import TYPE_CHECKING, Annotated, Any
from urllib.parse import quote

import typer

from audit_trail.bundles import read_verifier_key

if TYPE_CHECKING:
    import httpx
    from ledger.note import NoteVerifier

# httpx and the core's cryptography are imported when the command runs, so that the command line
# starts at once (`audit-trail --help` imports this module).

CHECKED = 0
FAILED = 1
NOT_WITNESSED = 2  # as verify-bundle: consistent with the log key only


class CheckFailed(Exception):
    """A step did not hold; the message says which."""


def check_entry_command(
    chain: Annotated[str, typer.Argument(help="The chain")],
    index: Annotated[int, typer.Argument(help="The entry's index", min=0)],
    log_key: Annotated[
        str, typer.Option("--log-key", help="The log's verifier key (or a file holding it)")
    ],
    verifier_key: Annotated[
        str | None,
        typer.Option(
            "--verifier-key",
            help="The verifier's cosignature verifier key (or a file holding it); without it "
            "the entry is at best consistent with the log key, not witnessed (exit 2)",
        ),
    ] = None,
    url: Annotated[
        str, typer.Option(envvar="AUDIT_TRAIL_URL", help="The decision_log's base URL")
    ] = "http://127.0.0.1:8000",
    api_key: Annotated[
        str, typer.Option(envvar="AUDIT_TRAIL_API_KEY", help="An auditor API key")
    ] = "",
) -> None:
    """Check one entry against the log's latest checkpoint: the leaf's hash, its inclusion proof,
    the log's signature and the verifier's cosignature. Exit 0: all hold; 1: a step failed
    (named); 2: no --verifier-key, so the checkpoint is not shown to be witnessed."""
    log = read_verifier_key(log_key, option="--log-key")
    verifier = (
        None if verifier_key is None else read_verifier_key(verifier_key, option="--verifier-key")
    )
    import httpx

    headers = {"Authorization": f"Bearer {api_key}"}
    try:
        with httpx.Client(base_url=url, headers=headers, timeout=30.0) as http:
            check(http, chain=chain, index=index, log=log, verifier=verifier)
    except CheckFailed as failure:
        typer.secho(f"FAILED entry {index} of {chain}: {failure}", fg="red")
        raise typer.Exit(FAILED) from None
    except (KeyError, TypeError, ValueError) as error:
        # A log that answers 200 with something else than an entry or a proof proves nothing.
        what = f"{type(error).__name__}: {error}"
        typer.secho(
            f"FAILED entry {index} of {chain}: the log's answer is malformed ({what})", fg="red"
        )
        raise typer.Exit(FAILED) from None
    except httpx.HTTPError as error:
        typer.secho(f"error: {url}: {error}", err=True, fg="red")
        raise typer.Exit(FAILED) from None
    if verifier is None:
        typer.secho(
            f"NOT WITNESSED entry {index} of {chain}: consistent with the log key; give "
            "--verifier-key to check the verifier's cosignature",
            fg="yellow",
        )
        raise typer.Exit(NOT_WITNESSED)
    typer.secho(f"VERIFIED entry {index} of {chain}", fg="green")


def check(
    http: httpx.Client,
    *,
    chain: str,
    index: int,
    log: NoteVerifier,
    verifier: NoteVerifier | None,
) -> None:
    from ledger.errors import NoteError, ProofError
    from ledger.merkle import leaf_hash, verify_inclusion
    from ledger.note import Checkpoint, open_note, verify_cosignature

    path = f"/v1/chains/{quote(chain, safe='')}"
    note = answer(http.get(f"{path}/checkpoint")).text
    try:
        opened = open_note(note, [log])
        checkpoint = Checkpoint.parse(opened.text)
    except NoteError as error:
        raise CheckFailed(f"checkpoint: {error}") from None
    typer.echo(
        f"checkpoint: {checkpoint.size} entries, root {checkpoint.root_hash.hex()[:16]}..., "
        f"signed by {log.name}: ok"
    )
    if verifier is not None:
        cosignatures = [
            line
            for line in opened.unverified
            if (line.name, line.key_id) == (verifier.name, verifier.key_id)
        ]
        if not cosignatures:
            raise CheckFailed(f"the checkpoint carries no cosignature by {verifier.name}")
        try:
            timestamp = verify_cosignature(opened.text, cosignatures[0], verifier)
        except NoteError as error:
            raise CheckFailed(f"cosignature: {error}") from None
        when = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
        typer.echo(f"cosigned by {verifier.name} at {when}: ok")
    if index >= checkpoint.size:
        raise CheckFailed(f"the latest checkpoint covers {checkpoint.size} entries")
    entry = answer(http.get(f"{path}/entries/{index}")).json()
    leaf = base64.b64decode(entry["leaf"])
    computed = leaf_hash(leaf)
    if computed.hex() != entry["leaf_hash"]:
        raise CheckFailed(f"the leaf's bytes hash to {computed.hex()}, not {entry['leaf_hash']}")
    typer.echo(f"entry {index}: leaf hash {computed.hex()[:16]}... recomputed from its bytes: ok")
    proof = answer(
        http.get(f"{path}/proof/inclusion", params={"index": index, "tree_size": checkpoint.size})
    ).json()
    try:
        verify_inclusion(
            leaf_hash=computed,
            index=index,
            size=checkpoint.size,
            proof=[bytes.fromhex(value) for value in proof["hashes"]],
            root=checkpoint.root_hash,
        )
    except (ProofError, ValueError) as error:
        raise CheckFailed(f"inclusion proof: {error}") from None
    typer.echo(
        f"entry {index}: inclusion proof ({len(proof['hashes'])} hashes) leads to the "
        "checkpoint's root: ok"
    )


def answer(response: httpx.Response) -> httpx.Response:
    if response.status_code >= 400:
        detail: Any = response.text
        with contextlib.suppress(ValueError):
            detail = response.json().get("detail", detail)
        where = response.request.url.path
        raise CheckFailed(f"HTTP {response.status_code} from {where}: {detail}")
    return response
