"""Admission of appends: what one worker holds at once is bounded, and shared fairly by tenants.

Two budgets bound an append from the moment it is authenticated until it is answered: the
bytes of its body (reserved from ``Content-Length`` before one byte is read, so a flood of large
batches is refused before it is buffered) and its events (reserved once parsed, until the group
commit answers). A request that does not fit is refused at once with 503 + Retry-After, which
costs the worker almost nothing, instead of waiting in memory (DESIGN.md, invariant 8).

Fairness: a tenant may hold at most its share of each budget, ``limit / (n + 1)`` where ``n`` is
the number of tenants holding something (itself included). The ``+ 1`` keeps room for a tenant
that has nothing in flight yet, so one tenant's flood never locks another out; a tenant holding
nothing is always let in while the budget has room for its request, however large (a batch may
be bigger than a share). Time waited is bounded separately, by the group commit's
``queue_timeout``.
"""

from __future__ import annotations

from dataclasses import dataclass

from decision_log import metrics
from decision_log.problems import Overloaded

BUDGETS = ("bytes", "events")


@dataclass(slots=True)
class Ticket:
    """What one request holds of each budget."""

    tenant: str
    bytes: int = 0
    events: int = 0


class Admission:
    def __init__(
        self, *, max_inflight_bytes: int, max_pending_events: int, retry_after_seconds: int
    ) -> None:
        self._limits = {"bytes": max_inflight_bytes, "events": max_pending_events}
        self._retry_after = retry_after_seconds
        # budget -> tenant -> amount held (tenants holding nothing are absent)
        self._by_tenant: dict[str, dict[str, int]] = {budget: {} for budget in BUDGETS}
        self._total = dict.fromkeys(BUDGETS, 0)

    def held(self, budget: str) -> int:
        """What every request of this worker holds of a budget now."""
        return self._total[budget]

    def reserve(self, ticket: Ticket, budget: str, amount: int) -> None:
        """Hold ``amount`` more of a budget for the ticket's request, or refuse (Overloaded)."""
        by_tenant = self._by_tenant[budget]
        total = self._total[budget]
        mine = by_tenant.get(ticket.tenant, 0)
        limit = self._limits[budget]
        if total + amount > limit or (mine and mine + amount > limit // (len(by_tenant) + 1)):
            metrics.APPENDS_REFUSED.labels("overloaded").inc()
            raise Overloaded(
                f"this worker holds {total} {budget} of appends, {mine} of them this tenant's; "
                "retry shortly",
                retry_after=self._retry_after,
            )
        by_tenant[ticket.tenant] = mine + amount
        self._total[budget] = total + amount
        setattr(ticket, budget, getattr(ticket, budget) + amount)

    def release(self, ticket: Ticket, budget: str, amount: int | None = None) -> None:
        """Give back ``amount`` of a budget (all the ticket holds of it by default)."""
        holding: int = getattr(ticket, budget)
        amount = holding if amount is None else min(amount, holding)
        if amount <= 0:
            return
        by_tenant = self._by_tenant[budget]
        left = by_tenant[ticket.tenant] - amount
        if left > 0:
            by_tenant[ticket.tenant] = left
        else:
            del by_tenant[ticket.tenant]
        self._total[budget] -= amount
        setattr(ticket, budget, holding - amount)
