"""CSRF protection of every console form (OWASP CSRF Prevention Cheat Sheet).

Signed in, a form carries the session's own token (synchronizer token). The sign-in form has no
session yet, so it carries the token of a short-lived cookie set with the form (double submit);
both cookies are SameSite=Strict as well, so a cross-site form never carries them.
"""

from __future__ import annotations

import hmac
import secrets

from decision_log.problems import Forbidden

SIGN_IN_CSRF_COOKIE = "audit_trail_console_csrf"
FIELD = "csrf_token"


class CsrfRefused(Forbidden):
    slug, title = "csrf-refused", "The form's CSRF token is missing or wrong"


def new_token() -> str:
    return secrets.token_urlsafe(32)


def check_token(*, expected: str | None, given: str | None) -> None:
    if not expected or not given or not hmac.compare_digest(expected.encode(), given.encode()):
        raise CsrfRefused("reload the page and send the form again")
