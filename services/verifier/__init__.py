"""The independent verifier: replays every chain it can see from raw leaf bytes, cosigns what
checks out, attests it, and raises findings with evidence when anything does not.

- `verifier.replay`: the pure checks of one chain's new entries (no I/O).
- `verifier.history`: the pure comparison of entries already checked with what the verifier
  remembers, and the kind of tamper at the first difference (no I/O).
- `verifier.log_client`: the decision_log's read API, as the verifier uses it.
- `verifier.service`: the rules: verify a chain against what the verifier already cosigned.
- `verifier.rereading`: re-reads entries already checked, a window at a time.
- `verifier.sweep`: re-reads every chain on a schedule, under a rate cap (`verifier.pacing`).
- `verifier.epochs`: acknowledging a finding, never re-certifying tampered history.
- `verifier.remembered`: the leaf hashes the verifier remembers, across epochs.
- `verifier.repository`: the SQL of the verifier's own store.
- `verifier.worker`: follows every chain, on a schedule.
- `verifier.app`: the FastAPI app (status, attestations, sweeps, coverage, public keys).
"""

VERSION = "0.1.0"
