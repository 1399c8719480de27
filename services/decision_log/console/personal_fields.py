"""Personal fields of a decision's events on the decision page: opened for a session whose key
has the personal-data role, otherwise withheld, with the reason, as the API's
``GET /v1/chains/{chain}/entries/{index}/event`` does (``PersonalData.reveal``)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from decision_log.decisions.schemas import DecisionView
from decision_log.keys.service import Principal
from decision_log.privacy.service import PERSONAL_DATA_ROLE, personal_pointers
from decision_log.state import AppState


@dataclass(frozen=True)
class PersonalFields:
    event: dict[str, Any]  # the event with what could be opened opened
    opened: bool
    withheld: tuple[str, ...]
    why_withheld: str | None


async def personal_fields(
    state: AppState, principal: Principal, view: DecisionView
) -> dict[int, PersonalFields]:
    """For each timeline event that marks personal fields: what this session may see."""
    may = PERSONAL_DATA_ROLE in principal.roles
    found: dict[int, PersonalFields] = {}
    marked = [event for event in view.timeline if personal_pointers(event.event)]
    if not marked:
        return found
    async with state.engine.connect() as connection:
        for event in marked:
            revealed = await state.personal_data.reveal(
                connection,
                tenant_id=principal.tenant_id,
                tenant=principal.tenant,
                chain=view.chain,
                event=event.event,
                may_read_personal_data=may,
            )
            withheld = tuple(revealed.withheld)
            found[event.index] = PersonalFields(
                event=revealed.event,
                opened=may and len(withheld) < len(personal_pointers(event.event)),
                withheld=withheld,
                why_withheld=None if not withheld else ("erased" if may else "no right"),
            )
    return found
