"""What an operation can answer besides success, written into the OpenAPI document.

FastAPI documents a 422 ``HTTPValidationError`` for every operation with parameters; the
services never send it (the guard and the handlers answer 400 problems). This replaces it with
the problems each operation can really answer, by rule:

- 400 for every operation: the guard checks every path and query string, and parameters and
  bodies are validated;
- 413 where there is a body (the guard's cap);
- 401 and 403 where a key is required (a witness key is refused on tenant routes and the
  other way round, and roles are checked);
- 404 where the path names something (a chain, a decision, a key, an export);
- 503 where the database or another service is asked (retry after Retry-After);
- and what a service declares for one operation on top (409 conflicts, 415, 202 ...).
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping
from typing import Any

from http_edge.problems import INTEGRITY_CHECKS, PROBLEM_MEDIA_TYPE

PROBLEM_SCHEMA: dict[str, Any] = {
    "type": "object",
    "description": "RFC 9457 problem details",
    "properties": {
        "type": {"type": "string", "description": "A URI naming the kind of problem"},
        "title": {"type": "string"},
        "status": {"type": "integer"},
        "detail": {"type": "string"},
        "pointer": {"type": "string", "description": "JSON Pointer into the request body"},
        "parameter": {"type": "string", "description": "The path or query parameter at fault"},
        "header": {"type": "string", "description": "The request header at fault"},
        "request_id": {"type": "string", "description": "The request's X-Request-Id"},
        "index": {
            "type": ["integer", "null"],
            "description": "integrity-failure: the entry at fault, where one is",
        },
        "check": {
            "enum": list(INTEGRITY_CHECKS),
            "description": "integrity-failure: which check failed",
        },
        "expected": {
            "type": ["string", "null"],
            "description": "integrity-failure, projection-mismatch: what the check expected",
        },
        "found": {
            "type": ["string", "null"],
            "description": "integrity-failure, projection-mismatch: what is stored",
        },
        "finding": {
            "type": "object",
            "description": "integrity-failure with check verifier-finding: the verifier's "
            "finding (id, kind, first_bad_index, detail)",
        },
        "reason": {
            "type": "string",
            "description": "verifier-unavailable: why the verifier could not help",
        },
        "decision_id": {
            "type": ["string", "null"],
            "description": "projection-mismatch: the decision whose read-model rows disagree",
        },
        "column": {
            "type": "string",
            "description": "projection-mismatch: the read-model column (or timeline) at fault",
        },
    },
    "required": ["type", "title", "status", "detail"],
}

DESCRIPTIONS = {
    400: "Invalid input; `pointer` or `parameter` names the field",
    401: "Missing or invalid API key",
    403: "The key lacks the role for this",
    404: "Not found (or not visible to this key)",
    409: "Conflict with the current state",
    413: "Body too large; refused before it is read",
    415: "Unsupported content type",
    503: "Unavailable for now (database unreachable or overloaded); retry after Retry-After",
}
VALIDATION_SCHEMAS = ("HTTPValidationError", "ValidationError")


def problem_response(description: str) -> dict[str, Any]:
    return {
        "description": description,
        "content": {PROBLEM_MEDIA_TYPE: {"schema": {"$ref": "#/components/schemas/Problem"}}},
        "headers": {
            "X-Request-Id": {"schema": {"type": "string"}, "description": "The request's id"},
        },
    }


def document_problems(
    document: dict[str, Any],
    *,
    without_database: Iterable[str] = (),
    extra: Mapping[tuple[str, str], Iterable[int]] | None = None,
) -> None:
    """Rewrite every operation's error answers as problems, by the rules above.

    ``without_database``: paths answered from memory alone (no 503). ``extra``: further
    statuses of one operation, keyed by (method, path)."""
    offline = set(without_database)
    declared = extra or {}
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    for name in VALIDATION_SCHEMAS:
        schemas.pop(name, None)
    schemas["Problem"] = PROBLEM_SCHEMA
    for path, operations in document.get("paths", {}).items():
        for method, operation in operations.items():
            responses: dict[str, Any] = operation.setdefault("responses", {})
            responses.pop("422", None)
            statuses = {400}
            if "requestBody" in operation:
                statuses.add(413)
            if operation.get("security"):
                statuses |= {401, 403}
            if "{" in path:
                statuses.add(404)
            if path not in offline:
                statuses.add(503)
            statuses |= set(declared.get((method.upper(), path), ()))
            for status in sorted(statuses):
                if status < 400:
                    continue
                given = responses.get(str(status), {})
                responses[str(status)] = problem_response(
                    given.get("description") or DESCRIPTIONS.get(status, "Problem")
                )
            stray = [code for code in responses if int(code) >= 400 and int(code) not in statuses]
            if stray:
                raise ValueError(f"{method.upper()} {path} documents {stray} beyond its rules")


# No NUL (U+0000): the guard refuses it in every path, query and JSON body, since PostgreSQL
# text cannot hold it. A JSON Schema (ECMA-262) pattern.
NO_NUL_PATTERN = "^[^\\u0000]*$"


def forbid_nul_in_requests(document: dict[str, Any], *, besides: Iterable[str] = ()) -> None:
    """Say in every request string's schema that it holds no NUL, where no pattern, format or
    enumeration says more already. ``besides``: operation ids that document their own rules
    (the append route, which takes NUL inside event data)."""
    skipped = set(besides)
    components = document.get("components", {}).get("schemas", {})
    visited: set[str] = set()

    def visit(schema: Any) -> None:
        if not isinstance(schema, dict):
            return
        reference = schema.get("$ref")
        if isinstance(reference, str):
            name = reference.rsplit("/", 1)[-1]
            if name not in visited and name in components:
                visited.add(name)
                visit(components[name])
            return
        kinds = schema.get("type")
        is_text = kinds == "string" or (isinstance(kinds, list) and "string" in kinds)
        if is_text and not {"pattern", "format", "enum", "const"} & schema.keys():
            schema["pattern"] = NO_NUL_PATTERN
        for key in ("items", "additionalProperties", "not"):
            visit(schema.get(key))
        for member in schema.get("properties", {}).values():
            visit(member)
        for key in ("anyOf", "oneOf", "allOf", "prefixItems"):
            for branch in schema.get(key, ()):
                visit(branch)

    for operations in document.get("paths", {}).values():
        for operation in operations.values():
            if operation.get("operationId") in skipped:
                continue
            for parameter in operation.get("parameters", ()):
                visit(parameter.get("schema"))
            for content in operation.get("requestBody", {}).get("content", {}).values():
                visit(content.get("schema"))
