"""The ``audit-trail`` command's entry point.

``verify-bundle`` runs on the pure core alone: a regulator's machine has no database and needs
none of the server's code, so that command never imports it. Every other command loads the full
CLI.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path


def main() -> None:
    try:
        if sys.argv[1:2] == ["verify-bundle"]:
            from audit_trail.bundles import verify_app

            verify_app(args=sys.argv[2:], prog_name="audit-trail verify-bundle")
            return
        if sys.argv[1:2] in (["serve"], ["up"], ["verifier"]):
            fresh_metrics_folder()
        from audit_trail.cli import main as full_cli

        full_cli()
    except KeyboardInterrupt:
        # A Ctrl-C before the command runs (while it imports its modules, which takes a second)
        # would otherwise print a traceback; the commands handle it themselves once running.
        # 130 = 128 + SIGINT, as a shell reports a command that Ctrl-C ended.
        sys.exit(130)


def fresh_metrics_folder() -> None:
    """Empty ``PROMETHEUS_MULTIPROC_DIR`` before anything imports prometheus-client: values a
    previous run left there (a restarted container keeps its emptyDir) would be added to this
    run's, and the files of this process must not be removed once it has opened them."""
    folder = os.environ.get("PROMETHEUS_MULTIPROC_DIR")
    if not folder:
        return
    path = Path(folder)
    path.mkdir(parents=True, exist_ok=True)
    for stale in path.glob("*.db"):
        stale.unlink()
