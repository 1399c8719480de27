"""C2SP signed notes, checkpoints and cosignatures, against C2SP and golang.org/x/mod vectors."""

from __future__ import annotations

import base64
from typing import Any

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from ledger.errors import NoteError
from ledger.keys import SigningKey
from ledger.merkle import EMPTY_ROOT
from ledger.note import (
    ALG_COSIGNATURE_V1,
    ALG_ED25519,
    Checkpoint,
    CosignatureSigner,
    NoteSignature,
    NoteSigner,
    NoteVerifier,
    note_key_id,
    open_note,
    sign_note,
    verify_cosignature,
)

from tests.core.conformance_vectors import load_vectors

VECTORS = load_vectors("signed_note_vectors.json")
KEYS = VECTORS["keys"]
VKEY_CASES = VECTORS["vkey_cases"]
NOTE_CASES = VECTORS["note_cases"]
CHECKPOINT_CASES = VECTORS["checkpoint_body_cases"]


def signer_from_skey(skey: str) -> NoteSigner:
    """A signer from golang.org/x/mod's PRIVATE+KEY+<name>+<hex id>+base64(0x01 || seed)."""
    private, key, name, key_id_hex, encoded = skey.split("+", 4)
    assert (private, key) == ("PRIVATE", "KEY")
    material = base64.b64decode(encoded)
    assert material[0] == ALG_ED25519
    signer = NoteSigner(name=name, key=SigningKey.from_seed(material[1:]))
    assert signer.key_id.hex() == key_id_hex
    return signer


def signer_of(key: dict[str, Any]) -> NoteSigner:
    if "skey" in key:
        return signer_from_skey(key["skey"])
    return NoteSigner(name=key["name"], key=SigningKey.from_seed(bytes.fromhex(key["seed_hex"])))


SIGNABLE_KEYS = [key for key in KEYS if "skey" in key or "seed_hex" in key]


# --- verifier keys ---------------------------------------------------------------------------


@pytest.mark.parametrize("key", KEYS, ids=[key["name"] for key in KEYS])
def test_published_verifier_keys_parse_and_round_trip(key: dict[str, Any]) -> None:
    verifier = NoteVerifier.from_verifier_key(key["vkey"])
    assert verifier.name == key["name"]
    assert verifier.alg == ALG_ED25519
    assert verifier.verifier_key == key["vkey"]
    assert verifier.key_id == note_key_id(verifier.name, ALG_ED25519, verifier.public_key.raw)


@pytest.mark.parametrize("key", SIGNABLE_KEYS, ids=[key["name"] for key in SIGNABLE_KEYS])
def test_signers_derive_the_published_verifier_keys(key: dict[str, Any]) -> None:
    assert signer_of(key).verifier_key == key["vkey"]


@pytest.mark.parametrize(
    "case",
    VKEY_CASES,
    ids=[f"{i}-{case.get('why', 'valid')[:30]}" for i, case in enumerate(VKEY_CASES)],
)
def test_verifier_key_parsing(case: dict[str, Any]) -> None:
    if case["valid"]:
        assert NoteVerifier.from_verifier_key(case["vkey"]).verifier_key == case["vkey"]
    else:
        with pytest.raises(NoteError):
            NoteVerifier.from_verifier_key(case["vkey"])


@pytest.mark.parametrize(
    "vkey",
    [
        "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",  # uppercase hex
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TX",  # other key bits
        "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10T",  # bad padding
        "PeterNeumann+c74f20a3",
        "+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "Peter Neumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW",
        "",
    ],
)
def test_verifier_key_parsing_is_strict(vkey: str) -> None:
    with pytest.raises(NoteError):
        NoteVerifier.from_verifier_key(vkey)


# --- signing ---------------------------------------------------------------------------------


def test_sign_case_reproduced_byte_for_byte() -> None:
    case = VECTORS["sign_cases"][0]
    assert sign_note(case["text"], [signer_from_skey(case["skey"])]) == case["expected_note"]


def test_adding_a_signature_to_a_signed_note_reproduced_byte_for_byte() -> None:
    case = VECTORS["sign_cases"][1]
    peter = NoteVerifier.from_verifier_key(KEYS[0]["vkey"])
    opened = open_note(case["existing_note"], [peter])
    assert opened.text == case["text"]
    enoch = NoteSigner(
        name=case["signer_name"], key=SigningKey.from_seed(bytes.fromhex(case["seed_hex"]))
    )
    note = sign_note(case["text"], [enoch], existing=opened.verified + opened.unverified)
    assert note == case["expected_note"]
    # Re-signing with a key that already signed replaces its line rather than repeating it.
    assert (
        sign_note(
            case["text"], [enoch], existing=open_note(note, [peter]).unverified + opened.verified
        )
        == note
    )


@pytest.mark.parametrize(
    "text", ["no final newline", "", "bell\a\n", "carriage\r\n", "lone \ud800 surrogate\n"]
)
def test_only_well_formed_texts_are_signed(text: str) -> None:
    signer = signer_of(SIGNABLE_KEYS[0])
    with pytest.raises(NoteError):
        sign_note(text, [signer])


