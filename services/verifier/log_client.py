"""The decision_log's read API as the verifier uses it, with a witness key or a tenant key.

A witness key sees every chain (``/v1/witness/chains/{tenant}/{chain}/...``) and may post
cosignatures; a tenant auditor key sees its tenant's chains (``/v1/chains/{chain}/...``) and may
not, so in that mode cosignatures are kept in the verifier's store only. Nothing the log answers
is trusted: every answer is checked by the caller against the log's public key.
"""

from __future__ import annotations

import contextlib
from collections.abc import AsyncGenerator
from dataclasses import dataclass
from typing import Any, Final, Literal

import httpx
import orjson
from ledger.leaf import LEAF_FRAMES

from verifier.problems import Forbidden, LogUnavailable, Unauthenticated

Mode = Literal["witness", "tenant"]
NDJSON: Final = "application/x-ndjson"


@dataclass(frozen=True, slots=True)
class ChainName:
    tenant: str
    chain: str


class LogClient:
    def __init__(self, *, http: httpx.AsyncClient, api_key: str) -> None:
        self._http = http
        self._headers = {"Authorization": f"Bearer {api_key}"}
        self.mode: Mode | None = None

    async def aclose(self) -> None:
        await self._http.aclose()

    def _base(self, name: ChainName) -> str:
        if self.mode == "tenant":
            return f"/v1/chains/{name.chain}"
        return f"/v1/witness/chains/{name.tenant}/{name.chain}"

    async def _get(self, path: str, **params: Any) -> httpx.Response:
        try:
            response = await self._http.get(path, params=params, headers=self._headers)
        except httpx.HTTPError as error:
            raise LogUnavailable(f"the log is unreachable: {type(error).__name__}") from None
        _raise_for_status(response, path)
        return response

    async def list_chains(self) -> list[ChainName]:
        """Every chain this key can see; decides the mode on first use."""
        if self.mode in (None, "witness"):
            try:
                response = await self._http.get("/v1/witness/chains", headers=self._headers)
            except httpx.HTTPError as error:
                raise LogUnavailable(f"the log is unreachable: {type(error).__name__}") from None
            if response.status_code == 403 and self.mode is None:
                self.mode = "tenant"
            else:
                _raise_for_status(response, "/v1/witness/chains")
                self.mode = "witness"
                return _chain_names(response)
        return _chain_names(await self._get("/v1/chains"))

    async def detect_mode(self) -> Mode:
        """Whether the key is a witness key or a tenant key (asks the log once)."""
        if self.mode is None:
            await self.list_chains()
        assert self.mode is not None
        return self.mode

    async def checkpoint(self, name: ChainName) -> str:
        return (await self._get(f"{self._base(name)}/checkpoint")).text

    async def entries(
        self, name: ChainName, *, start: int, end: int, frames: bool = True
    ) -> AsyncGenerator[tuple[bytes, bool], None]:
        """The raw bytes of entries [start, end) as they arrive, each chunk with whether it is
        leaf frames (asked for first: no base64 or JSON to undo) or NDJSON (what older logs
        serve, and what `frames=False` asks for: its lines carry the log's stored hash too)."""
        path = f"{self._base(name)}/entries/stream"
        accept = f"{LEAF_FRAMES}, {NDJSON};q=0.5" if frames else NDJSON
        headers = {**self._headers, "Accept": accept}
        try:
            async with self._http.stream(
                "GET", path, params={"start": start, "end": end}, headers=headers
            ) as response:
                if response.status_code != 200:
                    await response.aread()
                    _raise_for_status(response, path)
                frames = response.headers.get("content-type", "").startswith(LEAF_FRAMES)
                async for chunk in response.aiter_raw():
                    yield chunk, frames
        except httpx.HTTPError as error:
            raise LogUnavailable(f"the entry stream failed: {type(error).__name__}") from None

    async def stored_leaf_hash(self, name: ChainName, *, index: int) -> bytes | None:
        """The leaf hash the log stores beside entry `index` (None if it serves no such entry).

        Never evidence of what the leaf is; only of whether the log's own data still agrees
        with a leaf that changed (`verifier.history`)."""
        body = b""
        async with contextlib.aclosing(
            self.entries(name, start=index, end=index + 1, frames=False)
        ) as chunks:
            async for chunk, _ in chunks:
                body += chunk
        for line in body.splitlines():
            try:
                record = orjson.loads(line)
                if record.get("index") == index:
                    return bytes.fromhex(record["leaf_hash"])
            except (orjson.JSONDecodeError, AttributeError, KeyError, TypeError, ValueError):
                continue
        return None

    async def consistency_proof(
        self, name: ChainName, *, old_size: int, new_size: int
    ) -> list[bytes]:
        body = (
            await self._get(
                f"{self._base(name)}/proof/consistency", **{"from": old_size, "to": new_size}
            )
        ).json()
        return _hashes(body)

    async def inclusion_proof(
        self, name: ChainName, *, index: int, tree_size: int
    ) -> tuple[bytes, list[bytes]]:
        """(the leaf hash the log claims, the proof); both are checked by the caller."""
        body = (
            await self._get(f"{self._base(name)}/proof/inclusion", index=index, tree_size=tree_size)
        ).json()
        try:
            return bytes.fromhex(body["leaf_hash"]), _hashes(body)
        except (KeyError, TypeError, ValueError):
            raise LogUnavailable("the log's inclusion proof is malformed") from None

    async def post_cosignature(self, name: ChainName, *, size: int, line: str) -> bool:
        """Post a cosignature (witness mode only); False if this key cannot post."""
        if self.mode != "witness":
            return False
        path = f"{self._base(name)}/cosignatures"
        try:
            response = await self._http.post(
                path, json={"size": size, "signature": line}, headers=self._headers
            )
        except httpx.HTTPError as error:
            raise LogUnavailable(f"the log is unreachable: {type(error).__name__}") from None
        _raise_for_status(response, path)
        return True

    async def post_acknowledgement(self, name: ChainName, body: dict[str, Any]) -> None:
        """Report an acknowledged finding; only a witness may (a tenant key gets 403)."""
        path = f"/v1/witness/chains/{name.tenant}/{name.chain}/acknowledgements"
        try:
            response = await self._http.post(path, json=body, headers=self._headers)
        except httpx.HTTPError as error:
            raise LogUnavailable(f"the log is unreachable: {type(error).__name__}") from None
        _raise_for_status(response, path)

    async def chains_of_caller(self, api_key: str) -> list[ChainName]:
        """The chains a caller's own key may read at the log: how the verifier authorises."""
        try:
            response = await self._http.get(
                "/v1/chains", headers={"Authorization": f"Bearer {api_key}"}
            )
        except httpx.HTTPError as error:
            raise LogUnavailable(f"the log is unreachable: {type(error).__name__}") from None
        if response.status_code == 401:
            raise Unauthenticated("the log does not accept this API key")
        if response.status_code == 403:
            raise Forbidden("this API key may not read chains (it needs the auditor role)")
        _raise_for_status(response, "/v1/chains")
        return _chain_names(response)


def _raise_for_status(response: httpx.Response, path: str) -> None:
    if response.status_code >= 400:
        raise LogUnavailable(
            f"the log answered {response.status_code} to {path}: {response.text[:300]}",
            log_status=response.status_code,
        )


def _chain_names(response: httpx.Response) -> list[ChainName]:
    try:
        return [
            ChainName(tenant=str(chain["tenant"]), chain=str(chain["chain"]))
            for chain in response.json()["chains"]
        ]
    except (KeyError, TypeError, ValueError):
        raise LogUnavailable("the log's chain list is malformed") from None


def _hashes(body: Any) -> list[bytes]:
    try:
        return [bytes.fromhex(value) for value in body["hashes"]]
    except (KeyError, TypeError, ValueError):
        raise LogUnavailable("the log's proof is malformed") from None
