"""The decision_log fixtures of tests/service (real PostgreSQL, the app over ASGI)."""

from tests.service.conftest import app, client, settings, signer, tenant

__all__ = ["app", "client", "settings", "signer", "tenant"]
