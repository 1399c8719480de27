"""The ``audit-trail`` command's entry point.

``verify-bundle`` runs on the pure core alone: a regulator's machine has no database and needs
none of the server's code, so that command never imports it. Every other command loads the full
CLI.
"""

from __future__ import annotations

import sys


def main() -> None:
    try:
        if sys.argv[1:2] == ["verify-bundle"]:
            from audit_trail.bundles import verify_app

            verify_app(args=sys.argv[2:], prog_name="audit-trail verify-bundle")
            return
        from audit_trail.cli import main as full_cli

        full_cli()
    except KeyboardInterrupt:
        # A Ctrl-C before the command runs (while it imports its modules, which takes a second)
        # would otherwise print a traceback; the commands handle it themselves once running.
        # 130 = 128 + SIGINT, as a shell reports a command that Ctrl-C ended.
        sys.exit(130)
