"""The console's verification code (static/verify.js over the vendored @noble SHA-256 and
Ed25519), run in Chromium against the public RFC 6962 and signed-note vectors."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest
from playwright.sync_api import Page

from tests.console.world import ConsoleWorld

pytestmark = pytest.mark.browser

VECTORS = Path(__file__).resolve().parents[2].parent / "shared" / "vectors"
if not VECTORS.is_dir():
    VECTORS = Path(__file__).resolve().parents[1] / "vectors"


def load(name: str) -> Any:
    return json.loads((VECTORS / name).read_text(encoding="utf-8"))


@pytest.fixture
def verifier_page(page: Page, world: ConsoleWorld) -> Page:
    # Any console page: the scripts load from the server's own origin, under its CSP.
    page.goto(world.base_url + "/console/sign-in")
    page.add_script_tag(url="/console/static/noble.min.js")
    page.add_script_tag(url="/console/static/verify.js")
    assert page.evaluate("auditTrailVerify.available()") is True
    return page


def test_rfc6962_roots_and_inclusion_proofs(verifier_page: Page) -> None:
    vectors = load("rfc6962_vectors.json")
    # Indexes and sizes up to 2^64 - 1 travel as text: a JavaScript number holds only 2^53.
    probes = [
        dict(p, leaf_index=str(p["leaf_index"]), tree_size=str(p["tree_size"]))
        for p in vectors["probes"]["inclusion"]
    ]
    outcome = verifier_page.evaluate(
        """([vectors, probes]) => {
          const v = auditTrailVerify;
          const leaves = vectors.leaves_hex.map(v.fromHex);
          const roots = {};
          for (const size of Object.keys(vectors.roots_by_size)) {
            roots[size] = v.hex(v.treeRoot(leaves.slice(0, Number(size))));
          }
          const levelZero = leaves.map((leaf) => v.hex(v.leafHash(leaf)));
          const proofs = vectors.inclusion_proofs.map((p) => {
            try {
              v.verifyInclusion(v.leafHash(v.fromHex(p.leaf_hex)), p.leaf_index, p.tree_size,
                                p.proof.map(v.fromHex), v.fromHex(p.expected_root));
              return "ok";
            } catch (error) { return error.message; }
          });
          const probed = probes.map((p) => {
            try {
              v.verifyInclusion(v.fromHex(p.leaf_hash), p.leaf_index, p.tree_size,
                                (p.proof || []).map(v.fromHex), v.fromHex(p.root));
              return false;
            } catch (error) { return error instanceof v.VerifyError; }
          });
          return { roots, levelZero, proofs, probed };
        }""",
        [vectors, probes],
    )
    assert outcome["roots"] == vectors["roots_by_size"]
    assert outcome["levelZero"] == vectors["node_hashes_by_level"][0]
    assert outcome["proofs"] == ["ok"] * len(vectors["inclusion_proofs"])
    assert outcome["probed"] == [p["want_error"] for p in probes]
    assert len(probes) == 98


def test_signed_note_verifier_keys_notes_and_checkpoints(verifier_page: Page) -> None:
    vectors = load("signed_note_vectors.json")
    outcome = verifier_page.evaluate(
        """(vectors) => {
          const v = auditTrailVerify;
          const vkeys = vectors.vkey_cases.map((c) => {
            try { v.parseVerifierKey(c.vkey); return true; } catch (error) { return false; }
          });
          const notes = vectors.note_cases.map((c) => {
            let known;
            try { known = c.known.map(v.parseVerifierKey); }
            catch (error) { return { expected: "invalid", verified: [] }; }
            try {
              const opened = v.openNote(c.note, known);
              return { expected: "valid", verified: opened.verified.map((s) => s.verifier.name) };
            } catch (error) {
              const kind = error.message.startsWith("malformed") ? "malformed" : "invalid";
              return { expected: kind, verified: [], why: error.message };
            }
          });
          const bodies = vectors.checkpoint_body_cases.map((c) => {
            try { v.parseCheckpoint(c.body); return true; } catch (error) { return false; }
          });
          return { vkeys, notes, bodies };
        }""",
        vectors,
    )
    assert outcome["vkeys"] == [c["valid"] for c in vectors["vkey_cases"]]
    for case, got in zip(vectors["note_cases"], outcome["notes"], strict=True):
        # Malformed and invalid notes are both refused; which step refuses is not compared.
        assert (got["expected"] == "valid") == (case["expected"] == "valid"), (case["desc"], got)
        if case["expected"] == "valid":
            assert sorted(got["verified"]) == sorted(case["verified"]), case["desc"]
    assert outcome["bodies"] == [c["strict_sha256_valid"] for c in vectors["checkpoint_body_cases"]]
