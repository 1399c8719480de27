"""The ``audit-trail`` command's entry point.

``verify-bundle`` runs on the pure core alone: a regulator's machine has no database and needs
none of the server's code, so that command never imports it. Every other command loads the full
CLI.
"""

from __future__ import annotations

import sys


def main() -> None:
    if sys.argv[1:2] == ["verify-bundle"]:
        from audit_trail.bundles import verify_app

        verify_app(args=sys.argv[2:], prog_name="audit-trail verify-bundle")
        return
    from audit_trail.cli import main as full_cli

    full_cli()
