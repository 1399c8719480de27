"""Sealed personal fields: they open only with their key, in their place; pseudonyms are keyed."""

from __future__ import annotations

import base64
import secrets
from dataclasses import replace

import pytest
from cryptography.hazmat.primitives.ciphers.aead import AESGCM
from hypothesis import given
from hypothesis import strategies as st
from ledger.canonical import canonicalize
from ledger.sealing import (
    SealingContext,
    SealingError,
    content_digest,
    is_sealed,
    new_data_key,
    open_fields,
    pseudonym,
    seal_fields,
    unwrap_key,
    wrap_key,
)

CONTEXT = SealingContext(
    tenant="acme", chain="hiring", source="urn:s", event_id="e-1", event_type="t.request"
)
DATA = {"applicant": {"name": "Zoë 😀", "age": 41}, "features": [1.5, 2, "x"], "outcome": "no"}


def test_round_trip_and_nothing_else_changes() -> None:
    key = new_data_key()
    sealed = seal_fields(DATA, ["/applicant", "/features/1"], key=key, kid="k1", context=CONTEXT)
    assert sealed["outcome"] == "no" and sealed["features"][0] == 1.5
    assert is_sealed(sealed["applicant"]) and is_sealed(sealed["features"][1])
    # The name is not ASCII, so unlike a short ASCII fragment it cannot turn up by chance in
    # the base64 of a ciphertext.
    assert "Zoë 😀" not in str(sealed)
    opened = open_fields(sealed, ["/applicant", "/features/1"], keys={"k1": key}, context=CONTEXT)
    assert opened.data == DATA and opened.withheld == ()
    assert DATA["applicant"] == {"name": "Zoë 😀", "age": 41}, "the input is not modified"


def test_nested_pointers_seal_and_open_in_order() -> None:
    key = new_data_key()
    pointers = ["/applicant/name", "/applicant"]
    sealed = seal_fields(DATA, pointers, key=key, kid="k", context=CONTEXT)
    assert open_fields(sealed, pointers, keys={"k": key}, context=CONTEXT).data == DATA


def test_without_the_key_fields_are_withheld() -> None:
    sealed = seal_fields(DATA, ["/applicant"], key=new_data_key(), kid="k", context=CONTEXT)
    opened = open_fields(sealed, ["/applicant"], keys={}, context=CONTEXT)
    assert opened.withheld == ("/applicant",) and is_sealed(opened.data["applicant"])


def test_a_ciphertext_opens_only_in_its_own_place() -> None:
    key = new_data_key()
    sealed = seal_fields(DATA, ["/applicant"], key=key, kid="k", context=CONTEXT)
    for elsewhere in (
        replace(CONTEXT, event_id="e-2"),
        # A model server's request and response share source and id: the type tells them apart.
        replace(CONTEXT, event_type="t.response"),
    ):
        with pytest.raises(SealingError):
            open_fields(sealed, ["/applicant"], keys={"k": key}, context=elsewhere)
    moved = {"outcome": sealed["applicant"]}
    with pytest.raises(SealingError):
        open_fields(moved, ["/outcome"], keys={"k": key}, context=CONTEXT)
    with pytest.raises(SealingError):
        open_fields(sealed, ["/applicant"], keys={"k": new_data_key()}, context=CONTEXT)


def test_a_value_sealed_before_the_type_was_bound_still_opens_in_its_place() -> None:
    """Sealed as the log sealed before: the place without the event type."""
    key, iv = new_data_key(), secrets.token_bytes(12)
    place = {"tenant": "acme", "chain": "hiring", "source": "urn:s", "id": "e-1"}
    aad = canonicalize(place | {"pointer": "/applicant"})
    older = {
        "enc": "A256GCM",
        "kid": "k",
        "iv": base64.b64encode(iv).decode(),
        "ct": base64.b64encode(
            AESGCM(key).encrypt(iv, canonicalize(DATA["applicant"]), aad)
        ).decode(),
    }
    sealed = {**DATA, "applicant": older}
    opened = open_fields(sealed, ["/applicant"], keys={"k": key}, context=CONTEXT)
    assert opened.data == DATA
    with pytest.raises(SealingError):  # and only there
        open_fields(sealed, ["/applicant"], keys={"k": key}, context=replace(CONTEXT, event_id="x"))


@pytest.mark.parametrize("pointer", ["/missing", "/features/9", "/features/01", "applicant"])
def test_pointers_must_name_something(pointer: str) -> None:
    with pytest.raises(SealingError):
        seal_fields(DATA, [pointer], key=new_data_key(), kid="k", context=CONTEXT)


def test_pointer_escapes_follow_rfc_6901() -> None:
    data = {"a/b": {"m~n": "secret"}}
    key = new_data_key()
    sealed = seal_fields(data, ["/a~1b/m~0n"], key=key, kid="k", context=CONTEXT)
    assert is_sealed(sealed["a/b"]["m~n"])
    assert open_fields(sealed, ["/a~1b/m~0n"], keys={"k": key}, context=CONTEXT).data == data


def test_pseudonyms_are_keyed_and_per_tenant() -> None:
    key = secrets.token_bytes(32)
    one = pseudonym(key, tenant="acme", subject="alice")
    assert one == pseudonym(key, tenant="acme", subject="alice")
    assert one != pseudonym(key, tenant="globex", subject="alice")
    assert one != pseudonym(secrets.token_bytes(32), tenant="acme", subject="alice")
    assert one.startswith("ps1:") and "alice" not in one
    assert content_digest(key, b"{}") != content_digest(secrets.token_bytes(32), b"{}")


def test_wrapped_keys_unwrap_only_under_their_kek() -> None:
    kek, data_key = secrets.token_bytes(32), new_data_key()
    wrapped = wrap_key(kek, data_key)
    assert unwrap_key(kek, wrapped) == data_key
    with pytest.raises(SealingError):
        unwrap_key(secrets.token_bytes(32), wrapped)


json_values = st.recursive(
    st.none() | st.booleans() | st.integers(-(2**53) + 1, 2**53 - 1) | st.text(),
    lambda inner: st.lists(inner, max_size=3) | st.dictionaries(st.text(), inner, max_size=3),
    max_leaves=10,
)


@given(value=json_values)
def test_any_json_value_round_trips(value: object) -> None:
    key = new_data_key()
    sealed = seal_fields({"v": value}, ["/v"], key=key, kid="k", context=CONTEXT)
    assert open_fields(sealed, ["/v"], keys={"k": key}, context=CONTEXT).data == {"v": value}
