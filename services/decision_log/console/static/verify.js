// Verification in the browser: RFC 6962 / RFC 9162 Merkle proofs, C2SP signed notes and
// tlog-checkpoints, and tlog-cosignature (cosignature/v1), over the vendored @noble SHA-256 and
// Ed25519 (noble.min.js), so that it works without WebCrypto (plain HTTP off loopback).
// Every check returns what it verified or throws a VerifyError saying what failed.
"use strict";

(function (global) {
  const noble = global.noble;

  class VerifyError extends Error {}

  const ALG_ED25519 = 0x01; // signed-note, "Signature types"
  const ALG_COSIGNATURE_V1 = 0x04; // tlog-cosignature
  const MAX_SIGNATURES = 100; // golang.org/x/mod's cap
  const MAX_UINT64 = (1n << 64n) - 1n;
  const MAX_TIMESTAMP = (1n << 63n) - 1n;
  const SIGNATURE_PREFIX = "\u2014 "; // em dash, space
  // signed-note: UTF-8 without ASCII control characters other than newline.
  const NOT_ALLOWED = /[\u0000-\u0009\u000b-\u001f]/;
  const encoder = new TextEncoder();

  function available() {
    return Boolean(noble && noble.sha256 && noble.ed25519);
  }

  function concat(...parts) {
    const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const part of parts) {
      out.set(part, at);
      at += part.length;
    }
    return out;
  }

  function equalBytes(a, b) {
    if (a.length !== b.length) return false;
    let diff = 0;
    for (let i = 0; i < a.length; i++) diff |= a[i] ^ b[i];
    return diff === 0;
  }

  function hex(bytes) {
    return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
  }

  function fromHex(text) {
    if (typeof text !== "string" || !/^(?:[0-9a-f]{2})*$/.test(text)) {
      throw new VerifyError("not lowercase hex");
    }
    const out = new Uint8Array(text.length / 2);
    for (let i = 0; i < out.length; i++) out[i] = parseInt(text.substr(i * 2, 2), 16);
    return out;
  }

  function toBase64(bytes) {
    let binary = "";
    for (const b of bytes) binary += String.fromCharCode(b);
    return btoa(binary);
  }

  // Standard base64 with padding, in its one canonical spelling (RFC 4648 §4).
  function fromBase64(text) {
    if (!/^(?:[A-Za-z0-9+/]{4})*(?:[A-Za-z0-9+/]{2}==|[A-Za-z0-9+/]{3}=)?$/.test(text)) {
      throw new VerifyError("invalid base64");
    }
    const binary = atob(text);
    const out = Uint8Array.from(binary, (c) => c.charCodeAt(0));
    if (toBase64(out) !== text) throw new VerifyError("non-canonical base64");
    return out;
  }

  function sha256(bytes) {
    return noble.sha256(bytes);
  }

  // RFC 6962 §2.1: leaf hash = SHA-256(0x00 || leaf), node hash = SHA-256(0x01 || left || right).
  function leafHash(leaf) {
    return sha256(concat(Uint8Array.of(0), leaf));
  }

  function nodeHash(left, right) {
    return sha256(concat(Uint8Array.of(1), left, right));
  }

  // MTH(D[n]) of RFC 6962 §2.1, for the vectors: split at the largest power of two below n.
  function treeRoot(leaves) {
    if (leaves.length === 0) return sha256(new Uint8Array(0));
    if (leaves.length === 1) return leafHash(leaves[0]);
    let k = 1;
    while (k * 2 < leaves.length) k *= 2;
    return nodeHash(treeRoot(leaves.slice(0, k)), treeRoot(leaves.slice(k)));
  }

  function bigint(value, what) {
    if (typeof value === "bigint") return value;
    if (typeof value === "number" && Number.isSafeInteger(value)) return BigInt(value);
    if (typeof value === "string" && /^(0|[1-9][0-9]*)$/.test(value)) return BigInt(value);
    throw new VerifyError(`${what} is not an unsigned integer`);
  }

  function bitLength(n) {
    let bits = 0;
    while (n > 0n) {
      n >>= 1n;
      bits++;
    }
    return bits;
  }

  function popcount(n) {
    let count = 0;
    while (n > 0n) {
      count += Number(n & 1n);
      n >>= 1n;
    }
    return count;
  }

  // The root an inclusion proof leads to (RFC 9162 §2.1.3.2), with the proof's exact length
  // required (transparency-dev/merkle's convention: extra or missing hashes are errors).
  function rootFromInclusionProof(leafHashBytes, indexValue, sizeValue, proof) {
    const index = bigint(indexValue, "leaf index");
    const size = bigint(sizeValue, "tree size");
    if (size > MAX_UINT64 || index >= size) {
      throw new VerifyError(`leaf index ${index} is outside a tree of size ${size}`);
    }
    if (leafHashBytes.length !== 32) throw new VerifyError("leaf hash is not 32 bytes");
    const inner = bitLength(index ^ (size - 1n));
    const expected = inner + popcount(index >> BigInt(inner));
    if (proof.length !== expected) {
      throw new VerifyError(`proof has ${proof.length} hashes, not ${expected}`);
    }
    let fn = index;
    let sn = size - 1n;
    let r = leafHashBytes;
    for (const p of proof) {
      if (p.length !== 32) throw new VerifyError("a proof hash is not 32 bytes");
      if (sn === 0n) throw new VerifyError("proof is too long for the tree size");
      if ((fn & 1n) === 1n || fn === sn) {
        r = nodeHash(p, r);
        if ((fn & 1n) === 0n) {
          while (fn !== 0n && (fn & 1n) === 0n) {
            fn >>= 1n;
            sn >>= 1n;
          }
        }
      } else {
        r = nodeHash(r, p);
      }
      fn >>= 1n;
      sn >>= 1n;
    }
    if (sn !== 0n) throw new VerifyError("proof is too short for the tree size");
    return r;
  }

  function verifyInclusion(leafHashBytes, index, size, proof, root) {
    const computed = rootFromInclusionProof(leafHashBytes, index, size, proof);
    if (!equalBytes(computed, root)) {
      throw new VerifyError(`the proof leads to root ${hex(computed)}, not ${hex(root)}`);
    }
    return computed;
  }

  function validKeyName(name) {
    return name.length > 0 && !name.includes("+") && !/\s/u.test(name) && !NOT_ALLOWED.test(name);
  }

  function noteKeyId(name, alg, publicKey) {
    return sha256(concat(encoder.encode(name), Uint8Array.of(0x0a, alg), publicKey)).slice(0, 4);
  }

  // A verifier key: <name>+<hex key ID>+base64(<type> || <32-byte Ed25519 key>) (signed-note).
  function parseVerifierKey(vkey) {
    const first = vkey.indexOf("+");
    const second = first < 0 ? -1 : vkey.indexOf("+", first + 1);
    if (first < 0 || second < 0) throw new VerifyError("malformed verifier key");
    const name = vkey.slice(0, first);
    const keyIdHex = vkey.slice(first + 1, second);
    if (!validKeyName(name)) throw new VerifyError("malformed verifier key name");
    if (!/^[0-9a-f]{8}$/.test(keyIdHex)) throw new VerifyError("malformed verifier key ID");
    const material = fromBase64(vkey.slice(second + 1));
    if (material.length !== 33) throw new VerifyError("verifier key is not a type and 32 bytes");
    const alg = material[0];
    if (alg !== ALG_ED25519 && alg !== ALG_COSIGNATURE_V1) {
      throw new VerifyError(`unsupported signature type 0x${alg.toString(16)}`);
    }
    const publicKey = material.slice(1);
    const keyId = noteKeyId(name, alg, publicKey);
    if (hex(keyId) !== keyIdHex) throw new VerifyError("key ID does not match the key");
    return { name, alg, keyId, publicKey, vkey };
  }

  // What an auditor compares with the fingerprint published elsewhere: SHA-256 of the key.
  function fingerprint(verifier) {
    return hex(sha256(concat(Uint8Array.of(verifier.alg), verifier.publicKey)));
  }

  function parseSignatureLine(line) {
    if (!line.startsWith(SIGNATURE_PREFIX) || NOT_ALLOWED.test(line)) {
      throw new VerifyError("not a signature line");
    }
    const rest = line.slice(SIGNATURE_PREFIX.length);
    const space = rest.indexOf(" ");
    if (space < 0) throw new VerifyError("malformed signature line");
    const name = rest.slice(0, space);
    const encoded = rest.slice(space + 1);
    if (!validKeyName(name) || !encoded) throw new VerifyError("malformed signature line");
    const payload = fromBase64(encoded);
    if (payload.length < 5) throw new VerifyError("signature is too short");
    return { name, keyId: payload.slice(0, 4), signature: payload.slice(4), line };
  }

  function ed25519Verifies(signature, message, publicKey) {
    try {
      return noble.ed25519.verify(signature, message, publicKey, { zip215: false });
    } catch (_) {
      return false;
    }
  }

  function cosignedMessage(text, timestamp) {
    return encoder.encode(`cosignature/v1\ntime ${timestamp}\n${text}`);
  }

  function verifySignature(text, signature, verifier) {
    if (verifier.alg === ALG_COSIGNATURE_V1) {
      if (signature.signature.length !== 72) throw new VerifyError("cosignature is not 72 bytes");
      let timestamp = 0n;
      for (const b of signature.signature.slice(0, 8)) timestamp = (timestamp << 8n) | BigInt(b);
      if (timestamp > MAX_TIMESTAMP) throw new VerifyError("cosignature timestamp is too large");
      const message = cosignedMessage(text, timestamp);
      if (!ed25519Verifies(signature.signature.slice(8), message, verifier.publicKey)) {
        throw new VerifyError(`cosignature by ${verifier.name} does not verify`);
      }
      return timestamp;
    }
    if (!ed25519Verifies(signature.signature, encoder.encode(text), verifier.publicKey)) {
      throw new VerifyError(`signature by ${verifier.name} does not verify`);
    }
    return null;
  }

  // Open a signed note as golang.org/x/mod's note.Open: well-formed, signatures by unknown
  // keys ignored, every signature by a known key verifies, at least one known signature.
  function openNote(note, verifiers) {
    const withoutPairs = note.replace(/[\ud800-\udbff][\udc00-\udfff]/g, "");
    if (NOT_ALLOWED.test(note) || /[\ud800-\udfff]/.test(withoutPairs)) {
      throw new VerifyError("malformed note: control characters or invalid UTF-8");
    }
    const split = note.lastIndexOf("\n\n");
    if (split < 0) throw new VerifyError("malformed note: no blank line before the signatures");
    const text = note.slice(0, split + 1);
    const block = note.slice(split + 2);
    if (!block.endsWith("\n")) throw new VerifyError("malformed note: no final newline");
    const lines = block.slice(0, -1).split("\n");
    if (lines.length > MAX_SIGNATURES) throw new VerifyError("malformed note: too many signatures");
    const signatures = lines.map((line) => {
      try {
        return parseSignatureLine(line);
      } catch (error) {
        throw new VerifyError(`malformed note: ${error.message}`);
      }
    });
    const verified = [];
    const unverified = [];
    const seen = new Set();
    for (const signature of signatures) {
      if (seen.has(signature.line)) continue; // identical signatures count once
      seen.add(signature.line);
      const known = verifiers.find(
        (v) => v.name === signature.name && equalBytes(v.keyId, signature.keyId),
      );
      if (!known) {
        unverified.push(signature);
        continue;
      }
      const timestamp = verifySignature(text, signature, known);
      verified.push({ signature, verifier: known, timestamp });
    }
    if (verified.length === 0) throw new VerifyError("the note has no signature by a known key");
    return { text, verified, unverified };
  }

  // A tlog-checkpoint body, strictly: origin, decimal size, base64 of a 32-byte root.
  function parseCheckpoint(text) {
    if (!text.endsWith("\n") || NOT_ALLOWED.test(text)) {
      throw new VerifyError("checkpoint text must end in a newline, without control characters");
    }
    const lines = text.slice(0, -1).split("\n");
    if (lines.length < 3) throw new VerifyError("checkpoint needs origin, size and root lines");
    const [origin, sizeText, rootText, ...extensions] = lines;
    if (!origin) throw new VerifyError("checkpoint origin is empty");
    if (!/^(0|[1-9][0-9]{0,19})$/.test(sizeText) || BigInt(sizeText) > MAX_UINT64) {
      throw new VerifyError("checkpoint size is not a uint64 in decimal");
    }
    const root = fromBase64(rootText);
    if (root.length !== 32) throw new VerifyError(`checkpoint root is ${root.length} bytes, not 32`);
    if (extensions.some((line) => !line)) throw new VerifyError("empty checkpoint extension line");
    return { origin, size: BigInt(sizeText), root, extensions };
  }

  // JSON values compared as data, member order aside.
  function sameJson(a, b) {
    if (a === b) return true;
    if (typeof a !== typeof b || a === null || b === null || typeof a !== "object") return false;
    if (Array.isArray(a) !== Array.isArray(b)) return false;
    const keysA = Object.keys(a);
    const keysB = Object.keys(b);
    if (keysA.length !== keysB.length) return false;
    return keysA.every((k) => Object.prototype.hasOwnProperty.call(b, k) && sameJson(a[k], b[k]));
  }

  global.auditTrailVerify = Object.freeze({
    VerifyError,
    available,
    hex,
    fromHex,
    fromBase64,
    toBase64,
    leafHash,
    nodeHash,
    treeRoot,
    rootFromInclusionProof,
    verifyInclusion,
    parseVerifierKey,
    fingerprint,
    openNote,
    parseCheckpoint,
    sameJson,
    ALG_ED25519,
    ALG_COSIGNATURE_V1,
  });
})(globalThis);
