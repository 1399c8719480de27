"""Every test docs/security.md points to exists: the threat model cites real evidence."""

from __future__ import annotations

import re

from tests.conftest import PROJECT_ROOT

PAGE = PROJECT_ROOT / "docs" / "security.md"
# `dir/test_file.py::test_name`, or `::test_name` for another test of the file named before it.
CITED = re.compile(r"`((?:[a-z_]+/)?test_[a-z_]+\.py)?(?:::(test_[a-z0-9_]+))?`")


def cited_tests() -> list[tuple[str, str | None]]:
    cited: list[tuple[str, str | None]] = []
    current = ""
    for path, name in CITED.findall(PAGE.read_text()):
        current = path or current
        if path or name:
            cited.append((current, name or None))
    return cited


def test_every_cited_test_exists() -> None:
    cited = cited_tests()
    assert len(cited) > 40
    for path, name in cited:
        source = (PROJECT_ROOT / "tests" / path).read_text()
        if name is not None:
            assert re.search(rf"^(async )?def {name}\(", source, re.MULTILINE), (path, name)
