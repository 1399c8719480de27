"""The access log page: the tenant's ``access-log`` chain read as the API reads any chain
(``chains.service.read_entries``), newest first, each entry's event summarised in words."""

from __future__ import annotations

import base64
from dataclasses import dataclass
from typing import Any

import orjson

from decision_log.chains import service as chains
from decision_log.decisions.projector import ACCESS_CHAIN
from decision_log.keys.service import Principal
from decision_log.problems import NotFound
from decision_log.state import AppState

PAGE = 50


@dataclass(frozen=True)
class AccessRecord:
    index: int
    at: str | None
    who: str
    action: str
    about: str
    problems: list[str]


@dataclass(frozen=True)
class AccessPage:
    records: list[AccessRecord]
    older: int | None  # the ``before`` of the next, older page


async def access_page(state: AppState, principal: Principal, *, before: int | None) -> AccessPage:
    async with state.engine.connect() as connection:
        try:
            row = await chains.get_chain(
                connection, tenant_id=principal.tenant_id, chain=ACCESS_CHAIN
            )
        except NotFound:
            return AccessPage(records=[], older=None)
        stop = int(row.size) if before is None else min(before, int(row.size))
        start = max(stop - PAGE, 0)
        page = await chains.read_entries(connection, row=row, start=start, limit=stop - start or 1)
    entries = [entry for entry in page.entries if entry.index < stop]
    return AccessPage(
        records=[_record(entry.index, entry.leaf, entry.problems) for entry in reversed(entries)],
        older=start if start > 0 else None,
    )


def _record(index: int, leaf: str | None, problems: list[str] | None) -> AccessRecord:
    if leaf is None:
        return AccessRecord(index, None, "", "missing from the store", "", problems or [])
    event = orjson.loads(base64.b64decode(leaf))["event"]
    data: dict[str, Any] = event.get("data") or {}
    who = data.get("accessor") or data.get("actor") or {}
    return AccessRecord(
        index=index,
        at=event.get("time"),
        who=_who(who),
        action=str(data.get("action", event.get("type", ""))),
        about=_about(data),
        problems=problems or [],
    )


def _who(actor: dict[str, Any]) -> str:
    if actor.get("key_id"):
        roles = ", ".join(actor.get("roles") or [])
        return f"key {actor['key_id']}" + (f" ({roles})" if roles else "")
    if actor.get("operator"):
        return f"{actor.get('via', '')}: {actor['operator']}"
    return str(actor.get("via", "the log"))


def _about(data: dict[str, Any]) -> str:
    parts = []
    if data.get("chain"):
        parts.append(f"chain {data['chain']}")
    if data.get("decision_id"):
        parts.append(f"decision {data['decision_id']}")
    if data.get("query"):
        parts.append("query " + orjson.dumps(data["query"]).decode())
    if data.get("target"):
        parts.append("target " + orjson.dumps(data["target"]).decode())
    if data.get("changes"):
        parts.append("changes " + orjson.dumps(data["changes"]).decode())
    if data.get("reason"):
        parts.append(f"reason: {data['reason']}")
    return "; ".join(parts)