@pytest.mark.parametrize("name", ["", "with space", "with+plus", "tab\tname", "nbsp\u00a0name"])
def test_key_names_are_validated(name: str) -> None:
    key = SigningKey.from_seed(bytes(32))
    with pytest.raises(ValueError):
        NoteSigner(name=name, key=key)
    with pytest.raises(ValueError):
        CosignatureSigner(name=name, key=key)


def test_a_note_needs_a_signature() -> None:
    with pytest.raises(ValueError):
        sign_note("text\n", [])


# --- opening ---------------------------------------------------------------------------------


@pytest.mark.parametrize("case", NOTE_CASES, ids=[case["desc"][:60] for case in NOTE_CASES])
def test_note_cases(case: dict[str, Any]) -> None:
    note: str | bytes = bytes.fromhex(case["note_hex"]) if "note_hex" in case else case["note"]
    verifiers = [NoteVerifier.from_verifier_key(vkey) for vkey in case["known"]]
    if case["expected"] != "valid":
        with pytest.raises(NoteError) as raised:
            open_note(note, verifiers)
        assert ("malformed" in str(raised.value)) == (case["expected"] == "malformed")
        return
    opened = open_note(note, verifiers)
    assert [signature.name for signature in opened.verified] == case["verified"]
    assert isinstance(note, str) and note.startswith(opened.text)
    if "checkpoint" in case:
        checkpoint = Checkpoint.parse(opened.text)
        expected = case["checkpoint"]
        assert (checkpoint.origin, checkpoint.size) == (expected["origin"], expected["tree_size"])
        assert checkpoint.root_hash == base64.b64decode(expected["root_hash_b64"])
        assert checkpoint.to_text() == opened.text


def test_unknown_signers_are_listed_but_not_trusted() -> None:
    case = NOTE_CASES[0]
    opened = open_note(case["note"], [NoteVerifier.from_verifier_key(case["known"][0])])
    assert [signature.name for signature in opened.unverified] == ["EnochRoot"]
    assert opened.unverified[0].key_id.hex() == "af0cfe78"


def test_an_empty_list_of_verifiers_opens_nothing() -> None:
    with pytest.raises(NoteError, match="no signature by a known key"):
        open_note(NOTE_CASES[0]["note"], [])


@settings(max_examples=50, deadline=None)
@given(st.text(st.characters(blacklist_categories=["Cs", "Cc"]) | st.just("\n"), max_size=60))
def test_any_well_formed_text_survives_signing_and_opening(body: str) -> None:
    text = body + "\n"
    signer = signer_of(SIGNABLE_KEYS[0])
    opened = open_note(sign_note(text, [signer]), [signer.verifier])
    assert opened.text == text
    assert opened.verified[0].name == signer.name


# --- checkpoints -----------------------------------------------------------------------------


@pytest.mark.parametrize(
    "case", CHECKPOINT_CASES, ids=[case["desc"][:60] for case in CHECKPOINT_CASES]
)
def test_checkpoint_bodies_strict_sha256(case: dict[str, Any]) -> None:
    if case["strict_sha256_valid"]:
        assert Checkpoint.parse(case["body"]).to_text() == case["body"]
    else:
        with pytest.raises(NoteError):
            Checkpoint.parse(case["body"])


def test_checkpoint_text_layout() -> None:
    checkpoint = Checkpoint("example.com/log/acme/credit", 0, EMPTY_ROOT)
    assert checkpoint.to_text() == (
        "example.com/log/acme/credit\n0\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n"
    )
    extended = Checkpoint("o", 2**64 - 1, EMPTY_ROOT, ("ext one", "ext two"))
    assert Checkpoint.parse(extended.to_text()) == extended


@pytest.mark.parametrize(
    "text",
    [
        "o\n18446744073709551616\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # 2^64
        "o\n+8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
        "o\n\u0668\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # an Arabic-Indic digit
        "o\n8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFV=\n",  # non-canonical base64
        "o\n8\n47DEQpj8HBSa-_TImW-5JCeuQeRkm5NMpJWZG3hSuFU=\n",  # URL-safe alphabet
        "o\n8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU\n",  # no padding
        "o\r\n8\n47DEQpj8HBSa+/TImW+5JCeuQeRkm5NMpJWZG3hSuFU=\n",
    ],
)
def test_checkpoint_parsing_is_strict(text: str) -> None:
    with pytest.raises(NoteError):
        Checkpoint.parse(text)


@pytest.mark.parametrize(
    "fields",
    [("", 1, EMPTY_ROOT), ("a\nb", 1, EMPTY_ROOT), ("o", -1, EMPTY_ROOT), ("o", 1, b"short")],
)
def test_checkpoints_are_valid_by_construction(fields: tuple[str, int, bytes]) -> None:
    with pytest.raises(ValueError):
        Checkpoint(*fields)
    with pytest.raises(ValueError):
        Checkpoint("o", 1, EMPTY_ROOT, ("",))


