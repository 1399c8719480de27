"""Model-server payload loggers as decisions: KServe's and Seldon Core v1's inference events.

What the senders send (read from their source, not guessed):

- KServe (``pkg/logger``, handler.go and worker.go): for each inference, an
  ``org.kubeflow.serving.inference.request`` event and, only when the model answered HTTP 200,
  an ``org.kubeflow.serving.inference.response`` event, both with the same ``ce-id`` (the
  request's own ``Ce-Id`` header, else a new UUID: ``getOrCreateID``) and the same source (the
  pod). Extensions: ``inferenceservicename``, ``namespace``, ``component``, ``endpoint``,
  ``metadata`` (JSON of allow-listed request headers), ``annotations``, ``recordedtime`` (when the
  event was made; ``time`` is when the request or response happened). The decision id is the
  shared ``id``.
- Seldon Core v1 (``executor/logger/worker.go``, ``predictor_process.go``): every message gets a
  fresh ``ce-id``; the inference is named by ``requestid`` (the ``Seldon-Puid``), and each graph
  node it passes through logs its own request and response with ``modelid`` = the node's name.
  The decision id is ``requestid``; each node is a step of its timeline.

A decision's row takes: the system from ``namespace`` and ``inferenceservicename``; the
deployment from ``endpoint`` (else KServe's ``component``); the time from the request's
``time``; the model from the response (Open Inference Protocol V2 ``model_name`` and
``model_version``; else KServe's service name, or Seldon's node and the image its
``meta.requestPath`` names); the output, when the response holds one scalar, as the decision
value (and as the score when it is a number). Nothing here reads anything but the event.
"""

from __future__ import annotations

from typing import Any

from ledger.membership import INFERENCE_TYPES as INFERENCE_TYPES
from ledger.membership import KSERVE_REQUEST as KSERVE_REQUEST
from ledger.membership import KSERVE_RESPONSE as KSERVE_RESPONSE
from ledger.membership import KSERVE_TYPES as KSERVE_TYPES
from ledger.membership import SELDON_REQUEST as SELDON_REQUEST
from ledger.membership import SELDON_RESPONSE as SELDON_RESPONSE
from ledger.membership import SELDON_TYPES as SELDON_TYPES

REQUEST_TYPES = frozenset((KSERVE_REQUEST, SELDON_REQUEST))
RESPONSE_TYPES = frozenset((KSERVE_RESPONSE, SELDON_RESPONSE))
# KServe logs a response only when the model answered 200 (handler.go): a request still without
# one this long after it happened is reported as "no response recorded".
RESPONSE_GRACE_SECONDS = 60


def system_name(event: dict[str, Any]) -> str | None:
    service = _text(event.get("inferenceservicename"))
    if service is None:
        return None
    namespace = _text(event.get("namespace"))
    return service if namespace is None else f"{namespace}/{service}"


def deployment(event: dict[str, Any]) -> str | None:
    return _text(event.get("endpoint")) or _text(event.get("component"))


def response_model(event: dict[str, Any]) -> tuple[str | None, str | None]:
    """(model name, version) a response names."""
    data = event.get("data")
    if isinstance(data, dict):
        name, version = _text(data.get("model_name")), _text(data.get("model_version"))
        if name is not None:
            return name, version
        request_path = (
            (data.get("meta") or {}).get("requestPath")
            if isinstance(data.get("meta"), dict)
            else None
        )
        node = _text(event.get("modelid"))
        if node is not None:
            image = request_path.get(node) if isinstance(request_path, dict) else None
            return node, _text(image)
    if event.get("type") in SELDON_TYPES:
        return _text(event.get("modelid")), None
    return _text(event.get("inferenceservicename")), None


def single_output(event: dict[str, Any]) -> str | int | float | bool | None:
    """The one scalar a response holds, if it holds exactly one: KServe V1 ``predictions``,
    Open Inference Protocol V2 ``outputs[].data``, Seldon ``data.ndarray`` or ``data.tensor``."""
    data = event.get("data")
    if not isinstance(data, dict):
        return None
    candidates: list[Any] = []
    if "predictions" in data:
        candidates = _flat(data["predictions"])
    elif isinstance(data.get("outputs"), list) and len(data["outputs"]) == 1:
        output = data["outputs"][0]
        candidates = _flat(output.get("data")) if isinstance(output, dict) else []
    elif isinstance(data.get("data"), dict):
        inner = data["data"]
        candidates = _flat(inner.get("ndarray", (inner.get("tensor") or {}).get("values")))
    if len(candidates) != 1:
        return None
    value = candidates[0]
    return value if isinstance(value, str | int | float | bool) else None


def _flat(value: Any) -> list[Any]:
    if isinstance(value, list):
        flat: list[Any] = []
        for item in value:
            flat.extend(_flat(item))
            if len(flat) > 1:
                break
        return flat
    return [] if value is None else [value]


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
