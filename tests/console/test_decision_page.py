"""One decision in Chromium: the explanation, the timeline, the evidence and the verification the
page runs itself, on an intact chain, after a byte edit in the database, and after a rewrite by
someone holding the log's key (re-signed checkpoints): each shown beside the server's flags."""

from __future__ import annotations

from pathlib import Path

import httpx
import pytest
from ledger.note import CosignatureSigner, SigningKey
from playwright.sync_api import Page, expect

from tests.console.world import ConsoleWorld, run_async
from tests.decisions.helpers import recorded, reviewed
from tests.service.test_witness import register
from tests.verifier.tamper import chain_id, change_one_byte, rewrite_history, superuser

pytestmark = pytest.mark.browser


def cosigned_decision(world: ConsoleWorld, decision_id: str) -> CosignatureSigner:
    """A decision recorded and reviewed (entries 0 and 1), its checkpoint cosigned by a witness."""
    world.append(recorded(decision_id), reviewed(decision_id))
    world.wait_for_checkpoint(size=2)
    cosigner, key = run_async(register(world.database_url, f"witness.test/{world.keys.tenant}"))
    base = f"/v1/witness/chains/{world.keys.tenant}/{world.keys.chain}"
    note = world.api("GET", f"{base}/checkpoint", key=key).text
    body = note[: note.rfind("\n\n") + 1]
    posted = world.api(
        "POST",
        f"{base}/cosignatures",
        key=key,
        json={"size": 2, "signature": cosigner.sign(body, timestamp=1_790_000_000)},
    )
    assert posted.status_code == 201, posted.text
    return cosigner


def open_decision(world: ConsoleWorld, page: Page, decision_id: str) -> int:
    world.sign_in(page)
    answer = page.goto(
        f"{world.base_url}/console/chains/{world.keys.chain}/decisions/{decision_id}"
    )
    assert answer is not None
    return answer.status


def paste_keys_and_verify(page: Page, *, log_key: str, verifier_key: str) -> dict[str, str]:
    page.get_by_label("The log's key").fill(log_key)
    page.get_by_label("The verifier's cosigning keys").fill(verifier_key)
    page.get_by_role("button", name="Verify in this browser").click()
    steps = page.locator("#verify-steps li")
    expect(steps.first).to_be_visible()
    return {
        str(li.get_attribute("data-step")): str(li.get_attribute("data-result"))
        for li in steps.all()
    }


def log_key(world: ConsoleWorld) -> str:
    keys = httpx.get(world.base_url + "/v1/log/keys").json()
    return str(keys["keys"][0]["verifier_key"])


def test_an_intact_decision_verifies_in_the_browser(world: ConsoleWorld, page: Page) -> None:
    cosigner = cosigned_decision(world, "loan-1")
    assert open_decision(world, page, "loan-1") == 200
    expect(page.get_by_role("heading", name="Explanation")).to_be_visible()
    expect(page.locator("body")).to_contain_text("credit-gbm")
    expect(page.get_by_text("Cosigned", exact=True)).to_be_visible()
    steps = paste_keys_and_verify(page, log_key=log_key(world), verifier_key=cosigner.verifier_key)
    assert set(steps.values()) == {"pass"}, steps
    assert {
        "Leaf hash of entry 0",
        "Leaf hash of entry 1",
        "Event shown for entry 0 is the one in its leaf",
        "The explanation cites entry 0",
        "Log signature of checkpoint 2",
        "Verifier's cosignature of checkpoint 2",
        "Inclusion of entry 0 in checkpoint 2",
        "Inclusion of entry 1 in checkpoint 2",
    } <= set(steps)
    expect(page.locator("#verify-summary")).to_have_text("Every step passed in this browser.")


def test_wrong_keys_fail_their_steps_and_server_keys_are_labelled(
    world: ConsoleWorld, page: Page
) -> None:
    cosigned_decision(world, "loan-2")
    open_decision(world, page, "loan-2")
    stranger = CosignatureSigner(name="witness.test/stranger", key=SigningKey.generate())
    steps = paste_keys_and_verify(page, log_key=log_key(world), verifier_key=stranger.verifier_key)
    assert steps["Verifier's cosignature of checkpoint 2"] == "fail"
    assert steps["Log signature of checkpoint 2"] == "pass"
    page.get_by_role("button", name="Use this server's keys (trust on first use)").click()
    expect(page.locator("#key-source")).to_contain_text("Trust on first use")
    expect(page.locator("#fingerprints")).to_contain_text("SHA-256 fingerprint")


