"""The command line starts at once: its help, and the modules it loads, need none of the
server's code (FastAPI, SQLAlchemy, the decision_log) nor httpx or the cryptography library."""

from __future__ import annotations

import subprocess
import sys

HEAVY = ("fastapi", "sqlalchemy", "asyncpg", "alembic", "decision_log", "verifier", "httpx")


def modules_loaded_by(code: str) -> set[str]:
    script = f"import sys\n{code}\nprint('\\n'.join(sorted(sys.modules)))\n"
    ran = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, check=True, timeout=60
    )
    return set(ran.stdout.split())


def test_importing_the_command_line_loads_no_server_code() -> None:
    loaded = modules_loaded_by("import audit_trail.cli")
    assert "audit_trail.cli" in loaded and "typer" in loaded
    assert not {name for name in loaded if name.split(".")[0] in (*HEAVY, "cryptography")}


def test_help_lists_the_commands_without_loading_server_code() -> None:
    code = (
        "import contextlib, io\n"
        "from audit_trail.cli import app\n"
        "out = io.StringIO()\n"
        "with contextlib.redirect_stdout(out), contextlib.suppress(SystemExit):\n"
        "    app(['--help'], prog_name='audit-trail')\n"
        "assert 'verify-bundle' in out.getvalue() and 'export' in out.getvalue(), out.getvalue()"
    )
    loaded = modules_loaded_by(code)
    assert not {name for name in loaded if name.split(".")[0] in HEAVY}
