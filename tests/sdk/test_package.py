"""The SDK stands alone: importing it loads httpx and the standard library, never the log's own
packages, and cryptography only when receipts are checked or the journal sealed."""

from __future__ import annotations

import json
import subprocess
import sys

SERVER_PACKAGES = {"decision_log", "verifier", "ledger", "http_edge", "audit_trail"}


def test_importing_the_sdk_loads_no_server_package_and_no_cryptography() -> None:
    probe = (
        "import json, sys; import audit_trail_sdk; "
        "from audit_trail_sdk import AuditLog; "
        "log = AuditLog(url='http://127.0.0.1:9', api_key='k', chain='c', heartbeat_interval=0); "
        "log.close(0.1); "
        "print(json.dumps(sorted({name.split('.')[0] for name in sys.modules})))"
    )
    ran = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True)
    loaded = set(json.loads(ran.stdout))
    assert "audit_trail_sdk" in loaded and "httpx" in loaded
    assert not loaded & SERVER_PACKAGES
    assert "cryptography" not in loaded
