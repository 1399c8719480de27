"""Bad input to the console's routes gets a 4xx page naming the problem, never a 5xx (the fuzz
runs cover only the routes in the OpenAPI document, which the console is not)."""

from __future__ import annotations

import re

import httpx
import pytest

from tests.service.conftest import TenantKeys

BAD_QUERIES = [
    "decision=%00",
    "model_name=a%00b",
    "decision=%ED%A0%80",  # a lone surrogate, UTF-8 encoded
    "decision=%FF%FE",
    "score_min=1e400",
    "score_min=99999999999999999999999999999",
    "score_min=nan",
    "score_max=-inf",
    "limit=100000000000000000000000",
    "limit=0",
    "limit=-1",
    "decided_from=2026-13-01T00:00:00Z",
    "decided_from=99999-01-01T00:00:00Z",
    "decided_from=2026-01-01T00:00:00",
    "decided_from=2026-02-01T00:00:00Z&decided_before=2026-01-01T00:00:00Z",
    "reviewed=maybe",
    "cursor=!!!",
    "cursor=" + "A" * 5000,
    "chain=Not_A_Slug",
    "chain=" + "a" * 200,
    "decision=a&decision=b",
    "unknown=1",
    "decision=" + "x" * 60_000,
]


async def signed_in(client: httpx.AsyncClient, key: str) -> str:
    form = await client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = await client.post(
        "/console/sign-in", data={"api_key": key, "csrf_token": token.group(1)}
    )
    assert answer.status_code == 303, answer.text
    csrf = (await client.get("/console/")).text
    found = re.search(r'name="csrf_token" value="([^"]+)"', csrf)
    assert found is not None
    return found.group(1)


@pytest.mark.parametrize("query", BAD_QUERIES)
async def test_bad_search_queries_get_a_4xx_page(
    client: httpx.AsyncClient, tenant: TenantKeys, query: str
) -> None:
    await signed_in(client, tenant.auditor)
    for path in ("/console/decisions", "/console/decisions.csv"):
        answer = await client.get(f"{path}?{query}")
        assert 400 <= answer.status_code < 500, (path, query, answer.status_code, answer.text)
        assert "Invalid input" in answer.text or "invalid" in answer.text.lower()


@pytest.mark.parametrize(
    ("path", "content_type", "body"),
    [
        ("/console/sign-in", "application/x-www-form-urlencoded", b"api_key=%00&csrf_token=x"),
        ("/console/sign-in", "application/x-www-form-urlencoded", b"api_key=\xff\xfe"),
        ("/console/sign-in", "application/x-www-form-urlencoded", b"api_key=%ED%A0%80"),
        ("/console/sign-in", "application/x-www-form-urlencoded", b"a=1&a=2"),
        ("/console/sign-in", "application/json", b'{"api_key": "x"}'),
        ("/console/sign-in", "multipart/form-data; boundary=x", b"--x--"),
        ("/console/sign-out", "application/x-www-form-urlencoded", b"csrf_token=%00"),
    ],
)
async def test_bad_forms_get_a_4xx_page(
    client: httpx.AsyncClient, tenant: TenantKeys, path: str, content_type: str, body: bytes
) -> None:
    await signed_in(client, tenant.auditor)
    answer = await client.post(path, content=body, headers={"Content-Type": content_type})
    assert 400 <= answer.status_code < 500, answer.text


@pytest.mark.parametrize(
    "fields",
    [
        {"chain": "", "kind": "range"},
        {"chain": "credit", "kind": "nonsense"},
        {"chain": "credit", "kind": "range", "start": "-1"},
        {"chain": "credit", "kind": "range", "start": "99999999999999999999999999"},
        {"chain": "credit", "kind": "range", "start": "1e400"},
        {"chain": "credit", "kind": "time", "since": "yesterday"},
        {"chain": "credit", "kind": "decisions", "decision_ids": "a\x00b"},
        {"chain": "credit", "kind": "decisions", "decision_ids": ""},
        {"chain": "no-such-chain", "kind": "range"},
        {"chain": "credit", "kind": "range", "override_reason": "not an admin"},
    ],
)
async def test_bad_export_forms_get_a_4xx_page(
    client: httpx.AsyncClient, tenant: TenantKeys, fields: dict[str, str]
) -> None:
    token = await signed_in(client, tenant.auditor)
    answer = await client.post("/console/exports", data=fields | {"csrf_token": token})
    assert 400 <= answer.status_code < 500, answer.text


