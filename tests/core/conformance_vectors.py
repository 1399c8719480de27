"""Loads the public conformance vectors (see /work/shared/vectors/README.md).

They are read from `../shared/vectors/` next to the project root, where the project keeps the
authoritative copy, or from the copy under `tests/vectors/` when the suite runs elsewhere.
"""

from __future__ import annotations

import json
from functools import cache
from pathlib import Path
from typing import Any

PROJECT_ROOT = Path(__file__).resolve().parents[2]
SEARCH_PATH = (PROJECT_ROOT.parent / "shared" / "vectors", PROJECT_ROOT / "tests" / "vectors")


@cache
def load_vectors(file_name: str) -> Any:
    for directory in SEARCH_PATH:
        path = directory / file_name
        if path.is_file():
            return json.loads(path.read_text(encoding="utf-8"))
    searched = ", ".join(str(directory) for directory in SEARCH_PATH)
    raise FileNotFoundError(f"{file_name} not found in {searched}")
