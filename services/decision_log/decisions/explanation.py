"""One decision explained, from what was recorded and nothing else (GDPR Art. 22(3), AI Act
Art. 86; R8): the system, model and policy that decided, the factors and counterfactual computed
at decision time, and what humans and the affected person did afterwards, each as recorded in
the log. Nothing here consults a model, a policy or any state other than the entries.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

from decision_log.decisions.event_types import (
    DECISION_CONTESTED,
    DECISION_OVERRIDDEN,
    DECISION_REVIEWED,
    OUTCOME_OBSERVED,
)
from decision_log.decisions.schemas import Contest, Deployment, Explanation, Factor, HumanAction

MAX_FACTORS = 5


@dataclass(frozen=True, slots=True)
class RecordedEvent:
    index: int
    type: str
    event: dict[str, Any]


def _data(event: dict[str, Any]) -> dict[str, Any]:
    data = event.get("data")
    return data if isinstance(data, dict) else {}


def _object(value: object) -> dict[str, Any] | None:
    return value if isinstance(value, dict) else None


def _str(value: object) -> str | None:
    return value if isinstance(value, str) else None


def _num(value: object) -> float | None:
    return float(value) if isinstance(value, int | float) and not isinstance(value, bool) else None


def explain(
    *,
    chain: str,
    decided_at: datetime,
    recorded: RecordedEvent,
    later: list[RecordedEvent],
    deployment: RecordedEvent | None,
    deployment_leaf_hash: str | None,
) -> Explanation:
    data = _data(recorded.event)
    system = _object(data.get("system")) or {}
    model = _object(data.get("model")) or {}
    policy = _object(data.get("policy"))
    output = _object(data.get("output")) or {}
    applied = _object(data.get("explanation")) or {}
    factors = _factors(applied.get("attributions"))
    reason_codes = [c for c in applied.get("reason_codes") or [] if isinstance(c, dict)]
    oversight, contests, outcome, current = human_and_later(later, _str(output.get("decision")))
    deployed = None
    if deployment is not None and deployment_leaf_hash is not None:
        deployed_data = _data(deployment.event)
        deployed = Deployment(
            index=deployment.index,
            leaf_hash=deployment_leaf_hash,
            deployment=_str(deployed_data.get("deployment")),
            lineage=_object(deployed_data.get("lineage")),
        )
    explanation = Explanation(
        recorded_at=decided_at,
        index=recorded.index,
        system=_str(system.get("name")) or chain,
        deployment=_str(system.get("deployment")),
        model=model,
        model_deployment=deployed,
        policy=policy,
        decision=_str(output.get("decision")),
        score=_num(output.get("score")),
        method=_str(applied.get("method")),
        factors=factors,
        reason_codes=reason_codes,
        counterfactual=_object(applied.get("counterfactual")),
        summary=_str(applied.get("summary")),
        purpose=_str(data.get("purpose")),
        solely_automated=data.get("solely_automated")
        if isinstance(data.get("solely_automated"), bool)
        else None,
        legal_or_similar_effect=data.get("legal_or_similar_effect")
        if isinstance(data.get("legal_or_similar_effect"), bool)
        else None,
        human_oversight=oversight,
        contests=contests,
        outcome=outcome,
        current_decision=current,
        text="",
    )
    explanation.text = paragraph(explanation)
    return explanation


def human_and_later(
    later: list[RecordedEvent], current: str | None
) -> tuple[list[HumanAction], list[Contest], str | None, str | None]:
    """Reviews and overrides, contests, the latest outcome and the decision as it now stands,
    from the events that followed the decision."""
    oversight: list[HumanAction] = []
    contests: list[Contest] = []
    outcome: str | None = None
    for item in later:
        later_data = _data(item.event)
        if item.type in (DECISION_REVIEWED, DECISION_OVERRIDDEN):
            oversight.append(
                HumanAction(
                    index=item.index,
                    type=item.type,
                    action=_str(later_data.get("action")),
                    reviewer_ref=_str(later_data.get("reviewer_ref")),
                    role=_str(later_data.get("role")),
                    new_decision=_str(later_data.get("new_decision")),
                    reason=_str(later_data.get("reason")),
                    at=_str(later_data.get("at")) or _str(item.event.get("time")),
                )
            )
            current = _str(later_data.get("new_decision")) or current
        elif item.type == DECISION_CONTESTED:
            contests.append(
                Contest(
                    index=item.index,
                    by=_str(later_data.get("by")) or "data-subject",
                    grounds=_str(later_data.get("grounds")),
                    channel=_str(later_data.get("channel")),
                    at=_str(later_data.get("at")) or _str(item.event.get("time")),
                )
            )
        elif item.type == OUTCOME_OBSERVED:
            outcome = _str(later_data.get("outcome")) or outcome
    return oversight, contests, outcome, current


def _factors(attributions: object) -> list[Factor]:
    if not isinstance(attributions, list):
        return []
    factors = [
        Factor(
            feature=item["feature"],
            weight=float(item["weight"]),
            direction="raised" if item["weight"] >= 0 else "lowered",
            value=item.get("value"),
        )
        for item in attributions
        if isinstance(item, dict)
        and isinstance(item.get("feature"), str)
        and _num(item.get("weight")) is not None
    ]
    # Python's sort is stable: equal weights keep the order the producer recorded.
    factors.sort(key=lambda factor: abs(factor.weight), reverse=True)
    return factors[:MAX_FACTORS]


def _fmt(value: object) -> str:
    return f"{value:g}" if _num(value) is not None else str(value)


def _quote(value: object) -> str:
    return f"“{value}”"


def _list(parts: list[str]) -> str:
    if len(parts) <= 1:
        return "".join(parts)
    return ", ".join(parts[:-1]) + " and " + parts[-1]


def paragraph(explanation: Explanation) -> str:
    """One plain-language paragraph, every clause from a recorded field; absent fields are
    said to be not recorded rather than guessed."""
    e = explanation
    when = e.recorded_at.strftime("%d %B %Y at %H:%M:%S UTC")
    system = _quote(e.system) + (f" (deployment {e.deployment})" if e.deployment else "")
    model = f"model {e.model.get('name', 'unnamed')} version {e.model.get('version', '?')}"
    if isinstance(e.model.get("digest"), str):
        model += f" (artifact {e.model['digest']})"
    sentences = [
        f"On {when} the system {system} decided {_quote(e.decision or 'not recorded')}"
        + (f" with a score of {e.score:g}" if e.score is not None else "")
        + f", using {model}"
        + (
            f" under policy {e.policy.get('id', '?')} version {e.policy.get('version', '?')}"
            if e.policy
            else "; no policy was recorded"
        )
        + "."
    ]
    thresholds = e.policy.get("thresholds") if e.policy else None
    if isinstance(thresholds, dict) and thresholds:
        sentences.append(
            "The policy's thresholds were "
            + _list([f"{name} {_fmt(value)}" for name, value in thresholds.items()])
            + "."
        )
    if e.model_deployment is not None:
        sentences.append(
            f"That model version was recorded as deployed at entry {e.model_deployment.index}"
            + (f" to {e.model_deployment.deployment}" if e.model_deployment.deployment else "")
            + "."
        )
    if e.factors:
        sentences.append(
            "The main factors, in order of weight"
            + (f" ({e.method})" if e.method else "")
            + ", were "
            + _list(
                [f"{f.feature} ({f.direction} the score by {abs(f.weight):g})" for f in e.factors]
            )
            + "."
        )
    else:
        sentences.append("No factor weights were recorded at decision time.")
    if e.reason_codes:
        sentences.append(
            "Reason codes given: "
            + _list(
                [
                    str(code.get("code"))
                    + (f" ({code['description']})" if code.get("description") else "")
                    for code in e.reason_codes
                ]
            )
            + "."
        )
    if e.counterfactual is not None:
        changes = e.counterfactual.get("changes")
        if isinstance(changes, dict) and changes:
            sentences.append(
                "As recorded at decision time, the decision would have been "
                + _quote(e.counterfactual.get("decision") or "different")
                + " if "
                + _list([f"{name} had been {value}" for name, value in changes.items()])
                + "."
            )
        elif isinstance(e.counterfactual.get("description"), str):
            sentences.append(f"Counterfactual, as recorded: {e.counterfactual['description']}")
    if e.summary:
        sentences.append(f"The system's own summary: {_quote(e.summary)}.")
    if e.solely_automated is True:
        sentences.append("The decision was made solely by automated means.")
    elif e.solely_automated is False:
        sentences.append("A human was involved in making the decision.")
    if e.legal_or_similar_effect is True:
        sentences.append("It has legal or similarly significant effects on the person concerned.")
    if not e.human_oversight:
        sentences.append("No human review or override has been recorded.")
    for action in e.human_oversight:
        who = "A human reviewer" + (f" ({action.role})" if action.role else "")
        verb = {
            "confirmed": "confirmed it",
            "amended": "amended it",
            "escalated": "escalated it",
            "requested-information": "asked for more information",
            "overridden": "overrode it",
            "reversed": "reversed it",
            "stopped": "stopped it",
        }.get(action.action or "", f"acted on it ({action.action})")
        sentences.append(
            f"{who} {verb}"
            + (f" to {_quote(action.new_decision)}" if action.new_decision else "")
            + (f" on {action.at}" if action.at else "")
            + (f", giving as reason: {_quote(action.reason)}" if action.reason else "")
            + f" (entry {action.index})."
        )
    for contest in e.contests:
        sentences.append(
            f"The decision was contested by the {(contest.by or 'data-subject').replace('-', ' ')}"
            + (f" on {contest.at}" if contest.at else "")
            + (f" on the grounds {_quote(contest.grounds)}" if contest.grounds else "")
            + f" (entry {contest.index})."
        )
    if not e.contests:
        sentences.append("The decision has not been contested.")
    if e.current_decision and e.current_decision != e.decision:
        sentences.append(f"The decision now stands as {_quote(e.current_decision)}.")
    if e.outcome:
        sentences.append(f"The observed outcome was {_quote(e.outcome)}.")
    return " ".join(sentences)
