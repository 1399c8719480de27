"""Write the decision_log's OpenAPI document: ``python -m decision_log.openapi [FILE]``.

The committed copy under ``openapi/`` is compared with this output in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path
from typing import Any

import orjson

from decision_log.app import create_app
from decision_log.events.schemas import CloudEvent


def openapi_document() -> dict[str, Any]:
    document: dict[str, Any] = create_app().openapi()
    # The append endpoint reads its body itself (content types decide single or batch), so the
    # CloudEvent schema it refers to is added here rather than discovered from a parameter.
    schemas = document.setdefault("components", {}).setdefault("schemas", {})
    schemas["CloudEvent"] = CloudEvent.model_json_schema(
        ref_template="#/components/schemas/{model}"
    )
    return document


def render() -> bytes:
    return (
        orjson.dumps(openapi_document(), option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"
    )


def main() -> None:
    output = render()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_bytes(output)
    else:
        sys.stdout.buffer.write(output)


if __name__ == "__main__":
    main()
