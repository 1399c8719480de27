"""Completeness of producers, folded by the verifier from the entries it replays, served per
chain and signed in its attestations."""

from __future__ import annotations

import asyncio
import base64
import io
import secrets
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import httpx
import orjson
from decision_log.signing import LogSigner
from ledger.bundle import BUNDLE_JSON, verify_bundle
from ledger.completeness import CLOSED_EVENT_TYPE, HEARTBEAT_EVENT_TYPE, CompletenessFold, judge
from ledger.dsse import verify_envelope
from ledger.keys import VerifyingKey
from ledger.note import CosignatureSigner, NoteVerifier
from prometheus_client import REGISTRY
from sqlalchemy import text
from verifier import completeness, repository
from verifier.log_client import ChainName
from verifier.service import ChainVerifier
from verifier.state import AppState

from tests.service.conftest import TenantKeys, make_tenant
from tests.service.helpers import decision_event, headers, wait_for_checkpoint
from tests.verifier.bundles import export, unzip
from tests.verifier.conftest import VERIFIER_NAME, append_and_checkpoint


def producer() -> str:
    return f"scorer/{secrets.token_hex(8)}"


def numbered(source: str, sequence: int, **more: Any) -> dict[str, Any]:
    return decision_event(source=source, sequence=f"{sequence:020d}", **more)


def closing(source: str, sequence: int, **more: Any) -> dict[str, Any]:
    last = f"{sequence:020d}"
    event = numbered(source, sequence, type=CLOSED_EVENT_TYPE, data={"last_sequence": last})
    del event["subject"]
    return {**event, **more}


async def verified(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    keys: TenantKeys,
    events: list[dict[str, Any]],
) -> dict[str, Any]:
    """Append, let the verifier check the new entries, and read its completeness figures."""
    await append_and_checkpoint(client, keys, events)
    return await checked_figures(verifier_client, keys)


async def checked_figures(verifier_client: httpx.AsyncClient, keys: TenantKeys) -> dict[str, Any]:
    """Let the verifier check what the log has checkpointed, and read its completeness figures."""
    response = await verifier_client.post(
        f"/v1/chains/{keys.chain}/verify", headers=headers(keys.auditor)
    )
    assert response.status_code == 200, response.text
    answer = await verifier_client.get(
        f"/v1/chains/{keys.chain}/completeness", headers=headers(keys.auditor)
    )
    assert answer.status_code == 200, answer.text
    body: dict[str, Any] = answer.json()
    return body


