"""Write the verifier's OpenAPI document: ``python -m verifier.openapi [FILE]``.

The committed copy under ``openapi/`` is compared with this output in CI.
"""

from __future__ import annotations

import sys
from pathlib import Path

import orjson

from verifier.app import create_app


def render() -> bytes:
    document = create_app().openapi()
    return orjson.dumps(document, option=orjson.OPT_INDENT_2 | orjson.OPT_SORT_KEYS) + b"\n"


def main() -> None:
    output = render()
    if len(sys.argv) > 1:
        Path(sys.argv[1]).write_bytes(output)
    else:
        sys.stdout.buffer.write(output)


if __name__ == "__main__":
    main()
