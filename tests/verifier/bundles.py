"""Reading export bundles, and rewriting them the way their holder could."""

from __future__ import annotations

import base64
import hashlib
import io
import zipfile
from typing import Any

import httpx
import orjson
from ledger.bundle import MANIFEST, SHA256SUMS, manifest_statement, sha256sums
from ledger.dsse import IN_TOTO_PAYLOAD_TYPE, sign_envelope
from ledger.keys import SigningKey

from tests.service.conftest import TenantKeys
from tests.service.helpers import headers


async def export(
    http: httpx.AsyncClient, tenant: TenantKeys, request: dict[str, Any]
) -> tuple[dict[str, Any], bytes]:
    """Ask for an export, wait for it, and download it: (the job, the bundle bytes)."""
    response = await http.post(
        f"/v1/chains/{tenant.chain}/exports", json=request, headers=headers(tenant.auditor)
    )
    assert response.status_code in (201, 202), response.text
    job: dict[str, Any] = response.json()
    while job["status"] == "running":
        job = (await http.get(f"/v1/exports/{job['id']}", headers=headers(tenant.auditor))).json()
    assert job["status"] == "ready", job
    download = await http.get(job["download"], headers=headers(tenant.auditor))
    assert download.status_code == 200, download.text
    assert hashlib.sha256(download.content).hexdigest() == job["sha256"]
    return job, download.content


def unzip(data: bytes) -> dict[str, bytes]:
    with zipfile.ZipFile(io.BytesIO(data)) as archive:
        return {name: archive.read(name) for name in archive.namelist()}


def rezip(files: dict[str, bytes]) -> io.BytesIO:
    """The files in a zip as the exporter writes one (deflated), ready to be read."""
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w", compression=zipfile.ZIP_DEFLATED) as archive:
        for name, data in files.items():
            archive.writestr(name, data)
    out.seek(0)
    return out


def resign(files: dict[str, bytes], key: SigningKey) -> dict[str, bytes]:
    """Recompute SHA256SUMS and the manifest over the files, signed with `key`."""
    body = {n: d for n, d in files.items() if n not in (SHA256SUMS, MANIFEST)}
    digests = {n: hashlib.sha256(d).hexdigest() for n, d in body.items()}
    old = orjson.loads(files[MANIFEST])
    predicate = orjson.loads(base64.b64decode(old["payload"]))["predicate"]
    statement = manifest_statement(digests, predicate)
    envelope = sign_envelope(payload_type=IN_TOTO_PAYLOAD_TYPE, payload=statement, key=key)
    return {**body, SHA256SUMS: sha256sums(digests), MANIFEST: orjson.dumps(envelope)}