def by_source(figures: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {item["source"]: item for item in figures["sources"]}


async def test_gaps_are_found_filled_late_and_signed(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    verifier: ChainVerifier,
    verifier_state: AppState,
) -> None:
    keys = await make_tenant(database_url, signer)
    gapped, untracked, doubled = producer(), producer(), producer()
    figures = await verified(
        client,
        verifier_client,
        keys,
        [
            numbered(gapped, 1),
            numbered(gapped, 2),
            numbered(gapped, 5),
            decision_event(source=untracked),
            decision_event(source=untracked, sequence="twelve"),
            numbered(doubled, 1, id="first"),
            numbered(doubled, 1, id="second"),
        ],
    )
    assert figures["covers"] == {"start": 0, "end": 7}
    sources = by_source(figures)
    assert sources[gapped]["highest_sequence"] == "5"
    assert [(g["from"], g["to"]) for g in sources[gapped]["missing"]] == [("3", "4")]
    assert (sources[gapped]["status"], sources[gapped]["count"]) == ("ok", 3)
    assert (sources[untracked]["status"], sources[untracked]["tracked"]) == ("not-tracked", False)
    assert sources[doubled]["status"] == "findings"
    assert sources[doubled]["findings"][0]["kind"] == "duplicate-sequence"
    assert sources[doubled]["findings"][0]["ids"] == ["first", "second"]
    assert figures["summary"]["with_gaps"] == 1 and figures["summary"]["open_gaps"] == 1
    await verifier_state.worker.run_once(attest=False)
    gauge = REGISTRY.get_sample_value("audit_trail_verifier_completeness_gaps_open")
    assert gauge is not None and gauge >= 1

    # The latest attestation signs the same figures in its predicate.
    latest = await verifier_client.get(
        f"/v1/chains/{keys.chain}/attestations/latest", headers=headers(keys.auditor)
    )
    envelope = latest.json()["envelope"]
    public = (await verifier_client.get("/v1/keys")).json()
    key = VerifyingKey.from_bytes(bytes.fromhex(public["public_key"]))
    verify_envelope(envelope, {public["dsse_keyid"]: key})
    predicate = orjson.loads(base64.b64decode(envelope["payload"]))["predicate"]
    signed = predicate["completeness"]
    assert signed["covers"] == {"start": 0, "end": 7}
    assert by_source(signed)[gapped]["missing"] == sources[gapped]["missing"]
    assert figures["attestation"]["size"] == 7

    # A gap left open longer than the allowed age is flagged.
    name = ChainName(keys.tenant, keys.chain)
    state = await verifier.state(name)
    async with verifier._engine.connect() as connection:
        later = await verifier.completeness(
            connection, state, now=verifier.now() + timedelta(seconds=601)
        )
    overdue = by_source(later)[gapped]
    assert (overdue["status"], overdue["overdue_gaps"]) == ("gaps", 1)
    assert later["summary"]["with_overdue_gaps"] == 1

    # Late events fill the gap; a retry of the same event claims nothing twice.
    figures = await verified(
        client, verifier_client, keys, [numbered(gapped, 4), numbered(gapped, 3)]
    )
    sources = by_source(figures)
    assert sources[gapped]["missing"] == [] and sources[gapped]["count"] == 5
    assert sources[gapped]["finding_count"] == 0
    assert figures["covers"] == {"start": 0, "end": 9}
    assert figures["summary"]["open_gaps"] == 0


async def test_a_fold_the_verifier_cannot_vouch_for_starts_over_where_it_stands(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    verifier: ChainVerifier,
) -> None:
    """A chain verified before completeness was kept (or whose epoch started over) has no fold
    for the entries already verified: the figures count from the size verified then."""
    keys = await make_tenant(database_url, signer)
    source = producer()
    await verified(client, verifier_client, keys, [numbered(source, 1), numbered(source, 2)])
    async with verifier._engine.begin() as connection:
        await connection.execute(
            text("UPDATE verifier.chains SET completeness_epoch = NULL WHERE tenant = :t"),
            {"t": keys.tenant},
        )
    figures = await verified(client, verifier_client, keys, [numbered(source, 4)])
    assert figures["covers"] == {"start": 2, "end": 3}
    only = by_source(figures)[source]
    assert only["count"] == 1 and only["highest_sequence"] == "4"
    assert (only["counted_from"], only["missing"]) == ("4", [])
    # A late number from before the fold started says nothing; one after it fills or repeats.
    figures = await verified(
        client, verifier_client, keys, [numbered(source, 3), numbered(source, 6)]
    )
    only = by_source(figures)[source]
    assert (only["counted_from"], only["finding_count"]) == ("4", 0)
    assert [(g["from"], g["to"]) for g in only["missing"]] == [("5", "5")]


async def test_a_closed_source_is_complete_and_a_quiet_one_is_silent(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    verifier: ChainVerifier,
) -> None:
    keys = await make_tenant(database_url, signer)
    quiet, closed, undeclared = producer(), producer(), producer()
    heartbeat = numbered(quiet, 2, type=HEARTBEAT_EVENT_TYPE, data={}, heartbeatinterval="1")
    del heartbeat["subject"]
    events = [
        numbered(quiet, 1, heartbeatinterval="1"),
        heartbeat,
        numbered(closed, 1, heartbeatinterval="1"),
        closing(closed, 2, heartbeatinterval="1"),
        decision_event(source=undeclared),
    ]
    figures = await verified(client, verifier_client, keys, events)
    sources = by_source(figures)
    assert sources[quiet]["heartbeat_interval"] == 1
    assert sources[closed]["complete"] and sources[closed]["status"] == "complete"
    name = ChainName(keys.tenant, keys.chain)
    assert await verifier.attest(name, only_if_grown=False) is not None
    assert await verifier.attest(name, only_if_grown=True) is None  # nothing new to sign
    # Twice the declared interval, then some: the quiet source is silent, the closed one and
    # the one that declared nothing never are.
    await asyncio.sleep(2.5)
    response = await verifier_client.get(
        f"/v1/chains/{keys.chain}/completeness", headers=headers(keys.auditor)
    )
    sources = by_source(response.json())
    assert (sources[quiet]["status"], sources[quiet]["silent"]) == ("silent", True)
    assert sources[quiet]["silent_for_seconds"] > 2
    assert (sources[closed]["status"], sources[closed]["silent"]) == ("complete", False)
    assert (sources[undeclared]["status"], sources[undeclared]["silent"]) == (
        "not-tracked",
        False,
    )
    # The chain did not grow, yet the silence is signed: the next scheduled attestation says
    # so, once; and the gauge counts it.
    signed = await verifier.attest(name, only_if_grown=True)
    assert signed is not None
    predicate = orjson.loads(base64.b64decode(signed.envelope["payload"]))["predicate"]
    assert predicate["completeness"]["summary"]["silent"] == 1
    assert [item["source"] for item in predicate["completeness"]["sources"]] == [quiet]
    assert await verifier.attest(name, only_if_grown=True) is None
    assert await verifier.silent_sources() >= 1
    state = await verifier.state(name)
    async with verifier._engine.connect() as connection:
        counted = await repository.silent_sources(connection, now=verifier.now(), chain_id=state.id)
    assert counted == 1  # as judge() says: the closed and the undeclared ones are not
    one = await verifier_client.get(
        f"/v1/chains/{keys.chain}/completeness",
        params={"source": closed},
        headers=headers(keys.auditor),
    )
    assert [item["source"] for item in one.json()["sources"]] == [closed]


async def test_another_tenant_cannot_see_the_figures(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    keys = await make_tenant(database_url, signer, chain="producers")
    other = await make_tenant(database_url, signer)
    await verified(client, verifier_client, keys, [numbered(producer(), 1)])
    response = await verifier_client.get(
        f"/v1/chains/{keys.chain}/completeness", headers=headers(other.auditor)
    )
    assert response.status_code == 404
    assert response.headers["content-type"].startswith("application/problem+json")
    response = await verifier_client.get(f"/v1/chains/{keys.chain}/completeness")
    assert response.status_code == 401


async def test_the_log_repeats_the_verifiers_figures_as_the_verifiers(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    keys = await make_tenant(database_url, signer, chain="audited")
    gapped, untracked = producer(), producer()
    events = [numbered(gapped, 1), numbered(gapped, 4), decision_event(source=untracked)]
    figures = await verified(client, verifier_client, keys, events)
    response = await exporter.get(f"/v1/chains/{keys.chain}/sources", headers=headers(keys.auditor))
    assert response.status_code == 200, response.text
    repeated = response.json()
    assert repeated["figures_by"] == "verifier"
    said = repeated["verifier"]
    assert (said["available"], said["name"]) == (True, VERIFIER_NAME)
    assert said["verified_size"] == 3 and said["covers"] == {"start": 0, "end": 3}
    assert said["attestation"]["size"] == 3
    assert repeated["sources"] == figures["sources"]
    assert repeated["summary"] == figures["summary"]
    gaps = by_source(repeated)[gapped]["missing"]
    assert [(g["from"], g["to"]) for g in gaps] == [("2", "3")]

    one = await exporter.get(
        f"/v1/chains/{keys.chain}/sources",
        params={"source": untracked},
        headers=headers(keys.auditor),
    )
    assert [s["source"] for s in one.json()["sources"]] == [untracked]

    # Another tenant, a producer key, no key: refused as every chain read is.
    other = await make_tenant(database_url, signer)
    for key, status in ((other.auditor, 404), (keys.producer, 403)):
        refused = await exporter.get(f"/v1/chains/{keys.chain}/sources", headers=headers(key))
        assert refused.status_code == status
        assert refused.headers["content-type"].startswith("application/problem+json")
    assert (await exporter.get(f"/v1/chains/{keys.chain}/sources")).status_code == 401
    bad = await exporter.get(
        f"/v1/chains/{keys.chain}/sources", params={"source": ""}, headers=headers(keys.auditor)
    )
    assert bad.status_code == 400

    # A log with no verifier says so, with no figures, and answers 200.
    alone = await client.get(f"/v1/chains/{keys.chain}/sources", headers=headers(keys.auditor))
    assert alone.status_code == 200
    assert alone.json()["verifier"]["available"] is False
    assert "no verifier is configured" in alone.json()["verifier"]["reason"]
    assert alone.json()["sources"] == []


async def test_an_export_says_whether_any_producer_had_gaps(
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
    log_vkey: NoteVerifier,
    cosigner: CosignatureSigner,
) -> None:
    keys = await make_tenant(database_url, signer)
    steady, lossy = producer(), producer()
    events = [numbered(steady, n) for n in (1, 2, 3)] + [numbered(lossy, n) for n in (1, 5, 6, 9)]
    await append_and_checkpoint(exporter, keys, events)
    _, bundle = await export(exporter, keys, {"kind": "range"})
    verify_bundle(io.BytesIO(bundle), log_key=log_vkey, verifier_key=cosigner.verifier)
    files = unzip(bundle)
    producers = orjson.loads(files[BUNDLE_JSON])["producers"]
    assert (producers["figures_by"], producers["verifier"]) == ("verifier", VERIFIER_NAME)
    assert producers["available"] and producers["any_gaps"] is True
    assert producers["covers"] == {"start": 0, "end": 7}
    assert [g["source"] for g in producers["sources_with_gaps"]] == [lossy]
    assert producers["sources_with_gaps"][0]["missing_count"] == "5"
    report = files["report.html"].decode()
    assert "Producers had gaps" in report and f"{lossy} is missing 5 sequence numbers" in report
    assert f"{lossy}: 5 missing" in files["README.txt"].decode()

    whole = await make_tenant(database_url, signer)
    await append_and_checkpoint(exporter, whole, [numbered(steady, n) for n in (1, 2)])
    _, bundle = await export(exporter, whole, {"kind": "range"})
    files = unzip(bundle)
    assert orjson.loads(files[BUNDLE_JSON])["producers"]["any_gaps"] is False
    assert "no producer had gaps" in files["report.html"].decode()
    assert "Producers had gaps" not in files["README.txt"].decode()


async def test_the_console_overview_names_producers_with_missing_events(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    """The console's overview repeats the verifier's figures as the API does: a producer with
    numbers missing is named with the missing ranges; one with none is not."""
    from tests.console.test_bad_input import signed_in

    keys = await make_tenant(database_url, signer, chain="watched")
    gapped, steady = producer(), producer()
    events = [numbered(gapped, 1), numbered(gapped, 5), numbered(steady, 1), numbered(steady, 2)]
    await verified(client, verifier_client, keys, events)
    await signed_in(exporter, keys.auditor)
    page = (await exporter.get("/console/")).text
    assert "the verifier&#39;s figures" in page or "the verifier's figures" in page
    assert f"<strong>{gapped}</strong>" in page
    assert "3 events missing, within the allowed time so far" in page
    assert "(sequence 2 to 4)" in page
    assert f"<strong>{steady}</strong>" not in page
    # With no producer needing attention, the overview counts them all.
    await verified(client, verifier_client, keys, [numbered(gapped, n) for n in (2, 3, 4)])
    page = (await exporter.get("/console/")).text
    assert f"<strong>{gapped}</strong>" not in page
    assert "2 producers, none with a gap, a finding or silence." in page


def test_an_attestation_lists_a_bounded_number_of_sources_needing_attention() -> None:
    """However many producer instances a chain has seen, an attestation carries the summary of
    all and names at most `ATTESTED_SOURCES` that need attention, findings first."""
    fold = CompletenessFold()
    received = "2026-12-02T10:00:00.000000Z"
    for n in range(1000):  # steady producers: counted, not listed
        fold.add(numbered(f"steady/{n:04d}", 1), received)
    for n in range(300):  # each missing every other number up to 200: 99 ranges
        source = f"lossy/{n:04d}"
        for sequence in range(1, 200, 2):
            fold.add(numbered(source, sequence), received)
    fold.add(numbered("doubled/0000", 1) | {"id": "first"}, received)
    fold.add(numbered("doubled/0000", 1) | {"id": "second"}, received)
    now = datetime(2026, 12, 2, 10, 1, tzinfo=UTC)
    judged = [
        judge(state, now=now, gap_age_seconds=600).to_json() for state in fold.sources.values()
    ]
    figures = {"covers": {"start": 0, "end": 1}, "summary": {"sources": 1301}, "sources": judged}

    signed = completeness.attested(figures)
    listed = signed["sources"]
    assert len(listed) == completeness.ATTESTED_SOURCES
    assert signed["sources_unlisted"] == 301 - completeness.ATTESTED_SOURCES
    assert listed[0]["source"] == "doubled/0000"
    assert all(item["source"].startswith("lossy/") for item in listed[1:])
    assert all(len(item["missing"]) == completeness.ATTESTED_GAPS for item in listed[1:])
    assert listed[1]["missing_count"] == "99"  # every missing number still counted
    assert signed["summary"] == figures["summary"]
    assert len(orjson.dumps(signed)) < 1_000_000


async def test_sources_are_listed_a_page_at_a_time_and_by_need_of_attention(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    """A chain gathers a producer per process instance: the verifier and the log list them in
    order of their names, a page at a time, or only those needing attention, while the summary
    counts them all."""
    keys = await make_tenant(database_url, signer, chain="paged")
    names = sorted(producer() for _ in range(5))
    gapped = {names[1], names[3]}
    events = [numbered(n, 1) for n in names] + [numbered(n, 3) for n in sorted(gapped)]
    await verified(client, verifier_client, keys, events)

    for http, path in (
        (verifier_client, f"/v1/chains/{keys.chain}/completeness"),
        (exporter, f"/v1/chains/{keys.chain}/sources"),
    ):
        listed, after = [], None
        while True:
            params = {"limit": 2} | ({} if after is None else {"after": after})
            page = await http.get(path, params=params, headers=headers(keys.auditor))
            assert page.status_code == 200, page.text
            body = page.json()
            assert body["summary"]["sources"] == 5 and len(body["sources"]) <= 2
            listed += [item["source"] for item in body["sources"]]
            after = body["next_after"]
            if after is None:
                break
        assert listed == names, path
        needing = await http.get(
            path, params={"needing_attention": "true"}, headers=headers(keys.auditor)
        )
        assert [item["source"] for item in needing.json()["sources"]] == sorted(gapped)
        assert needing.json()["summary"]["with_gaps"] == 2 and needing.json()["next_after"] is None
        for bad in ({"limit": 0}, {"limit": 1001}, {"after": ""}):
            refused = await http.get(path, params=bad, headers=headers(keys.auditor))
            assert refused.status_code == 400, (path, bad)


async def test_an_admin_closes_a_dead_producer_and_it_is_silent_no_more(
    client: httpx.AsyncClient,
    verifier_client: httpx.AsyncClient,
    exporter: httpx.AsyncClient,
    database_url: str,
    signer: LogSigner,
) -> None:
    """docs/completeness.md, "A producer that died without closing": an admin closes the dead
    source; its closing event, numbered after its highest, ends its silence and leaves it
    complete, with who and why in the chain and in the access log."""
    keys = await make_tenant(database_url, signer)
    dead, alive = producer(), producer()
    events = [numbered(dead, n, heartbeatinterval="1") for n in (1, 2)] + [numbered(alive, 1)]
    await verified(client, verifier_client, keys, events)
    await asyncio.sleep(2.5)
    path = f"/v1/chains/{keys.chain}/sources/close"
    reason = "pod OOM-killed; its journal was replayed"
    for key, status in ((keys.auditor, 403), (keys.producer, 403)):
        refused = await exporter.post(
            path, json={"source": dead, "reason": reason}, headers=headers(key)
        )
        assert refused.status_code == status, refused.text
    unknown = await exporter.post(
        path, json={"source": producer(), "reason": reason}, headers=headers(keys.admin)
    )
    assert unknown.status_code == 404 and unknown.json()["pointer"] == "/source"

    closed = await exporter.post(
        path, json={"source": dead, "reason": reason}, headers=headers(keys.admin)
    )
    assert closed.status_code == 201, closed.text
    assert closed.json()["last_sequence"] == f"{3:020d}"
    index = int(closed.json()["receipt"]["index"])
    await wait_for_checkpoint(exporter, keys.auditor, keys.chain, size=index + 1)
    figures = await checked_figures(verifier_client, keys)
    gone = by_source(figures)[dead]
    assert (gone["status"], gone["silent"], gone["complete"]) == ("complete", False, True)
    assert gone["findings"] == [] and figures["summary"]["silent"] == 0
    entry = await exporter.get(
        f"/v1/chains/{keys.chain}/entries/{index}",
        headers=headers(keys.auditor),
    )
    recorded = orjson.loads(base64.b64decode(entry.json()["leaf"]))["event"]
    assert (recorded["source"], recorded["type"]) == (dead, CLOSED_EVENT_TYPE)
    assert recorded["data"]["reason"] == reason
    again = await exporter.post(
        path, json={"source": dead, "reason": reason}, headers=headers(keys.admin)
    )
    assert again.status_code == 409, again.text
    # The action is in the tenant's access log, with its reason.
    connection = await asyncpg.connect(database_url)
    try:
        logged = await connection.fetch(
            "SELECT e.leaf FROM entries e JOIN chains c ON c.id = e.chain_id "
            "JOIN tenants t ON t.id = c.tenant_id WHERE t.slug = $1 AND c.slug = 'access-log'",
            keys.tenant,
        )
    finally:
        await connection.close()
    actions = [orjson.loads(bytes(row["leaf"]))["event"]["data"] for row in logged]
    (closing,) = [a for a in actions if a.get("action") == "producer.close"]
    assert closing["reason"] == reason and closing["target"]["source"] == dead
