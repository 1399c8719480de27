from tests.service.conftest import (  # noqa: F401  (fixtures)
    app,
    client,
    live_url,
    settings,
    signer,
    tenant,
)