@pytest.mark.parametrize(
    ("path", "fields"),
    [
        ("/console/subjects/pseudonym", {"subject": ""}),
        ("/console/subjects/pseudonym", {"subject": "a\x00b"}),
        ("/console/subjects/pseudonym", {"subject": "x" * 5000}),
        ("/console/subjects/erase", {"reason": "r"}),
        ("/console/subjects/erase", {"subject": "a", "pseudonym": "b", "reason": "r"}),
        ("/console/subjects/erase", {"pseudonym": "not-a-pseudonym", "reason": "r"}),
        ("/console/subjects/erase", {"subject": "a"}),
        ("/console/chains/credit/legal-holds", {"reason": ""}),
        ("/console/chains/NOPE/legal-holds", {"reason": "r"}),
        ("/console/chains/credit/legal-holds/0/lift", {"reason": "r"}),
        ("/console/chains/credit/legal-holds/99999999999999999999/lift", {"reason": "r"}),
        ("/console/chains/credit/legal-holds/12345/lift", {"reason": "r"}),
    ],
)
async def test_bad_subject_forms_get_a_4xx_page(
    client: httpx.AsyncClient, tenant: TenantKeys, path: str, fields: dict[str, str]
) -> None:
    token = await signed_in(client, tenant.admin)
    answer = await client.post(path, data=fields | {"csrf_token": token})
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)


async def test_a_signed_in_key_with_a_nul_is_refused_before_the_database(
    client: httpx.AsyncClient, tenant: TenantKeys
) -> None:
    form = await client.get("/console/sign-in")
    token = re.search(r'name="csrf_token" value="([^"]+)"', form.text)
    assert token is not None
    answer = await client.post(
        "/console/sign-in",
        data={"api_key": "atk_ab\x00cd_secret", "csrf_token": token.group(1)},
    )
    assert answer.status_code == 400


@pytest.mark.parametrize(
    "path",
    [
        "/console/chains/credit/decisions/%00",
        "/console/chains/credit/decisions/%ED%A0%80",
        "/console/chains/credit/decisions/%FF%FE",
        "/console/chains/%00/decisions/x",
        "/console/exports?chain=%00&decision_id=%ED%A0%80",
        "/console/chains/NOPE/decisions/x",
        "/console/chains/credit/decisions/" + "x" * 5000,
        "/console/chains/credit/decisions/no-such-decision",
        "/console/static/..%2Fpages.py",
        "/console/static/nothing.js",
        "/console/access-log?before=0",
        "/console/access-log?before=-1",
        "/console/access-log?before=1e400",
        "/console/access-log?before=99999999999999999999999999",
        "/console/access-log?before=%00",
        "/console/exports/exp_AAAAAAAAAAAAAAAA",
        "/console/exports/not-an-export",
        "/console/exports/exp_AAAAAAAAAAAAAAAA/bundle",
        "/console/exports/exp_AAAAAAAAAAAAAAAA/report",
        "/console/exports?decision_id=%00",
    ],
)
async def test_bad_paths_get_a_4xx_page(
    client: httpx.AsyncClient, tenant: TenantKeys, path: str
) -> None:
    await signed_in(client, tenant.auditor)
    answer = await client.get(path)
    assert 400 <= answer.status_code < 500, (path, answer.status_code, answer.text)


async def test_pages_without_a_session_send_the_browser_to_sign_in(
    client: httpx.AsyncClient,
) -> None:
    for path in ("/console/", "/console/decisions", "/console/decisions.csv"):
        client.cookies.set("audit_trail_console", "forged")
        answer = await client.get(path)
        assert answer.status_code == 303
        assert answer.headers["location"] == "/console/sign-in"
