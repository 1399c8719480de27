// The decision page's "Verify in your browser": each step of static/verify.js over the evidence
// the page was served with, shown passing or failing. Nothing here trusts the server's own
// verdicts; the keys are the ones the auditor gives (or, labelled so, the server's).
"use strict";

(function () {
  const v = globalThis.auditTrailVerify;

  function readJson(id) {
    const element = document.getElementById(id);
    return element ? JSON.parse(element.textContent) : null;
  }

  function item(list, passed, title, detail) {
    const li = document.createElement("li");
    const verdict = document.createElement("span");
    verdict.className = passed ? "pass" : "fail";
    verdict.textContent = passed ? "PASS" : "FAIL";
    li.append(verdict, " ", title);
    if (detail) {
      const why = document.createElement("span");
      why.className = "muted";
      why.textContent = ` — ${detail}`;
      li.append(why);
    }
    li.dataset.step = title;
    li.dataset.result = passed ? "pass" : "fail";
    list.append(li);
    return passed;
  }

  function step(list, title, check) {
    try {
      const detail = check();
      return item(list, true, title, detail || "");
    } catch (error) {
      return item(list, false, title, error.message || String(error));
    }
  }

  function keys(text, wantedAlg, what) {
    const parsed = text
      .split("\n")
      .map((line) => line.trim())
      .filter(Boolean)
      .map(v.parseVerifierKey);
    for (const key of parsed) {
      if (key.alg !== wantedAlg) throw new v.VerifyError(`${key.name} is not a ${what} key`);
    }
    return parsed;
  }

  function pathValue(data, path) {
    return path.reduce((value, name) => (value && typeof value === "object" ? value[name] : undefined), data);
  }

  function run(evidence, logKeyText, verifierKeysText) {
    const list = document.getElementById("verify-steps");
    const summary = document.getElementById("verify-summary");
    list.replaceChildren();
    if (!v || !v.available()) {
      summary.className = "fail";
      summary.textContent =
        "This browser cannot verify: the hashing and signature code did not load. Nothing is shown as passing.";
      return;
    }
    let all = true;
    let logKeys = [];
    let verifierKeys = [];
    all &= step(list, "The log's key", () => {
      logKeys = keys(logKeyText, v.ALG_ED25519, "log (Ed25519 note)");
      if (logKeys.length === 0) throw new v.VerifyError("give the log's key");
      return logKeys.map((k) => `${k.name}, fingerprint ${v.fingerprint(k)}`).join("; ");
    });
    all &= step(list, "The verifier's keys", () => {
      verifierKeys = keys(verifierKeysText, v.ALG_COSIGNATURE_V1, "cosignature/v1");
      if (verifierKeys.length === 0) throw new v.VerifyError("give the verifier's cosigning key");
      return verifierKeys.map((k) => `${k.name}, fingerprint ${v.fingerprint(k)}`).join("; ");
    });
    const decoder = new TextDecoder("utf-8", { fatal: true });
    const recomputed = {};
    const leaves = {};
    for (const entry of evidence.entries) {
      all &= step(list, `Leaf hash of entry ${entry.index}`, () => {
        const bytes = v.fromBase64(entry.leaf);
        const hashed = v.leafHash(bytes);
        recomputed[entry.index] = hashed;
        if (v.hex(hashed) !== entry.leaf_hash) {
          throw new v.VerifyError(
            `the leaf bytes hash to ${v.hex(hashed)}, not to the proved ${entry.leaf_hash}`,
          );
        }
        return v.hex(hashed);
      });
      all &= step(list, `Event shown for entry ${entry.index} is the one in its leaf`, () => {
        const leaf = JSON.parse(decoder.decode(v.fromBase64(entry.leaf)));
        leaves[entry.index] = leaf;
        if (leaf.index !== entry.index) throw new v.VerifyError(`the leaf says index ${leaf.index}`);
        if (leaf.chain !== evidence.chain) throw new v.VerifyError(`the leaf says chain ${leaf.chain}`);
        if (!v.sameJson(leaf.event, entry.event)) {
          throw new v.VerifyError("the event shown differs from the event in the leaf");
        }
      });
    }
    if (evidence.cited) {
      all &= step(list, `The explanation cites entry ${evidence.cited.index}`, () => {
        const leaf = leaves[evidence.cited.index];
        if (!leaf) throw new v.VerifyError("that entry's leaf is not among the checked ones");
        const data = leaf.event.data || {};
        for (const [name, path] of Object.entries(evidence.cited.paths)) {
          const shown = evidence.cited.values[name];
          const recorded = pathValue(data, path);
          if (shown !== null && shown !== undefined && !v.sameJson(shown, recorded)) {
            throw new v.VerifyError(`${name} is shown as ${JSON.stringify(shown)} but recorded as ${JSON.stringify(recorded)}`);
          }
        }
      });
    }
    const checkpoints = {};
    for (const checkpoint of evidence.checkpoints) {
      all &= step(list, `Log signature of checkpoint ${checkpoint.size}`, () => {
        const opened = v.openNote(checkpoint.note, logKeys);
        const body = v.parseCheckpoint(opened.text);
        if (body.origin !== evidence.origin) {
          throw new v.VerifyError(`the checkpoint is of ${body.origin}, not ${evidence.origin}`);
        }
        if (body.size !== BigInt(checkpoint.size)) throw new v.VerifyError("size differs");
        checkpoints[checkpoint.size] = body;
        return `root ${v.hex(body.root)}`;
      });
      all &= step(list, `Verifier's cosignature of checkpoint ${checkpoint.size}`, () => {
        const opened = v.openNote(checkpoint.note, verifierKeys);
        const when = opened.verified.map((s) => new Date(Number(s.timestamp) * 1000).toISOString());
        return `cosigned by ${opened.verified.map((s) => s.verifier.name).join(", ")} at ${when.join(", ")}`;
      });
    }
    for (const entry of evidence.entries) {
      all &= step(list, `Inclusion of entry ${entry.index} in checkpoint ${entry.tree_size}`, () => {
        if (entry.tree_size === null || !entry.proof) {
          throw new v.VerifyError("no checkpoint covers this entry yet");
        }
        const body = checkpoints[entry.tree_size];
        if (!body) throw new v.VerifyError("that checkpoint's signature did not verify");
        const hashed = recomputed[entry.index];
        if (!hashed) throw new v.VerifyError("the leaf could not be hashed");
        v.verifyInclusion(hashed, entry.index, entry.tree_size, entry.proof.map(v.fromHex), body.root);
      });
    }
    summary.className = all ? "pass" : "fail";
    summary.textContent = all
      ? "Every step passed in this browser."
      : "At least one step failed: see below.";
  }

  function showFingerprints(logKeyText, verifierKeysText) {
    const list = document.getElementById("fingerprints");
    list.replaceChildren();
    if (!v || !v.available()) return;
    for (const line of `${logKeyText}\n${verifierKeysText}`.split("\n").map((l) => l.trim()).filter(Boolean)) {
      const li = document.createElement("li");
      try {
        const key = v.parseVerifierKey(line);
        li.textContent = `${key.name}: SHA-256 fingerprint ${v.fingerprint(key)}`;
      } catch (error) {
        li.className = "fail";
        li.textContent = `Not a key: ${error.message}`;
      }
      list.append(li);
    }
  }

  document.addEventListener("DOMContentLoaded", () => {
    const evidence = readJson("decision-evidence");
    const serverKeys = readJson("server-keys");
    const logKey = document.getElementById("log-key");
    const verifierKeys = document.getElementById("verifier-keys");
    const source = document.getElementById("key-source");
    if (!evidence || !logKey) return;
    const refresh = () => showFingerprints(logKey.value, verifierKeys.value);
    const pasted = () => {
      source.textContent = "Keys as you gave them.";
      refresh();
    };
    logKey.addEventListener("input", pasted);
    verifierKeys.addEventListener("input", pasted);
    document.getElementById("use-server-keys").addEventListener("click", () => {
      logKey.value = serverKeys.log;
      verifierKeys.value = serverKeys.verifiers.join("\n");
      source.textContent =
        "Trust on first use: these keys come from this server, so a check under them shows only that the server is consistent with itself.";
      refresh();
    });
    document.getElementById("verify-button").addEventListener("click", () => {
      run(evidence, logKey.value, verifierKeys.value);
    });
  });
})();