def test_log_key_name_may_differ_from_the_checkpoint_origin() -> None:
    """DESIGN: one log key named <log-origin> signs the checkpoints of <log-origin>/<t>/<c>."""
    log = NoteSigner(name="log.example.com", key=SigningKey.from_seed(bytes(range(32))))
    text = Checkpoint("log.example.com/acme/credit-scoring", 3, EMPTY_ROOT).to_text()
    opened = open_note(sign_note(text, [log]), [NoteVerifier.from_verifier_key(log.verifier_key)])
    assert Checkpoint.parse(opened.text).origin == "log.example.com/acme/credit-scoring"


# --- cosignatures ----------------------------------------------------------------------------

WITNESS_SEED = bytes.fromhex("1f" * 32)
C2SP_COSIGNATURE_LINE = (
    "\u2014 witness.example.com/w1 jWbPPwAAAABkGFDLEZMHwSRaJNiIDoe9DYn/zXcrtPHeolMI5OWXEhZCB9dl"
    "rDJsX3b2oyin1nPZqhf5nNo0xUe+mbIUBkBIfZ+qnA==\n"
)


def test_the_c2sp_example_cosignature_carries_its_timestamp() -> None:
    signature = NoteSignature.from_line(C2SP_COSIGNATURE_LINE)
    assert signature.name == "witness.example.com/w1"
    assert len(signature.signature) == 8 + 64
    assert int.from_bytes(signature.signature[:8], "big") == 1679315147  # "time 1679315147"
    assert signature.to_line() == C2SP_COSIGNATURE_LINE


def test_cosign_a_checkpoint_and_verify_it() -> None:
    log = signer_from_skey(KEYS[4]["skey"])
    witness = CosignatureSigner(
        name="witness.example.com/w1", key=SigningKey.from_seed(WITNESS_SEED)
    )
    text = Checkpoint("Log/acme/credit", 20852163, bytes(range(32))).to_text()
    line = witness.sign(text, timestamp=1679315147)
    signature = NoteSignature.from_line(line)

    assert witness.key_id == note_key_id(
        witness.name, ALG_COSIGNATURE_V1, witness.verifier.public_key.raw
    )
    verifier = NoteVerifier.from_verifier_key(witness.verifier_key)
    assert verifier.alg == ALG_COSIGNATURE_V1
    assert verifier.verifier_key.split("+")[2].startswith("B")  # base64 of type byte 0x04
    assert verify_cosignature(text, signature, verifier) == 1679315147

    # The signed message is exactly the one tlog-cosignature specifies.
    message = f"cosignature/v1\ntime 1679315147\n{text}".encode()
    verifier.public_key.verify(signature.signature[8:], message)

    # Served with the checkpoint, it verifies alongside the log's signature.
    note = sign_note(text, [log]) + line
    opened = open_note(note, [log.verifier, verifier])
    assert [s.name for s in opened.verified] == ["Log", "witness.example.com/w1"]
    # A verifier that only knows the log ignores it.
    assert open_note(note, [log.verifier]).unverified == (signature,)


def test_altered_cosignatures_fail() -> None:
    witness = CosignatureSigner(name="w", key=SigningKey.from_seed(WITNESS_SEED))
    text = Checkpoint("o", 5, EMPTY_ROOT).to_text()
    signature = NoteSignature.from_line(witness.sign(text, timestamp=1000))
    verifier = witness.verifier

    later = NoteSignature(
        signature.name, signature.key_id, (1001).to_bytes(8, "big") + signature.signature[8:]
    )
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(text, later, verifier)
    with pytest.raises(NoteError, match="does not verify"):
        verify_cosignature(Checkpoint("o", 6, EMPTY_ROOT).to_text(), signature, verifier)
    with pytest.raises(NoteError, match="bytes"):
        verify_cosignature(
            text, NoteSignature("w", signature.key_id, signature.signature[:70]), verifier
        )
    note_verifier = NoteVerifier(name="w", public_key=verifier.public_key)  # type 0x01
    assert note_verifier.key_id != verifier.key_id
    with pytest.raises(NoteError, match="not a cosignature"):
        verify_cosignature(text, signature, note_verifier)
    with pytest.raises(NoteError, match="not by"):
        verify_cosignature(
            text, NoteSignature("v", signature.key_id, signature.signature), verifier
        )
    with pytest.raises(NoteError, match="does not verify"):
        open_note(text + "\n" + later.to_line(), [verifier])


def test_cosigning_needs_a_checkpoint_and_a_valid_timestamp() -> None:
    witness = CosignatureSigner(name="w", key=SigningKey.from_seed(WITNESS_SEED))
    text = Checkpoint("o", 5, EMPTY_ROOT).to_text()
    with pytest.raises(NoteError):
        witness.sign("not a checkpoint\n", timestamp=1)
    for timestamp in (-1, 2**63):
        with pytest.raises(ValueError):
            witness.sign(text, timestamp=timestamp)
    assert (
        verify_cosignature(
            text, NoteSignature.from_line(witness.sign(text, timestamp=2**63 - 1)), witness.verifier
        )
        == 2**63 - 1
    )