def test_a_byte_edited_leaf_is_flagged_and_fails_its_leaf_hash(
    world: ConsoleWorld, page: Page, tmp_path: Path
) -> None:
    cosigner = cosigned_decision(world, "loan-3")

    async def edit() -> None:
        async with superuser(world.database_url) as connection:
            chain = await chain_id(connection, world.keys.tenant, world.keys.chain)
            await change_one_byte(connection, chain, 0)

    run_async(edit())
    assert open_decision(world, page, "loan-3") == 409
    expect(
        page.get_by_role("heading", name="The server does not vouch for this decision")
    ).to_be_visible()
    steps = paste_keys_and_verify(page, log_key=log_key(world), verifier_key=cosigner.verifier_key)
    assert steps["Leaf hash of entry 0"] == "fail"
    assert steps["Inclusion of entry 0 in checkpoint 2"] == "fail"
    assert steps["Log signature of checkpoint 2"] == "pass"
    assert steps["Verifier's cosignature of checkpoint 2"] == "pass"
    expect(page.locator("#verify-summary")).to_have_text("At least one step failed: see below.")
    page.screenshot(path=tmp_path / "console-refused-1280.png", full_page=True)


def test_a_key_holders_rewrite_fails_only_the_cosignature(
    world: ConsoleWorld, page: Page, signer: object
) -> None:
    cosigner = cosigned_decision(world, "loan-4")

    async def rewrite() -> None:
        async with superuser(world.database_url) as connection:
            chain = await chain_id(connection, world.keys.tenant, world.keys.chain)
            await rewrite_history(
                connection, chain, 0, signer, tenant=world.keys.tenant, name=world.keys.chain
            )

    run_async(rewrite())
    assert open_decision(world, page, "loan-4") == 200
    expect(page.get_by_text("Not cosigned", exact=True)).to_be_visible()
    steps = paste_keys_and_verify(page, log_key=log_key(world), verifier_key=cosigner.verifier_key)
    failed = {name for name, result in steps.items() if result == "fail"}
    assert failed == {"Verifier's cosignature of checkpoint 2"}, steps


def test_a_planted_script_in_an_event_neither_runs_nor_breaks_the_check(
    world: ConsoleWorld, page: Page
) -> None:
    planted = '</script><script>window.pwned = 1</script><img src=x onerror="window.pwned = 2">'
    world.append(
        recorded("loan-5", output={"decision": planted, "score": 0.5}, summary=planted),
        reviewed("loan-5", reason=planted),
    )
    world.wait_for_checkpoint(size=2)
    dialogs: list[str] = []
    page.on("dialog", lambda dialog: (dialogs.append(dialog.message), dialog.dismiss()))
    assert open_decision(world, page, "loan-5") == 200
    expect(page.locator("main")).to_contain_text("<script>window.pwned = 1</script>")
    assert page.evaluate("window.pwned") is None
    assert page.locator("main img").count() == 0
    assert page.locator("script:not([src]):not([type='application/json'])").count() == 0
    page.get_by_role("button", name="Use this server's keys (trust on first use)").click()
    page.get_by_role("button", name="Verify in this browser").click()
    step = page.locator(
        "#verify-steps li[data-step='Event shown for entry 0 is the one in its leaf']"
    )
    expect(step).to_have_attribute("data-result", "pass")
    expect(
        page.locator("#verify-steps li[data-step='The explanation cites entry 0']")
    ).to_have_attribute("data-result", "pass")
    assert page.evaluate("window.pwned") is None
    assert dialogs == []


def test_personal_fields_are_withheld_without_the_right(world: ConsoleWorld, page: Page) -> None:
    applicant = {"name": "Zoë Example"}
    event = recorded("loan-6", input={"applicant": applicant, "digest": "sha256:" + "cd" * 32})
    event["datasubject"] = "zoe@example.org"
    event["personaldata"] = "/input/applicant"
    world.append(event)
    world.wait_for_checkpoint(size=1)
    assert open_decision(world, page, "loan-6") == 200
    expect(page.locator("main")).to_contain_text(
        "Personal fields withheld (/input/applicant): "
        "this session's key lacks the personal-data role"
    )
    assert "Zoë Example" not in page.content()

    world.sign_in(page, world.key_with_roles("auditor", "personal-data"))
    page.goto(f"{world.base_url}/console/chains/{world.keys.chain}/decisions/loan-6")
    page.get_by_text("Personal fields opened for your personal-data role").click()
    expect(page.locator("main")).to_contain_text("Zoë Example")
    expect(page.locator("main")).not_to_contain_text("Personal fields withheld")


def test_without_its_crypto_code_the_page_cannot_verify_and_shows_no_pass(
    world: ConsoleWorld, page: Page
) -> None:
    cosigner = cosigned_decision(world, "loan-16")
    page.route("**/console/static/noble.min.js", lambda route: route.abort())
    assert open_decision(world, page, "loan-16") == 200
    page.get_by_label("The log's key").fill(log_key(world))
    page.get_by_label("The verifier's cosigning keys").fill(cosigner.verifier_key)
    page.get_by_role("button", name="Verify in this browser").click()
    expect(page.locator("#verify-summary")).to_contain_text("This browser cannot verify")
    expect(page.locator("#verify-steps li")).to_have_count(0)
    assert "PASS" not in page.locator("main").inner_text()
