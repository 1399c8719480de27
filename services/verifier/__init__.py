"""The independent verifier: replays every chain it can see from raw leaf bytes, cosigns what
checks out, attests it, and raises findings with evidence when anything does not.

- `verifier.replay`: the pure checks of one chain's entries (no I/O).
- `verifier.log_client`: the decision_log's read API, as the verifier uses it.
- `verifier.service`: the rules: verify a chain against what the verifier already cosigned.
- `verifier.repository`: the SQL of the verifier's own store.
- `verifier.worker`: follows every chain, on a schedule.
- `verifier.app`: the FastAPI app (status, attestations, coverage, public keys).
"""

VERSION = "0.1.0"
